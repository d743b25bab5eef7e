"""Driving-direction recipe ("driving"): the LightningModule and its registration.

The seed's driving-simulator write-up fine-tunes a ResNet34 to classify a driver's-view frame as left / right /
straight, images normalised with mean 0.5, std 0.5, SGD lr 1e-2 momentum 0.9, StepLR(7, 0.1), optionally
freezing all but the last layer. It computed predictions in eval mode and then trained; Lightning keeps the
train/eval modes straight here (training steps run in train mode, evaluation in eval mode).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import multiclass_accuracy, multiclass_confusion_matrix

from torchrepro.core.config import Config
from torchrepro.core.task import TaskModule
from torchrepro.driving.config import DrivingData, DrivingModel
from torchrepro.driving.data import DrivingDataModule
from torchrepro.driving.model import DirectionNet
from torchrepro.driving.plots import DrivingPlots


class DrivingTask(TaskModule):
    """Cross-entropy classifier; logs ``loss``, ``lr``, ``val_loss`` and ``accuracy``."""

    logged_lr_group = "head"
    progress_metric = "accuracy"

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        m: DrivingModel = cfg.model
        self.num_classes = len(cfg.data.classes)
        self.net = DirectionNet(self.num_classes, m.arch, pretrained=m.pretrained, freeze_backbone=m.freeze_backbone,
                                l2_normalize=m.l2_normalize, zero_init_residual=m.zero_init_residual)
        self.last_confusion: torch.Tensor | None = None

    def parameter_groups(self) -> dict:
        return {"backbone": self.net.backbone.parameters(), "head": self.net.head.parameters()}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def losses(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        images, labels = batch
        return {"ce": F.cross_entropy(self.net(images), labels)}

    def evaluation_rows(self, batch: tuple[torch.Tensor, torch.Tensor], dataloader_idx: int) -> dict[str, torch.Tensor]:
        images, labels = batch
        return {"logits": self.net(images).float(), "labels": labels}

    def evaluation_metrics(self, targets: list[dict[str, torch.Tensor]]) -> dict[str, float]:
        logits, labels = targets[0]["logits"], targets[0]["labels"]
        self.last_confusion = multiclass_confusion_matrix(logits, labels, self.num_classes).cpu()
        return {"val_loss": float(F.cross_entropy(logits, labels)),
                "accuracy": float(multiclass_accuracy(logits, labels, self.num_classes, average="micro"))}


def build(cfg: Config) -> tuple[DrivingTask, DrivingDataModule]:
    return DrivingTask(cfg), DrivingDataModule(cfg)


def callbacks(cfg: Config) -> list:
    """The recipe's artefact callbacks (see :class:`~torchrepro.core.callbacks.RunArtefacts`)."""
    return [DrivingPlots()]
