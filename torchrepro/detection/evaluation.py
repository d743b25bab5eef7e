"""Detection metrics: Pascal VOC AP@0.5 (11-point and all-point) and COCO mAP@[.5:.95].

Inputs, per image, in the format of torchvision's detection models:

- ground truth ``{"boxes": float [n, 4] xyxy, "labels": int64 [n] in 1..C, "difficult": bool [n]}``
  (``difficult`` may be left out: all False);
- detections ``{"boxes": float [m, 4] xyxy, "scores": float [m], "labels": int64 [m] in 1..C}``.

Boxes are in continuous pixel coordinates (see :mod:`torchrepro.detection.records`): the VOC reader turns the
XML's 1-based inclusive ``(xmin, ymin, xmax, ymax)`` into ``(xmin - 1, ymin - 1, xmax, ymax)``, so the IoU computed
here *without* "+1" (``torchvision.ops.box_iou``) is the VOC devkit's IoU *with* "+1" on the raw integer boxes.

**VOC** (Everingham et al., "The PASCAL Visual Object Classes (VOC) Challenge", IJCV 2010, §4.2), as implemented
by py-faster-rcnn's ``voc_eval.py``, which is what the SSD paper (Liu et al., ECCV 2016) and its successors report:

1. Per class, the detections of all images are ranked by descending score.
2. In that order each detection takes the ground-truth box of its class *in its image* with the highest IoU
   (taken or not: ``voc_eval`` looks at the best box only). If that IoU *exceeds* the threshold (strictly: ``>``,
   the paper's "must exceed 50%" and ``voc_eval``'s ``ovmax > ovthresh``; the MATLAB devkit uses ``>=``, which
   differs only at an IoU of exactly 0.5):
   a ``difficult`` box → the detection is neither TP nor FP (ignored); a box not yet taken → TP, the box is taken;
   a box already taken → FP (a duplicate). Otherwise → FP.
3. ``difficult`` boxes are not counted among the positives (``npos``), so missing them costs nothing.
4. precision = cumTP / (cumTP + cumFP), recall = cumTP / npos; AP is the 11-point interpolated average (VOC2007,
   ``use_07_metric``: the mean over t = 0, 0.1, …, 1 of the best precision at recall >= t) or the area under the
   precision envelope (VOC2010+, "all-point").
5. mAP is the mean AP over the classes **with at least one non-difficult ground-truth box**. A class with ground
   truth but no detection has AP 0 and counts; a class with no (non-difficult) ground truth at all has AP NaN and
   is left out of the mean (its recall is undefined; ``voc_eval`` would divide by zero).

Matching is independent between images, so step 2 runs image by image (the order that matters is the score order
inside each image); only the cumulative sums of step 4 need the global ranking. Ties in score are broken
deterministically by a stable sort over (image index, detection index); ``voc_eval``'s ``np.argsort`` uses an
unstable quicksort there, so tied scores are the only place where it is not reproducible itself.

**COCO** mAP@[.5:.95] (Lin et al., ECCV 2014; the protocol of pycocotools' ``COCOeval``) goes through torchmetrics'
``MeanAveragePrecision`` with the faster-coco-eval backend, see :func:`coco_evaluate`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torchvision.ops import box_iou

from torchrepro.core.errors import DataError

__all__ = [
    "BELOW_THRESHOLD", "FALSE_POSITIVE", "IGNORED", "TRUE_POSITIVE", "VOC07_RECALL_THRESHOLDS",
    "Classification", "VOCResult", "classify_detections", "coco_evaluate", "evaluate", "match_image",
    "metrics_dict", "voc_ap", "voc_evaluate",
]

#: Outcome of one detection (int8 codes in :attr:`VOCResult.outcomes` and :class:`Classification`).
TRUE_POSITIVE = 1
FALSE_POSITIVE = 0
IGNORED = -1  # its best ground-truth box is ``difficult``: neither TP nor FP
BELOW_THRESHOLD = -2  # only from :func:`classify_detections`: scored under ``score_threshold``, not matched

#: The 11 recall levels of the VOC2007 AP, exactly as py-faster-rcnn's ``np.arange(0., 1.1, 0.1)`` computes them:
#: the 4th, 7th and 8th are 0.30000000000000004, 0.6000000000000001 and 0.7000000000000001, so a recall of exactly
#: 0.3 (3/10) does not reach the level "0.3". We keep the quirk: these are the numbers SSD papers report.
VOC07_RECALL_THRESHOLDS: np.ndarray = np.arange(0.0, 1.1, 0.1)

Target = Mapping[str, Any]


# ----------------------------------------------------------------------------------------------------------- inputs
def _tensor(value: Any, dtype: torch.dtype) -> torch.Tensor:
    """A CPU tensor of ``dtype`` (model outputs may live on the GPU and carry autograd history)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", dtype)
    return torch.as_tensor(np.asarray(value), dtype=dtype)


def _ground_truth(target: Target, index: int, num_classes: int | None) -> tuple[torch.Tensor, ...]:
    """(boxes float64 [n, 4], labels int64 [n], difficult bool [n]) of one image, checked."""
    boxes = _tensor(target["boxes"], torch.float64).reshape(-1, 4)
    labels = _tensor(target["labels"], torch.int64).reshape(-1)
    difficult = target.get("difficult")
    difficult = (torch.zeros(len(labels), dtype=torch.bool) if difficult is None
                 else _tensor(difficult, torch.bool).reshape(-1))
    if not len(boxes) == len(labels) == len(difficult):
        raise ValueError(f"ground truth of image {index}: {len(boxes)} boxes, {len(labels)} labels and "
                         f"{len(difficult)} difficult flags")
    if len(labels) and (labels.min() < 1 or (num_classes is not None and labels.max() > num_classes)):
        raise DataError(f"ground truth of image {index} has label {int(labels.min())}..{int(labels.max())}, outside "
                        f"1..{num_classes}: the class list of the config must name every class of the annotations "
                        f"(0 is the background and never a ground-truth label)")
    return boxes, labels, difficult


def _detections(detection: Target, index: int, num_classes: int | None) -> tuple[torch.Tensor, ...]:
    """(boxes float64 [m, 4], scores float64 [m], labels int64 [m]) of one image, checked."""
    boxes = _tensor(detection["boxes"], torch.float64).reshape(-1, 4)
    scores = _tensor(detection["scores"], torch.float64).reshape(-1)
    labels = _tensor(detection["labels"], torch.int64).reshape(-1)
    if not len(boxes) == len(scores) == len(labels):
        raise ValueError(f"detections of image {index}: {len(boxes)} boxes, {len(scores)} scores and "
                         f"{len(labels)} labels")
    if len(labels) and (labels.min() < 1 or (num_classes is not None and labels.max() > num_classes)):
        raise ValueError(f"detections of image {index} have label {int(labels.min())}..{int(labels.max())}, "
                         f"outside 1..{num_classes}: the model and the evaluation disagree on the classes")
    return boxes, scores, labels


def _check_lengths(detections: Sequence[Target], ground_truths: Sequence[Target]) -> None:
    if len(detections) != len(ground_truths):
        raise ValueError(f"{len(detections)} images of detections but {len(ground_truths)} of ground truth")


def _descending(scores: torch.Tensor | np.ndarray) -> np.ndarray:
    """Indices by descending score; ties keep their input order (a stable sort: deterministic tie-breaking)."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")


# --------------------------------------------------------------------------------------------------------- matching
def match_image(
    det_boxes: torch.Tensor, det_scores: torch.Tensor, det_labels: torch.Tensor,
    gt_boxes: torch.Tensor, gt_labels: torch.Tensor, gt_difficult: torch.Tensor,
    iou_threshold: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The VOC greedy assignment (IJCV 2010 §4.2; ``voc_eval``'s inner loop) of one image's detections.

    Returns ``(outcome int8 [m], taken bool [n])``: ``outcome`` holds TRUE_POSITIVE / FALSE_POSITIVE / IGNORED per
    detection (input order), ``taken`` says which ground-truth boxes a detection took (never a ``difficult`` one).
    The IoU matrix is computed once (float64, so an IoU of exactly the threshold is decided exactly); the loop
    only visits detections whose best IoU exceeds the threshold, in descending score order.
    """
    m, n = len(det_boxes), len(gt_boxes)
    outcome = np.full(m, FALSE_POSITIVE, dtype=np.int8)
    taken = np.zeros(n, dtype=bool)
    if m and n:
        iou = box_iou(det_boxes.double(), gt_boxes.double()).numpy()
        iou[det_labels.numpy()[:, None] != gt_labels.numpy()[None, :]] = -1.0  # boxes of other classes never match
        best_gt = iou.argmax(axis=1)  # the first of equal IoUs, as np.argmax in voc_eval
        best_iou = iou[np.arange(m), best_gt]
        difficult = gt_difficult.numpy()
        order = _descending(det_scores)
        for j in order[best_iou[order] > iou_threshold].tolist():
            g = best_gt[j]
            if difficult[g]:
                outcome[j] = IGNORED
            elif not taken[g]:
                outcome[j] = TRUE_POSITIVE
                taken[g] = True
            # else: a duplicate of a taken box stays a FALSE_POSITIVE
    return torch.from_numpy(outcome), torch.from_numpy(taken)


class Classification(NamedTuple):
    """What the evaluation pictures colour: ``outcome`` int8 [m] per detection (TRUE_POSITIVE, FALSE_POSITIVE,
    IGNORED, or BELOW_THRESHOLD for a detection scored under the threshold) and ``missed`` bool [n] per
    ground-truth box (non-difficult and taken by no detection at or above the threshold)."""

    outcome: torch.Tensor
    missed: torch.Tensor


def classify_detections(detection: Target, ground_truth: Target, score_threshold: float = 0.0,
                        iou_threshold: float = 0.5) -> Classification:
    """TP / FP / missed of one image, for the detections scored ``>= score_threshold``.

    The same greedy VOC assignment as :func:`voc_evaluate` (:func:`match_image`), run on the kept detections only:
    a ground-truth box is *missed* when no kept detection took it, which happens when none overlaps it by more
    than ``iou_threshold`` or when the overlapping ones had another box of their class as their best match.
    A ``difficult`` box is never missed (VOC does not count it).
    """
    gt_boxes, gt_labels, gt_difficult = _ground_truth(ground_truth, 0, None)
    boxes, scores, labels = _detections(detection, 0, None)
    keep = scores >= score_threshold
    outcome = torch.full((len(scores),), BELOW_THRESHOLD, dtype=torch.int8)
    kept_outcome, taken = match_image(boxes[keep], scores[keep], labels[keep], gt_boxes, gt_labels, gt_difficult,
                                      iou_threshold)
    outcome[keep] = kept_outcome
    return Classification(outcome, ~taken & ~gt_difficult)


# --------------------------------------------------------------------------------------------------------------- AP
def voc_ap(recall: np.ndarray | torch.Tensor | Sequence[float], precision: np.ndarray | torch.Tensor | Sequence[float],
           use_07_metric: bool = True) -> float:
    """Average precision from a precision/recall curve ordered by descending score (``voc_eval``'s ``voc_ap``).

    ``use_07_metric``: the VOC2007 11-point interpolated AP, mean over t in :data:`VOC07_RECALL_THRESHOLDS` of
    max(precision[recall >= t]) (0 where no point reaches t). Otherwise the VOC2010+ all-point AP: the precision
    envelope (each precision replaced by the best precision at any higher recall) integrated over the recall
    steps, with the curve extended to recall 0 and 1 at precision 0. An empty curve has AP 0.
    """
    rec = np.asarray(recall, dtype=np.float64).reshape(-1)
    prec = np.asarray(precision, dtype=np.float64).reshape(-1)
    if rec.shape != prec.shape:
        raise ValueError(f"recall and precision differ in length: {rec.shape} vs {prec.shape}")
    if use_07_metric:
        reaches = rec[None, :] >= VOC07_RECALL_THRESHOLDS[:, None]  # [11, k]
        # precision >= 0, so "0 where nothing reaches t" is a max over the masked row with 0 for the rest
        best = np.where(reaches, prec[None, :], 0.0).max(axis=1, initial=0.0)
        return float(best.sum() / len(VOC07_RECALL_THRESHOLDS))
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # the envelope: best precision at this or any higher recall
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


@dataclass(frozen=True, eq=False)
class VOCResult:
    """Everything :func:`voc_evaluate` computed. Per-class arrays are indexed ``c - 1`` for label ``c``.

    - ``ap_11_point`` / ``ap_all_point``: float64 [C], NaN for a class without non-difficult ground truth;
      ``ap`` / ``map`` follow ``use_07_metric``.
    - ``precision`` / ``recall`` / ``scores``: per class, float64 arrays over its detections by descending score,
      IGNORED ones left out (they add no point of their own: a repeat of the previous one, or (0, 0) before the
      first decision, so the AP is unchanged); empty for a class without detections. ``recall`` is all NaN for a
      class without positives.
    - ``num_positives``: int64 [C], non-difficult ground-truth boxes; ``num_detections``: int64 [C], all detections.
    - ``outcomes``: per image, int8 [m] TRUE_POSITIVE / FALSE_POSITIVE / IGNORED in the input order;
      ``gt_taken``: per image, bool [n], the ground-truth boxes some detection took.
    """

    ap_11_point: torch.Tensor
    ap_all_point: torch.Tensor
    precision: list[np.ndarray]
    recall: list[np.ndarray]
    scores: list[np.ndarray]
    num_positives: torch.Tensor
    num_detections: torch.Tensor
    outcomes: list[torch.Tensor]
    gt_taken: list[torch.Tensor]
    iou_threshold: float
    use_07_metric: bool

    @property
    def num_classes(self) -> int:
        return len(self.num_positives)

    @property
    def evaluated(self) -> torch.Tensor:
        """bool [C]: the classes that count in the mAP (at least one non-difficult ground-truth box)."""
        return self.num_positives > 0

    @property
    def ap(self) -> torch.Tensor:
        """float64 [C]: AP per class with the metric ``use_07_metric`` chose."""
        return self.ap_11_point if self.use_07_metric else self.ap_all_point

    @staticmethod
    def _mean(ap: torch.Tensor) -> float:
        valid = ap[~torch.isnan(ap)]
        return float(valid.mean()) if len(valid) else math.nan  # nothing to evaluate: NaN, not a fake 0

    @property
    def map(self) -> float:
        """Mean AP over the evaluated classes (NaN when no class has ground truth)."""
        return self._mean(self.ap)

    @property
    def map_11_point(self) -> float:
        return self._mean(self.ap_11_point)

    @property
    def map_all_point(self) -> float:
        return self._mean(self.ap_all_point)


def voc_evaluate(detections: Sequence[Target], ground_truths: Sequence[Target], num_classes: int,
                 iou_threshold: float = 0.5, use_07_metric: bool = True) -> VOCResult:
    """Pascal VOC AP per class and mAP (IJCV 2010 §4.2, py-faster-rcnn ``voc_eval``; see the module docstring).

    ``detections[i]`` and ``ground_truths[i]`` belong to image ``i``; ``num_classes`` = C, labels run 1..C.
    Both the 11-point and the all-point AP are computed (the cost is the same); ``use_07_metric`` picks the one
    ``VOCResult.ap`` / ``.map`` report.
    """
    _check_lengths(detections, ground_truths)
    outcomes, taken, all_scores, all_labels = [], [], [], []
    num_positives = torch.zeros(num_classes + 1, dtype=torch.int64)
    for i, (det, gt) in enumerate(zip(detections, ground_truths)):
        gt_boxes, gt_labels, gt_difficult = _ground_truth(gt, i, num_classes)
        boxes, scores, labels = _detections(det, i, num_classes)
        outcome, gt_taken = match_image(boxes, scores, labels, gt_boxes, gt_labels, gt_difficult, iou_threshold)
        outcomes.append(outcome)
        taken.append(gt_taken)
        all_scores.append(scores.numpy())
        all_labels.append(labels.numpy())
        num_positives += torch.bincount(gt_labels[~gt_difficult], minlength=num_classes + 1)
    num_positives = num_positives[1:]
    scores_np = np.concatenate(all_scores) if all_scores else np.zeros(0)
    labels_np = np.concatenate(all_labels) if all_labels else np.zeros(0, np.int64)
    outcome_np = torch.cat(outcomes).numpy() if outcomes else np.zeros(0, np.int8)

    ap07 = torch.full((num_classes,), math.nan, dtype=torch.float64)
    ap_all = ap07.clone()
    precisions, recalls, ranked_scores = [], [], []
    for c in range(1, num_classes + 1):
        # global ranking of the class's detections (concatenation order = image order, so ties are deterministic)
        in_class = np.flatnonzero(labels_np == c)
        ranked = in_class[_descending(scores_np[in_class])]
        ranked = ranked[outcome_np[ranked] != IGNORED]
        tp = np.cumsum(outcome_np[ranked] == TRUE_POSITIVE, dtype=np.float64)
        precision = tp / np.arange(1, len(ranked) + 1)  # every kept detection is a TP or an FP
        npos = int(num_positives[c - 1])
        recall = tp / npos if npos else np.full(len(tp), math.nan)
        precisions.append(precision)
        recalls.append(recall)
        ranked_scores.append(scores_np[ranked])
        if npos:
            ap07[c - 1] = voc_ap(recall, precision, use_07_metric=True)
            ap_all[c - 1] = voc_ap(recall, precision, use_07_metric=False)
    num_detections = torch.bincount(torch.from_numpy(labels_np), minlength=num_classes + 1)[1:]
    return VOCResult(ap07, ap_all, precisions, recalls, ranked_scores, num_positives, num_detections, outcomes,
                     taken, float(iou_threshold), bool(use_07_metric))


# ------------------------------------------------------------------------------------------------------------- COCO
#: pycocotools' IoU and recall thresholds in float64. torchmetrics' defaults are float32 ``torch.linspace`` values
#: (0.550000011920929 …), which decide an IoU or a recall of exactly 0.55, 0.6 … differently from ``COCOeval``.
COCO_IOU_THRESHOLDS: list[float] = np.linspace(0.5, 0.95, 10).tolist()
COCO_RECALL_THRESHOLDS: list[float] = np.linspace(0.0, 1.0, 101).tolist()
COCO_KEYS = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large",
             "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large")


def coco_evaluate(detections: Sequence[Target], ground_truths: Sequence[Target]) -> dict[str, float]:
    """COCO box mAP@[.5:.95] and friends (pycocotools' ``COCOeval`` protocol) as plain floats.

    Computed by torchmetrics' ``MeanAveragePrecision(box_format="xyxy", iou_type="bbox",
    backend="faster_coco_eval")`` with these settings:

    - ``difficult`` is passed as ``iscrowd``. COCO's crowd rule then applies, which is close to but not VOC's
      ``difficult`` rule: a crowd box is not a positive, a detection matched to it is ignored, it may absorb any
      number of detections, it is matched only by a detection that found no ordinary box, and its overlap is
      intersection / detection area rather than the IoU.
    - Areas for small / medium / large (< 32², < 96², rest) are box areas w·h in pixels (the official COCO ground
      truth uses segmentation areas instead).
    - At most 100 detections per image, the highest-scored (COCO's ``maxDets``); torchmetrics' warning about more
      is switched off because SSD keeps up to 200 and the cap is the protocol.
    - The thresholds are pycocotools' float64 ones (:data:`COCO_IOU_THRESHOLDS`).
    - ``sync_on_compute=False``: the caller passes the whole evaluation set (our evaluation path gathers it on
      every rank); torchmetrics' own DDP gather would count every image once per rank.

    Keys: ``map``, ``map_50``, ``map_75``, ``map_small``, ``map_medium``, ``map_large``, ``mar_1``, ``mar_10``,
    ``mar_100``, ``mar_small``, ``mar_medium``, ``mar_large``. COCO's ``-1`` means "no ground truth in that
    range" (all of them are -1 without any image or any non-crowd box).
    """
    _check_lengths(detections, ground_truths)
    if not ground_truths:
        return {key: -1.0 for key in COCO_KEYS}
    # imported here: torchmetrics takes seconds to import and only the evaluation needs it
    from torchmetrics.detection import MeanAveragePrecision

    preds, targets = [], []
    for i, (det, gt) in enumerate(zip(detections, ground_truths)):
        gt_boxes, gt_labels, gt_difficult = _ground_truth(gt, i, None)
        boxes, scores, labels = _detections(det, i, None)
        # float32 is what torchmetrics expects; the float64 round trip of float32 inputs is exact
        preds.append({"boxes": boxes.float(), "scores": scores.float(), "labels": labels})
        targets.append({"boxes": gt_boxes.float(), "labels": gt_labels, "iscrowd": gt_difficult.long()})
    metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", backend="faster_coco_eval",
                                  iou_thresholds=COCO_IOU_THRESHOLDS, rec_thresholds=COCO_RECALL_THRESHOLDS,
                                  sync_on_compute=False)
    metric.warn_on_many_detections = False
    metric.update(preds, targets)
    # faster-coco-eval reports its progress and summary through its logger at INFO ("Evaluate annotation type
    # *bbox*", "DONE", the 12-line table): under the CLI's INFO logging that is a library banner on every
    # evaluation. Quiet for the call only; its warnings still show.
    quiet = logging.getLogger("faster_coco_eval")
    level = quiet.level
    quiet.setLevel(max(level, logging.WARNING))
    try:
        result = metric.compute()
    finally:
        quiet.setLevel(level)
    return {key: float(result[key]) for key in COCO_KEYS}


# ---------------------------------------------------------------------------------------------------------- metrics
def metrics_dict(voc: VOCResult, class_names: Sequence[str], coco: Mapping[str, float] | None = None
                 ) -> dict[str, float]:
    """The literature's names as plain floats (logged as ``val/…`` / ``test/…``).

    ``mAP@0.5`` (VOC2007 11-point, what SSD reports), ``mAP@0.5_all_point`` (VOC2010+), ``AP@0.5/<class>`` (11-point,
    for the classes that count in the mAP: a class without ground truth has no key, so the per-class entries
    average to ``mAP@0.5``), and with ``coco`` (from :func:`coco_evaluate`): ``coco_mAP`` (@[.5:.95]),
    ``coco_mAP@0.5``, ``coco_mAP@0.75``, ``coco_mAP_small`` / ``_medium`` / ``_large``.
    ``class_names[c - 1]`` names label ``c``. The VOC keys carry ``voc.iou_threshold`` (``@0.5`` by default).
    """
    if len(class_names) != voc.num_classes:
        raise ValueError(f"{len(class_names)} class names for {voc.num_classes} classes (labels 1..C, no background)")
    at = f"@{voc.iou_threshold:g}"  # "@0.5" for the standard threshold
    out = {f"mAP{at}": voc.map_11_point, f"mAP{at}_all_point": voc.map_all_point}
    if coco is not None:
        out.update({"coco_mAP": float(coco["map"]), "coco_mAP@0.5": float(coco["map_50"]),
                    "coco_mAP@0.75": float(coco["map_75"]), "coco_mAP_small": float(coco["map_small"]),
                    "coco_mAP_medium": float(coco["map_medium"]), "coco_mAP_large": float(coco["map_large"])})
    for c, name in enumerate(class_names):
        if bool(voc.evaluated[c]):
            out[f"AP{at}/{name}"] = float(voc.ap_11_point[c])
    return out


def evaluate(detections: Sequence[Target], ground_truths: Sequence[Target], class_names: Sequence[str],
             coco: bool = True) -> tuple[dict[str, float], VOCResult]:
    """VOC (and, with ``coco``, COCO) evaluation of a whole split: ``(metrics_dict(...), the VOCResult)``; the
    result feeds the pictures of :mod:`torchrepro.detection.plots`."""
    voc = voc_evaluate(detections, ground_truths, num_classes=len(class_names))
    coco_result = coco_evaluate(detections, ground_truths) if coco else None
    return metrics_dict(voc, class_names, coco_result), voc
