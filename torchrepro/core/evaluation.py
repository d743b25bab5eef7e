"""One evaluation path for every recipe: contiguous shards, the model in eval mode, an ordered gather, the metric.

The split follows mmengine's ``BaseMetric.process`` / ``compute_metrics``: a recipe says what to keep of each
evaluation batch (:meth:`OrderedEvaluation.evaluation_rows`, e.g. descriptors, or logits and labels) and how to
turn the rows of the *whole* evaluation set into metrics (:meth:`OrderedEvaluation.evaluation_metrics`). The
path in between is shared: each rank evaluates a contiguous shard (:func:`eval_loader`), rows are computed under
``torch.inference_mode``, gathered in data-set order with the padding dropped (:func:`gather_rows`), and every
rank computes the same metrics, which are logged once with a prefix (``""`` for validation, ``"test/"`` for the
held-out split). Retrieval metrics (recall@N, CMC/mAP) need every embedding at once, which is why the rows are
gathered rather than reduced batch by batch.
"""

from __future__ import annotations

from typing import Any, Callable

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Subset

from torchrepro.core.distributed import gather_ordered, is_distributed, rank_world, shard_bounds

Rows = dict[str, torch.Tensor]


class EvalShard(Subset):
    """The contiguous shard of ``dataset`` that ``rank`` of ``world`` evaluates; keeps the full length for the
    ordered gather."""

    def __init__(self, dataset: Dataset, rank: int, world: int) -> None:
        self.full_length = len(dataset)  # type: ignore[arg-type]
        start, stop = shard_bounds(self.full_length, rank, world)
        super().__init__(dataset, range(start, stop))


def eval_loader(dataset: Dataset, batch_size: int, num_workers: int = 0,
                collate_fn: Callable[[list], Any] | None = None, trainer: pl.Trainer | None = None) -> DataLoader:
    """An evaluation loader over this rank's contiguous shard of ``dataset`` (in order, no shuffling, no padding).

    The rank comes from ``trainer`` when given (a DataModule's ``val_dataloader``), else from the process group.
    The loader has its own generator: starting an evaluation must not draw from the global random stream that
    training continues from (exact resume; the same training whether or not it is validated in between).
    """
    rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else rank_world()
    return DataLoader(EvalShard(dataset, rank, world), batch_size=batch_size, shuffle=False,
                      num_workers=num_workers, collate_fn=collate_fn, generator=torch.Generator().manual_seed(0))


def _agree_on_keys(local: list[Rows]) -> list[str]:
    """Row names, agreed over ranks (a rank with an empty shard has seen none)."""
    keys = sorted(local[0]) if local else None
    if is_distributed():
        everyone: list[Any] = [None] * rank_world()[1]
        dist.all_gather_object(everyone, keys)
        keys = next((k for k in everyone if k is not None), None)
    return keys or []


def gather_rows(local: list[Rows], n_total: int, device: torch.device | None = None) -> Rows:
    """This rank's per-batch rows → every rank's rows of the whole set, in data-set order (padding dropped)."""
    gathered = {}
    for key in _agree_on_keys(local):
        part = torch.cat([rows[key] for rows in local]) if local else torch.empty(0)
        gathered[key] = gather_ordered(part.to(device) if device is not None else part, n_total)
    return gathered


def _loader_lengths(loaders: Any) -> list[int]:
    """Full data-set length behind each evaluation loader (built by :func:`eval_loader`)."""
    loaders = loaders if isinstance(loaders, (list, tuple)) else [loaders]
    lengths = []
    for loader in loaders:
        shard = loader.dataset
        if not isinstance(shard, EvalShard):
            raise TypeError("evaluation loaders must come from torchrepro.core.evaluation.eval_loader "
                            f"(got a loader over {type(shard).__name__})")
        lengths.append(shard.full_length)
    return lengths


class OrderedEvaluation(pl.LightningModule):
    """Lightning hooks of the shared evaluation path; a recipe implements the two methods below."""

    #: the metric shown in the progress bar
    progress_metric: str | None = None
    #: the split being evaluated, ``"val"`` or ``"test"``: a recipe whose metric needs more than the rows (the
    #: positions of a drive's windows, a query/gallery split) looks its references up under this name
    eval_split: str = "val"

    def evaluation_rows(self, batch: Any, dataloader_idx: int) -> Rows:
        """What to keep of one evaluation batch: tensors whose first dimension is the batch."""
        raise NotImplementedError

    def evaluation_metrics(self, targets: list[Rows]) -> dict[str, float]:
        """Metrics from the rows of every evaluation set (one entry per loader, in data-set order)."""
        raise NotImplementedError

    # -- shared machinery
    def _start(self, split: str) -> None:
        self.eval_split = split
        self._eval_rows: list[list[Rows]] = []

    def _step(self, batch: Any, dataloader_idx: int) -> None:
        while len(self._eval_rows) <= dataloader_idx:
            self._eval_rows.append([])
        with torch.inference_mode():
            rows = self.evaluation_rows(batch, dataloader_idx)
        self._eval_rows[dataloader_idx].append({k: v.detach() for k, v in rows.items()})

    def _end(self, loaders: Any, prefix: str) -> dict[str, float]:
        lengths = _loader_lengths(loaders)
        local = self._eval_rows + [[] for _ in range(len(lengths) - len(self._eval_rows))]
        targets = [gather_rows(rows, n, self.device) for rows, n in zip(local, lengths)]
        self._eval_rows = []
        metrics = self.evaluation_metrics(targets)
        for key, value in metrics.items():
            # every rank computed the same value from the same gathered rows: no reduction needed
            self.log(prefix + key, float(value), prog_bar=key == self.progress_metric, sync_dist=False)
        return metrics

    # -- Lightning hooks
    def on_validation_epoch_start(self) -> None:
        self._start("val")

    def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._step(batch, dataloader_idx)

    def on_validation_epoch_end(self) -> None:
        self._end(self.trainer.val_dataloaders, "")

    def on_test_epoch_start(self) -> None:
        self._start("test")

    def test_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._step(batch, dataloader_idx)

    def on_test_epoch_end(self) -> None:
        self._end(self.trainer.test_dataloaders, "test/")
