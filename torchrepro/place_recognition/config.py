"""Config schemas of the event-camera place-recognition recipe (``data:`` and ``model:`` blocks) and their checks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from torchrepro.core.errors import ConfigError
from torchrepro.core.registry import Recipe, register
from torchrepro.nn.backbones import check_backbone_name


Representation = Literal["voxel", "histogram", "est"]


@dataclass(frozen=True)
class InputSpec:
    """Everything that shapes a cached network input."""

    representation: Representation = "voxel"
    num_bins: int = 5
    height: int = 260
    width: int = 346
    size: int = 224
    normalize: bool = True
    denoise_s: float = 0.0  # background-activity filter support (s); 0: off

    @property
    def channels(self) -> int:
        return {"voxel": self.num_bins, "histogram": 2, "est": 2 * self.num_bins}[self.representation]


@dataclass
class VPRData:
    """Where the event windows come from and how they become training tuples.

    ``source``: ``synthetic`` (the simulated event drive, written in the MVSEC layout and read back through
    the MVSEC reader; drive1 trains, drive_val (and drive_val2, … with ``synthetic_val_drives``) validates, drive2 is the held-out test traversal), ``mvsec``
    (``*_events`` = a ``*_data.hdf5``, ``*_poses`` = its ``*_gt.hdf5``) or ``npy`` (``*_events`` = a folder of
    ``<timestamp>.npy`` windows, ``*_poses`` = a positions file of rows x, y, t).

    Splits: the validation recording (``val_events``/``val_poses``; the simulated validation drives, pooled) is evaluated
    every epoch and chooses the best checkpoint; the test recording (``test_events``/``test_poses``; drive2) is
    scored once, with that checkpoint, when training ends. Both use ``eval_protocol``.

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
    synthetic_train_candidates: int = 1  # >1: each extra training drive is the draw least like drive1 of this many
    # validation drives (their queries pooled into one validation split) and, for each, how many drives are drawn
    # from the ranges to keep the one least like drive1 (see place_recognition.drive.validation_drive_spec)
    synthetic_val_drives: int = 1
    synthetic_val_candidates: int = 1
    train_events: str | None = None
    train_poses: str | None = None
    train_protocol: Literal["split", "cross"] = "split"
    train_query_events: list[str] | None = None
    train_query_poses: list[str] | None = None
    val_events: str | None = None
    val_poses: str | None = None
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
            for key in ("train_events", "train_poses", "val_events", "val_poses", "test_events", "test_poses"):
                value = getattr(self, key)
                if not value and key.startswith("val_"):
                    raise ConfigError(
                        f"config key '{where}.{key}' is required for source '{self.source}': a validation recording "
                        f"of the route (neither the training nor the test one) chooses the checkpoint, and the test "
                        f"recording is scored once at the end")
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
            if self.val_events in (self.test_events, self.train_events):
                raise ConfigError(f"{where}.val_events must be a recording of its own, not the training or test one "
                                  f"(got {self.val_events}): a split that chooses the checkpoint cannot also be reported")
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
        if not 1 <= self.synthetic_val_drives <= 3:
            raise ConfigError(f"{where}.synthetic_val_drives must be in [1, 3], got {self.synthetic_val_drives}")
        for key in ("synthetic_train_candidates", "synthetic_val_candidates"):
            if not 1 <= getattr(self, key) <= 16:
                raise ConfigError(f"{where}.{key} must be in [1, 16] (drives drawn to keep the one least like "
                                  f"drive1), got {getattr(self, key)}")
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
        check_backbone_name(self.arch, f"{where}.arch")
        if self.pretrained and not Path(self.pretrained).is_file():
            raise ConfigError(f"pretrained weights '{self.pretrained}' ({where}.pretrained) do not exist")
        if self.num_clusters < 1 or self.netvlad_init_windows < 1:
            raise ConfigError(f"{where}.num_clusters and {where}.netvlad_init_windows must be >= 1")
        if self.ms_alpha <= 0 or self.ms_beta <= 0 or self.ms_epsilon < 0:
            raise ConfigError(f"{where}.ms_alpha and {where}.ms_beta must be > 0 and {where}.ms_epsilon >= 0, got "
                              f"{self.ms_alpha}, {self.ms_beta}, {self.ms_epsilon}")
        if self.pca_dim is not None and self.pca_dim < 1:
            raise ConfigError(f"{where}.pca_dim must be >= 1 or null, got {self.pca_dim}")


# The recipe's entry in the registry: names, schemas and the task module (imported only when a run builds it).
RECIPE = register(Recipe(
    name="vpr_event",
    description="event-camera place recognition: voxel grid → ResNet34 + NetVLAD, triplet loss, recall@N; "
                "simulated event drive, MVSEC HDF5 or npy windows",
    data_schema=VPRData,
    model_schema=VPRModel,
    task="torchrepro.place_recognition.task",  # build(cfg), callbacks(cfg): imported when a run needs them
    default_monitor="recall@1",
    default_mode="max",
    baseline_metric="baseline_count_recall@1",
    synthetic_config="configs/vpr_event_sim.yaml",
    # a 60 m street on a 64×48 sensor, two extra drives, 400-event windows, a 4-cluster NetVLAD at 32 px
    tiny_overrides=("data.synthetic_route_m=60", "data.sensor_height=48", "data.sensor_width=64",
                    "data.events_per_window=400", "data.min_events=400", "data.input_size=32",
                    "data.synthetic_train_drives=2", "data.places_per_epoch=8", "data.batch_size=2",
                    "data.eval_batch_size=16", "data.mining_candidates=8", "data.n_negatives=2", "model.arch=resnet18",
                    "model.num_clusters=4", "model.netvlad_init_windows=8", "trainer.max_epochs=2"),
    demo="torchrepro.place_recognition.demo",  # page(runs_dir): the live page of `torchrepro serve`
    report_figures=(  # written by torchrepro.place_recognition.plots.VPRPlots
        ("recall_curve.png", "recall@N of the last evaluation (a query counts when one of its N nearest database "
                             "windows lies within data.eval_m metres): the trained model against the non-learned "
                             "event-count image compared by cosine."),
        ("retrievals.png", "Eight queries of the last evaluation beside their five nearest database windows; a green "
                           "border marks a window within data.eval_m metres of the query, red one farther away."),
        ("window_polarity.png", "The events of the middle window of the evaluated traversal: net positive polarity "
                                "red, negative blue."),
        ("curves.png", "Training loss, recall@1 and recall@5 per epoch."),
    ),
))
