"""Base LightningModule of every recipe: optimiser and schedule come from the config."""

from __future__ import annotations

from typing import Iterable

import pytorch_lightning as pl
from torch import nn

from torchrepro.core.config import Config
from torchrepro.core.optim import build_optimizer, build_scheduler


class TaskModule(pl.LightningModule):
    """A recipe's LightningModule. Subclasses implement the steps and :meth:`parameter_groups`."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg

    def parameter_groups(self) -> dict[str, Iterable[nn.Parameter]]:
        """Named parameter groups (e.g. ``backbone`` / ``head``) for per-group learning rates."""
        return {"all": self.parameters()}

    def configure_optimizers(self):  # noqa: ANN201 - Lightning's union return type
        optimizer = build_optimizer(self.parameter_groups(), self.cfg.optim)
        if self.cfg.sched.interval == "step":
            total = int(self.trainer.estimated_stepping_batches)
        else:
            total = int(self.trainer.max_epochs or 1)
        scheduler = build_scheduler(optimizer, self.cfg.sched, total)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": scheduler}
