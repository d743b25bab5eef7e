"""Tests for the detection evaluation pictures (torchrepro.detection.plots) and the TP / FP / missed decision
they colour by (torchrepro.detection.evaluation.classify_detections)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from torchrepro.detection.evaluation import (
    BELOW_THRESHOLD, FALSE_POSITIVE, IGNORED, TRUE_POSITIVE, classify_detections, voc_evaluate,
)
from torchrepro.detection.plots import (
    MISSED_COLOUR, OUTCOME_COLOURS, detections_png, per_class_ap_table, pr_curves_png,
)

NAMES = ["cat", "dog", "bird"]


def target(boxes, labels, difficult=None) -> dict:
    n = len(labels)
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels, dtype=torch.int64),
            "difficult": torch.tensor(difficult if difficult is not None else [False] * n, dtype=torch.bool)}


def detection(boxes, scores, labels) -> dict:
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "scores": torch.tensor(scores, dtype=torch.float32),
            "labels": torch.tensor(labels, dtype=torch.int64)}


# Objects: A (cat), B (cat, difficult), C (dog), D (cat, nobody finds it).
A, B, C, D = [10, 10, 50, 50], [100, 10, 140, 50], [10, 100, 50, 140], [100, 100, 140, 140]
GT = target([A, B, C, D], [1, 1, 2, 1], [False, True, False, False])
DET = detection(
    [A, [12, 10, 52, 50], B, [10, 102, 50, 142], [10, 100, 50, 141]],
    [0.9, 0.8, 0.7, 0.6, 0.1],
    [1, 1, 1, 1, 2],  # d0 takes A; d1 duplicates A; d2 is on difficult B; d3 is on C with the wrong class; d4 is C
)


def test_classify_detections_hand_case() -> None:
    outcome, missed = classify_detections(DET, GT, score_threshold=0.3)
    assert outcome.tolist() == [TRUE_POSITIVE, FALSE_POSITIVE, IGNORED, FALSE_POSITIVE, BELOW_THRESHOLD]
    # C: its only correct detection is under the threshold; D: no detection; B: difficult, never missed
    assert missed.tolist() == [False, False, True, True]

    outcome, missed = classify_detections(DET, GT, score_threshold=0.0)
    assert outcome.tolist() == [TRUE_POSITIVE, FALSE_POSITIVE, IGNORED, FALSE_POSITIVE, TRUE_POSITIVE]
    assert missed.tolist() == [False, False, False, True]

    # a stricter IoU: the duplicate d1 (IoU 38/42 ≈ 0.905 with A) no longer reaches A at all; still an FP
    outcome, _ = classify_detections(DET, GT, score_threshold=0.3, iou_threshold=0.95)
    assert outcome.tolist()[:2] == [TRUE_POSITIVE, FALSE_POSITIVE]


def test_classify_detections_agrees_with_voc_evaluate() -> None:
    """At threshold 0 the picture's decision is the evaluation's, image by image."""
    rng = np.random.default_rng(0)
    dets, gts = [], []
    for _ in range(15):
        n = int(rng.integers(0, 6))
        xy = rng.integers(0, 200, (n, 2))
        boxes = np.concatenate([xy, xy + rng.integers(5, 80, (n, 2))], 1)
        gts.append(target(boxes.tolist(), rng.integers(1, 4, n).tolist(), (rng.random(n) < 0.2).tolist()))
        m = int(rng.integers(0, 8))
        src = boxes[rng.integers(0, n, m)] if n else rng.integers(0, 200, (m, 4))
        d = src + rng.integers(-6, 7, (m, 4))
        d[:, 2:] = np.maximum(d[:, 2:], d[:, :2] + 1)
        dets.append(detection(d.tolist(), (rng.integers(0, 10, m) / 10).tolist(), rng.integers(1, 4, m).tolist()))
    result = voc_evaluate(dets, gts, 3)
    for i, (det, gt) in enumerate(zip(dets, gts)):
        outcome, missed = classify_detections(det, gt)
        assert torch.equal(outcome, result.outcomes[i])
        assert torch.equal(missed, ~result.gt_taken[i] & ~gt["difficult"])


def decoded(path: Path) -> np.ndarray:
    assert path.is_file() and path.stat().st_size > 0
    with Image.open(path) as img:
        assert img.format == "PNG"
        return np.asarray(img.convert("RGB"))


def colour_pixels(pixels: np.ndarray, colour: tuple[int, int, int]) -> int:
    return int((pixels == np.array(colour, np.uint8)).all(axis=-1).sum())


def test_pr_curves_and_table(tmp_path: Path) -> None:
    # class 3 (bird) has no ground truth: no curve, "–" in the table
    gts = [GT, target([A], [2])]
    dets = [DET, detection([A, C], [0.5, 0.4], [2, 3])]
    result = voc_evaluate(dets, gts, 3)
    pixels = decoded(pr_curves_png(result, NAMES, tmp_path / "pr.png"))
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100

    table = per_class_ap_table(result, NAMES)
    lines = table.strip().splitlines()
    assert lines[0].startswith("| class |") and len(lines) == 2 + 3 + 1
    assert [ln.split("|")[1].strip() for ln in lines[2:5]] == NAMES  # the order given
    cat = lines[2].split("|")
    assert cat[2].strip() == "2" and cat[3].strip() == "4"  # A and D count (B is difficult); 4 cat detections
    assert f"{float(result.ap_11_point[0]):.4f}" in lines[2]
    assert lines[4].split("|")[4].strip() == "–"  # bird: not evaluated
    assert lines[-1].startswith("| **mAP** (2 classes)") and f"**{result.map_11_point:.4f}**" in lines[-1]
    with pytest.raises(ValueError, match="class names"):
        per_class_ap_table(result, NAMES[:2])


def test_detections_png(tmp_path: Path) -> None:
    grey = torch.full((3, 160, 160), 128, dtype=torch.uint8)
    images = [grey, torch.full((3, 90, 200), 60, dtype=torch.uint8), torch.full((1, 64, 64), 200, dtype=torch.uint8)]
    dets = [DET, detection([], [], []), detection([[5, 5, 30, 30]], [0.95], [3])]
    gts = [GT, target([[20, 20, 60, 60]], [2]), target([], [])]
    pixels = decoded(detections_png(images, dets, gts, NAMES, tmp_path / "grid.png", columns=2))
    assert pixels.shape[0] > 300 and pixels.shape[1] > 300

    # the colour follows the decision: the same detection drawn as a TP, then (moved off its object) as an FP
    hit = decoded(detections_png([grey], [detection([A], [0.9], [1])], [target([A], [1])], NAMES, tmp_path / "tp.png"))
    miss = decoded(detections_png([grey], [detection([D], [0.9], [1])], [target([A], [1])], NAMES, tmp_path / "fp.png"))
    tp, fp = OUTCOME_COLOURS[TRUE_POSITIVE], OUTCOME_COLOURS[FALSE_POSITIVE]
    # (the legend shows every colour once, so compare counts rather than test for absence)
    assert colour_pixels(hit, tp) > colour_pixels(miss, tp) + 50
    assert colour_pixels(miss, fp) > colour_pixels(hit, fp) + 50
    assert colour_pixels(miss, MISSED_COLOUR) > colour_pixels(hit, MISSED_COLOUR) + 50

    with pytest.raises(ValueError, match="uint8"):
        detections_png([grey.float()], dets[:1], gts[:1], NAMES, tmp_path / "bad.png")
