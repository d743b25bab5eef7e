"""SimCLR recipe ("simclr"): contrastive pre-training scored by kNN and linear evaluation; the LightningModule.

Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations" (ICML 2020). The seed's
reproduction (SEEDS §3): two augmented views per image, a ResNet-18 encoder without fc (512-d), a projection MLP
512→512→256, NT-Xent, batch 128, then linear evaluation with the encoder frozen. Fixed here: the projections are
L2-normalised and τ is the paper's (0.1–0.5, not 2); the self-similarity is masked; under DDP the negatives come
from every rank with their gradients; the augmentation is batched and a pure function of (seed, epoch, index).

Every validation scores the held-out training images two ways against a memory bank of training images (kNN, and
a linear classifier on frozen features; :mod:`torchrepro.simclr.evaluation`), beside two baselines on the same
splits: raw pixels (``baseline_pixels_*``) and the encoder as initialised (``baseline_untrained_*``). The test
split is scored the same way once, at the end.
"""

from __future__ import annotations

import copy

import torch

from torchrepro.core.config import Config
from torchrepro.core.seeding import derive_seed
from torchrepro.core.task import TaskModule
from torchrepro.retrieval.knn import knn_neighbours
from torchrepro.simclr.augment import SimCLRAugment
from torchrepro.simclr.config import SimCLRData, SimCLRModel
from torchrepro.simclr.data import SimCLRDataModule
from torchrepro.simclr.evaluation import knn_and_linear
from torchrepro.simclr.losses import nt_xent_loss
from torchrepro.simclr.model import SimCLRNet
from torchrepro.simclr.plots import SimCLRPlots

#: queries of the nearest-neighbour gallery, and neighbours shown per query
GALLERY_QUERIES, GALLERY_NEIGHBOURS = 10, 8


def native_size(d: SimCLRData) -> int:
    return d.image_size or {"fashion_mnist": 28, "synthetic": 28, "cifar10": 32}.get(d.source, 64)


class SimCLRTask(TaskModule):
    """NT-Xent on two views of every image; logs ``loss``, ``knn_top1`` and ``linear_top1`` (and the baselines)."""

    progress_metric = "knn_top1"

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        m: SimCLRModel = cfg.model
        d: SimCLRData = cfg.data
        # The same initial weights on every rank and in every command (train, resume, eval): the untrained baseline
        # is this very initialisation, rebuilt wherever it is scored.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(cfg.seed, "simclr-init") % 2**63)
            self.net = SimCLRNet(m.arch, d.channels, m.small_stem, m.width, m.proj_hidden, m.proj_dim, m.proj_bn,
                                 m.channels_last, m.stem_stride)
        # a list hides the copy from the module tree: not trained, not in checkpoints
        self._untrained = [copy.deepcopy(self.net.encoder).eval()] if m.untrained_baseline else []
        self.augment = SimCLRAugment(d.augment, native_size(d), d.channels)
        self._untrained_scores: dict[str, dict[str, float]] = {}
        self.last_eval: dict | None = None

    @property
    def dm(self) -> SimCLRDataModule:
        return self.trainer.datamodule

    def parameter_groups(self) -> dict:
        return {"encoder": self.net.encoder.parameters(), "head": self.net.head.parameters()}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The representation h of uint8 (or [0, 1] float) images."""
        return self.net(self.dm.normalise(images))

    # -- training
    def losses(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        images, seeds = batch
        v1, v2 = self.augment(images, seeds)
        # both views in one forward pass, as the paper's implementation does (batch norm sees all 2N views)
        z = self.net.project(self.dm.normalise(torch.cat([v1, v2])))
        z1, z2 = z.chunk(2)
        m: SimCLRModel = self.cfg.model
        return {"nt_xent": nt_xent_loss(z1, z2, m.temperature, gather=m.gather_negatives)}

    # -- evaluation: rows of [memory bank, evaluated split], then kNN and linear evaluation
    def _needs_untrained(self) -> bool:
        return bool(self._untrained) and not self.scoring_untrained and self.eval_split not in self._untrained_scores

    def evaluation_rows(self, batch: tuple[torch.Tensor, torch.Tensor], dataloader_idx: int) -> dict[str, torch.Tensor]:
        images, labels = batch
        x = self.dm.normalise(images)
        rows = {"feature": self.net(x).float(), "label": labels}
        if self._needs_untrained():
            untrained = self._untrained[0].to(self.device)
            rows["untrained"] = untrained(x).float()
        return rows

    def _scores(self, bank: dict[str, torch.Tensor], split: dict[str, torch.Tensor], key: str) -> dict[str, float]:
        m: SimCLRModel = self.cfg.model
        return knn_and_linear(bank[key], bank["label"], split[key], split["label"], len(self.dm.classes), m.knn_k,
                              m.knn_temperature, m.linear_steps, m.linear_weight_decay)

    def evaluation_metrics(self, targets: list[dict[str, torch.Tensor]]) -> dict[str, float]:
        """``knn_top1`` and ``linear_top1`` of the split evaluated (validation, or the test split at the end), and
        the raw-pixel and untrained-encoder baselines on the same split and memory bank (computed once)."""
        bank, split = targets
        m: SimCLRModel = self.cfg.model
        metrics = self._scores(bank, split, "feature")
        if self._untrained:
            if self.scoring_untrained:
                self._untrained_scores[self.eval_split] = dict(metrics)
            elif "untrained" in split:
                self._untrained_scores[self.eval_split] = self._scores(bank, split, "untrained")
            metrics.update({f"baseline_untrained_{k}": v for k, v in self._untrained_scores[self.eval_split].items()})
        metrics.update(self.dm.pixel_baseline(self.eval_split, m.knn_k, m.knn_temperature, m.linear_steps,
                                              m.linear_weight_decay))
        self._remember(bank, split)
        return metrics

    def _remember(self, bank: dict[str, torch.Tensor], split: dict[str, torch.Tensor]) -> None:
        """What the figures need: the split's features and labels, and a gallery of queries (one per class, then
        the first others) with their nearest bank images."""
        labels = split["label"].cpu()
        firsts = [int((labels == c).nonzero()[0]) for c in range(len(self.dm.classes)) if (labels == c).any()]
        queries = torch.tensor(firsts[:GALLERY_QUERIES], dtype=torch.long)
        _, neighbours = knn_neighbours(bank["feature"], split["feature"][queries.to(split["feature"].device)],
                                       GALLERY_NEIGHBOURS)
        self.last_eval = {"split": self.eval_split, "features": split["feature"].cpu(), "labels": labels,
                          "queries": queries, "neighbours": neighbours, "bank_labels": bank["label"].cpu()}


def build(cfg: Config) -> tuple[SimCLRTask, SimCLRDataModule]:
    return SimCLRTask(cfg), SimCLRDataModule(cfg)


def callbacks(cfg: Config) -> list:
    """The recipe's artefact callbacks (see :class:`~torchrepro.core.callbacks.RunArtefacts`)."""
    return [SimCLRPlots()]
