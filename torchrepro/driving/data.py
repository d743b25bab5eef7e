"""Driving-direction data: the seed's CSV format and torchvision's ImageFolder layout.

CSV format (the seed's driving simulator write-up): a CSV whose rows are ``image_name,label`` (name without extension; an optional
header line ``image_name,label``) next to a folder of images. ImageFolder: ``<split>/<class>/<image>``.
Both return ``(image tensor, class index)``; the training split takes ``(epoch, index)`` keys so that its
augmentation is a pure function of ``(seed, epoch, index)``.

:class:`DrivingDataModule` builds the loaders from the ``data:`` block (:class:`~torchrepro.driving.config.DrivingData`).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Callable, Sequence

import pytorch_lightning as pl
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from torchrepro.core.config import Config
from torchrepro.core.data import ResumableLoader, ResumableSampler, keyed_rng
from torchrepro.core.errors import DataError
from torchrepro.core.evaluation import eval_loader
from torchrepro.core.images import IMAGE_EXTENSIONS, load_rgb  # noqa: F401  (re-exported: demo, tests)
from torchrepro.driving.config import DrivingData

def find_image(folder: Path, name: str) -> Path | None:
    """The file ``folder/name.<ext>`` for a known image extension, if any."""
    for ext in IMAGE_EXTENSIONS:
        candidate = folder / f"{name}{ext}"
        if candidate.is_file():
            return candidate
    return None


def read_label_csv(csv_path: Path, image_dir: Path, classes: Sequence[str]) -> list[tuple[Path, int]]:
    """Parse the seed's CSV into (image path, class index) pairs, checking every row."""
    if not csv_path.is_file():
        raise DataError(f"label file '{csv_path}' does not exist: check data.root and data.csv")
    if not image_dir.is_dir():
        raise DataError(f"image folder '{image_dir}' does not exist: check data.root and data.images")
    items: list[tuple[Path, int]] = []
    with open(csv_path, newline="") as fh:
        for line_no, row in enumerate(csv.reader(fh), start=1):
            if not row or (line_no == 1 and [c.strip() for c in row] == ["image_name", "label"]):
                continue
            if len(row) != 2:
                raise DataError(f"'{csv_path}' line {line_no}: expected 'image_name,label', got {row!r}")
            name, label = row[0].strip(), row[1].strip()
            if label not in classes:
                raise DataError(f"'{csv_path}' line {line_no}: label '{label}' is not one of {list(classes)} (data.classes)")
            path = find_image(image_dir, name)
            if path is None:
                raise DataError(f"'{csv_path}' line {line_no}: image '{name}' not found in '{image_dir}' (tried {', '.join(IMAGE_EXTENSIONS)})")
            items.append((path, classes.index(label)))
    if not items:
        raise DataError(f"label file '{csv_path}' lists no images: the data set is empty")
    return items


def read_image_folder(root: Path, classes: Sequence[str]) -> list[tuple[Path, int]]:
    """ImageFolder layout ``root/<class>/*.jpg``; class folders must be the configured classes."""
    if not root.is_dir():
        raise DataError(f"image folder '{root}' does not exist: check data.root")
    found = sorted(p.name for p in root.iterdir() if p.is_dir())
    if sorted(found) != sorted(classes):
        raise DataError(f"'{root}' has class folders {found}, expected {sorted(classes)} (data.classes)")
    items = [(p, classes.index(c)) for c in classes for p in sorted((root / c).iterdir())
             if p.suffix.lower() in IMAGE_EXTENSIONS]
    if not items:
        raise DataError(f"image folder '{root}' holds no images: the data set is empty")
    return items


class DirectionDataset(Dataset):
    """(image, label) pairs with optional keyed augmentation and a left/right-swapping horizontal flip.

    Mirroring a road scene turns a left bend into a right bend, so the flip swaps those two labels instead of
    being forbidden (it doubles the effective data for free).
    """

    def __init__(self, items: list[tuple[Path, int]], transform: Callable[[Image.Image], torch.Tensor],
                 classes: Sequence[str], seed: int = 0, flip_swap: bool = False) -> None:
        self.items = items
        self.transform = transform
        self.seed = seed
        self.flip_swap = flip_swap and "left" in classes and "right" in classes
        self.swap = {classes.index("left"): classes.index("right"), classes.index("right"): classes.index("left")} if self.flip_swap else {}

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        if isinstance(key, tuple):  # training: (epoch, index) → deterministic augmentation
            epoch, index = key
            path, label = self.items[index]
            with keyed_rng(self.seed, epoch, index):
                image = self.transform(load_rgb(path))
                if self.flip_swap and bool(torch.rand(()) < 0.5):
                    image, label = image.flip(-1), self.swap.get(label, label)
            return image, label
        path, label = self.items[key]
        return self.transform(load_rgb(path)), label

    def labels(self) -> list[int]:
        return [label for _, label in self.items]


def class_counts(items: list[tuple[Path, Any]], n_classes: int) -> list[int]:
    counts = [0] * n_classes
    for _, label in items:
        counts[label] += 1
    return counts


def build_transforms(size: int, train: bool, augment: bool = True) -> v2.Compose:
    """The seed's normalisation (mean 0.5, std 0.5); photometric jitter and a small shift for training.

    No random-resized crop: the bend that decides the class lives in the few rows under the horizon, and a
    crop that cuts them away would turn a "left" image into an unlabelled one.
    """
    ops: list = [v2.PILToTensor(), v2.Resize((size, size), antialias=True)]
    if train and augment:
        ops += [v2.RandomAffine(degrees=0, translate=(0.05, 0.05)),
                v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3)]
    ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * 3, [0.5] * 3)]
    return v2.Compose(ops)


class DrivingDataModule(pl.LightningDataModule):
    """Training and validation splits from the generated scenes, a CSV data set or an ImageFolder."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.d: DrivingData = cfg.data
        self.train_set: DirectionDataset | None = None
        self.val_set: DirectionDataset | None = None
        self.test_set: DirectionDataset | None = None

    @property
    def has_test_split(self) -> bool:
        """Whether a held-out split is scored once when training ends (``data.test_split``)."""
        return self.d.test_split is not None

    def _synthetic_root(self) -> Path:
        d = self.d
        counts = f"{d.synthetic_train}-{d.synthetic_val}" + (f"-{d.synthetic_test}" if d.test_split else "")
        return Path(d.synthetic_dir) / f"seed{self.cfg.seed}-n{counts}-s{d.synthetic_size}"

    def prepare_data(self) -> None:
        if self.d.source == "synthetic":  # Lightning calls this on local rank 0 only
            from torchrepro.driving.synthetic import generate_dataset

            d = self.d
            generate_dataset(self._synthetic_root(), d.synthetic_train, d.synthetic_val, seed=self.cfg.seed,
                             size=d.synthetic_size, n_test=d.synthetic_test if d.test_split else 0)

    def _items(self, split: str) -> list:
        d = self.d
        if split == d.test_split and d.source != "synthetic" and not (Path(d.root) / split).is_dir():
            raise DataError(f"test split '{Path(d.root) / split}' does not exist: add the held-out split there, or "
                            f"set data.test_split=null to train without one (no test figure is then reported)")
        if d.source == "imagefolder":
            return read_image_folder(Path(d.root) / split, d.classes)
        if d.source == "synthetic":
            base = self._synthetic_root() / split
            return read_label_csv(base / "labels.csv", base / "images", d.classes)
        base = Path(d.root) / split
        return read_label_csv(base / d.csv, base / d.images, d.classes)

    def setup(self, stage: str | None = None) -> None:
        d = self.d
        if self.train_set is None and stage in (None, "fit"):
            self.train_set = DirectionDataset(self._items(d.train_split), build_transforms(d.image_size, True, d.augment),
                                              d.classes, seed=self.cfg.seed, flip_swap=d.flip_swap)
        if self.val_set is None:
            self.val_set = DirectionDataset(self._items(d.val_split), build_transforms(d.image_size, False), d.classes)
        if self.test_set is None and self.has_test_split and stage in (None, "fit", "test"):
            self.test_set = DirectionDataset(self._items(d.test_split), build_transforms(d.image_size, False), d.classes)

    def check_files(self) -> None:
        """Decode every image of every split set up (``torchrepro data``): a file that is not an image, or is
        truncated, is named now rather than when a batch reaches it mid-epoch. Splits are non-empty by then (the
        readers refuse an empty CSV or image folder)."""
        for dataset in (self.train_set, self.val_set, self.test_set):
            for path, _ in dataset.items if dataset is not None else ():
                load_rgb(path, check_only=True)

    def train_dataloader(self) -> DataLoader:
        sampler = ResumableSampler(self.train_set, seed=self.cfg.seed, shuffle=True, keyed=True)
        return ResumableLoader(self.train_set, sampler, batch_size=self.d.batch_size, drop_last=False,
                               num_workers=self.d.num_workers, persistent_workers=False)

    def val_dataloader(self) -> DataLoader:
        return eval_loader(self.val_set, self.d.val_batch_size, self.d.num_workers, trainer=self.trainer)

    def test_dataloader(self) -> DataLoader:
        return eval_loader(self.test_set, self.d.val_batch_size, self.d.num_workers, trainer=self.trainer)
