"""Tests for the VOC / COCO detection metrics (torchrepro.detection.evaluation).

The VOC reference below is an independent transcription of py-faster-rcnn's ``voc_eval`` from its description:
one class at a time, raw 1-based inclusive integer boxes, the "+1" IoU, an explicit loop over the detections by
descending score (and over the ground-truth boxes), 11-point and all-point AP by explicit loops. It is fed the raw
boxes; the module under test gets the continuous ones ``(x1 - 1, y1 - 1, x2, y2)``. The COCO reference is
pycocotools' ``COCOeval`` run directly.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings

import numpy as np
import pytest
import torch

from torchrepro.core.errors import DataError
from torchrepro.detection.evaluation import (
    FALSE_POSITIVE, IGNORED, TRUE_POSITIVE, coco_evaluate, evaluate, metrics_dict, voc_ap, voc_evaluate,
)

# A case: a list of images, each {"gt": [(label, x1, y1, x2, y2, difficult)], "dets": [(label, score, x1, y1, x2, y2)]}
# with raw VOC pixel indices (1-based, inclusive). Scores are float32 values (what a model gives).


# ------------------------------------------------------------------------------------------------ the reference
def reference_ap(rec: np.ndarray, prec: np.ndarray, use_07_metric: bool) -> float:
    """voc_eval's voc_ap, by explicit loops."""
    if use_07_metric:
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):  # py-faster-rcnn's recall levels, float quirks included
            reached = [p for r, p in zip(rec, prec) if r >= t]
            ap += (max(reached) if reached else 0.0) / 11.0
        return ap
    mrec = [0.0] + list(rec) + [1.0]
    mpre = [0.0] + list(prec) + [0.0]
    for i in range(len(mpre) - 1, 0, -1):
        mpre[i - 1] = max(mpre[i - 1], mpre[i])
    return sum((mrec[i + 1] - mrec[i]) * mpre[i + 1] for i in range(len(mrec) - 1) if mrec[i + 1] != mrec[i])


def reference_iou_plus_one(a, b) -> float:
    """The devkit's overlap of two raw integer boxes: widths and heights count pixels ("+1")."""
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1.0
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1.0
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0] + 1.0) * (a[3] - a[1] + 1.0) + (b[2] - b[0] + 1.0) * (b[3] - b[1] + 1.0) - inter
    return inter / union


def reference_voc_eval(images, num_classes: int, ovthresh: float = 0.5, use_07_metric: bool = True):
    """AP per class (None for a class without non-difficult ground truth) and mAP over the others."""
    aps: list[float | None] = []
    for c in range(1, num_classes + 1):
        recs = []
        npos = 0
        for img in images:
            objs = [g for g in img["gt"] if g[0] == c]
            recs.append({"bbox": [g[1:5] for g in objs], "difficult": [bool(g[5]) for g in objs],
                         "det": [False] * len(objs)})
            npos += sum(not g[5] for g in objs)
        lines = [(i, d[1], d[2:6]) for i, img in enumerate(images) for d in img["dets"] if d[0] == c]
        confidence = np.array([ln[1] for ln in lines], dtype=np.float64)
        order = np.argsort(-confidence, kind="mergesort")  # voc_eval sorts with quicksort; ties pinned here
        tp = np.zeros(len(lines))
        fp = np.zeros(len(lines))
        for d, k in enumerate(order):
            image, _, bb = lines[k]
            rec = recs[image]
            ovmax, jmax = -np.inf, -1
            for j, gt_box in enumerate(rec["bbox"]):
                ov = reference_iou_plus_one(bb, gt_box)
                if ov > ovmax:  # strict: the first of equal overlaps wins, like np.argmax
                    ovmax, jmax = ov, j
            if ovmax > ovthresh:
                if not rec["difficult"][jmax]:
                    if not rec["det"][jmax]:
                        tp[d] = 1.0
                        rec["det"][jmax] = True
                    else:
                        fp[d] = 1.0
            else:
                fp[d] = 1.0
        if npos == 0:
            aps.append(None)
            continue
        fp, tp = np.cumsum(fp), np.cumsum(tp)
        rec_curve = tp / float(npos)
        prec_curve = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        aps.append(reference_ap(rec_curve, prec_curve, use_07_metric))
    valid = [a for a in aps if a is not None]
    return aps, (float(np.mean(valid)) if valid else math.nan)


# ------------------------------------------------------------------------------------------------------ helpers
def to_inputs(images) -> tuple[list[dict], list[dict]]:
    """The module's inputs: continuous boxes (x1 - 1, y1 - 1, x2, y2), tensors in torchvision's format."""
    dets, gts = [], []
    for img in images:
        g = np.array([x[1:5] for x in img["gt"]], dtype=np.float32).reshape(-1, 4)
        d = np.array([x[2:6] for x in img["dets"]], dtype=np.float32).reshape(-1, 4)
        g[:, :2] -= 1
        d[:, :2] -= 1
        gts.append({"boxes": torch.from_numpy(g),
                    "labels": torch.tensor([x[0] for x in img["gt"]], dtype=torch.int64),
                    "difficult": torch.tensor([bool(x[5]) for x in img["gt"]], dtype=torch.bool)})
        dets.append({"boxes": torch.from_numpy(d),
                     "scores": torch.tensor([x[1] for x in img["dets"]], dtype=torch.float32),
                     "labels": torch.tensor([x[0] for x in img["dets"]], dtype=torch.int64)})
    return dets, gts


def f32(x: float) -> float:
    return float(np.float32(x))


def assert_matches_reference(images, num_classes: int, iou_threshold: float = 0.5) -> None:
    dets, gts = to_inputs(images)
    for use07 in (True, False):
        ref_aps, ref_map = reference_voc_eval(images, num_classes, iou_threshold, use07)
        result = voc_evaluate(dets, gts, num_classes, iou_threshold=iou_threshold, use_07_metric=use07)
        for c, ref in enumerate(ref_aps):
            if ref is None:
                assert math.isnan(float(result.ap[c])), f"class {c + 1} has no ground truth: AP must be NaN"
                assert not bool(result.evaluated[c])
            else:
                assert float(result.ap[c]) == pytest.approx(ref, abs=1e-6), f"class {c + 1}, use_07={use07}"
        if math.isnan(ref_map):
            assert math.isnan(result.map)
        else:
            assert result.map == pytest.approx(ref_map, abs=1e-6)


# A VOC-sized box; raw pixel indices 1..100 → continuous [0, 100).
BOX = (1, 1, 100, 100)


def shifted(box, dx: int, dy: int = 0):
    return (box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy)


# ----------------------------------------------------------------------------------------------- hand-made cases
def test_hand_computed_three_detections() -> None:
    """Two positives (one per image), three detections: TP 0.9, FP 0.8, TP 0.7.

    precision = [1/1, 1/2, 2/3], recall = [1/2, 1/2, 2/2].
    11-point: at t = 0, 0.1 … 0.5 the best precision with recall >= t is 1 (6 levels), at t = 0.6 … 1.0 it is 2/3
    (5 levels): AP = (6 · 1 + 5 · 2/3) / 11 = 28/33.
    All-point: envelope 1 on recall (0, 0.5], 2/3 on (0.5, 1]: AP = 0.5 · 1 + 0.5 · 2/3 = 5/6.
    """
    images = [
        {"gt": [(1, *BOX, 0)], "dets": [(1, f32(0.9), *BOX), (1, f32(0.8), *shifted(BOX, 300))]},
        {"gt": [(1, *BOX, 0)], "dets": [(1, f32(0.7), *shifted(BOX, 5))]},
    ]
    dets, gts = to_inputs(images)
    r07 = voc_evaluate(dets, gts, num_classes=1, use_07_metric=True)
    np.testing.assert_allclose(r07.precision[0], [1.0, 1 / 2, 2 / 3], atol=1e-12)
    np.testing.assert_allclose(r07.recall[0], [1 / 2, 1 / 2, 1.0], atol=1e-12)
    assert r07.map == pytest.approx(28 / 33, abs=1e-12)
    assert r07.map_all_point == pytest.approx(5 / 6, abs=1e-12)
    r_all = voc_evaluate(dets, gts, num_classes=1, use_07_metric=False)
    assert r_all.map == pytest.approx(5 / 6, abs=1e-12)
    assert r07.outcomes[0].tolist() == [TRUE_POSITIVE, FALSE_POSITIVE]
    assert r07.outcomes[1].tolist() == [TRUE_POSITIVE]
    assert_matches_reference(images, 1)


def test_duplicates_are_false_positives() -> None:
    images = [{"gt": [(1, *BOX, 0)],
               "dets": [(1, f32(0.7), *shifted(BOX, 2)), (1, f32(0.9), *BOX), (1, f32(0.8), *shifted(BOX, 1))]},
              {"gt": [(1, *BOX, 0)], "dets": [(1, f32(0.5), *BOX)]}]
    dets, gts = to_inputs(images)
    result = voc_evaluate(dets, gts, 1)
    # the highest score takes the box, the other two are duplicates (outcomes keep the input order)
    assert result.outcomes[0].tolist() == [FALSE_POSITIVE, TRUE_POSITIVE, FALSE_POSITIVE]
    assert result.gt_taken[0].tolist() == [True]
    assert_matches_reference(images, 1)


def test_best_box_taken_is_a_false_positive_even_if_another_box_is_free() -> None:
    """voc_eval looks at the best-overlapping box only: if it is taken, the detection is a FP."""
    a, b = BOX, shifted(BOX, 20)  # two overlapping objects, IoU(a, b) = 80/120 ≈ 0.67
    between = shifted(BOX, 8)  # IoU with a: 92/108, with b: 88/112, both > 0.5
    images = [{"gt": [(1, *a, 0), (1, *b, 0)], "dets": [(1, f32(0.9), *a), (1, f32(0.8), *between)]}]
    dets, gts = to_inputs(images)
    result = voc_evaluate(dets, gts, 1)
    assert result.outcomes[0].tolist() == [TRUE_POSITIVE, FALSE_POSITIVE]
    assert result.gt_taken[0].tolist() == [True, False]
    assert_matches_reference(images, 1)


def test_iou_exactly_at_threshold_is_not_a_match() -> None:
    """IoU must exceed the threshold (IJCV 2010 §4.2, voc_eval's '>'): raw (1,1,10,10) vs (1,1,10,5) is 50/100."""
    images = [{"gt": [(1, 1, 1, 10, 10, 0)], "dets": [(1, f32(0.9), 1, 1, 10, 5), (1, f32(0.8), 1, 1, 10, 6)]}]
    dets, gts = to_inputs(images)
    result = voc_evaluate(dets, gts, 1)
    assert result.outcomes[0].tolist() == [FALSE_POSITIVE, TRUE_POSITIVE]
    assert_matches_reference(images, 1)


def test_difficult_boxes() -> None:
    """A detection on a difficult box is ignored (also a second one); an unmatched difficult box is no miss."""
    images = [
        {"gt": [(1, *BOX, 1), (1, *shifted(BOX, 300), 0)],
         "dets": [(1, f32(0.95), *BOX), (1, f32(0.9), *shifted(BOX, 2)), (1, f32(0.6), *shifted(BOX, 300))]},
        {"gt": [(1, *BOX, 1)], "dets": []},  # missed, but difficult: costs nothing
    ]
    dets, gts = to_inputs(images)
    result = voc_evaluate(dets, gts, 1)
    assert result.outcomes[0].tolist() == [IGNORED, IGNORED, TRUE_POSITIVE]
    assert int(result.num_positives[0]) == 1
    assert result.map == pytest.approx(1.0)  # the ignored detections do not lower the precision
    assert len(result.precision[0]) == 1  # ignored detections are no points of the curve
    assert_matches_reference(images, 1)


def test_class_without_detections_has_ap_zero_and_counts() -> None:
    images = [{"gt": [(1, *BOX, 0), (2, *shifted(BOX, 300), 0)], "dets": [(1, f32(0.9), *BOX)]}]
    dets, gts = to_inputs(images)
    result = voc_evaluate(dets, gts, 2)
    assert result.ap.tolist() == [1.0, 0.0]
    assert result.map == pytest.approx(0.5)
    assert result.precision[1].size == 0 and int(result.num_detections[1]) == 0
    assert_matches_reference(images, 2)


def test_class_without_ground_truth_is_excluded() -> None:
    """Class 3 has only detections, class 2 only a difficult box: both have AP NaN and stay out of the mAP."""
    images = [{"gt": [(1, *BOX, 0), (2, *shifted(BOX, 300), 1)],
               "dets": [(1, f32(0.9), *BOX), (3, f32(0.8), *shifted(BOX, 150)), (2, f32(0.7), *shifted(BOX, 300))]}]
    dets, gts = to_inputs(images)
    result = voc_evaluate(dets, gts, 3)
    assert result.ap[0] == 1.0 and math.isnan(float(result.ap[1])) and math.isnan(float(result.ap[2]))
    assert result.evaluated.tolist() == [True, False, False]
    assert result.map == 1.0 and result.map_all_point == 1.0
    metrics = metrics_dict(result, ["cat", "dog", "bird"])
    assert "AP@0.5/cat" in metrics and "AP@0.5/dog" not in metrics and "AP@0.5/bird" not in metrics
    assert_matches_reference(images, 3)


def test_image_without_boxes_gives_false_positives() -> None:
    images = [{"gt": [(1, *BOX, 0)], "dets": [(1, f32(0.5), *BOX)]},
              {"gt": [], "dets": [(1, f32(0.9), *BOX), (1, f32(0.8), *BOX)]},
              {"gt": [], "dets": []}]
    dets, gts = to_inputs(images)
    result = voc_evaluate(dets, gts, 1)
    assert result.outcomes[1].tolist() == [FALSE_POSITIVE, FALSE_POSITIVE]
    np.testing.assert_allclose(result.precision[0], [0.0, 0.0, 1 / 3])
    assert_matches_reference(images, 1)


def test_tied_scores_break_by_image_then_detection_order() -> None:
    """Equal scores: a stable ranking by (image, detection) in both implementations; the AP depends on it."""
    s = f32(0.5)
    images = [{"gt": [(1, *BOX, 0)], "dets": [(1, s, *shifted(BOX, 300)), (1, s, *BOX)]},
              {"gt": [(1, *BOX, 0), (2, *BOX, 0)], "dets": [(1, s, *BOX), (2, s, *BOX), (2, s, *BOX)]},
              {"gt": [(2, *BOX, 0)], "dets": [(2, s, *shifted(BOX, 300)), (2, f32(0.4), *BOX)]}]
    dets, gts = to_inputs(images)
    result = voc_evaluate(dets, gts, 2)
    np.testing.assert_allclose(result.precision[0], [0.0, 1 / 2, 2 / 3])  # FP first: image 0's first detection
    assert_matches_reference(images, 2)


def test_no_ground_truth_at_all_gives_nan_map() -> None:
    images = [{"gt": [], "dets": [(1, f32(0.9), *BOX)]}]
    dets, gts = to_inputs(images)
    result = voc_evaluate(dets, gts, 2)
    assert math.isnan(result.map) and math.isnan(result.map_all_point)
    assert_matches_reference(images, 2)


def random_case(seed: int, num_images: int = 40, num_classes: int = 6):
    """Many images and classes: jittered detections of the objects (some with a wrong class, some twice), random
    boxes, difficult objects, empty images, scores on a coarse grid (ties). The last class never has ground truth."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(num_images):
        gt, dets = [], []
        for _ in range(int(rng.integers(0, 6))):
            x1, y1 = (int(v) for v in rng.integers(1, 300, 2))
            w, h = (int(v) for v in rng.integers(1, 120, 2))
            gt.append((int(rng.integers(1, num_classes)), x1, y1, x1 + w, y1 + h, bool(rng.random() < 0.15)))
        for label, *box, _ in gt:
            for _ in range(int(rng.choice([0, 1, 1, 2]))):
                j = rng.integers(-10, 11, 4)
                x1, y1 = box[0] + int(j[0]), box[1] + int(j[1])
                x2, y2 = max(x1, box[2] + int(j[2])), max(y1, box[3] + int(j[3]))
                lab = label if rng.random() < 0.85 else int(rng.integers(1, num_classes + 1))
                dets.append((lab, f32(int(rng.integers(0, 25)) / 25), x1, y1, x2, y2))
        for _ in range(int(rng.integers(0, 4))):
            x1, y1 = (int(v) for v in rng.integers(1, 300, 2))
            w, h = (int(v) for v in rng.integers(1, 120, 2))
            dets.append((int(rng.integers(1, num_classes + 1)), f32(int(rng.integers(0, 25)) / 25),
                         x1, y1, x1 + w, y1 + h))
        order = rng.permutation(len(dets))  # detections in no particular order, as after a batched NMS
        images.append({"gt": gt, "dets": [dets[k] for k in order]})
    return images


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("iou_threshold", [0.5, 0.7])
def test_random_case_matches_reference(seed: int, iou_threshold: float) -> None:
    assert_matches_reference(random_case(seed), num_classes=6, iou_threshold=iou_threshold)


# --------------------------------------------------------------------------------------------------------- voc_ap
def test_voc_ap_keeps_the_arange_recall_levels() -> None:
    """py-faster-rcnn's np.arange(0, 1.1, 0.1) makes the level 0.3 = 0.30000000000000004: recall 3/10 misses it."""
    assert voc_ap([3 / 10], [1.0], use_07_metric=True) == pytest.approx(3 / 11)
    assert voc_ap([0.4], [1.0], use_07_metric=True) == pytest.approx(5 / 11)
    assert voc_ap([], [], use_07_metric=True) == 0.0
    assert voc_ap([], [], use_07_metric=False) == 0.0
    assert voc_ap([0.5, 1.0], [1.0, 0.5], use_07_metric=False) == pytest.approx(0.75)


# ------------------------------------------------------------------------------------------------------- inputs
def test_bad_inputs() -> None:
    dets, gts = to_inputs([{"gt": [(1, *BOX, 0)], "dets": [(1, f32(0.9), *BOX)]}])
    with pytest.raises(ValueError, match="images of detections"):
        voc_evaluate(dets, gts + gts, 1)
    bad_gt = [dict(gts[0], labels=torch.tensor([0]))]
    with pytest.raises(DataError, match="outside 1..1"):
        voc_evaluate(dets, bad_gt, 1)
    bad_det = [dict(dets[0], labels=torch.tensor([2]))]
    with pytest.raises(ValueError, match="model and the evaluation disagree"):
        voc_evaluate(bad_det, gts, 1)
    no_difficult = [{"boxes": gts[0]["boxes"], "labels": gts[0]["labels"]}]  # difficult is optional
    assert voc_evaluate(dets, no_difficult, 1).map == 1.0


# ----------------------------------------------------------------------------------------------------------- COCO
def random_coco_case(seed: int, num_images: int = 12, num_classes: int = 3):
    """Continuous integer boxes of all sizes (small / medium / large), crowd (= difficult) objects, scores with
    ties, and one image with 130 detections (over COCO's 100 per image)."""
    rng = np.random.default_rng(seed)
    dets, gts = [], []
    for i in range(num_images):
        n = int(rng.integers(0, 7))
        xy = rng.integers(0, 400, (n, 2))
        wh = rng.integers(4, 160, (n, 2))
        gt_boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
        gts.append({"boxes": torch.from_numpy(gt_boxes), "labels": torch.from_numpy(rng.integers(1, num_classes + 1, n)),
                    "difficult": torch.from_numpy(rng.random(n) < 0.15)})
        m = 130 if i == 3 else int(rng.integers(0, 15))
        source = rng.integers(0, max(n, 1), m)
        boxes = (gt_boxes[source] if n else np.full((m, 4), 50, np.float32)) + rng.integers(-12, 13, (m, 4))
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        scores = (rng.integers(0, 40, m) / 40).astype(np.float32)
        labels = np.where(rng.random(m) < 0.8, gts[-1]["labels"].numpy()[source] if n else 1,
                          rng.integers(1, num_classes + 1, m))
        dets.append({"boxes": torch.from_numpy(boxes.astype(np.float32)), "scores": torch.from_numpy(scores),
                     "labels": torch.from_numpy(labels.astype(np.int64))})
    return dets, gts


def pycocotools_stats(dets, gts, num_classes: int) -> np.ndarray:
    """COCOeval on COCO-format dicts built here: bbox = [x, y, w, h]; the gt area is the box area w · h."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def xywh(box) -> list[float]:
        x1, y1, x2, y2 = (float(v) for v in box)
        return [x1, y1, x2 - x1, y2 - y1]

    annotations = []
    for i, gt in enumerate(gts):
        for box, label, crowd in zip(gt["boxes"], gt["labels"], gt["difficult"]):
            b = xywh(box)
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": int(label), "bbox": b,
                                "area": b[2] * b[3], "iscrowd": int(crowd)})
    results = [{"image_id": i, "category_id": int(label), "bbox": xywh(box), "score": float(score)}
               for i, det in enumerate(dets) for box, score, label in zip(det["boxes"], det["scores"], det["labels"])]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {"info": {}, "images": [{"id": i} for i in range(len(gts))], "annotations": annotations,
                           "categories": [{"id": c, "name": str(c)} for c in range(1, num_classes + 1)]}
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


@pytest.mark.parametrize("seed", [0, 1])
def test_coco_matches_pycocotools(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    dets, gts = random_coco_case(seed)
    stats = pycocotools_stats(dets, gts, num_classes=3)
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # quiet: no warning from torchmetrics or the backend
        ours = coco_evaluate(dets, gts)
    assert capsys.readouterr().out == ""  # and no print
    keys = ["map", "map_50", "map_75", "map_small", "map_medium", "map_large",
            "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large"]
    # torchmetrics returns float32: 1e-6 is float32 rounding of numbers <= 1, nothing else
    for k, key in enumerate(keys):
        assert ours[key] == pytest.approx(stats[k], abs=1e-6), key
    assert 0.0 < ours["map"] < ours["map_50"] < 1.0  # the case is neither trivial nor hopeless


def test_coco_iou_thresholds_are_pycocotools_float64() -> None:
    """IoU exactly 0.55 (5500 / 10000) matches at COCO's threshold 0.55, as in pycocotools (IoU >= threshold);
    torchmetrics' default float32 threshold 0.550000011920929 would miss it (mAP 0.1 instead of 0.2)."""
    dets = [{"boxes": torch.tensor([[0.0, 0.0, 55.0, 100.0]]), "scores": torch.tensor([0.9]),
             "labels": torch.tensor([1])}]
    gts = [{"boxes": torch.tensor([[0.0, 0.0, 100.0, 100.0]]), "labels": torch.tensor([1]),
            "difficult": torch.tensor([False])}]
    assert pycocotools_stats(dets, gts, num_classes=1)[0] == pytest.approx(0.2)
    assert coco_evaluate(dets, gts)["map"] == pytest.approx(0.2, abs=1e-6)


def test_coco_edge_cases() -> None:
    assert coco_evaluate([], []) == {k: -1.0 for k in coco_evaluate([], [])}
    dets, gts = to_inputs([{"gt": [(1, *BOX, 0)], "dets": [(1, f32(0.9), *BOX)]}, {"gt": [], "dets": []}])
    result = coco_evaluate(dets, gts)
    assert result["map"] == pytest.approx(1.0) and result["map_small"] == -1.0  # -1: no small object at all


# -------------------------------------------------------------------------------------------------- metrics_dict
def test_metrics_dict_names() -> None:
    images = random_case(3, num_images=10, num_classes=3)
    dets, gts = to_inputs(images)
    metrics, voc = evaluate(dets, gts, ["a", "b", "c"])
    assert {"mAP@0.5", "mAP@0.5_all_point", "coco_mAP", "coco_mAP@0.5", "coco_mAP@0.75"} <= set(metrics)
    assert all(isinstance(v, float) for v in metrics.values())
    per_class = [v for k, v in metrics.items() if k.startswith("AP@0.5/")]
    assert len(per_class) == int(voc.evaluated.sum())
    assert np.mean(per_class) == pytest.approx(metrics["mAP@0.5"])
    assert metrics["mAP@0.5_all_point"] == pytest.approx(reference_voc_eval(images, 3, use_07_metric=False)[1])
    with pytest.raises(ValueError, match="class names"):
        metrics_dict(voc, ["a", "b"])
    assert "mAP@0.7" in metrics_dict(voc_evaluate(dets, gts, 3, iou_threshold=0.7), ["a", "b", "c"])
