"""Run artefacts of the driving recipe: the validation confusion matrix and the training curves."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl

from torchrepro.core.callbacks import RunArtefacts
from torchrepro.core.plots import plot_confusion, plot_curves
from torchrepro.core.rundir import METRICS_NAME


class DrivingPlots(RunArtefacts):
    """``confusion_matrix.png`` (last validation) and ``curves.png`` (loss and accuracy per epoch)."""

    def write(self, run_dir: Path, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        confusion = getattr(pl_module, "last_confusion", None)
        if confusion is not None:
            plot_confusion(confusion.numpy(), pl_module.cfg.data.classes, run_dir / "confusion_matrix.png",
                           title="validation confusion matrix")
        plot_curves(run_dir / METRICS_NAME, run_dir / "curves.png", ["train_loss", "val_loss", "accuracy"])
