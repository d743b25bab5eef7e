"""Base LightningModule of every recipe: the training step, named optimisers and the shared evaluation path.

A recipe implements :meth:`TaskModule.losses` (named loss terms of one batch) and the two evaluation methods of
:class:`~torchrepro.core.evaluation.OrderedEvaluation`; the base class sums the terms, runs manual optimisation
when the recipe has several optimisers (SAN's encoder/decoder pair), logs ``loss``, ``train_loss`` (the epoch
mean over all ranks), each term as ``loss_<name>`` when there are several, and ``lr``. This is the move
torchreid made when it pulled the loop out of each image engine into its base ``Engine``.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import torch
from torch import nn

from torchrepro.core.config import Config, OptimConfig
from torchrepro.core.errors import ConfigError
from torchrepro.core.evaluation import OrderedEvaluation
from torchrepro.core.optim import build_optimizer, build_scheduler

ParamGroups = dict[str, Iterable[nn.Parameter]]


class TaskModule(OrderedEvaluation):
    """A recipe's LightningModule (see the module docstring for what a subclass implements)."""

    #: the parameter group whose learning rate is logged as ``lr`` (None: the first group)
    logged_lr_group: str | None = None

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        #: True while the engine scores the freshly initialised model (artefact callbacks skip that validation)
        self.scoring_untrained = False

    # ------------------------------------------------------------------------------ what a recipe defines
    def losses(self, batch: Any) -> dict[str, torch.Tensor]:
        """Named loss terms of one training batch (already weighted); their sum is optimised."""
        raise NotImplementedError

    def batch_size(self, batch: Any) -> int:
        """Items in a training batch (weights the epoch mean of the loss); override for non-tuple batches."""
        return len(batch[0]) if isinstance(batch, (list, tuple)) else len(batch)

    def parameter_groups(self) -> ParamGroups:
        """Named parameter groups (e.g. ``backbone`` / ``head``) for per-group learning rates."""
        return {"all": self.parameters()}

    def optimizer_specs(self) -> dict[str, tuple[ParamGroups, OptimConfig]]:
        """One optimiser per entry: its parameter groups and settings. Several entries (set
        ``self.automatic_optimization = False`` in ``__init__``) are stepped together every batch."""
        return {"main": (self.parameter_groups(), self.cfg.optim)}

    # ----------------------------------------------------------------------------------- training step
    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        parts = self.losses(batch)
        loss = sum(parts.values())
        if not self.automatic_optimization:
            self._manual_step(loss)
        n = self.batch_size(batch)
        self.log("loss", loss, prog_bar=True, batch_size=n)
        # the epoch mean over every rank's items (each rank's own mean would differ from one process's)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
        if len(parts) > 1:
            for name, value in parts.items():
                self.log(f"loss_{name}", value, batch_size=n)
        self.log("lr", self._logged_lr())
        return loss

    def _logged_lr(self) -> float:
        opts = self.optimizers()
        groups = (opts[0] if isinstance(opts, list) else opts).param_groups
        chosen = next((g for g in groups if g.get("name") == self.logged_lr_group), groups[0])
        return chosen["lr"]

    def _schedulers(self) -> list:
        s = self.lr_schedulers()
        return [] if s is None else (s if isinstance(s, list) else [s])

    def _manual_step(self, loss: torch.Tensor) -> None:
        """Several optimisers: one backward, then every optimiser (and step-interval schedule) steps."""
        opts = self.optimizers()
        opts = opts if isinstance(opts, list) else [opts]
        for opt in opts:
            opt.zero_grad()
        self.manual_backward(loss)
        for opt in opts:
            opt.step()
        if self.cfg.sched.interval == "step":
            for s in self._schedulers():
                s.step()

    def on_train_epoch_end(self) -> None:
        if not self.automatic_optimization and self.cfg.sched.interval == "epoch":
            for s in self._schedulers():
                s.step()

    # -------------------------------------------------------------------------------------- optimisers
    def total_steps(self) -> int:
        """Optimiser steps of the whole run, computed from our own loader.

        Not ``trainer.estimated_stepping_batches``: that builds Lightning's training loader during
        ``configure_optimizers``, before the checkpoint's loop state is restored, so a resumed run would
        iterate a loader whose saved position (the resumable sampler's skip) was never applied and repeat
        batches (found by the exact-resume tests).
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
        specs = self.optimizer_specs()
        if len(specs) > 1 and self.automatic_optimization:
            raise ConfigError(f"{type(self).__name__} has {len(specs)} optimisers ({', '.join(specs)}): "
                              f"it must set automatic_optimization = False")
        total = self.total_steps() if self.cfg.sched.interval == "step" else int(self.trainer.max_epochs or 1)
        optimizers = [build_optimizer(groups, optim_cfg) for groups, optim_cfg in specs.values()]
        schedulers = [s for s in (build_scheduler(o, self.cfg.sched, total) for o in optimizers) if s is not None]
        if len(optimizers) > 1:
            return optimizers, schedulers
        if not schedulers:
            return optimizers[0]
        return {"optimizer": optimizers[0], "lr_scheduler": schedulers[0]}
