"""Evaluation pictures of the detection recipe: precision/recall curves, the per-class AP table, and detections
drawn over their images (true positives green, false positives red, missed objects yellow); and
:class:`DetectionPlots`, the recipe's artefact callback that writes them into the run directory.

``torchrepro.core.plots`` has training curves and a confusion matrix, neither of which fits boxes or PR curves,
so nothing here duplicates it. The TP / FP / missed decision is :func:`torchrepro.detection.evaluation.
classify_detections`, the VOC assignment itself, so the pictures show what the AP counted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import matplotlib

matplotlib.use("Agg")  # headless: never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402

from torchrepro.core.callbacks import RunArtefacts  # noqa: E402
from torchrepro.core.plots import plot_curves  # noqa: E402
from torchrepro.core.rundir import METRICS_NAME, write_text_atomic  # noqa: E402
from torchrepro.detection.evaluation import (  # noqa: E402
    BELOW_THRESHOLD, FALSE_POSITIVE, IGNORED, TRUE_POSITIVE, Target, VOCResult, classify_detections,
)
from torchrepro.detection.transforms import load_image  # noqa: E402

__all__ = ["DetectionPlots", "MISSED_COLOUR", "OUTCOME_COLOURS", "class_colour", "detections_png",
           "image_detections_png", "per_class_ap_table", "pr_curves_png"]

#: RGB colours (0..255) of the detection pictures, per detection outcome; exported so tests can look for them.
OUTCOME_COLOURS: dict[int, tuple[int, int, int]] = {
    TRUE_POSITIVE: (0, 200, 0),
    FALSE_POSITIVE: (230, 0, 0),
    IGNORED: (150, 150, 150),  # matched a "difficult" object: VOC counts it neither way
}
MISSED_COLOUR: tuple[int, int, int] = (255, 220, 0)
_LEGEND = (("true positive", OUTCOME_COLOURS[TRUE_POSITIVE]), ("false positive", OUTCOME_COLOURS[FALSE_POSITIVE]),
           ("missed object", MISSED_COLOUR), ("on a difficult object (ignored)", OUTCOME_COLOURS[IGNORED]))


def _rgb(colour: tuple[int, int, int]) -> tuple[float, float, float]:
    return tuple(v / 255 for v in colour)  # type: ignore[return-value]


def _check_names(result: VOCResult, class_names: Sequence[str]) -> None:
    if len(class_names) != result.num_classes:
        raise ValueError(f"{len(class_names)} class names for {result.num_classes} classes (labels 1..C, no background)")


def _metric_name(result: VOCResult) -> str:
    return "VOC07 11-point" if result.use_07_metric else "all-point"


# ----------------------------------------------------------------------------------------------------- PR curves
def pr_curves_png(result: VOCResult, class_names: Sequence[str], path: Path | str, title: str | None = None) -> Path:
    """One precision/recall curve per evaluated class (the ranked detections of all images, as the AP sees them;
    VOC, IJCV 2010 §4.2), its AP in the legend; the mAP in the title. Classes without ground truth are left out."""
    _check_names(result, class_names)
    path = Path(path)
    evaluated = [c for c in range(result.num_classes) if bool(result.evaluated[c])]
    fig, ax = plt.subplots(figsize=(8.5, 5.0))
    colours = plt.get_cmap("tab20" if len(evaluated) > 10 else "tab10")
    for k, c in enumerate(evaluated):
        label = f"{class_names[c]} (AP {float(result.ap[c]):.3f})"
        # the raw curve, one point per ranked detection (the saw-tooth: an FP drops the precision at constant
        # recall); a class with no detection still gets its legend entry (AP 0) through an empty line
        ax.plot(result.recall[c], result.precision[c], color=colours(k % colours.N), label=label, linewidth=1.4)
    ax.set_xlim(0.0, 1.02)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.grid(alpha=0.3)
    mean = result.map
    default = (f"IoU > {result.iou_threshold:g}: mAP {mean:.3f} ({_metric_name(result)})" if not math.isnan(mean)
               else "no class has ground truth")
    ax.set_title(title or default)
    if evaluated:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # outside: no overlap
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------------------- table
def _fmt(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.4f}"


def per_class_ap_table(result: VOCResult, class_names: Sequence[str]) -> str:
    """A markdown table: class, ground-truth objects (non-difficult), detections, AP 11-point and all-point, in the
    order of ``class_names``; the mAP last. A class without ground truth shows "–" (it is not in the mAP)."""
    _check_names(result, class_names)
    at = f"@{result.iou_threshold:g}"
    lines = [f"| class | objects | detections | AP{at} (11-point) | AP{at} (all-point) |",
             "|---|---:|---:|---:|---:|"]
    for c, name in enumerate(class_names):
        name = str(name).replace("|", "\\|")  # a pipe would split the row
        lines.append(f"| {name} | {int(result.num_positives[c])} | {int(result.num_detections[c])} | "
                     f"{_fmt(float(result.ap_11_point[c]))} | {_fmt(float(result.ap_all_point[c]))} |")
    lines.append(f"| **mAP** ({int(result.evaluated.sum())} classes) | {int(result.num_positives.sum())} | "
                 f"{int(result.num_detections.sum())} | **{_fmt(result.map_11_point)}** | "
                 f"**{_fmt(result.map_all_point)}** |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------- detection grid
def _hwc(image: torch.Tensor, index: int) -> np.ndarray:
    """uint8 [3, H, W] (or [1, H, W]) tensor → uint8 [H, W, 3] array for imshow."""
    image = torch.as_tensor(image).detach().cpu()
    if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"image {index} must be a uint8 tensor [3, H, W] (or [1, H, W]), got {image.dtype} "
                         f"{tuple(image.shape)}")
    return image.expand(3, -1, -1).permute(1, 2, 0).numpy()


def _box(ax: plt.Axes, box: Sequence[float], colour: tuple[int, int, int], text: str, dashed: bool = False,
         below: bool = False) -> None:
    """A rectangle with a small filled caption at its top-left corner (below the box for missed objects, so a
    detection's caption and a miss's caption on the same object do not overlap)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=_rgb(colour), linewidth=1.8,
                           linestyle="--" if dashed else "-"))
    ax.text(x1, y2 if below else y1, text, fontsize=6.5, color="black", va="top" if below else "bottom",
            bbox={"facecolor": _rgb(colour), "edgecolor": "none", "pad": 1.0, "alpha": 1.0}, clip_on=True)


def _name(class_names: Sequence[str], label: int) -> str:
    return class_names[label - 1] if 1 <= label <= len(class_names) else str(label)


def detections_png(
    images: Sequence[torch.Tensor],
    detections: Sequence[Target],
    ground_truths: Sequence[Target],
    class_names: Sequence[str],
    path: Path | str,
    score_threshold: float = 0.3,
    iou_threshold: float = 0.5,
    columns: int = 4,
) -> Path:
    """A grid of images with their detections scored ``>= score_threshold``: true positives green, false positives
    red, detections on difficult objects grey, missed objects (non-difficult, taken by no shown detection at
    IoU > ``iou_threshold``, see :func:`classify_detections`) dashed yellow; each box captioned with its class
    (and score). Images are uint8 [3, H, W] tensors, in the boxes' pixel coordinates."""
    if not len(images) == len(detections) == len(ground_truths):
        raise ValueError(f"{len(images)} images, {len(detections)} detections and {len(ground_truths)} ground truths")
    if not images:
        raise ValueError("detections_png needs at least one image")
    path = Path(path)
    cols = max(1, min(columns, len(images)))
    rows = math.ceil(len(images) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.6 * rows + 0.4), squeeze=False)
    for i, (ax, image, det, gt) in enumerate(zip(axes.flat, images, detections, ground_truths)):
        ax.imshow(_hwc(image, i), interpolation="nearest")
        ax.set_axis_off()
        outcome, missed = classify_detections(det, gt, score_threshold, iou_threshold)
        gt_boxes = torch.as_tensor(gt["boxes"]).detach().cpu().reshape(-1, 4)
        gt_labels = torch.as_tensor(gt["labels"]).detach().cpu().reshape(-1)
        for g in torch.nonzero(missed).flatten().tolist():
            _box(ax, gt_boxes[g], MISSED_COLOUR, _name(class_names, int(gt_labels[g])), dashed=True, below=True)
        boxes = torch.as_tensor(det["boxes"]).detach().cpu().reshape(-1, 4)
        scores = torch.as_tensor(det["scores"]).detach().cpu().reshape(-1).float()
        labels = torch.as_tensor(det["labels"]).detach().cpu().reshape(-1)
        shown = torch.nonzero(outcome != BELOW_THRESHOLD).flatten()
        for j in shown[torch.argsort(scores[shown])].tolist():  # the highest scores drawn last, on top
            _box(ax, boxes[j], OUTCOME_COLOURS[int(outcome[j])],
                 f"{_name(class_names, int(labels[j]))} {float(scores[j]):.2f}")
        counts = [int((outcome == TRUE_POSITIVE).sum()), int((outcome == FALSE_POSITIVE).sum()), int(missed.sum())]
        ax.set_title("{} TP · {} FP · {} missed".format(*counts), fontsize=8)
    for ax in axes.flat[len(images):]:
        ax.set_axis_off()
    fig.legend(handles=[Patch(facecolor=_rgb(c), label=text) for text, c in _LEGEND], loc="lower center",
               ncol=4, fontsize=7, frameon=False)
    fig.suptitle(f"detections with score >= {score_threshold:g}", fontsize=9)
    fig.tight_layout(rect=(0, 0.4 / (3.6 * rows + 0.4), 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------ one image, no ground truth
#: the long side, in pixels, of :func:`image_detections_png`'s picture (small images are enlarged so that the
#: captions stay legible, large ones shrunk)
ANNOTATED_SIDE = (640, 1600)


def class_colour(label: int) -> tuple[int, int, int]:
    """An RGB colour (0..255) per class label (matplotlib's ``tab10``, cycled)."""
    r, g, b, _ = plt.get_cmap("tab10")((int(label) - 1) % 10)
    return int(r * 255), int(g * 255), int(b * 255)


def image_detections_png(image: np.ndarray, detection: Target, class_names: Sequence[str],
                         out: Path | str | BinaryIO) -> None:
    """One image (uint8 [H, W, 3]) with its detections drawn in its own pixel coordinates: a box per detection in
    its class's colour (:func:`class_colour`), captioned with the class name and score, the highest scores on top;
    written as a PNG to ``out`` (a path or a binary file). Nothing is thresholded here: pass the detections to show
    (``torchrepro tool detect`` and the live page of ``torchrepro serve`` draw with it)."""
    height, width = image.shape[:2]
    side = min(max(max(width, height), ANNOTATED_SIDE[0]), ANNOTATED_SIDE[1])
    zoom = side / max(width, height)
    fig = plt.figure(figsize=(width * zoom / 100, height * zoom / 100), dpi=100)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    # extent: pixel i covers [i, i + 1), the continuous coordinates of the boxes
    ax.imshow(image, interpolation="nearest", extent=(0, width, height, 0))
    ax.set_axis_off()
    boxes = torch.as_tensor(detection["boxes"]).detach().cpu().reshape(-1, 4)
    scores = torch.as_tensor(detection["scores"]).detach().cpu().reshape(-1).float()
    labels = torch.as_tensor(detection["labels"]).detach().cpu().reshape(-1)
    for j in torch.argsort(scores).tolist():  # the highest scores drawn last, on top
        label = int(labels[j])
        _box(ax, boxes[j], class_colour(label), f"{_name(class_names, label)} {float(scores[j]):.2f}")
    fig.savefig(out, dpi=100, format="png")
    plt.close(fig)


# ------------------------------------------------------------------------------------------- run artefacts
#: evaluated images drawn in detections.png (the split's first ones: the same images in every run)
DETECTION_IMAGES = 8
#: the lowest score drawn in detections.png
DETECTION_SCORE = 0.3


class DetectionPlots(RunArtefacts):
    """The recipe's figures of its last evaluation, written after training and after ``torchrepro eval`` (then of
    the split it scored): ``curves.png`` (training loss, validation mAP per epoch), ``pr_curves.png``,
    ``detections.png`` (the split's first :data:`DETECTION_IMAGES` images in their original pixels, detections
    scored >= :data:`DETECTION_SCORE`) and ``per_class_ap.md``.

    :class:`RunArtefacts` writes after a standalone validation only; ``torchrepro eval --split test`` runs a test
    instead, so :meth:`on_test_end` writes then too — unless this trainer trained (the engine's final test of a
    training run must not replace the figures of the validation that chose the checkpoint)."""

    def __init__(self) -> None:
        super().__init__()
        self._trained = False

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_fit_start(trainer, pl_module)
        self._trained = True

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.on_eval and not self._trained:
            self._write(trainer, pl_module)

    def write(self, run_dir: Path, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        plot_curves(run_dir / METRICS_NAME, run_dir / "curves.png", ["train_loss", "mAP@0.5"])
        last = getattr(pl_module, "last_eval", None)
        if last is None:
            return
        classes = pl_module.classes
        split = "validation" if last["split"] == "val" else "test"
        voc = last["voc"]
        pr_curves_png(voc, classes, run_dir / "pr_curves.png",
                      title=f"{split} split, IoU > {voc.iou_threshold:g}: mAP {voc.map:.3f} (VOC07 11-point)")
        write_text_atomic(run_dir / "per_class_ap.md", f"# Per-class AP, {split} split\n\n"
                          + per_class_ap_table(voc, classes))
        records = trainer.datamodule.records[last["split"]][:DETECTION_IMAGES]
        images = [load_image(r).as_subclass(torch.Tensor) for r in records]
        n = len(images)
        detections_png(images, last["detections"][:n], last["ground_truths"][:n], classes, run_dir / "detections.png",
                       score_threshold=DETECTION_SCORE)
