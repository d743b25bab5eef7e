"""Config schemas of the driving-direction recipe (``data:`` and ``model:`` blocks) and their checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from torchrepro.core.config import check_data_root
from torchrepro.core.errors import ConfigError
from torchrepro.core.registry import Recipe, register
from torchrepro.nn.backbones import check_backbone_name


@dataclass
class DrivingData:
    """Where the images come from.

    ``synthetic``: generated road scenes (written in the CSV format under ``synthetic_dir``, then read back
    through the CSV loader). ``csv``: ``root/<split>/<csv>`` + ``root/<split>/<images>/``. ``imagefolder``:
    ``root/<split>/<class>/*.jpg``.

    Splits: ``train_split`` trains, ``val_split`` is scored every epoch and chooses the best checkpoint,
    ``test_split`` (held out; ``null`` when the data set has none) is scored once, with that checkpoint, when
    training ends.
    """

    source: Literal["synthetic", "csv", "imagefolder"] = "synthetic"
    root: str | None = None
    train_split: str = "train"
    val_split: str = "val"
    test_split: str | None = "test"
    csv: str = "labels.csv"
    images: str = "images"
    classes: list[str] = field(default_factory=lambda: ["left", "right", "straight"])
    synthetic_dir: str = "data/synthetic/driving"
    synthetic_train: int = 2400
    synthetic_val: int = 600
    synthetic_test: int = 600
    synthetic_size: int = 96
    image_size: int = 64
    batch_size: int = 32
    val_batch_size: int = 128
    num_workers: int = 0
    flip_swap: bool = True
    augment: bool = True  # photometric jitter + small shifts on the training split

    def check(self, where: str) -> None:
        if self.source != "synthetic":
            check_data_root(self.root, where, self.source, "/path/to/data", "point it at the data set folder")
        splits = [self.train_split, self.val_split] + ([self.test_split] if self.test_split else [])
        if len(set(splits)) != len(splits):
            raise ConfigError(f"{where}.train_split, {where}.val_split and {where}.test_split must name different "
                              f"folders, got {splits}: a split that is also scored is not held out")
        if len(set(self.classes)) != len(self.classes) or len(self.classes) < 2:
            raise ConfigError(f"config key '{where}.classes' needs at least two distinct class names, got {self.classes}")
        for key in ("batch_size", "val_batch_size", "image_size", "synthetic_train", "synthetic_val",
                    "synthetic_test"):
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
        check_backbone_name(self.arch, f"{where}.arch")
        if self.pretrained and not Path(self.pretrained).is_file():
            raise ConfigError(f"pretrained weights '{self.pretrained}' ({where}.pretrained) do not exist: give a local .pth path")


# The recipe's entry in the registry: names, schemas and the task module (imported only when a run builds it).
RECIPE = register(Recipe(
    name="driving",
    description="driving-direction classifier (left/right/straight), ResNet34 fine-tuning; synthetic road scenes or CSV/ImageFolder",
    data_schema=DrivingData,
    model_schema=DrivingModel,
    task="torchrepro.driving.task",  # build(cfg), callbacks(cfg): imported when a run needs them
    default_monitor="accuracy",
    default_mode="max",
    synthetic_config="configs/driving_synthetic.yaml",
    tiny_overrides=("data.synthetic_train=48", "data.synthetic_val=24", "data.synthetic_test=24",
                    "data.synthetic_size=32",
                    "data.image_size=32", "data.batch_size=8", "model.arch=resnet18", "trainer.max_epochs=2"),
    demo="torchrepro.driving.demo",  # page(runs_dir): the live page of `torchrepro serve`
    report_figures=(  # written by torchrepro.driving.plots.DrivingPlots
        ("confusion_matrix.png", "Confusion matrix of the last validation: rows are the true direction, columns the "
                                 "predicted one; counts, coloured by the share of the row."),
        ("curves.png", "Training loss, validation loss and validation accuracy per epoch."),
    ),
))
