"""Frame Flexible Network recipe ("ffn"): the LightningModule of the three training regimes and its registration.

Regimes (``model.regime``; Zhang et al., "Frame Flexible Network", CVPR 2023, §4.1 and Table 1):

* ``single``: a TSM ResNet trained at one frame count. Evaluated at other frame counts it shows the *temporal
  frequency deviation* (FFN §3.1): trained at 16 frames and tested at 4, accuracy falls far below a model trained
  at 4. One ``single`` run per frame count is FFN's "separated training" (three models, three times the weights).
* ``mixed``: one network with shared batch norms, each batch at a frame count drawn from ``train_frames``
  (FFN's "mixed sampling" baseline); the draw is a pure function of (seed, step), so every DDP rank and a resumed
  run draw the same.
* ``ffn``: every batch runs each video at every frame count of ``train_frames`` through its own sub-network
  (private batch norms, weight alterations; all else shared), with FFN's loss (Eq. 3, :mod:`.losses`).

Evaluation scores the held-out videos at every frame count of ``eval_frames`` (``acc@F``); a network with
sub-networks runs each frame count through the nearest one. ``accuracy``, the mean of ``acc@F`` over
``train_frames``, chooses the checkpoint. ``baseline_prior_accuracy``: always answering the most frequent training
class.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import multiclass_accuracy

from torchrepro.core.config import Config
from torchrepro.core.seeding import derive_seed
from torchrepro.core.task import TaskModule
from torchrepro.frame_flexible.config import FFNModel
from torchrepro.frame_flexible.data import FFNDataModule
from torchrepro.frame_flexible.losses import ffn_losses
from torchrepro.frame_flexible.model import network_for

__all__ = ["FFNTask", "build", "callbacks"]

Batch = tuple[dict[int, torch.Tensor], torch.Tensor]


class FFNTask(TaskModule):
    """Cross-entropy (and FFN's distillation) on clips; logs ``acc@F`` per evaluated frame count and ``accuracy``."""

    progress_metric = "accuracy"

    def __init__(self, cfg: Config, num_classes: int) -> None:
        super().__init__(cfg)
        m: FFNModel = cfg.model
        self.m = m
        self.num_classes = num_classes
        self.train_frames = tuple(sorted(m.train_frames))
        self.eval_frames = tuple(sorted(m.eval_frames))
        self.net = network_for(m, num_classes)
        #: the most frequent training class (the label-prior baseline), set in setup from the data module
        self.prior_class = 0

    def setup(self, stage: str) -> None:
        dm = self.trainer.datamodule
        counts = torch.bincount(torch.tensor([it.label for it in dm.splits["train"]]), minlength=self.num_classes)
        self.prior_class = int(counts.argmax())

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.net(clips)

    def batch_size(self, batch: Batch) -> int:
        return len(batch[1])

    def mixed_frames(self, step: int) -> int:
        """The frame count of optimiser step ``step`` under mixed sampling: a pure function of (seed, step), so
        every DDP rank and a resumed run draw the same."""
        g = torch.Generator().manual_seed(derive_seed(self.cfg.seed, "mixed-frames", step))
        return self.train_frames[int(torch.randint(len(self.train_frames), (1,), generator=g))]

    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        clips, labels = batch
        if self.m.regime == "ffn":
            logits = {f: self.net(clips[f]) for f in self.train_frames}
            return ffn_losses(logits, labels, self.m.kl_weight, self.m.low_frame_ce)
        frames = self.train_frames[0] if self.m.regime == "single" else self.mixed_frames(self.global_step)
        return {"ce": F.cross_entropy(self.net(clips[frames]), labels)}

    def evaluation_rows(self, batch: Batch, dataloader_idx: int) -> dict[str, torch.Tensor]:
        clips, labels = batch
        return {"labels": labels, **{f"logits@{f}": self.net(clips[f]).float() for f in self.eval_frames}}

    def evaluation_metrics(self, targets: list[dict[str, torch.Tensor]]) -> dict[str, float]:
        rows = targets[0]
        labels = rows["labels"]
        metrics = {f"acc@{f}": float(multiclass_accuracy(rows[f"logits@{f}"], labels, self.num_classes,
                                                         average="micro"))
                   for f in self.eval_frames}
        # the config makes eval_frames include every training frame count
        metrics["accuracy"] = sum(metrics[f"acc@{f}"] for f in self.train_frames) / len(self.train_frames)
        metrics["val_loss"] = float(F.cross_entropy(rows[f"logits@{max(self.train_frames)}"], labels))
        metrics["baseline_prior_accuracy"] = float((labels == self.prior_class).float().mean())
        return metrics


def build(cfg: Config) -> tuple[FFNTask, FFNDataModule]:
    dm = FFNDataModule(cfg)
    return FFNTask(cfg, len(dm.class_names())), dm


def callbacks(cfg: Config) -> list:
    from torchrepro.frame_flexible.plots import FFNPlots

    return [FFNPlots()]
