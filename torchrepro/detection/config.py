"""Config schemas of the SSD detection recipe (``data:`` with its ``augment:`` block, and ``model:``), their checks
and the recipe's registration.

Schemas only (no torch): ``torchrepro list`` and ``torchrepro config`` import this module to register the recipe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from torchrepro.core.config import check_data_root
from torchrepro.core.errors import ConfigError
from torchrepro.core.registry import Recipe, Tool, register, register_tool

#: the detectors of :func:`torchrepro.detection.model.build_detector` (kept here as names: no torch import)
DETECTOR_NAMES = ("seed_resnet34", "ssd300_vgg16", "ssdlite320_mobilenet_v3_large")
#: the seed head's options, which torchvision's detectors do not take
SEED_ONLY = ("width", "head_channels", "dropout", "class_bias", "trunk_grid", "anchor_ratios")


def seed_grid_sides(image_size: int, trunk_grid: bool = False) -> tuple[int, ...]:
    """The seed head's grid sides for an S×S input (the model's anchors use it; kept here, torch-free, so that the
    config check can use it too): five halvings in the ResNet trunk, then three stride-2 convolutions, each
    ``ceil(n / 2)``. 224 → (4, 2, 1), 96 → (2, 1, 1), 64 → (1, 1, 1). ``trunk_grid`` puts the trunk's own map
    first: 224 → (7, 4, 2, 1)."""
    n = image_size
    for _ in range(5):
        n = -(-n // 2)
    sides = [n] if trunk_grid else []
    for _ in range(3):
        n = -(-n // 2)
        sides.append(n)
    return tuple(sides)


@dataclass
class DetectionAugment:
    """SSD's training augmentation (Liu et al., ECCV 2016, §2.2 "Data augmentation" and §3.6 zoom out), step by
    step (:func:`torchrepro.detection.transforms.detection_transform`): photometric distortion, zoom out onto a
    mean-filled canvas up to ``zoom_max``× the side, the min-IoU patch crop (side scale in [``crop_min_scale``,
    1]), horizontal flip with ``flip_p``. Evaluation only resizes."""

    photometric: bool = True
    zoom_out: bool = True
    zoom_max: float = 4.0
    iou_crop: bool = True
    crop_min_scale: float = 0.3
    flip_p: float = 0.5

    def check(self, where: str) -> None:
        if not 0.0 <= self.flip_p <= 1.0:
            raise ConfigError(f"config key '{where}.flip_p' is a probability in [0, 1], got {self.flip_p}")
        if self.zoom_max < 1.0:
            raise ConfigError(f"config key '{where}.zoom_max' must be >= 1 (the canvas side as a multiple of the "
                              f"image's; SSD uses 4), got {self.zoom_max}")
        if not 0.0 < self.crop_min_scale <= 1.0:
            raise ConfigError(f"config key '{where}.crop_min_scale' must be in (0, 1] (SSD's release uses 0.3), "
                              f"got {self.crop_min_scale}")


@dataclass
class DetectionData:
    """Annotated images for the detector, and the three splits.

    ``source``:

    * ``synthetic`` (default): driver's-view road scenes with five classes (:mod:`torchrepro.detection.synthetic`),
      generated as a Pascal VOC folder under ``synthetic_dir`` (``synthetic_train`` / ``_val`` / ``_test`` images of
      ``synthetic_size`` pixels, boxes of the ``synthetic_box_extent``) and read back by the VOC reader;
    * ``voc``: a ``VOCdevkit/VOC20xx`` folder at ``root`` (``Annotations/``, ``ImageSets/Main/``, ``JPEGImages/``);
      the splits are the split files ``<train_split>.txt`` etc. VOC2007 has ``train``, ``val`` and ``test`` (the
      test annotations ship separately, VOCtest_06-Nov-2007, and unpack into the same folder): the model trains on
      ``train``, ``val`` is scored every epoch and chooses ``best.ckpt``, ``test`` is scored once, with it, at the
      end. (SSD itself trains on VOC07+12 trainval and reports VOC07 test, §3.2: set ``train_split=trainval`` to
      train on both halves, which leaves no held-out validation split of VOC2007 — choose ``val_split`` then.)
    * ``coco``: ``root/annotations/instances_<split>.json`` with the images in ``root/<split>/`` (COCO 2017:
      ``train2017``, ``val2017``; the test-dev annotations are not public, so hold out a split of your own for
      ``test_split``). ``coco_contiguous_ids`` maps category ids with gaps (the official 1..90 for 80 classes) to
      1..C (:func:`torchrepro.detection.coco.read_coco`).

    ``classes``: the class names, label k + 1 = ``classes[k]`` (null: the source's own: the five road classes, or
    the 20 VOC classes; ``coco`` needs them listed, in category-id order, because the model's class count is fixed
    before the json is read — the reader checks them against the json). The readers' errors name this key.
    ``test_split: null`` trains without a held-out split. ``train_difficult``: train on objects marked
    difficult / crowd too (SSD's ``use_difficult_gt: true``); the evaluation always ignores them (VOC §4.2).
    ``bad_boxes``: what the readers do with a box outside its image (null: the reader's default — ``error`` for
    VOC, naming the file, ``drop`` for COCO).
    """

    source: Literal["synthetic", "voc", "coco"] = "synthetic"
    root: str | None = None
    classes: list[str] | None = None
    train_split: str = "train"
    val_split: str = "val"
    test_split: str | None = "test"
    coco_contiguous_ids: bool = False
    train_difficult: bool = True
    bad_boxes: Literal["error", "clip", "drop"] | None = None
    batch_size: int = 32
    eval_batch_size: int = 32
    num_workers: int = 0
    augment: DetectionAugment = field(default_factory=DetectionAugment)
    synthetic_dir: str = "data/synthetic/detection_road"
    synthetic_train: int = 1600
    synthetic_val: int = 200
    synthetic_test: int = 400
    synthetic_size: int = 224
    synthetic_box_extent: Literal["visible", "full"] = "visible"

    def check(self, where: str) -> None:
        if self.source != "synthetic":
            voc = self.source == "voc"
            layout = ("the VOC20xx folder holding Annotations/, ImageSets/ and JPEGImages/" if voc
                      else "the folder holding annotations/instances_<split>.json and the <split>/ image folders")
            check_data_root(self.root, where, self.source, f"/path/to/{'VOCdevkit/VOC2007' if voc else 'coco'}",
                            f"point {where}.root at {layout}")
        if self.classes is not None and (not self.classes or len(set(self.classes)) != len(self.classes)):
            raise ConfigError(f"config key '{where}.classes' must list distinct class names (or be null for the "
                              f"source's own), got {self.classes}")
        if self.source == "coco" and self.classes is None:
            raise ConfigError(f"config key '{where}.classes' is required for source 'coco': list the json's category "
                              f"names in category-id order (the model's class count is fixed before the json is read)")
        splits = [self.train_split, self.val_split] + ([self.test_split] if self.test_split else [])
        if len(set(splits)) != len(splits):
            raise ConfigError(f"{where}.train_split, {where}.val_split and {where}.test_split must differ, got "
                              f"{splits}: a split that is also scored is not held out")
        for key in ("batch_size", "eval_batch_size", "synthetic_train", "synthetic_val", "synthetic_test"):
            if getattr(self, key) < 1:
                raise ConfigError(f"config key '{where}.{key}' must be >= 1, got {getattr(self, key)}")
        if self.synthetic_size < 32:
            raise ConfigError(f"config key '{where}.synthetic_size' must be >= 32 pixels, got {self.synthetic_size}")


@dataclass
class DetectionModel:
    """The detector, its loss and post-processing, and the baseline.

    ``name``: ``seed_resnet34`` (the seed's multi-box head on a ResNet34 trunk, fastai 2018 "multi-label SSD";
    ``width`` scales the trunk's channels, 64 = ResNet34 itself; ``head_channels``, ``dropout``, ``class_bias`` are
    the head's), or torchvision's ``ssd300_vgg16`` / ``ssdlite320_mobilenet_v3_large`` (random initialisation;
    they resize ``image_size`` to their native 300 / 320 inside). ``loss`` (seed only): ``seed`` (L1 + BCE,
    IoU > 0.4), ``ssd`` (SSD's MultiBox loss with 3:1 hard negatives, §2.2 Eq. 1) or ``focal``; null: ``seed`` for
    the seed head, torchvision's own SSD loss for the others. ``anchor_ratios`` (seed only): the anchors'
    (height, width) shapes per zoom, the seed's 1:1, tall 1:2 and wide 2:1 by default; SSD §2.2 adds 1:3 and 3:1
    ([1, 0.333], [0.333, 1]). ``image_size``: the square network input S (SSD300:
    300; the seed: 224). ``pretrained``: a local state-dict file (the trunk's for the seed, the whole detector's
    for torchvision's); nothing is ever downloaded.

    Post-processing (SSD §3.7): per-class ``score_thresh`` and ``topk``, NMS at ``nms_iou``, ``max_detections`` per
    image (also the padded width of the evaluation rows). ``coco_metrics``: also report COCO mAP@[.5:.95]
    (pycocotools' protocol through torchmetrics) beside the VOC07 mAP@0.5. ``baseline_priors``: prior boxes per
    class of the image-blind baseline (k-means of the training boxes, :mod:`torchrepro.detection.task`).
    """

    name: Literal["seed_resnet34", "ssd300_vgg16", "ssdlite320_mobilenet_v3_large"] = "seed_resnet34"
    loss: Literal["seed", "ssd", "focal"] | None = None
    image_size: int = 224
    width: int = 64
    head_channels: int = 256
    dropout: float = 0.4
    class_bias: float = -4.0
    trunk_grid: bool = False
    anchor_ratios: list[list[float]] = field(default_factory=lambda: [[1.0, 1.0], [1.0, 0.5], [0.5, 1.0]])
    pretrained: str | None = None
    score_thresh: float = 0.01
    topk: int = 400
    nms_iou: float = 0.45
    max_detections: int = 200
    coco_metrics: bool = True
    baseline_priors: int = 5

    def check(self, where: str) -> None:
        if self.name == "seed_resnet34":
            if self.image_size < 65:
                raise ConfigError(
                    f"config key '{where}.image_size' is {self.image_size}: the seed head's grids there are "
                    f"{seed_grid_sides(self.image_size)} (three identical 1x1 grids); use >= 96 (grids (2, 1, 1)), "
                    f"160 (3, 2, 1) or the seed's 224 (4, 2, 1)")
        else:
            if self.image_size < 32:
                raise ConfigError(f"config key '{where}.image_size' must be >= 32, got {self.image_size}")
            if self.loss not in (None, "ssd"):
                raise ConfigError(f"config key '{where}.loss' is '{self.loss}', but {self.name} trains with "
                                  f"torchvision's SSD loss only: set {where}.loss=null (or ssd)")
            defaults = DetectionModel()
            changed = [k for k in SEED_ONLY if getattr(self, k) != getattr(defaults, k)]
            if changed:
                raise ConfigError(f"config key '{where}.{changed[0]}' belongs to the seed head "
                                  f"({where}.name=seed_resnet34); {self.name} does not take it: remove it")
        if not self.anchor_ratios or any(len(r) != 2 or min(r) <= 0 for r in self.anchor_ratios):
            raise ConfigError(f"config key '{where}.anchor_ratios' must be a non-empty list of positive [height, "
                              f"width] pairs, e.g. [[1, 1], [1, 0.5], [0.5, 1]], got {self.anchor_ratios}")
        if self.pretrained is not None and not Path(self.pretrained).is_file():
            raise ConfigError(f"config key '{where}.pretrained' names '{self.pretrained}', which is not a file: give "
                              f"a local state-dict file (nothing is downloaded), or null for a random initialisation")
        for key in ("width", "head_channels", "topk", "max_detections", "baseline_priors"):
            if getattr(self, key) < 1:
                raise ConfigError(f"config key '{where}.{key}' must be >= 1, got {getattr(self, key)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"config key '{where}.dropout' must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.score_thresh < 1.0:
            raise ConfigError(f"config key '{where}.score_thresh' must be in [0, 1) (SSD: 0.01), got "
                              f"{self.score_thresh}")
        if not 0.0 < self.nms_iou <= 1.0:
            raise ConfigError(f"config key '{where}.nms_iou' must be in (0, 1] (SSD: 0.45), got {self.nms_iou}")


RECIPE = register(Recipe(
    name="detection",
    description="SSD-style object detection (the seed's multi-box head on ResNet34, torchvision's SSD300 / "
                "SSDlite) scored by VOC07 mAP@0.5 and COCO mAP; Pascal VOC, COCO json or synthetic road scenes",
    data_schema=DetectionData,
    model_schema=DetectionModel,
    task="torchrepro.detection.task",  # build(cfg), callbacks(cfg): imported when a run needs them
    default_monitor="mAP@0.5",  # VOC2007 11-point AP at IoU > 0.5, difficult objects ignored (what SSD reports)
    default_mode="max",
    baseline_metric="baseline_prior_mAP@0.5",
    synthetic_config="configs/ssd_synthetic_road.yaml",
    # 24 / 8 / 8 generated 96-pixel scenes (grids (2, 1, 1)), a trunk of width 8 and a head of 32 channels:
    # 3 steps of 8 images per epoch, two epochs; evaluation one image at a time, so that one process and two
    # ranks run the very same forward passes (the contract compares them to 1e-6)
    tiny_overrides=("data.synthetic_train=24", "data.synthetic_val=8", "data.synthetic_test=8",
                    "data.synthetic_size=96", "data.batch_size=8", "data.eval_batch_size=1", "model.image_size=96",
                    "model.width=8", "model.head_channels=32", "model.max_detections=50", "model.baseline_priors=3",
                    "trainer.max_epochs=2"),
    demo="torchrepro.detection.demo",  # page(runs_dir): the live page of `torchrepro serve`
    report_figures=(  # written by torchrepro.detection.plots.DetectionPlots
        ("curves.png", "Training loss and the validation VOC07 mAP@0.5 per epoch."),
        ("pr_curves.png", "Precision/recall curve of each class over the evaluated split (detections of all images "
                          "ranked by score, IoU > 0.5, difficult objects ignored), its 11-point AP in the legend."),
        ("detections.png", "Evaluated images with the detections scored at least 0.3: true positives green, false "
                           "positives red, missed objects dashed yellow, detections on difficult objects grey."),
    ),
))
register_tool(Tool("detect", "run a detection checkpoint on pictures: annotated PNGs and detections.json",
                   "torchrepro.detection.tools", "detect_main"))
