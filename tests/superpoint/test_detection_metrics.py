"""Point detection precision / recall / mAP (rpautrat/SuperPoint's protocol) on hand-made cases."""

from __future__ import annotations

import numpy as np

from torchrepro.superpoint.detection_metrics import DetectionCounts, average_precision, match_detections


def test_a_second_detection_of_a_taken_point_is_a_false_positive() -> None:
    gt = np.array([[10.0, 10.0], [30.0, 30.0]])
    pred = np.array([[11.0, 10.0], [10.0, 11.0], [50.0, 50.0], [30.0, 31.5]])
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    assert match_detections(pred, scores, gt, distance=2).tolist() == [True, False, False, True]
    assert match_detections(pred, scores, np.zeros((0, 2))).tolist() == [False] * 4


def test_map_hand_computed() -> None:
    """Ranking TP, FP, TP over 3 ground-truth points: precision 1, 1/2, 2/3 at recall 1/3, 1/3, 2/3.

    Envelope: 1, 2/3, 2/3 → AP = 1·1/3 + 2/3·0 + 2/3·1/3 = 5/9 (the last third of recall is never reached)."""
    counts = DetectionCounts()
    counts.add(np.array([[0.0, 0.0], [9.0, 9.0]]), np.array([0.9, 0.8]), np.array([[0.0, 0.0], [20.0, 20.0]]))
    counts.add(np.array([[5.0, 5.0]]), np.array([0.7]), np.array([[5.0, 6.0]]))
    precision, recall, scores = counts.curve()
    np.testing.assert_allclose(precision, [1.0, 0.5, 2 / 3])
    np.testing.assert_allclose(recall, [1 / 3, 1 / 3, 2 / 3])
    np.testing.assert_allclose(scores, [0.9, 0.8, 0.7])
    assert abs(average_precision(precision, recall) - 5 / 9) < 1e-12


def test_perfect_and_empty_rankings() -> None:
    assert average_precision(np.array([1.0, 1.0]), np.array([0.5, 1.0])) == 1.0
    assert average_precision(np.zeros(0), np.zeros(0)) == 0.0
