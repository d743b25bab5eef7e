"""Interest point detection scored against ground-truth points: precision, recall and mAP (SuperPoint §4, Fig. 4).

The protocol of rpautrat/SuperPoint's ``detector_evaluation.py`` (``compute_tp_fp``, ``compute_pr``,
``compute_mAP``), with which the paper's synthetic-shapes table was made (MagicPoint 0.979 mAP; FAST 0.405,
Harris 0.678, Shi 0.686):

* per image, detections by decreasing score; a detection is a true positive when a ground-truth point lies
  within ``distance`` pixels (2) and that point was not already taken by a stronger detection (the first such
  point in ground-truth order takes it, as the reference's ``argmax`` over the match row); otherwise a false
  positive — a second detection of a taken point counts against precision;
* over the whole set, detections of all images ranked by score: precision = TP / (TP + FP) and recall =
  TP / (number of ground-truth points) at every rank;
* mAP = Σ p̂_k · (recall_k − recall_{k−1}), where p̂ is the precision envelope (the running maximum from the
  low-recall end backwards, ``np.maximum.accumulate`` of the reversed curve) of the curve padded with
  (recall 0, precision 0) in front and (recall 1, precision 0) at the end, exactly as ``compute_pr`` +
  ``compute_mAP`` (the padding's last step adds nothing; the envelope is what VOC's all-point AP does too).
"""

from __future__ import annotations

import numpy as np

__all__ = ["DetectionCounts", "average_precision", "match_detections", "precision_recall"]


def match_detections(pred_xy: np.ndarray, scores: np.ndarray, gt_xy: np.ndarray, distance: float = 2.0) -> np.ndarray:
    """True-positive flags [N] of one image's detections, in the order of ``scores`` descending.

    ``pred_xy`` [N, 2], ``scores`` [N], ``gt_xy`` [M, 2], all (x, y) pixels. Returns the flags sorted by decreasing
    score (stable), to be ranked with the sorted scores.
    """
    order = np.argsort(-scores, kind="stable")
    if len(gt_xy) == 0:
        return np.zeros(len(order), dtype=bool)
    within = np.linalg.norm(pred_xy[order, None, :] - gt_xy[None, :, :], axis=-1) <= distance  # [N, M]
    taken = np.zeros(len(gt_xy), dtype=bool)
    tp = np.zeros(len(order), dtype=bool)
    for k, row in enumerate(within):  # greedy in score order: a few hundred detections per image
        if row.any():
            first = int(np.argmax(row))
            tp[k] = not taken[first]
            taken[first] = True
    return tp


class DetectionCounts:
    """Accumulates (score, true positive) over images and the number of ground-truth points."""

    def __init__(self) -> None:
        self.scores: list[np.ndarray] = []
        self.tp: list[np.ndarray] = []
        self.n_gt = 0

    def add(self, pred_xy: np.ndarray, scores: np.ndarray, gt_xy: np.ndarray, distance: float = 2.0) -> None:
        self.tp.append(match_detections(pred_xy, scores, gt_xy, distance))
        self.scores.append(np.sort(scores)[::-1])
        self.n_gt += len(gt_xy)

    def curve(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(precision, recall, score threshold) at every rank of the pooled detections."""
        if not self.scores:
            return np.zeros(0), np.zeros(0), np.zeros(0)
        return precision_recall(np.concatenate(self.scores), np.concatenate(self.tp), self.n_gt)


def precision_recall(scores: np.ndarray, tp: np.ndarray, n_gt: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision and recall after each detection of the pooled ranking (``compute_pr``), and its score."""
    order = np.argsort(-scores, kind="stable")
    hits = np.cumsum(tp[order])
    ranks = np.arange(1, len(order) + 1)
    return hits / ranks, hits / max(n_gt, 1), scores[order]


def average_precision(precision: np.ndarray, recall: np.ndarray) -> float:
    """Area under the padded precision envelope (``compute_pr`` then ``compute_mAP``; module docstring)."""
    recall = np.concatenate(([0.0], recall, [1.0]))
    precision = np.concatenate(([0.0], precision, [0.0]))
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum(envelope[1:] * np.diff(recall)))
