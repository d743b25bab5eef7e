"""Event-camera place-recognition recipe ("vpr_event"): schemas, DataModule, LightningModule, registration.

Seed (SEEDS.md §1): MVSEC event windows → 5-bin voxel grid → ResNet34 (5-channel conv1) + NetVLAD (K=32),
triplet loss with GPS positives within 10 m and negatives beyond 25 m, evaluated by recall@N (25 m).
Fixed here: real (not squared) metres, gradients through all branches of the triplet, the learnable EST
representation selectable, hard-negative mining as in NetVLAD, and two non-learned reference numbers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import ConcatDataset, DataLoader, Subset

from torchrepro.core.config import Config
from torchrepro.core.data import ResumableLoader, ResumableSampler
from torchrepro.core.distributed import compute_ordered, gather_ordered, rank_zero_first, shard_bounds
from torchrepro.core.errors import ConfigError
from torchrepro.core.registry import Recipe, register
from torchrepro.core.task import TaskModule
from torchrepro.nn.backbones import ARCHS
from torchrepro.place_recognition.data import (
    ConcatTraversal,
    EventTupleDataset,
    EventWindowDataset,
    InputSpec,
    MVSECTraversal,
    NpyTraversal,
    StackedInputs,
    TupleDataset,
    WindowAugment,
    WindowDataset,
    WindowSource,
    cached_inputs,
    collate_event_tuples,
    collate_event_windows,
    split_query_database,
)
from torchrepro.place_recognition.model import EventFrontEnd, PlaceNet
from torchrepro.place_recognition.place_batches import PlacePairDataset
from torchrepro.retrieval.losses import masked_batch_hard_triplet_loss, multi_similarity_loss, tuple_triplet_loss
from torchrepro.retrieval.pca import PCAWhitening
from torchrepro.retrieval.recall import DEFAULT_NS, recall_at_n

log = logging.getLogger(__name__)


@dataclass
class VPRData:
    """Where the event windows come from and how they become training tuples.

    ``source``: ``synthetic`` (the simulated event drive, written in the MVSEC layout and read back through
    the MVSEC reader; drive1 trains, drive2 is the held-out traversal), ``mvsec`` (``*_events`` = a
    ``*_data.hdf5``, ``*_poses`` = its ``*_gt.hdf5``) or ``npy`` (``*_events`` = a folder of ``<timestamp>.npy``
    windows, ``*_poses`` = a positions file of rows x, y, t).

    ``train_protocol``: ``split`` (the seed's: the training traversal's windows shuffled into ``query_fraction``
    anchors and the rest database, so an anchor's positives are its neighbours *in the same recording*) or
    ``cross`` (NetVLAD's Time Machine supervision, Arandjelović et al. 2016 §4: every window of other
    recordings of the route, ``train_query_events``/``train_query_poses`` (lists) or the simulated drive's
    ``synthetic_train_drives`` extra drives under randomised conditions, is an anchor whose positives and
    negatives are windows of the training traversal, so the loss rewards what survives a change of day,
    lane, speed and sensor rather than what neighbouring windows of one recording share).

    ``batching``: ``tuples`` (NetVLAD's: each item is an anchor of another recording, its best positive and
    ``n_negatives`` negatives from the training traversal) or ``places`` (GSV-Cities' place batches, see
    :mod:`~torchrepro.place_recognition.place_batches`: each item is two places, each seen by every recording;
    needs ``train_protocol: cross``; ``batch_size`` counts place pairs, ``places_per_epoch`` the items per epoch).

    ``eval_protocol``: ``split`` (the seed's: the test traversal's windows shuffled into ``query_fraction``
    queries and the rest database) or ``cross`` (every test-traversal window queries a database built from
    another traversal: ``database_*`` if given, else the training traversal, i.e. the map of an earlier drive).
    """

    source: Literal["synthetic", "mvsec", "npy"] = "synthetic"
    synthetic_dir: str = "data/synthetic/event_drive"
    synthetic_route_m: float = 600.0
    synthetic_train_drives: int = 2  # extra training drives (randomised conditions) for train_protocol=cross
    train_events: str | None = None
    train_poses: str | None = None
    train_protocol: Literal["split", "cross"] = "split"
    train_query_events: list[str] | None = None
    train_query_poses: list[str] | None = None
    test_events: str | None = None
    test_poses: str | None = None
    database_events: str | None = None
    database_poses: str | None = None
    eval_protocol: Literal["split", "cross"] = "split"
    sensor_height: int = 260
    sensor_width: int = 346
    window: Literal["count", "duration"] = "count"
    events_per_window: int = 15_000
    window_s: float = 0.05
    min_events: int = 1000
    representation: Literal["voxel", "histogram", "est"] = "voxel"
    num_bins: int = 5
    input_size: int = 224
    normalize: bool = True
    query_fraction: float = 0.3
    pos_m: float = 10.0
    neg_m: float = 25.0
    eval_m: float = 25.0
    n_negatives: int = 10
    mining: Literal["random", "hard"] = "random"
    mining_candidates: int = 100
    mining_refresh_epochs: int = 1
    batching: Literal["tuples", "places"] = "tuples"  # places: batches of places seen by every recording
    places_per_epoch: int | None = None  # batching=places: items (place pairs) per epoch (None: every place once)
    recordings_per_place: int | None = None  # batching=places: K (the map + K-1 other recordings); None: all
    anchors_per_epoch: int | None = None  # a fresh seeded subset of the anchors each epoch (None: all)
    augment_shift: float = 0.0  # training-only random translation, fraction of the input side
    augment_scale: float = 0.0  # training-only random zoom 1 ± scale
    denoise_s: float = 0.0  # background-activity filter of cached inputs: keep events with a neighbour within ±s
    augment_lateral: float = 0.0  # left/right image halves zoomed horizontally by independent 1 ± lateral (lane)
    augment_erase: float = 0.0  # probability of erasing a random rectangle of a training window (occluders)
    augment_drop: float = 0.0  # training windows lose a random fraction U(0, drop) of their event cells
    batch_size: int = 4
    eval_batch_size: int = 32
    num_workers: int = 0
    cache_dir: str = "data/cache/vpr_event"

    def check(self, where: str) -> None:
        if self.source != "synthetic":
            for key in ("train_events", "train_poses", "test_events", "test_poses"):
                value = getattr(self, key)
                if not value:
                    raise ConfigError(f"config key '{where}.{key}' is required for source '{self.source}'")
                if not Path(value).exists():
                    raise ConfigError(f"'{value}' ({where}.{key}) does not exist: point it at the {self.source} data")
            if self.train_protocol == "cross":
                for key in ("train_query_events", "train_query_poses"):
                    values = getattr(self, key)
                    if not values:
                        raise ConfigError(f"config key '{where}.{key}' is required with {where}.train_protocol=cross "
                                          f"(a list: other recordings of the training route)")
                    for value in values:
                        if not Path(value).exists():
                            raise ConfigError(f"'{value}' ({where}.{key}) does not exist: point it at the "
                                              f"{self.source} data")
                if len(self.train_query_events) != len(self.train_query_poses):
                    raise ConfigError(f"{where}.train_query_events and {where}.train_query_poses must list as many "
                                      f"files, got {len(self.train_query_events)} and {len(self.train_query_poses)}")
            if bool(self.database_events) != bool(self.database_poses):
                raise ConfigError(f"set both {where}.database_events and {where}.database_poses, or neither")
        if self.representation == "est" and self.num_bins < 2:
            raise ConfigError(f"{where}.num_bins must be >= 2 for the EST representation, got {self.num_bins}")
        if self.denoise_s < 0 or (self.denoise_s > 0 and self.representation == "est"):
            raise ConfigError(f"{where}.denoise_s must be >= 0 and applies to cached voxel/histogram inputs (0 with "
                              f"{where}.representation=est), got {self.denoise_s}")
        augments = (self.augment_shift, self.augment_scale, self.augment_erase, self.augment_drop, self.augment_lateral)
        if self.representation == "est" and any(a > 0 for a in augments):
            raise ConfigError(f"{where}.augment_shift/scale/lateral/erase/drop apply to cached voxel/histogram inputs; "
                              f"set them to 0 with {where}.representation=est")
        if not 0 <= self.augment_lateral < 1:
            raise ConfigError(f"{where}.augment_lateral must be in [0, 1), got {self.augment_lateral}")
        if not (0 <= self.augment_erase <= 1 and 0 <= self.augment_drop < 1):
            raise ConfigError(f"{where}.augment_erase must be in [0, 1] and {where}.augment_drop in [0, 1), got "
                              f"{self.augment_erase} and {self.augment_drop}")
        if not 0 < self.pos_m <= self.neg_m:
            raise ConfigError(f"need 0 < {where}.pos_m <= {where}.neg_m, got {self.pos_m} and {self.neg_m}")
        if self.source == "synthetic" and self.train_protocol == "cross" and self.synthetic_train_drives < 1:
            raise ConfigError(f"{where}.train_protocol=cross on the simulated drive needs "
                              f"{where}.synthetic_train_drives >= 1, got {self.synthetic_train_drives}")
        if self.anchors_per_epoch is not None and self.anchors_per_epoch < 1:
            raise ConfigError(f"{where}.anchors_per_epoch must be >= 1 or null, got {self.anchors_per_epoch}")
        if not 0 <= self.synthetic_train_drives <= 6:
            raise ConfigError(f"{where}.synthetic_train_drives must be in [0, 6], got {self.synthetic_train_drives}")
        for key in ("events_per_window", "num_bins", "input_size", "n_negatives", "batch_size", "eval_batch_size",
                    "mining_candidates", "mining_refresh_epochs", "sensor_height", "sensor_width"):
            if getattr(self, key) < 1:
                raise ConfigError(f"config key '{where}.{key}' must be >= 1, got {getattr(self, key)}")
        if self.batching == "places":
            if self.train_protocol != "cross" or self.representation == "est":
                raise ConfigError(f"{where}.batching=places groups windows of several recordings by place: it needs "
                                  f"{where}.train_protocol=cross and a cached representation (voxel or histogram), got "
                                  f"train_protocol={self.train_protocol}, representation={self.representation}")
            if self.places_per_epoch is not None and self.places_per_epoch < 1:
                raise ConfigError(f"{where}.places_per_epoch must be >= 1 or null, got {self.places_per_epoch}")
            n_recordings = 1 + (self.synthetic_train_drives if self.source == "synthetic" else
                                len(self.train_query_events or []))
            if self.recordings_per_place is not None and not 2 <= self.recordings_per_place <= n_recordings:
                raise ConfigError(f"{where}.recordings_per_place must be in [2, {n_recordings}] (the map and the "
                                  f"other training recordings) or null, got {self.recordings_per_place}")
        if self.mining_candidates < self.n_negatives:
            raise ConfigError(f"{where}.mining_candidates ({self.mining_candidates}) must be >= "
                              f"{where}.n_negatives ({self.n_negatives})")

    def input_spec(self) -> InputSpec:
        return InputSpec(self.representation, self.num_bins, self.sensor_height, self.sensor_width,
                         self.input_size, self.normalize, self.denoise_s)


@dataclass
class VPRModel:
    """Network and loss. ``margin``/``distance``/``negatives`` configure the triplet loss (seed: cosine
    distance, summed over negatives); ``pca_dim`` enables PCA-whitening of the descriptors at evaluation."""

    arch: str = "resnet34"
    num_clusters: int = 32
    pretrained: str | None = None
    zero_init_residual: bool = False
    last_stride: Literal[1, 2] = 2
    trunk_layers: Literal[3, 4] = 4  # 3: NetVLAD on layer3 (see PlaceNet)
    channels_last: bool = False  # NHWC trunk: faster CPU convolutions, above all with trainer.precision=bf16-mixed
    netvlad_init_windows: int = 64
    pca_dim: int | None = None
    margin: float = 0.1
    distance: Literal["cosine", "euclidean"] = "cosine"
    negatives: Literal["sum", "hardest"] = "sum"
    # data.batching=places: "multi_similarity" (GSV-Cities' loss, its α, β, base and mining ε below) or
    # "triplet" (batch-hard, with margin/distance above)
    place_loss: Literal["multi_similarity", "triplet"] = "multi_similarity"
    ms_alpha: float = 1.0
    ms_beta: float = 50.0
    ms_base: float = 0.0
    ms_epsilon: float = 0.1

    def check(self, where: str) -> None:
        if self.arch not in ARCHS:
            raise ConfigError(f"config key '{where}.arch' must be one of {sorted(ARCHS)}, got '{self.arch}'")
        if self.pretrained and not Path(self.pretrained).is_file():
            raise ConfigError(f"pretrained weights '{self.pretrained}' ({where}.pretrained) do not exist")
        if self.num_clusters < 1 or self.netvlad_init_windows < 1:
            raise ConfigError(f"{where}.num_clusters and {where}.netvlad_init_windows must be >= 1")
        if self.ms_alpha <= 0 or self.ms_beta <= 0 or self.ms_epsilon < 0:
            raise ConfigError(f"{where}.ms_alpha and {where}.ms_beta must be > 0 and {where}.ms_epsilon >= 0, got "
                              f"{self.ms_alpha}, {self.ms_beta}, {self.ms_epsilon}")
        if self.pca_dim is not None and self.pca_dim < 1:
            raise ConfigError(f"{where}.pca_dim must be >= 1 or null, got {self.pca_dim}")


# ------------------------------------------------------------------------------------------- data module
class VPRDataModule(pl.LightningDataModule):
    """Builds the traversals, their cached inputs, the training tuples and the evaluation windows."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.d: VPRData = cfg.data
        self.train_set: TupleDataset | None = None
        self.train_inputs: np.ndarray | None = None
        self.eval_queries: np.ndarray | None = None  # cached inputs of the query windows
        self.eval_database: np.ndarray | None = None
        self.query_pos: np.ndarray | None = None
        self.db_pos: np.ndarray | None = None
        self.baseline: dict[str, float] = {}
        self.baseline_topk: np.ndarray | None = None
        self.test_source: WindowSource | None = None

    # -- sources
    def _synthetic_paths(self) -> dict[str, tuple[Path, Path]]:
        from torchrepro.place_recognition.synthetic import DRIVE1, DRIVE2, generate_event_drive, random_drive_spec

        d = self.d
        extra = d.synthetic_train_drives if d.train_protocol == "cross" else 0
        drives = (DRIVE1, DRIVE2, *(random_drive_spec(self.cfg.seed, 2 + k) for k in range(extra)))
        root = Path(d.synthetic_dir) / f"seed{self.cfg.seed}-route{d.synthetic_route_m:g}-drives{len(drives)}"
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

    def _sources(self) -> tuple[WindowSource, list[WindowSource], WindowSource, WindowSource | None]:
        """(training traversal, the anchors' traversals (train_protocol=cross), test traversal, evaluation database
        or None)."""
        d = self.d
        cross_train = d.train_protocol == "cross"
        if d.source == "synthetic":
            paths = self._synthetic_paths()
            train = self._traversal(*paths["drive1"])
            train_queries = [self._traversal(*paths[name]) for name in list(paths)[2:]] if cross_train else []
            return train, train_queries, self._traversal(*paths["drive2"]), train if d.eval_protocol == "cross" else None
        train = self._traversal(d.train_events, d.train_poses)
        train_queries = ([self._traversal(e, p) for e, p in zip(d.train_query_events, d.train_query_poses)]
                         if cross_train else [])
        test = self._traversal(d.test_events, d.test_poses)
        database = None
        if d.eval_protocol == "cross":
            database = self._traversal(d.database_events, d.database_poses) if d.database_events else train
        return train, train_queries, test, database

    def setup(self, stage: str | None = None) -> None:
        if self.eval_queries is not None:
            return
        d, spec, cache = self.d, self.d.input_spec(), Path(self.d.cache_dir)
        est = d.representation == "est"

        def windows(source: WindowSource, inputs: np.ndarray | None, idx: np.ndarray | None = None):
            return EventWindowDataset(source, idx) if est else WindowDataset(inputs, idx)

        with rank_zero_first():  # rank 0 writes the caches once; the others then read them
            train, train_queries, test, database = self._sources()
            self.train_inputs = None if est else cached_inputs(train, spec, cache, "inputs")
            if train_queries:  # one index space: the training traversal, then the anchors' recordings
                n_db = len(train)
                if not est:
                    self.train_inputs = StackedInputs([self.train_inputs] + [
                        cached_inputs(q, spec, cache, "inputs") for q in train_queries])
                train = ConcatTraversal([train, *train_queries])
            test_inputs = None if est else cached_inputs(test, spec, cache, "inputs")
            db_inputs = None if est or database is None else cached_inputs(database, spec, cache, "inputs")
            test_counts = cached_inputs(test, spec, cache, "counts")
            db_counts = cached_inputs(database, spec, cache, "counts") if database is not None else None
        if not train_queries:
            q_idx, db_idx = split_query_database(len(train), d.query_fraction, self.cfg.seed)
        else:
            q_idx, db_idx = np.arange(n_db, len(train)), np.arange(n_db)
        self.train_windows = windows(train, self.train_inputs)
        augment = WindowAugment(d.augment_shift, d.augment_scale, d.augment_lateral, d.augment_erase, d.augment_drop)
        if d.batching == "places":
            recordings = np.searchsorted(train.offsets, np.arange(len(train)), side="right") - 1
            self.train_set = PlacePairDataset(self.train_inputs, train.positions, recordings, 0, d.pos_m / 2,
                                              d.neg_m, self.cfg.seed, d.places_per_epoch, d.mining,
                                              d.mining_candidates, augment, d.recordings_per_place)
        else:
            args = (train.positions, q_idx, db_idx, d.pos_m, d.neg_m, d.n_negatives, self.cfg.seed, d.mining,
                    d.mining_candidates)
            self.train_set = (EventTupleDataset(train, *args, anchors_per_epoch=d.anchors_per_epoch) if est else
                              TupleDataset(self.train_inputs, *args, augment=augment,
                                           anchors_per_epoch=d.anchors_per_epoch))
        if database is None:  # seed protocol: split the test traversal itself
            tq, tdb = split_query_database(len(test), d.query_fraction, self.cfg.seed + 1)
            self.eval_queries, self.eval_database = windows(test, test_inputs, tq), windows(test, test_inputs, tdb)
            self.query_pos, self.db_pos = test.positions[tq], test.positions[tdb]
            q_counts, d_counts = np.asarray(test_counts[tq]), np.asarray(test_counts[tdb])
        else:
            self.eval_queries, self.eval_database = windows(test, test_inputs), windows(database, db_inputs)
            self.query_pos, self.db_pos = test.positions, database.positions
            q_counts, d_counts = np.asarray(test_counts), np.asarray(db_counts)
        self.test_source = test
        self.baseline, self.baseline_topk = count_baseline(q_counts, d_counts, self.query_pos, self.db_pos, d.eval_m)
        items = (f"{len(self.train_set)} place pairs an epoch from {len(self.train_set.centres)} places"
                 if isinstance(self.train_set, PlacePairDataset) else f"{len(self.train_set)} anchors")
        log.info("train traversal %s: %d windows (%s); eval: %d queries vs %d database windows",
                 train.name, len(train), items, len(self.eval_queries), len(self.eval_database))

    # -- loaders
    def train_dataloader(self) -> DataLoader:
        sampler = ResumableSampler(self.train_set, seed=self.cfg.seed, shuffle=True, keyed=True)
        return ResumableLoader(self.train_set, sampler, batch_size=self.d.batch_size, drop_last=False,
                               num_workers=self.d.num_workers, persistent_workers=False,
                               collate_fn=collate_event_tuples if self.est else None)

    @property
    def est(self) -> bool:
        return self.d.representation == "est"

    @property
    def eval_collate(self):  # noqa: ANN201
        return collate_event_windows if self.est else None

    def eval_set(self) -> ConcatDataset:
        """Queries followed by database windows: one ordered set so one gather assembles all descriptors."""
        return ConcatDataset([self.eval_queries, self.eval_database])

    def val_dataloader(self) -> DataLoader:
        full = self.eval_set()
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        start, stop = shard_bounds(len(full), rank, world)  # contiguous shards → gather_ordered restores order
        return DataLoader(Subset(full, range(start, stop)), batch_size=self.d.eval_batch_size, shuffle=False,
                          num_workers=self.d.num_workers, collate_fn=self.eval_collate)


def count_baseline(q_counts: np.ndarray, db_counts: np.ndarray, q_pos: np.ndarray, db_pos: np.ndarray,
                   threshold_m: float) -> tuple[dict[str, float], np.ndarray]:
    """Non-learned reference: raw event-count images (whole sensor, 4× down-sampled), L2-normalised, nearest by
    cosine → recall@N."""
    def unit(x: np.ndarray) -> np.ndarray:
        flat = x.reshape(len(x), -1).astype(np.float32)
        return flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-12)

    metrics, topk = recall_at_n(unit(q_counts), unit(db_counts), q_pos, db_pos, DEFAULT_NS, threshold_m)
    return {f"baseline_count_{k}": v for k, v in metrics.items() if k.startswith("recall@")}, topk


# ------------------------------------------------------------------------------------------- task
class VPRTask(TaskModule):
    """Metric training of :class:`PlaceNet` (triplet loss on NetVLAD tuples, or Multi-Similarity / batch-hard triplet
    on place batches); logs ``loss``, ``lr``, ``recall@{1,5,10,20}`` per validation."""

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        m: VPRModel = cfg.model
        d: VPRData = cfg.data
        spec = d.input_spec()
        self.front = (EventFrontEnd(d.num_bins, d.sensor_height, d.sensor_width, d.input_size, seed=cfg.seed)
                      if d.representation == "est" else None)
        self.net = PlaceNet(spec.channels, m.arch, m.num_clusters, m.pretrained, m.zero_init_residual, m.last_stride,
                            m.trunk_layers, m.channels_last)
        self.pca = PCAWhitening(self.net.descriptor_dim, m.pca_dim) if m.pca_dim else None
        self._val_outputs: list[torch.Tensor] = []
        self.last_eval: dict | None = None
        self.mining_epoch = -1

    @property
    def dm(self) -> VPRDataModule:
        return self.trainer.datamodule

    def parameter_groups(self) -> dict:
        groups = {"backbone": self.net.trunk.parameters(), "head": self.net.netvlad.parameters()}
        if self.front is not None:
            groups["representation"] = self.front.parameters()
        return groups

    def network_input(self, batch: torch.Tensor | tuple) -> torch.Tensor:
        """A cached-input batch as is, or an ``(events, n)`` batch quantised by the EST front end."""
        if self.front is None:
            return batch
        events, n = batch[0], batch[1]
        return self.front(events.to(self.device), int(n))

    def forward(self, batch: torch.Tensor | tuple) -> torch.Tensor:
        return self.net(self.network_input(batch))

    # -- initialisation and mining
    def setup(self, stage: str) -> None:
        """NetVLAD centroids from k-means on local features of training windows (skipped when resuming)."""
        if bool(self.net.netvlad_initialised) or self.trainer.ckpt_path:
            return
        windows = self.dm.train_windows
        n = min(self.cfg.model.netvlad_init_windows, len(windows))
        pick = np.sort(np.random.default_rng(self.cfg.seed).choice(len(windows), size=n, replace=False))
        if self.front is None:
            inputs = torch.stack([windows[int(i)] for i in pick])
        else:
            with torch.no_grad():
                inputs = self.front(*collate_event_windows([windows[int(i)] for i in pick]))
        used = self.net.init_netvlad(inputs, seed=self.cfg.seed)
        log.info("NetVLAD: %d centroids from k-means on %d local features of %d windows",
                 self.net.netvlad.num_clusters, used, n)

    def _descriptors(self, dataset: torch.utils.data.Dataset) -> torch.Tensor:
        was_training = self.training
        self.eval()
        out = compute_ordered(dataset, lambda b: self(b if isinstance(b, tuple) else b.to(self.device)).float(),
                              self.cfg.data.eval_batch_size, collate_fn=self.dm.eval_collate)
        self.train(was_training)
        return out

    def on_train_epoch_start(self) -> None:
        d: VPRData = self.cfg.data
        epoch = self.current_epoch
        if d.mining != "hard" or self.mining_epoch == epoch or epoch % d.mining_refresh_epochs:
            return
        # NetVLAD §4: hard negatives come from a periodically refreshed cache of descriptors, computed only for
        # the windows this epoch's tuples can use (its anchors and the database)
        train_set = self.dm.train_set
        rows = train_set.mining_windows(epoch)
        train_set.set_descriptors(self._descriptors(Subset(self.dm.train_windows, rows.tolist())), rows)
        self.mining_epoch = epoch

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # the mining cache decides the remaining tuples of the epoch: exact resume needs it
        train_set = self.dm.train_set if self.trainer.datamodule else None
        desc = train_set.descriptors if train_set is not None else None
        rows = torch.from_numpy(train_set.descriptor_rows) if desc is not None else None
        checkpoint["vpr_mining"] = {"epoch": self.mining_epoch, "descriptors": desc, "rows": rows}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("vpr_mining")
        if state is not None:
            self.mining_epoch = int(state["epoch"])
            self._restored_descriptors = (state["descriptors"], state.get("rows"))

    def on_fit_start(self) -> None:
        desc, rows = getattr(self, "_restored_descriptors", None) or (None, None)
        if desc is not None:
            self.dm.train_set.set_descriptors(desc, None if rows is None else rows.numpy())

    # -- steps
    def training_step(self, batch: torch.Tensor | tuple | dict, batch_idx: int) -> torch.Tensor:
        loss, b = self._place_loss(batch) if isinstance(batch, dict) else self._tuple_loss(batch)
        self.log("loss", loss, prog_bar=True, batch_size=b)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=b)
        self.log("lr", self.optimizers().param_groups[0]["lr"])
        return loss

    def _tuple_loss(self, batch: torch.Tensor | tuple) -> tuple[torch.Tensor, int]:
        """NetVLAD tuples ``[B, 2 + n, …]``: the triplet loss of each anchor with its positive and negatives."""
        if self.front is None:
            b, t = batch.shape[:2]
            desc = self.net(batch.flatten(0, 1)).view(b, t, -1)
        else:  # (events, B, T): one EST pass over all B·T windows
            events, b, t = batch
            desc = self.net(self.front(events, b * t)).view(b, t, -1)
        m: VPRModel = self.cfg.model
        return tuple_triplet_loss(desc[:, 0], desc[:, 1], desc[:, 2:], m.margin, m.distance, m.negatives), b

    def _place_loss(self, batch: dict) -> tuple[torch.Tensor, int]:
        """Place batches ``{"x": [B, 2K, …], "pos": [B, 2K, 2]}``: every window is an anchor; its positives are
        the batch's windows within ``pos_m`` metres, its negatives those beyond ``neg_m`` (from the positions, so
        two items showing nearby places are never pushed apart)."""
        m: VPRModel = self.cfg.model
        d: VPRData = self.cfg.data
        desc = self.net(batch["x"].flatten(0, 1))
        pos = batch["pos"].flatten(0, 1).double()
        metres = torch.cdist(pos, pos)
        positive = (metres < d.pos_m) & ~torch.eye(len(pos), dtype=torch.bool, device=pos.device)
        negative = metres > d.neg_m
        if m.place_loss == "triplet":
            loss = masked_batch_hard_triplet_loss(desc, positive, negative, m.margin, m.distance)
        else:
            loss = multi_similarity_loss(desc, positive, negative, m.ms_alpha, m.ms_beta, m.ms_base, m.ms_epsilon)
        return loss, batch["x"].shape[0]

    def validation_step(self, batch: torch.Tensor | tuple, batch_idx: int) -> None:
        self._val_outputs.append(self(batch).float())

    def on_validation_epoch_end(self) -> None:
        dm = self.dm
        n_q, n_total = len(dm.eval_queries), len(dm.eval_queries) + len(dm.eval_database)
        local = torch.cat(self._val_outputs) if self._val_outputs else torch.empty(0, self.net.descriptor_dim)
        self._val_outputs.clear()
        desc = gather_ordered(local.to(self.device), n_total)
        if self.pca is not None:
            self.pca.fit(self._descriptors(dm.train_windows).cpu().numpy())
            desc = self.pca(desc)
        desc = desc.cpu().numpy()
        metrics, topk = recall_at_n(desc[:n_q], desc[n_q:], dm.query_pos, dm.db_pos, DEFAULT_NS, self.cfg.data.eval_m)
        self.last_eval = {"metrics": metrics, "topk": topk}
        for key, value in metrics.items():
            if key.startswith("recall@"):
                self.log(key, value, prog_bar=key == "recall@1", sync_dist=False)
        for key, value in dm.baseline.items():
            self.log(key, value, sync_dist=False)
        self.log("queries_without_positive", metrics["queries_without_positive"], sync_dist=False)

    def on_run_end(self, run_dir: Path, datamodule: VPRDataModule) -> None:
        from torchrepro.place_recognition.plots import write_run_plots

        write_run_plots(run_dir, self, datamodule)


def build(cfg: Config) -> tuple[VPRTask, VPRDataModule]:
    return VPRTask(cfg), VPRDataModule(cfg)


RECIPE = register(Recipe(
    name="vpr_event",
    description="event-camera place recognition: voxel grid → ResNet34 + NetVLAD, triplet loss, recall@N; "
                "simulated event drive, MVSEC HDF5 or npy windows",
    data_schema=VPRData,
    model_schema=VPRModel,
    build=build,
    default_monitor="recall@1",
    default_mode="max",
))
