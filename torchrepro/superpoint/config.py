"""Config schemas of the SuperPoint recipe (``data:`` and ``model:`` blocks), their checks, and its registration."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from torchrepro.core.errors import ConfigError
from torchrepro.core.registry import Recipe, Tool, register, register_tool
from torchrepro.superpoint.augment_config import AdaptationConfig, HomographyConfig, PhotometricConfig
from torchrepro.superpoint.shapes_format import PRIMITIVES

__all__ = ["HomographyConfig", "PhotometricConfig", "MagicPointData", "MagicPointModel"]

CELL = 8  # SuperPointNet's cell side (torchrepro.nn.superpoint.CELL; no torch here)


@dataclass
class MagicPointData:
    """Synthetic Shapes for MagicPoint (SuperPoint §4).

    ``root``: an existing dump in rpautrat/SuperPoint's layout (``<primitive>/images/<split>/<i>.png`` +
    ``points/<split>/<i>.npy``, splits ``training`` / ``validation`` / ``test``); null generates one under
    ``synthetic_dir`` with ``shapes_train`` / ``shapes_val`` / ``shapes_test`` images *per primitive*.
    ``image_size`` (rows, cols), multiples of 8: the seed config's 120×160 (dumps of another size are resized).
    Training augmentation: ``photometric`` (the seed config's primitives and ranges) and, when
    ``homographic_enable``, a random homography per sample from ``homographic``; cells within
    ``valid_border_margin`` pixels of the warp's border are left out of the loss. The same ``homographic``
    sampler draws the fixed warp of each held-out image for the repeatability. ``train_crop`` (rows, cols):
    train on a random cell-aligned crop of each augmented sample (the network is fully convolutional; a 64×64
    crop costs a fifth of a 120×160 image), evaluation stays on whole images.
    """

    source: Literal["shapes"] = "shapes"
    root: str | None = None
    synthetic_dir: str = "data/synthetic/superpoint_shapes"
    shapes_train: int = 600
    shapes_val: int = 30
    shapes_test: int = 60
    primitives: list[str] = field(default_factory=lambda: list(PRIMITIVES))
    image_size: list[int] = field(default_factory=lambda: [120, 160])
    batch_size: int = 64
    eval_batch_size: int = 16
    num_workers: int = 0
    photometric: PhotometricConfig = field(default_factory=PhotometricConfig)
    homographic_enable: bool = True
    homographic: HomographyConfig = field(default_factory=HomographyConfig)
    valid_border_margin: int = 2
    train_crop: list[int] | None = None

    def check(self, where: str) -> None:
        if self.train_crop is not None and (len(self.train_crop) != 2 or any(
                c < CELL or c % CELL or c > s for c, s in zip(self.train_crop, self.image_size))):
            raise ConfigError(f"config key '{where}.train_crop' must be [rows, cols], multiples of {CELL} no larger "
                              f"than data.image_size {self.image_size}, or null; got {self.train_crop}")
        if self.root is not None and not Path(self.root).is_dir():
            raise ConfigError(f"config key '{where}.root' names '{self.root}', which is not a folder: point it at a "
                              f"Synthetic Shapes dump (<primitive>/images/<split>/), or null to generate one")
        unknown = [p for p in self.primitives if p not in PRIMITIVES]
        if unknown or not self.primitives:
            raise ConfigError(f"config key '{where}.primitives' has {unknown or 'nothing'}: choose among "
                              f"{', '.join(PRIMITIVES)}")
        if len(self.image_size) != 2 or any(s < CELL or s % CELL for s in self.image_size):
            raise ConfigError(f"config key '{where}.image_size' must be [rows, cols], multiples of {CELL} (the "
                              f"detector's cell), got {self.image_size}: e.g. [120, 160]")
        for key in ("shapes_train", "shapes_val", "shapes_test", "batch_size", "eval_batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"config key '{where}.{key}' must be >= 1, got {getattr(self, key)}")
        if self.valid_border_margin < 0:
            raise ConfigError(f"config key '{where}.valid_border_margin' must be >= 0 pixels, got "
                              f"{self.valid_border_margin}")
        self.photometric.check(f"{where}.photometric")
        self.homographic.check(f"{where}.homographic")


@dataclass
class MagicPointModel:
    """SuperPointNet (§3) and how its detections are scored.

    ``batchnorm``: a BatchNorm after every convolution, as the seed's ``SuperPointNet_gauss2`` (false: Magic
    Leap's network exactly). ``dustbin_prior``: start the detector at P(no point) = this in every cell (RetinaNet's
    prior initialisation; null: PyTorch's default, about 1/65 per bin). Key points: heatmap above ``detection_threshold`` (the seed's 0.001), NMS of
    ``nms_radius`` pixels (4), none within ``border`` pixels of the edge (Magic Leap's demo removes 4). Scoring:
    ``match_distance`` (2 px) for precision / recall / mAP against ground truth; repeatability over the best
    ``top_k`` points in the shared view (300), correct within ``repeatability_distance`` (3 px). ``baselines``:
    classical detectors scored beside the network (Harris, Shi-Tomasi, FAST; SuperPoint §4's table).
    """

    batchnorm: bool = True
    dustbin_prior: float | None = None
    detection_threshold: float = 0.001
    nms_radius: int = 4
    border: int = 4
    top_k: int = 300
    match_distance: float = 2.0
    repeatability_distance: float = 3.0
    baselines: list[str] = field(default_factory=lambda: ["harris", "shi", "fast"])

    def check(self, where: str) -> None:
        if self.dustbin_prior is not None and not 0.0 < self.dustbin_prior < 1.0:
            raise ConfigError(f"config key '{where}.dustbin_prior' must be in (0, 1) or null, got {self.dustbin_prior}")
        if not 0.0 <= self.detection_threshold < 1.0:
            raise ConfigError(f"config key '{where}.detection_threshold' must be in [0, 1) (a heatmap probability; "
                              f"the seed: 0.001), got {self.detection_threshold}")
        for key in ("nms_radius", "border"):
            if getattr(self, key) < 0:
                raise ConfigError(f"config key '{where}.{key}' must be >= 0 pixels, got {getattr(self, key)}")
        if self.top_k < 1:
            raise ConfigError(f"config key '{where}.top_k' must be >= 1 (the protocol: 300), got {self.top_k}")
        for key in ("match_distance", "repeatability_distance"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"config key '{where}.{key}' must be > 0 pixels, got {getattr(self, key)}")
        unknown = [b for b in self.baselines if b not in ("harris", "shi", "fast")]
        if unknown:
            raise ConfigError(f"config key '{where}.baselines' has unknown detectors {unknown}: choose among "
                              f"harris, shi, fast")


RECIPE = register(Recipe(
    name="magicpoint",
    description="MagicPoint interest points (SuperPoint, DeTone et al., CVPRW 2018, §4) on Synthetic Shapes, "
                "scored by detection mAP and repeatability against Harris, Shi-Tomasi and FAST",
    data_schema=MagicPointData,
    model_schema=MagicPointModel,
    task="torchrepro.superpoint.magicpoint_task",  # build(cfg), callbacks(cfg): imported when a run needs them
    default_monitor="mAP",
    default_mode="max",
    baseline_metric="baseline_shi_mAP",
    synthetic_config="configs/magicpoint_shapes.yaml",
    demo="torchrepro.superpoint.demo:magicpoint_page",  # the live page of `torchrepro serve`
    # 2 images per primitive per split (18 / 18 / 18), 32x48 pixels, 16x24 training crops: 3 steps of 8 crops per
    # epoch, two epochs;
    # evaluation one image at a time so that one process and two ranks run the same forward passes
    tiny_overrides=("data.shapes_train=2", "data.shapes_val=2", "data.shapes_test=2", "data.image_size=[32,48]",
                    "data.train_crop=[16,24]", "data.batch_size=8", "data.eval_batch_size=1", "trainer.max_epochs=2"),
))


# ------------------------------------------------------------------------------------- SuperPoint (joint)
def _pair_homographies() -> HomographyConfig:
    """The warped pair of joint training: rpautrat ``superpoint_coco.yaml`` (``warped_pair``): patch ratio 0.85."""
    return HomographyConfig(patch_ratio=0.85)


@dataclass
class SuperPointData:
    """Pictures with pseudo ground truth for joint training (SuperPoint §6) and HPatches folders to score on (§7).

    ``source: photos`` (the offline default) builds from scikit-image's photographs under ``synthetic_dir``:
    ``crops_per_photo`` training crops per training photograph, an HPatches-layout validation folder from training
    photographs (settings are chosen on training images only) and a test folder from held-out photographs.
    ``source: folders`` reads ``images`` (a folder of pictures, e.g. COCO ``train2014/``), ``val_hpatches`` and
    ``test_hpatches`` (``hpatches-sequences-release/``; null: no test split). ``labels``: a folder exported by
    ``torchrepro tool superpoint-export``; null exports one before training with ``labeler`` (a MagicPoint
    checkpoint path, or ``harris`` / ``shi`` / ``fast``) by Homographic Adaptation with ``adaptation``.
    Training pairs: ``image_size`` (rows, cols) grey pictures, each with a warp drawn from ``homographic``
    (cells within ``valid_border_margin`` px of the warp's border are left out), both photometrically augmented.
    The generated HPatches-layout sequences are ``hpatches_size`` (rows, cols); HPatches images are shrunk to
    ``hpatches_max_side`` for scoring (rpautrat evaluates at 240×320). ``hpatches_pairs``: score only that many
    pairs of each folder, spread evenly over its sequences (quick runs; null: every pair, the protocol).
    """

    source: Literal["photos", "folders"] = "photos"
    synthetic_dir: str = "data/synthetic/superpoint_photos"
    crops_per_photo: int = 40
    images: str | None = None
    val_hpatches: str | None = None
    test_hpatches: str | None = None
    labels: str | None = None
    labeler: str = "runs/magicpoint_shapes/checkpoints/best.ckpt"
    adaptation: AdaptationConfig = field(default_factory=AdaptationConfig)
    image_size: list[int] = field(default_factory=lambda: [120, 160])
    hpatches_size: list[int] = field(default_factory=lambda: [240, 320])
    hpatches_max_side: int | None = 320
    hpatches_pairs: int | None = None
    batch_size: int = 16
    num_workers: int = 0
    photometric: PhotometricConfig = field(default_factory=PhotometricConfig)
    homographic: HomographyConfig = field(default_factory=_pair_homographies)
    valid_border_margin: int = 3

    def check(self, where: str) -> None:
        if self.source == "folders":
            for key in ("images", "val_hpatches") + (("test_hpatches",) if self.test_hpatches else ()):
                value = getattr(self, key)
                if value is None or not Path(value).is_dir():
                    raise ConfigError(f"config key '{where}.{key}' must name an existing folder for source 'folders', "
                                      f"got {value!r}")
        if self.labels is not None and not Path(self.labels).is_dir():
            raise ConfigError(f"config key '{where}.labels' names '{self.labels}', which is not a folder: give an "
                              f"export of `torchrepro tool superpoint-export`, or null to export before training")
        if self.labels is None and self.labeler not in LABELERS and not Path(self.labeler).is_file():
            raise ConfigError(f"config key '{where}.labeler' is '{self.labeler}': give a MagicPoint checkpoint file "
                              f"(train configs/magicpoint_shapes.yaml first) or one of {', '.join(LABELERS)}")
        if len(self.image_size) != 2 or any(s < CELL or s % CELL for s in self.image_size):
            raise ConfigError(f"config key '{where}.image_size' must be [rows, cols], multiples of {CELL}, got "
                              f"{self.image_size}: e.g. [120, 160]")
        for key in ("crops_per_photo", "batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"config key '{where}.{key}' must be >= 1, got {getattr(self, key)}")
        if len(self.hpatches_size) != 2 or min(self.hpatches_size) < 2 * CELL:
            raise ConfigError(f"config key '{where}.hpatches_size' must be [rows, cols] of at least {2 * CELL} px, got "
                              f"{self.hpatches_size}")
        if self.hpatches_pairs is not None and self.hpatches_pairs < 1:
            raise ConfigError(f"config key '{where}.hpatches_pairs' must be >= 1 or null (every pair), got "
                              f"{self.hpatches_pairs}")
        if self.hpatches_max_side is not None and self.hpatches_max_side < 2 * CELL:
            raise ConfigError(f"config key '{where}.hpatches_max_side' must be >= {2 * CELL} or null, got "
                              f"{self.hpatches_max_side}")
        self.adaptation.check(f"{where}.adaptation")
        self.photometric.check(f"{where}.photometric")
        self.homographic.check(f"{where}.homographic")


@dataclass
class SuperPointModel:
    """SuperPointNet (§3), its loss (§3.4) and the HPatches protocol's settings (§7).

    Loss (Eq. 1, 6): ``lambda_d`` (250) weighs the positive hinge (margin ``positive_margin`` 1) against the
    negative one (``negative_margin`` 0.2); ``lambda_loss`` (1e-4) weighs L_d against the two detector losses.
    ``descriptor_loss``: ``dense``, the paper's hinge over every pair of cells, or ``sparse``, pytorch-superpoint's
    sampled version (``sparse_matches`` drawn correspondences, ``sparse_non_matches`` non-matches each; its
    reference weights are ``lambda_d`` 1 and ``lambda_loss`` 1; :mod:`torchrepro.superpoint.losses`).
    ``init``: a MagicPoint checkpoint whose encoder and detector head start the network, or ``labeler``: the
    checkpoint that labelled the pictures (``data.labeler``); null: from scratch, the detector then at
    P(no point) = ``dustbin_prior`` when given, as MagicPoint's.
    Scoring: ``detection_threshold``; repeatability / MLE on the best ``top_k`` (300) shared points with NMS
    ``nms_radius`` (4); descriptors on the best ``top_k_descriptors`` (1,000) with NMS ``descriptor_nms_radius``
    (8); correct within ``correct_distance`` (3 px). ``baselines``: OpenCV detectors scored on the same pairs.
    """

    batchnorm: bool = True
    init: str | None = None
    dustbin_prior: float | None = None
    positive_margin: float = 1.0
    negative_margin: float = 0.2
    lambda_d: float = 250.0
    lambda_loss: float = 1e-4
    descriptor_loss: str = "dense"
    sparse_matches: int = 1000
    sparse_non_matches: int = 100
    detection_threshold: float = 0.001
    nms_radius: int = 4
    descriptor_nms_radius: int = 8
    border: int = 4
    top_k: int = 300
    top_k_descriptors: int = 1000
    correct_distance: float = 3.0
    baselines: list[str] = field(default_factory=lambda: ["sift", "orb"])

    def check(self, where: str) -> None:
        if self.dustbin_prior is not None and not 0.0 < self.dustbin_prior < 1.0:
            raise ConfigError(f"config key '{where}.dustbin_prior' must be in (0, 1) or null, got {self.dustbin_prior}")
        if self.init not in (None, "labeler") and not Path(self.init).is_file():
            raise ConfigError(f"config key '{where}.init' names '{self.init}', which is not a file: give a MagicPoint "
                              f"checkpoint (runs/<name>/checkpoints/best.ckpt) or null")
        for key in ("lambda_d", "lambda_loss", "positive_margin", "correct_distance"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"config key '{where}.{key}' must be > 0, got {getattr(self, key)}")
        if not -1.0 <= self.negative_margin < self.positive_margin:
            raise ConfigError(f"config key '{where}.negative_margin' must be in [-1, positive_margin), got "
                              f"{self.negative_margin}")
        for key in ("nms_radius", "descriptor_nms_radius", "border"):
            if getattr(self, key) < 0:
                raise ConfigError(f"config key '{where}.{key}' must be >= 0 pixels, got {getattr(self, key)}")
        if self.descriptor_loss not in ("dense", "sparse"):
            raise ConfigError(f"config key '{where}.descriptor_loss' must be 'dense' (the paper's Eq. 6 over every "
                              f"cell pair) or 'sparse' (sampled pairs), got '{self.descriptor_loss}'")
        for key in ("top_k", "top_k_descriptors", "sparse_matches", "sparse_non_matches"):
            if getattr(self, key) < 1:
                raise ConfigError(f"config key '{where}.{key}' must be >= 1, got {getattr(self, key)}")
        unknown = [b for b in self.baselines if b not in ("sift", "orb")]
        if unknown:
            raise ConfigError(f"config key '{where}.baselines' has unknown methods {unknown}: choose among sift, orb")


LABELERS = ("harris", "shi", "fast")

SUPERPOINT = register(Recipe(
    name="superpoint",
    description="SuperPoint (DeTone et al., CVPRW 2018): joint detector + descriptor training on photographs "
                "labelled by Homographic Adaptation, scored with the HPatches protocol against SIFT and ORB",
    data_schema=SuperPointData,
    model_schema=SuperPointModel,
    task="torchrepro.superpoint.superpoint_task",
    default_monitor="hcorr@3",
    default_mode="max",
    baseline_metric="baseline_sift_hcorr@3",
    synthetic_config="configs/superpoint_photos.yaml",
    demo="torchrepro.superpoint.demo:superpoint_page",  # the live page of `torchrepro serve`
    # 1 crop per training photo at 32x48, 6 HPatches pairs a split, labels by Homographic Adaptation of Shi-Tomasi
    # with 2 warps, from scratch (no
    # MagicPoint run needed); HPatches pairs one at a time
    tiny_overrides=("data.crops_per_photo=1", "data.image_size=[32,48]", "data.batch_size=4", "data.labeler=shi",
                    "model.init=null",
                    "data.adaptation.num_homographies=2", "data.hpatches_size=[48,64]", "data.hpatches_pairs=6",
                    "trainer.max_epochs=2"),
    report_figures=(  # written by torchrepro.superpoint.superpoint_task.HPatchesTable
        ("matches.png", "SuperPoint's mutual nearest-neighbour matches on the first viewpoint pair of the last "
                        "evaluated split: RANSAC inliers green, outliers red."),
    ),
))

register_tool(Tool("superpoint-match", "match two pictures with a SuperPoint checkpoint; a PNG of the matches",
                   "torchrepro.superpoint.match_tool", "match_main"))
register_tool(Tool("superpoint-chain", "shapes -> MagicPoint -> homographic adaptation -> SuperPoint -> HPatches "
                   "tables against SIFT and ORB", "torchrepro.superpoint.chain_tool", "chain_main"))
register_tool(Tool("superpoint-export", "label images by homographic adaptation (SuperPoint §5): <stem>.npz pseudo "
                   "ground truth and export.json", "torchrepro.superpoint.export_tool", "export_main"))
