"""SimCLR readers on fixtures in the exact formats (IDX gz and plain, CIFAR-10 python batches, ImageFolder), their
one-line errors, the held-out splits and the synthetic shapes (written as IDX, read back by the same reader)."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.simclr.fixtures import (
    IDX_NAMES,
    cifar_batch,
    fashion_images,
    idx_bytes,
    write_cifar10,
    write_fashion_mnist,
    write_image_folder,
)
from torchrepro.core.errors import DataError
from torchrepro.simclr.data import (
    bank_subset,
    held_out_split,
    read_cifar10,
    read_fashion_mnist,
    read_idx,
    read_image_folder,
)


@pytest.mark.parametrize("gz", [True, False], ids=["gzipped", "plain"])
def test_fashion_mnist_idx_reads_back_exactly(tmp_path: Path, gz: bool):
    root = write_fashion_mnist(tmp_path, n_train=30, n_test=10, gz=gz)
    train, test = read_fashion_mnist(root, "train"), read_fashion_mnist(root, "test")
    images, labels = fashion_images(30, seed=1)
    assert train.images.shape == (30, 1, 28, 28) and train.images.dtype == torch.uint8
    assert np.array_equal(train.images[:, 0].numpy(), images) and np.array_equal(train.labels.numpy(), labels)
    assert len(test) == 10 and train.classes[0] == "T-shirt/top" and len(train.classes) == 10


def _idx_file(tmp_path: Path, payload: bytes, gz: bool = True) -> Path:
    path = tmp_path / ("x.gz" if gz else "x")
    path.write_bytes(gzip.compress(payload) if gz else payload)
    return path


@pytest.mark.parametrize("gz", [True, False])
def test_idx_wrong_magic_truncated_and_too_long_name_the_file(tmp_path: Path, gz: bool):
    good = idx_bytes(np.zeros((4, 5, 6), np.uint8))
    with pytest.raises(DataError, match=r"x(\.gz)?' has magic number 0x00000801, expected 0x00000803"):
        read_idx(_idx_file(tmp_path, idx_bytes(np.zeros(4, np.uint8)), gz), 3)
    with pytest.raises(DataError, match=r"is truncated: its header gives shape \[4, 5, 6\] \(120 bytes of data\) but it holds 100"):
        read_idx(_idx_file(tmp_path, good[:-20], gz), 3)
    with pytest.raises(DataError, match="longer than its header says"):
        read_idx(_idx_file(tmp_path, good + b"\0", gz), 3)
    with pytest.raises(DataError, match="truncated inside its header"):
        read_idx(_idx_file(tmp_path, good[:9], gz), 3)
    assert read_idx(_idx_file(tmp_path, good, gz), 3).shape == (4, 5, 6)


def test_truncated_gzip_stream_names_the_file(tmp_path: Path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((4, 5, 6), np.uint8)))[:-12])
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz' cannot be read .*corrupt or truncated"):
        read_idx(path, 3)


def test_image_and_label_counts_must_agree(tmp_path: Path):
    root = write_fashion_mnist(tmp_path, n_train=30, n_test=10)
    (root / f"{IDX_NAMES['train'][1]}.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(29, np.uint8))))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz' holds 30 images but '.*train-labels-idx1-ubyte.gz' "
                                        r"29 labels"):
        read_fashion_mnist(root, "train")


def test_missing_idx_file_names_the_package_and_the_override(tmp_path: Path):
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist.*data.root"):
        read_fashion_mnist(tmp_path, "test")


def test_cifar10_python_batches(tmp_path: Path):
    root = write_cifar10(tmp_path, per_batch=6, n_test=8)
    train, test = read_cifar10(root, "train"), read_cifar10(tmp_path / "cifar-10-batches-py", "test")
    assert train.images.shape == (30, 3, 32, 32) and len(test) == 8 and train.classes[0] == "airplane"
    first = cifar_batch(6, seed=1)
    # the 3072 bytes of a row are the red, green and blue 32×32 planes, row-major
    assert np.array_equal(train.images[0].numpy().reshape(-1), first[b"data"][0])
    assert train.labels[:6].tolist() == first[b"labels"]


def test_cifar10_missing_or_foreign_batch(tmp_path: Path):
    root = write_cifar10(tmp_path)
    (root / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(DataError, match="CIFAR-10 batch '.*data_batch_4' is missing"):
        read_cifar10(root, "train")
    with open(root / "cifar-10-batches-py" / "data_batch_4", "wb") as fh:
        pickle.dump({b"data": Path("/")}, fh)  # a pickle that would build another class
    with pytest.raises(DataError, match="data_batch_4' is not a CIFAR-10 python batch"):
        read_cifar10(root, "train")


def test_image_folder(tmp_path: Path):
    root = write_image_folder(tmp_path, per_class=3, n_test=2)
    train = read_image_folder(root / "train", 16)
    test = read_image_folder(root / "test", 16, classes=train.classes)
    assert train.images.shape == (6, 3, 16, 16) and train.classes == ["cat", "dog"]
    assert train.labels.tolist() == [0, 0, 0, 1, 1, 1] and len(test) == 4
    assert train.images[3:].float().mean() > train.images[:3].float().mean() + 40  # dog images are brighter


def test_image_folder_with_one_class_is_refused(tmp_path: Path):
    root = write_image_folder(tmp_path, classes=("cat",))
    with pytest.raises(DataError, match=r"train' has 1 class folder \['cat'\]: kNN and linear evaluation need at least two"):
        read_image_folder(root / "train", 16)


def test_held_out_split_is_seeded_disjoint_and_complete():
    train, val = held_out_split(100, 20, split_seed=0)
    assert len(val) == 20 and len(train) == 80 and not set(train.tolist()) & set(val.tolist())
    assert torch.equal(held_out_split(100, 20, 0)[1], val) and not torch.equal(held_out_split(100, 20, 1)[1], val)
    bank = bank_subset(train, 30, 0, "val")
    assert len(bank) == 30 and set(bank.tolist()) <= set(train.tolist())
    assert torch.equal(bank_subset(train, None, 0, "test"), train)
    with pytest.raises(DataError, match="data.val_size=100 leaves no training image"):
        held_out_split(100, 100, 0)


def test_synthetic_shapes_are_idx_files_read_by_the_real_reader(tmp_path: Path):
    from torchrepro.simclr.synthetic import generate_shapes

    root = generate_shapes(tmp_path / "shapes", 40, 20, size=20, seed=3)
    assert sorted(p.name for p in root.iterdir()) == sorted(f"{n}.gz" for pair in IDX_NAMES.values() for n in pair)
    train = read_fashion_mnist(root, "train")
    assert train.images.shape == (40, 1, 20, 20) and sorted(set(train.labels.tolist())) == list(range(10))
    again = read_fashion_mnist(generate_shapes(tmp_path / "again", 40, 20, size=20, seed=3), "train")
    assert torch.equal(again.images, train.images)  # a pure function of the seed
