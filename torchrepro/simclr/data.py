"""SimCLR data: the readers of three real formats, the held-out splits and the DataModule.

Formats, each read whole into a uint8 tensor ``[N, C, H, W]`` (these data sets fit in memory: Fashion-MNIST is
55 MB, CIFAR-10 184 MB) with int64 labels:

* **IDX** (LeCun's MNIST format, which Fashion-MNIST keeps): a big-endian header — two zero bytes, a type code
  (``0x08``: unsigned byte), the number of dimensions — then one uint32 per dimension and the data. Images are
  ``idx3`` (magic ``0x00000803``), labels ``idx1`` (``0x00000801``). Files may be gzipped (``.gz``) or plain.
* **CIFAR-10 python batches** (``cifar-10-batches-py/data_batch_1..5``, ``test_batch``): pickled dicts with
  ``b"data"`` (uint8 ``[10000, 3072]``, the red, green and blue planes of each 32×32 image) and ``b"labels"``.
  They are unpickled by a restricted unpickler that builds nothing but numpy arrays, lists and strings.
* **ImageFolder** (torchvision's layout, ``root/train/<class>/<image>``, ``root/test/<class>/<image>``): classes
  are the sorted folder names; images are resized (shorter side) and centre-cropped to ``data.image_size``.

Splits: ``data.val_size`` training images drawn with ``data.split_seed`` form the validation split (it chooses
settings and checkpoints); the official test set is scored once, at the end. The training split's images come with
the key ``(epoch, index)`` turned into a per-sample seed: the two augmented views of a sample are a pure function
of ``(seed, epoch, index)`` (see :mod:`torchrepro.simclr.augment`), so a resumed run draws exactly the same views.
"""

from __future__ import annotations

import gzip
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from torchrepro.core.config import Config
from torchrepro.core.data import ResumableLoader, ResumableSampler
from torchrepro.core.errors import DataError
from torchrepro.core.evaluation import eval_loader
from torchrepro.core.images import IMAGE_EXTENSIONS, load_rgb
from torchrepro.core.seeding import derive_seed
from torchrepro.simclr.config import FASHION_MNIST_INSTALL, SimCLRData

FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot"]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
IDX_UBYTE = 0x08


@dataclass
class ImageSet:
    """A whole split in memory: ``images`` uint8 ``[N, C, H, W]``, ``labels`` int64 ``[N]``, class names."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]

    def __len__(self) -> int:
        return len(self.labels)


# ------------------------------------------------------------------------------------------------------- IDX
def _read_bytes(path: Path) -> bytes:
    """A file's bytes, un-gzipped when it starts with the gzip magic (whatever its name)."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            return gzip.decompress(raw)
        return raw
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise DataError(f"'{path}' cannot be read ({type(err).__name__}: {err}): the file is corrupt or truncated; "
                        f"replace it") from None


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """An IDX file (gzipped or plain) of unsigned bytes with ``ndim`` dimensions, checked against its header."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataError(f"IDX file '{path}' is truncated: {len(data)} bytes, not even the 4-byte magic number")
    magic = int.from_bytes(data[:4], "big")
    expected = (IDX_UBYTE << 8) | ndim
    if magic != expected:
        raise DataError(f"IDX file '{path}' has magic number 0x{magic:08x}, expected 0x{expected:08x} (unsigned bytes, "
                        f"{ndim} dimension{'s' if ndim > 1 else ''}): not an IDX {'image' if ndim == 3 else 'label'} "
                        f"file, or a corrupt one")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"IDX file '{path}' is truncated inside its header ({len(data)} of {header} bytes)")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    size = int(np.prod(dims))
    if len(data) - header != size:
        what = "truncated" if len(data) - header < size else "longer than its header says"
        raise DataError(f"IDX file '{path}' is {what}: its header gives shape {dims} ({size} bytes of data) but it holds "
                        f"{len(data) - header}; replace the file")
    return np.frombuffer(data, dtype=np.uint8, count=size, offset=header).reshape(dims)


def _find_idx(root: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (root / name).is_file():
            return root / name
    raise DataError(f"Fashion-MNIST file '{stem}.gz' (or '{stem}') not found in '{root}' (data.root): install the "
                    f"data set with `{FASHION_MNIST_INSTALL}`, or set data.root to the folder that holds the IDX files")


def read_fashion_mnist(root: Path, split: str) -> ImageSet:
    """Fashion-MNIST's ``train`` or ``test`` (``t10k``) split from the original IDX files in ``root``."""
    images_path, labels_path = (_find_idx(Path(root), stem) for stem in IDX_FILES[split])
    images, labels = read_idx(images_path, 3), read_idx(labels_path, 1)
    if len(images) != len(labels):
        raise DataError(f"'{images_path}' holds {len(images)} images but '{labels_path}' {len(labels)} labels: the two "
                        f"files belong to different data sets or one is incomplete")
    if len(images) == 0:
        raise DataError(f"'{images_path}' holds no images: the data set is empty")
    if labels.max() >= len(FASHION_MNIST_CLASSES):
        raise DataError(f"'{labels_path}' holds label {int(labels.max())}; Fashion-MNIST has classes 0-9")
    return ImageSet(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)),
                    list(FASHION_MNIST_CLASSES))


# -------------------------------------------------------------------------------------------------- CIFAR-10
class _ArrayUnpickler(pickle.Unpickler):
    """Builds numpy arrays, lists, dicts and strings only: a pickle naming any other class is refused."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.numeric", "_frombuffer"),
               ("numpy._core.numeric", "_frombuffer"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):  # noqa: ANN201 - pickle's signature
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to build {module}.{name}")
        return super().find_class(module, name)


def _cifar_dir(root: Path) -> Path:
    return root / "cifar-10-batches-py" if (root / "cifar-10-batches-py").is_dir() else root


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch: images uint8 ``[n, 3, 32, 32]`` and labels int64 ``[n]``."""
    if not path.is_file():
        raise DataError(f"CIFAR-10 batch '{path}' is missing: a CIFAR-10 folder holds data_batch_1 … data_batch_5 and "
                        f"test_batch (check data.root)")
    try:
        with open(path, "rb") as fh:
            batch = _ArrayUnpickler(fh, encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
        raise DataError(f"CIFAR-10 batch '{path}' is not a CIFAR-10 python batch ({type(err).__name__}: {err}): "
                        f"replace the file") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise DataError(f"CIFAR-10 batch '{path}' holds data of shape {data.shape} and {len(labels)} labels; expected "
                        f"[n, 3072] and n labels")
    return data.reshape(-1, 3, 32, 32), labels


def read_cifar10(root: Path, split: str) -> ImageSet:
    """CIFAR-10's ``train`` (data_batch_1..5) or ``test`` (test_batch) split from the python-format batches."""
    folder = _cifar_dir(Path(root))
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    parts = [read_cifar_batch(folder / name) for name in names]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    if labels.size and (labels.min() < 0 or labels.max() >= 10):
        raise DataError(f"CIFAR-10 batches in '{folder}' hold label {int(labels.max())}; CIFAR-10 has classes 0-9")
    return ImageSet(torch.from_numpy(images), torch.from_numpy(labels), list(CIFAR10_CLASSES))


# ----------------------------------------------------------------------------------------------- ImageFolder
def _square(image, size: int) -> np.ndarray:
    """Resize the shorter side to ``size`` and centre-crop a square: ``[3, size, size]`` uint8."""
    from PIL import Image

    w, h = image.size
    scale = size / min(w, h)
    image = image.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.BILINEAR)
    left, top = (image.width - size) // 2, (image.height - size) // 2
    return np.asarray(image.crop((left, top, left + size, top + size))).transpose(2, 0, 1)


def read_image_folder(root: Path, size: int, classes: list[str] | None = None) -> ImageSet:
    """torchvision's ImageFolder layout ``root/<class>/<image>``; ``classes`` (the training split's) must match."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder '{root}' does not exist: an ImageFolder data set has {root.parent}/train/<class>/ "
                        f"and {root.parent}/test/<class>/ (check data.root)")
    found = sorted(p.name for p in root.iterdir() if p.is_dir())
    if classes is None:
        if len(found) < 2:
            raise DataError(f"image folder '{root}' has {len(found)} class folder{'' if len(found) == 1 else 's'} "
                            f"{found}: kNN and linear evaluation need at least two classes (root/<class>/<image>)")
        classes = found
    elif found != classes:
        raise DataError(f"image folder '{root}' has class folders {found}, the training split {classes}: both splits "
                        f"need the same classes")
    items = [(p, k) for k, c in enumerate(classes) for p in sorted((root / c).iterdir())
             if p.suffix.lower() in IMAGE_EXTENSIONS]
    if not items:
        raise DataError(f"image folder '{root}' holds no images ({', '.join(IMAGE_EXTENSIONS)}): the data set is empty")
    images = np.stack([_square(load_rgb(path), size) for path, _ in items])
    labels = np.array([k for _, k in items], dtype=np.int64)
    return ImageSet(torch.from_numpy(images), torch.from_numpy(labels), list(classes))


# ------------------------------------------------------------------------------------------------ the splits
def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 ``[N, C, H, W]`` → uint8 ``[N, C, size, size]`` (antialiased bilinear), in chunks."""
    if images.shape[-2:] == (size, size):
        return images
    out = []
    for start in range(0, len(images), 4096):
        chunk = images[start:start + 4096].float()
        chunk = F.interpolate(chunk, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out.append(chunk.round().clamp(0, 255).to(torch.uint8))
    return torch.cat(out)


def load_source(d: SimCLRData, split: str, synthetic_root: Path | None = None,
                classes: list[str] | None = None) -> ImageSet:
    """The ``train`` or ``test`` split of ``data.source``, resized to ``data.image_size`` when that is set."""
    if d.source == "fashion_mnist":
        data = read_fashion_mnist(Path(d.root), split)
    elif d.source == "synthetic":
        data = read_fashion_mnist(synthetic_root, split)
        data.classes = synthetic_classes()
    elif d.source == "cifar10":
        data = read_cifar10(Path(d.root), split)
    else:
        data = read_image_folder(Path(d.root) / split, d.image_size or 64, classes)
    if d.image_size is not None:
        data.images = resize_images(data.images, d.image_size)
    return data


def synthetic_classes() -> list[str]:
    """The class names of the synthetic shapes (kept here so that the reader never imports the generator)."""
    return ["disk", "ring", "square", "frame", "triangle", "cross", "bar", "column", "diagonal", "dots"]


def held_out_split(n: int, val_size: int, split_seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(training indices, validation indices), both sorted: ``val_size`` of ``n`` drawn with ``split_seed``."""
    if val_size >= n:
        raise DataError(f"data.val_size={val_size} leaves no training image: the training set has {n} images; lower "
                        f"data.val_size")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(split_seed, "simclr-val")))
    return order[val_size:].sort().values, order[:val_size].sort().values


def bank_subset(train_idx: torch.Tensor, size: int | None, split_seed: int, name: str) -> torch.Tensor:
    """The training images of an evaluation's memory bank: all (``size`` null or larger), else a seeded subset."""
    if size is None or size >= len(train_idx):
        return train_idx
    gen = torch.Generator().manual_seed(derive_seed(split_seed, "simclr-bank", name))
    return train_idx[torch.randperm(len(train_idx), generator=gen)[:size]].sort().values


class KeyedImages(Dataset):
    """Training images by ``(epoch, index)`` key: ``(uint8 image, per-sample augmentation seed)``."""

    def __init__(self, images: torch.Tensor, seed: int) -> None:
        self.images = images
        self.seed = seed

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        epoch, index = key
        return self.images[index], derive_seed(self.seed, "simclr-view", epoch, index)


class LabelledImages(Dataset):
    """Evaluation images: ``(uint8 image, label)``."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]


class SimCLRDataModule(pl.LightningDataModule):
    """Training images (keyed), validation and test splits, each evaluated against its memory bank of training
    images: ``val_dataloader()`` / ``test_dataloader()`` return ``[bank loader, split loader]``."""

    has_test_split = True

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.d: SimCLRData = cfg.data
        self.train: ImageSet | None = None
        self.test: ImageSet | None = None
        self.train_idx = self.val_idx = None
        self.banks: dict[str, torch.Tensor] = {}
        self.mean = self.std = None
        self._pixel_baselines: dict[str, dict[str, float]] = {}

    # -- data
    def synthetic_root(self) -> Path:
        d = self.d
        size = d.image_size or 28
        return Path(d.synthetic_dir) / f"seed{self.cfg.seed}-n{d.synthetic_train}-{d.synthetic_test}-s{size}"

    def prepare_data(self) -> None:
        if self.d.source == "synthetic":  # Lightning calls this on local rank 0 only
            from torchrepro.simclr.synthetic import generate_shapes

            d = self.d
            generate_shapes(self.synthetic_root(), d.synthetic_train, d.synthetic_test, d.image_size or 28,
                            seed=self.cfg.seed)

    def setup(self, stage: str | None = None) -> None:
        if self.train is not None:
            return
        d = self.d
        root = self.synthetic_root() if d.source == "synthetic" else None
        if root is not None and not (root / "t10k-labels-idx1-ubyte.gz").is_file():
            self.prepare_data()  # a rank or command that did not prepare (e.g. `torchrepro eval`)
        self.train = load_source(d, "train", root)
        self.test = load_source(d, "test", root, classes=self.train.classes)
        if self.train.images.shape[1] != d.channels:
            raise DataError(f"data.source '{d.source}' gave {self.train.images.shape[1]}-channel images, the model "
                            f"expects {d.channels}")
        self.train_idx, self.val_idx = held_out_split(len(self.train), d.val_size, d.split_seed)
        if len(self.train_idx) < d.batch_size:
            raise DataError(f"the training split has {len(self.train_idx)} images, fewer than data.batch_size="
                            f"{d.batch_size}: no full batch to contrast; lower data.batch_size or data.val_size")
        self.banks = {"val": bank_subset(self.train_idx, d.val_bank, d.split_seed, "val"),
                      "test": bank_subset(self.train_idx, d.test_bank, d.split_seed, "test")}
        pixels = self.train.images[self.train_idx].float().div_(255)
        self.mean = pixels.mean(dim=(0, 2, 3))
        self.std = pixels.std(dim=(0, 2, 3)).clamp_min(1e-3)

    @property
    def classes(self) -> list[str]:
        return self.train.classes

    def eval_sets(self, split: str) -> tuple[LabelledImages, LabelledImages]:
        """(memory bank of training images, the evaluated images) of ``split`` (``val`` or ``test``)."""
        bank = self.banks[split]
        bank_set = LabelledImages(self.train.images[bank], self.train.labels[bank])
        if split == "val":
            return bank_set, LabelledImages(self.train.images[self.val_idx], self.train.labels[self.val_idx])
        return bank_set, LabelledImages(self.test.images, self.test.labels)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 or [0, 1] float images → standardised with the training split's per-channel mean and std."""
        x = images.float().div(255) if images.dtype == torch.uint8 else images
        shape = (1, -1, 1, 1)
        return (x - self.mean.to(x.device).view(shape)) / self.std.to(x.device).view(shape)

    def pixel_baseline(self, split: str, knn_k: int, knn_temperature: float, linear_steps: int,
                       linear_weight_decay: float) -> dict[str, float]:
        """kNN and linear evaluation of ``split`` on raw (standardised) pixels against the same memory bank:
        ``baseline_pixels_knn_top1`` and ``baseline_pixels_linear_top1``, computed on first use and kept."""
        from torchrepro.simclr.evaluation import knn_and_linear

        if split not in self._pixel_baselines:
            bank_set, eval_set = self.eval_sets(split)
            scores = knn_and_linear(self.normalise(bank_set.images).flatten(1), bank_set.labels,
                                    self.normalise(eval_set.images).flatten(1), eval_set.labels, len(self.classes),
                                    knn_k, knn_temperature, linear_steps, linear_weight_decay)
            self._pixel_baselines[split] = {f"baseline_pixels_{k}": v for k, v in scores.items()}
        return self._pixel_baselines[split]

    # -- loaders
    def train_dataloader(self) -> DataLoader:
        dataset = KeyedImages(self.train.images[self.train_idx], self.cfg.seed)
        sampler = ResumableSampler(dataset, seed=self.cfg.seed, shuffle=True, keyed=True)
        # full batches only: every anchor gets the same number of negatives (a last batch of one would have none)
        return ResumableLoader(dataset, sampler, batch_size=self.d.batch_size, drop_last=True,
                               num_workers=self.d.num_workers, persistent_workers=False)

    def _eval_loaders(self, split: str) -> list[DataLoader]:
        return [eval_loader(ds, self.d.eval_batch_size, self.d.num_workers, trainer=self.trainer)
                for ds in self.eval_sets(split)]

    def val_dataloader(self) -> list[DataLoader]:
        return self._eval_loaders("val")

    def test_dataloader(self) -> list[DataLoader]:
        return self._eval_loaders("test")
