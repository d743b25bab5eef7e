"""Tiny data sets in the exact on-disk formats the SimCLR recipe reads, written by code independent of its readers:
Fashion-MNIST IDX files (gzipped or plain), CIFAR-10 python batches (pickled dicts) and an ImageFolder tree."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image

IDX_NAMES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding of a uint8 array: magic 0x0000080N (N dimensions), big-endian uint32 sizes, the bytes."""
    array = np.asarray(array, dtype=np.uint8)
    return struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def fashion_images(n: int, seed: int, size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random grey images whose mean brightness follows their label (0-9), and the labels."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 10).astype(np.uint8)
    images = rng.integers(0, 60, (n, size, size)) + labels[:, None, None].astype(np.int64) * 19
    return images.astype(np.uint8), labels


def write_fashion_mnist(root: Path, n_train: int = 60, n_test: int = 20, gz: bool = True, size: int = 28) -> Path:
    """The four Fashion-MNIST IDX files under ``root`` (``.gz`` when ``gz``); train seed 1, test seed 2."""
    root.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", n_train, 1), ("test", n_test, 2)):
        images, labels = fashion_images(n, seed, size)
        for name, array in zip(IDX_NAMES[split], (images, labels)):
            payload = idx_bytes(array)
            if gz:
                (root / f"{name}.gz").write_bytes(gzip.compress(payload))
            else:
                (root / name).write_bytes(payload)
    return root


def cifar_batch(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    labels = [int(k) for k in np.arange(n) % 10]
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    return {b"batch_label": b"fixture", b"labels": labels, b"data": data, b"filenames": [b"x.png"] * n}


def write_cifar10(root: Path, per_batch: int = 12, n_test: int = 20) -> Path:
    """``root/cifar-10-batches-py/data_batch_1..5`` and ``test_batch``, pickled dicts as CIFAR-10 ships them."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, 6):
        with open(folder / f"data_batch_{i}", "wb") as fh:
            pickle.dump(cifar_batch(per_batch, seed=i), fh, protocol=2)
    with open(folder / "test_batch", "wb") as fh:
        pickle.dump(cifar_batch(n_test, seed=9), fh, protocol=2)
    return root


def write_image_folder(root: Path, classes=("cat", "dog"), per_class: int = 12, n_test: int = 4,
                       size: tuple[int, int] = (40, 30)) -> Path:
    """``root/train/<class>/<k>.png`` and ``root/test/<class>/<k>.jpg`` (RGB, ``size`` (w, h))."""
    rng = np.random.default_rng(0)
    for split, n, ext in (("train", per_class, "png"), ("test", n_test, "jpg")):
        for k, name in enumerate(classes):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = rng.integers(0, 80, (size[1], size[0], 3)) + 80 * k
                Image.fromarray(pixels.astype(np.uint8)).save(root / split / name / f"{i}.{ext}")
    return root
