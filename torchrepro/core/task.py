"""Base LightningModule of every recipe: optimiser and schedule come from the config."""

from __future__ import annotations

import math
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

    def total_steps(self) -> int:
        """Optimiser steps of the whole run, computed from our own loader.

        Not ``trainer.estimated_stepping_batches``: that builds Lightning's training loader during
        ``configure_optimizers``, before the checkpoint's loop state is restored, so a resumed run would
        iterate a loader whose saved position (the resumable sampler's skip) was never applied and repeat
        batches (found by tests/place_recognition/test_resume.py).
        """
        t = self.trainer
        batches = len(t.datamodule.train_dataloader())
        limit = t.limit_train_batches
        if isinstance(limit, int):
            batches = min(batches, limit)
        elif limit is not None:
            batches = int(batches * limit)
        per_epoch = max(1, math.ceil(batches / t.accumulate_grad_batches))
        total = per_epoch * max(int(t.max_epochs or 1), 1)
        return min(total, t.max_steps) if t.max_steps and t.max_steps > 0 else total

    def configure_optimizers(self):  # noqa: ANN201 - Lightning's union return type
        optimizer = build_optimizer(self.parameter_groups(), self.cfg.optim)
        if self.cfg.sched.interval == "step":
            total = self.total_steps()
        else:
            total = int(self.trainer.max_epochs or 1)
        scheduler = build_scheduler(optimizer, self.cfg.sched, total)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": scheduler}
