"""The event-VPR DataModule: traversals, their cached inputs, the training items and the evaluation windows.

Formats, caches and training items live in :mod:`~torchrepro.place_recognition.windows` and
:mod:`~torchrepro.place_recognition.place_batches`; this module wires them from the ``data:`` block
(:class:`~torchrepro.place_recognition.config.VPRData`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from torchrepro.core.config import Config
from torchrepro.core.data import ResumableLoader, ResumableSampler
from torchrepro.core.distributed import rank_zero_first
from torchrepro.core.evaluation import eval_loader
from torchrepro.place_recognition.config import VPRData
from torchrepro.place_recognition.place_batches import PlacePairDataset
from torchrepro.place_recognition.windows import (
    ConcatTraversal,
    EventTupleDataset,
    EventWindowDataset,
    MVSECTraversal,
    NpyTraversal,
    StackedInputs,
    TupleDataset,
    WindowAugment,
    WindowDataset,
    WindowSource,
    cached_inputs,
    check_window_events,
    collate_event_tuples,
    collate_event_windows,
    split_query_database,
)
from torchrepro.retrieval.recall import DEFAULT_NS, recall_at_n

log = logging.getLogger(__name__)


def count_baseline(q_counts: np.ndarray, db_counts: np.ndarray, q_pos: np.ndarray, db_pos: np.ndarray,
                   threshold_m: float) -> tuple[dict[str, float], np.ndarray]:
    """Non-learned reference: raw event-count images (whole sensor, 4× down-sampled), L2-normalised, nearest by
    cosine → recall@N."""
    def unit(x: np.ndarray) -> np.ndarray:
        flat = x.reshape(len(x), -1).astype(np.float32)
        return flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-12)

    metrics, topk = recall_at_n(unit(q_counts), unit(db_counts), q_pos, db_pos, DEFAULT_NS, threshold_m)
    return {f"baseline_count_{k}": v for k, v in metrics.items() if k.startswith("recall@")}, topk


@dataclass
class EvalSplit:
    """One evaluation target: query windows, database windows, their positions, and the event-count baseline on
    exactly these queries and database (``baseline``: its recall@N; ``baseline_topk``: its ranked database)."""

    source: WindowSource  # the traversal the queries come from (drive_val / drive2, or the configured recording)
    queries: Dataset
    database: Dataset
    query_pos: np.ndarray
    db_pos: np.ndarray
    baseline: dict[str, float]
    baseline_topk: np.ndarray

    def windows(self) -> ConcatDataset:
        """Queries followed by database windows: one ordered set so one gather assembles all descriptors."""
        return ConcatDataset([self.queries, self.database])


class VPRDataModule(pl.LightningDataModule):
    """Builds the traversals, their cached inputs, the training items and the two evaluation splits: ``val``
    (every epoch; chooses the checkpoint) and ``test`` (scored once when training ends)."""

    has_test_split = True

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.d: VPRData = cfg.data
        self.train_set: TupleDataset | PlacePairDataset | None = None
        self.train_inputs: np.ndarray | StackedInputs | None = None
        self.train_windows: Dataset | None = None
        self.splits: dict[str, EvalSplit] = {}

    @property
    def est(self) -> bool:
        """The learnable EST representation reads raw events; the others read cached inputs."""
        return self.d.representation == "est"

    # -- sources
    def _synthetic_paths(self) -> dict[str, tuple[Path, Path]]:
        from torchrepro.place_recognition.synthetic import (
            DRIVE1,
            DRIVE2,
            generate_event_drive,
            training_drive_spec,
            validation_drive_specs,
        )

        d = self.d
        extra = d.synthetic_train_drives if d.train_protocol == "cross" else 0
        drives = (DRIVE1, DRIVE2, *(training_drive_spec(self.cfg.seed, k, d.synthetic_train_candidates)
                                    for k in range(extra)),
                  *validation_drive_specs(self.cfg.seed, d.synthetic_val_drives, d.synthetic_val_candidates))
        name = (f"seed{self.cfg.seed}-route{d.synthetic_route_m:g}-train{extra}of{d.synthetic_train_candidates}"
                f"-val{d.synthetic_val_drives}of{d.synthetic_val_candidates}")
        root = Path(d.synthetic_dir) / name
        return generate_event_drive(root, seed=self.cfg.seed, route_length_m=d.synthetic_route_m,
                                    height=d.sensor_height, width=d.sensor_width, drives=drives)

    def prepare_data(self) -> None:
        if self.d.source == "synthetic":
            self._synthetic_paths()  # local rank 0 generates; others find it complete

    def _traversal(self, events: str | Path, poses: str | Path) -> WindowSource:
        d = self.d
        if d.source == "npy":
            return NpyTraversal(Path(events), Path(poses), d.sensor_height, d.sensor_width, d.min_events)
        return MVSECTraversal(Path(events), Path(poses), d.window, d.events_per_window, d.window_s, d.min_events)

    def _sources(self) -> tuple[WindowSource, list[WindowSource], dict[str, WindowSource], WindowSource | None]:
        """(training traversal, the anchors' traversals (train_protocol=cross), the validation and test
        traversals, the evaluation database or None)."""
        d = self.d
        cross_train = d.train_protocol == "cross"
        if d.source == "synthetic":
            paths = self._synthetic_paths()
            train = self._traversal(*paths["drive1"])
            val_names = [name for name in paths if name.startswith("drive_val")]
            extra = [name for name in paths if name not in ("drive1", "drive2", *val_names)]
            train_queries = [self._traversal(*paths[name]) for name in extra] if cross_train else []
            val = [self._traversal(*paths[name]) for name in val_names]  # several: their queries pooled
            evaluated = {"val": val[0] if len(val) == 1 else ConcatTraversal(val),
                         "test": self._traversal(*paths["drive2"])}
            return train, train_queries, evaluated, train if d.eval_protocol == "cross" else None
        train = self._traversal(d.train_events, d.train_poses)
        train_queries = ([self._traversal(e, p) for e, p in zip(d.train_query_events, d.train_query_poses)]
                         if cross_train else [])
        evaluated = {"val": self._traversal(d.val_events, d.val_poses),
                     "test": self._traversal(d.test_events, d.test_poses)}
        database = None
        if d.eval_protocol == "cross":
            database = self._traversal(d.database_events, d.database_poses) if d.database_events else train
        return train, train_queries, evaluated, database

    # -- set-up
    def _windows(self, source: WindowSource, inputs: np.ndarray | None, idx: np.ndarray | None = None) -> Dataset:
        return EventWindowDataset(source, idx) if self.est else WindowDataset(inputs, idx)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        d, spec, cache = self.d, self.d.input_spec(), Path(self.d.cache_dir)
        with rank_zero_first():  # rank 0 writes the caches once; the others then read them
            train, train_queries, evaluated, database = self._sources()
            self.train_inputs = None if self.est else cached_inputs(train, spec, cache, "inputs")
            n_db = len(train)
            if train_queries:  # one index space: the training traversal, then the anchors' recordings
                if not self.est:
                    self.train_inputs = StackedInputs([self.train_inputs] + [
                        cached_inputs(q, spec, cache, "inputs") for q in train_queries])
                train = ConcatTraversal([train, *train_queries])
            for name, source in evaluated.items():
                self.splits[name] = self._evaluation_split(source, database, name)
        self.train_windows = self._windows(train, self.train_inputs)
        self.train_set = self._training_items(train, n_db, bool(train_queries))
        items = (f"{len(self.train_set)} place pairs an epoch from {len(self.train_set.centres)} places"
                 if isinstance(self.train_set, PlacePairDataset) else f"{len(self.train_set)} anchors")
        log.info("train traversal %s: %d windows (%s); %s", train.name, len(train), items, "; ".join(
            f"{name} ({split.source.name}): {len(split.queries)} queries vs {len(split.database)} database windows"
            for name, split in self.splits.items()))

    def _training_items(self, train: WindowSource, n_db: int, cross: bool) -> TupleDataset | PlacePairDataset:
        """Place batches or NetVLAD tuples over the training windows (see :class:`VPRData`)."""
        d, seed = self.d, self.cfg.seed
        augment = WindowAugment(d.augment_shift, d.augment_scale, d.augment_lateral, d.augment_erase, d.augment_drop)
        if d.batching == "places":
            recordings = np.searchsorted(train.offsets, np.arange(len(train)), side="right") - 1
            return PlacePairDataset(self.train_inputs, train.positions, recordings, reference=0, member_m=d.pos_m / 2,
                                    neg_m=d.neg_m, seed=seed, places_per_epoch=d.places_per_epoch, mining=d.mining,
                                    mining_candidates=d.mining_candidates, augment=augment,
                                    recordings_per_place=d.recordings_per_place)
        if cross:  # anchors: every window of the other recordings; database: the training traversal
            q_idx, db_idx = np.arange(n_db, len(train)), np.arange(n_db)
        else:
            q_idx, db_idx = split_query_database(len(train), d.query_fraction, seed)
        common = dict(pos_m=d.pos_m, neg_m=d.neg_m, n_negatives=d.n_negatives, seed=seed, mining=d.mining,
                      mining_candidates=d.mining_candidates, anchors_per_epoch=d.anchors_per_epoch)
        if self.est:
            return EventTupleDataset(train, train.positions, q_idx, db_idx, **common)
        return TupleDataset(self.train_inputs, train.positions, q_idx, db_idx, augment=augment, **common)

    def _evaluation_split(self, source: WindowSource, database: WindowSource | None, name: str) -> EvalSplit:
        """Queries and database of one evaluated recording, and the event-count baseline on them.

        ``database`` None: the seed's protocol, the recording's own windows shuffled into ``query_fraction``
        queries and the rest database (seeded per split); otherwise every window of the recording queries
        ``database`` (an earlier drive's map)."""
        d, spec, cache = self.d, self.d.input_spec(), Path(self.d.cache_dir)
        inputs = None if self.est else cached_inputs(source, spec, cache, "inputs")
        counts = cached_inputs(source, spec, cache, "counts")
        if database is None:
            offset = {"val": 2, "test": 1}[name]  # test keeps the split it always had (seed + 1)
            q, db = split_query_database(len(source), d.query_fraction, self.cfg.seed + offset)
            queries, data = self._windows(source, inputs, q), self._windows(source, inputs, db)
            q_pos, db_pos, q_counts, db_counts = source.positions[q], source.positions[db], counts[q], counts[db]
        else:
            db_inputs = None if self.est else cached_inputs(database, spec, cache, "inputs")
            queries, data = self._windows(source, inputs), self._windows(database, db_inputs)
            q_pos, db_pos = source.positions, database.positions
            q_counts, db_counts = counts, cached_inputs(database, spec, cache, "counts")
        baseline, topk = count_baseline(np.asarray(q_counts), np.asarray(db_counts), q_pos, db_pos, d.eval_m)
        return EvalSplit(source, queries, data, q_pos, db_pos, baseline, topk)

    def check_files(self) -> None:
        """``torchrepro data``: every event window was read and checked when ``setup`` built the caches (the inputs
        of every traversal, the count images of the evaluated ones), and empty splits were refused there. The EST
        representation caches no inputs: its training windows, otherwise first read mid-epoch, are read here."""
        if self.est:
            check_window_events(self.train_windows.source, self.d.input_spec())

    # -- loaders
    @property
    def eval_collate(self):  # noqa: ANN201
        return collate_event_windows if self.est else None

    def train_dataloader(self) -> DataLoader:
        sampler = ResumableSampler(self.train_set, seed=self.cfg.seed, shuffle=True, keyed=True)
        return ResumableLoader(self.train_set, sampler, batch_size=self.d.batch_size, drop_last=False,
                               num_workers=self.d.num_workers, persistent_workers=False,
                               collate_fn=collate_event_tuples if self.est else None)

    def _eval_loader(self, split: str) -> DataLoader:
        return eval_loader(self.splits[split].windows(), self.d.eval_batch_size, self.d.num_workers,
                           self.eval_collate, trainer=self.trainer)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")
