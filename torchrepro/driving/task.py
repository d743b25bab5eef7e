"""Driving-direction recipe: config schemas, DataModule, LightningModule, registration.

Seed (SEEDS.md §4): fine-tune a ResNet34 to classify a driver's-view frame as left / right / straight,
images normalised with mean 0.5, std 0.5, SGD lr 1e-2 momentum 0.9, StepLR(7, 0.1); optionally freeze all
but the last layer. The seed computed predictions in eval mode and then trained; Lightning keeps the
train/eval modes straight here (training_step runs in train mode, validation_step in eval mode).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix
from torchvision.transforms import v2

from torchrepro.core.config import Config
from torchrepro.core.data import ResumableLoader, ResumableSampler
from torchrepro.core.errors import ConfigError
from torchrepro.core.plots import plot_confusion, plot_curves
from torchrepro.core.registry import Recipe, register
from torchrepro.core.rundir import METRICS_NAME
from torchrepro.core.task import TaskModule
from torchrepro.driving.data import DirectionDataset, read_image_folder, read_label_csv
from torchrepro.driving.model import ARCHS, DirectionNet


@dataclass
class DrivingData:
    """Where the images come from.

    ``synthetic``: generated road scenes (written in the CSV format under ``synthetic_dir``, then read back
    through the CSV loader). ``csv``: ``root/<split>/<csv>`` + ``root/<split>/<images>/``. ``imagefolder``:
    ``root/<split>/<class>/*.jpg``.
    """

    source: Literal["synthetic", "csv", "imagefolder"] = "synthetic"
    root: str | None = None
    train_split: str = "train"
    val_split: str = "val"
    csv: str = "labels.csv"
    images: str = "images"
    classes: list[str] = field(default_factory=lambda: ["left", "right", "straight"])
    synthetic_dir: str = "data/synthetic/driving"
    synthetic_train: int = 2400
    synthetic_val: int = 600
    synthetic_size: int = 96
    image_size: int = 64
    batch_size: int = 32
    val_batch_size: int = 128
    num_workers: int = 0
    flip_swap: bool = True
    augment: bool = True  # photometric jitter + small shifts on the training split

    def check(self, where: str) -> None:
        if self.source != "synthetic":
            if not self.root:
                raise ConfigError(f"config key '{where}.root' is required for source '{self.source}': set {where}.root=/path/to/data")
            if not Path(self.root).is_dir():
                raise ConfigError(f"data root '{self.root}' ({where}.root) does not exist: point it at the data set folder")
        if len(set(self.classes)) != len(self.classes) or len(self.classes) < 2:
            raise ConfigError(f"config key '{where}.classes' needs at least two distinct class names, got {self.classes}")
        for key in ("batch_size", "val_batch_size", "image_size", "synthetic_train", "synthetic_val"):
            if getattr(self, key) < 1:
                raise ConfigError(f"config key '{where}.{key}' must be >= 1, got {getattr(self, key)}")


@dataclass
class DrivingModel:
    arch: str = "resnet34"
    pretrained: str | None = None
    freeze_backbone: bool = False
    l2_normalize: bool = False
    zero_init_residual: bool = False

    def check(self, where: str) -> None:
        if self.arch not in ARCHS:
            raise ConfigError(f"config key '{where}.arch' must be one of {sorted(ARCHS)}, got '{self.arch}'")
        if self.pretrained and not Path(self.pretrained).is_file():
            raise ConfigError(f"pretrained weights '{self.pretrained}' ({where}.pretrained) do not exist: give a local .pth path")


def build_transforms(size: int, train: bool, augment: bool = True) -> v2.Compose:
    """Seed's normalisation (mean 0.5, std 0.5); photometric jitter and a small shift for training.

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
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.d: DrivingData = cfg.data
        self.train_set: DirectionDataset | None = None
        self.val_set: DirectionDataset | None = None

    def prepare_data(self) -> None:
        if self.d.source == "synthetic":
            self._synthetic_root()  # rank 0 generates (Lightning calls prepare_data on local rank 0)

    def _synthetic_root(self) -> Path:
        from torchrepro.driving.synthetic import generate_dataset

        d = self.d
        root = Path(d.synthetic_dir) / f"seed{self.cfg.seed}-n{d.synthetic_train}-{d.synthetic_val}-s{d.synthetic_size}"
        generate_dataset(root, d.synthetic_train, d.synthetic_val, seed=self.cfg.seed, size=d.synthetic_size)
        return root

    def _items(self, split: str) -> list:
        d = self.d
        if d.source == "imagefolder":
            return read_image_folder(Path(d.root) / split, d.classes)
        if d.source == "synthetic":
            base = Path(d.synthetic_dir) / f"seed{self.cfg.seed}-n{d.synthetic_train}-{d.synthetic_val}-s{d.synthetic_size}" / split
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

    def train_dataloader(self) -> DataLoader:
        sampler = ResumableSampler(self.train_set, seed=self.cfg.seed, shuffle=True, keyed=True)
        return ResumableLoader(self.train_set, sampler, batch_size=self.d.batch_size, drop_last=False,
                               num_workers=self.d.num_workers, persistent_workers=False)

    def val_dataloader(self) -> DataLoader:
        sampler = ResumableSampler(self.val_set, seed=self.cfg.seed, shuffle=False, pad=False)
        # own generator: creating the iterator must not draw from the global RNG (exact resume)
        return DataLoader(self.val_set, batch_size=self.d.val_batch_size, sampler=sampler,
                          num_workers=self.d.num_workers, generator=torch.Generator().manual_seed(self.cfg.seed))


class DrivingTask(TaskModule):
    """Cross-entropy classifier; logs ``loss``, ``lr``, ``val_loss`` and ``accuracy``."""

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        m: DrivingModel = cfg.model
        classes = cfg.data.classes
        self.net = DirectionNet(len(classes), m.arch, m.pretrained, m.freeze_backbone, m.l2_normalize,
                               m.zero_init_residual)
        self.val_accuracy = MulticlassAccuracy(num_classes=len(classes), average="micro")
        self.val_confusion = MulticlassConfusionMatrix(num_classes=len(classes))
        self.last_confusion: torch.Tensor | None = None

    def parameter_groups(self) -> dict:
        return {"backbone": self.net.backbone.parameters(), "head": self.net.head.parameters()}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        loss = F.cross_entropy(self.net(images), labels)
        self.log("loss", loss, prog_bar=True)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(labels))
        opt = self.optimizers()
        lrs = {g.get("name", str(i)): g["lr"] for i, g in enumerate(opt.param_groups)}
        self.log("lr", lrs.get("head", next(iter(lrs.values()))))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, labels = batch
        logits = self.net(images)
        self.log("val_loss", F.cross_entropy(logits, labels), on_epoch=True, sync_dist=True, batch_size=len(labels))
        self.val_accuracy.update(logits, labels)
        self.val_confusion.update(logits, labels)

    def on_validation_epoch_end(self) -> None:
        self.log("accuracy", self.val_accuracy.compute(), prog_bar=True, sync_dist=False)
        self.last_confusion = self.val_confusion.compute().cpu()
        self.val_accuracy.reset()
        self.val_confusion.reset()

    def on_run_end(self, run_dir: Path, datamodule: DrivingDataModule) -> None:
        """Write the confusion matrix and the loss/accuracy curves as PNGs into the run directory."""
        if self.last_confusion is not None:
            plot_confusion(self.last_confusion.numpy(), self.cfg.data.classes, run_dir / "confusion_matrix.png",
                           title="validation confusion matrix")
        plot_curves(run_dir / METRICS_NAME, run_dir / "curves.png", ["train_loss", "val_loss", "accuracy"])


def build(cfg: Config) -> tuple[DrivingTask, DrivingDataModule]:
    return DrivingTask(cfg), DrivingDataModule(cfg)


RECIPE = register(Recipe(
    name="driving",
    description="driving-direction classifier (left/right/straight), ResNet34 fine-tuning; synthetic road scenes or CSV/ImageFolder",
    data_schema=DrivingData,
    model_schema=DrivingModel,
    build=build,
    default_monitor="accuracy",
    default_mode="max",
))
