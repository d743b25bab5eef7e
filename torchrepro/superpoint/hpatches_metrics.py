"""HPatches evaluation protocol of SuperPoint §7 (DeTone et al., CVPRW 2018), Tables 3 and 4.

Pure numpy (+ ``cv2.findHomography``). Conventions everywhere:

* keypoints are ``float`` arrays ``[N, 2]`` in ``(x, y)`` pixel coordinates, OpenCV convention (pixel centres at
  integers); an image ``shape`` is ``(h, w)`` (extra trailing dims ignored);
* ``H`` maps image-1 pixels to image-2 pixels (HPatches' ``H_1_k``);
* a point is *visible* in an image of shape ``(h, w)`` when ``0 ≤ x ≤ w − 1`` and ``0 ≤ y ≤ h − 1``, on the pixel grid
  (:func:`torchrepro.superpoint.homography.inside_mask`; the reference's ``< w`` differs by under a pixel);
* a correspondence is correct when the distance between the ground-truth-warped point and its partner is ≤ ε
  (``distance``, 3 px in the paper).

Definitions follow the reference implementations (rpautrat/SuperPoint ``superpoint/evaluations/
detector_evaluation.py`` and ``descriptor_evaluation.py``; eric-yyjau/pytorch-superpoint ``evaluation.py`` and
``evaluations/detector_evaluation.py``); each function's docstring states its definition and where it differs.

A metric that is undefined for a pair (no point in the shared view, no correct correspondence) is ``nan`` and is
skipped by :func:`evaluate_pairs` (the references skip or drop such pairs too).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import cv2
import numpy as np

from torchrepro.superpoint.homography import corner_error, inside_mask, warp_points

Metric = Literal["l2", "hamming"]
HCORR_EPS: tuple[int, ...] = (1, 3, 5)
METRICS: tuple[str, ...] = ("hcorr@1", "hcorr@3", "hcorr@5", "repeatability", "mle", "nn_map", "matching_score")
KINDS: tuple[str, ...] = ("illumination", "viewpoint", "all")
_CHUNK = 1024  # rows of a distance matrix computed at once: bounds memory to _CHUNK × M


# ---------------------------------------------------------------------------------------------------- geometry
def visible_mask(points: np.ndarray, H: np.ndarray, shape_other: Sequence[int]) -> np.ndarray:
    """Which points, once warped by ``H``, fall inside the other image of shape ``shape_other``
    (the reference's ``keep_true_keypoints``)."""
    return inside_mask(warp_points(points, H), shape_other)


def top_k(kp: np.ndarray, scores: np.ndarray, k: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``k`` highest-scoring keypoints, best first (ties keep input order); ``k=None`` keeps all, sorted.

    Returns:
        ``(kp[idx], scores[idx], idx)``; use ``idx`` to select the matching descriptors.
    """
    scores = np.asarray(scores).reshape(-1)
    idx = np.argsort(-scores, kind="stable")
    if k is not None:
        idx = idx[: max(int(k), 0)]
    return np.asarray(kp)[idx], scores[idx], idx


def shared_points(
    kp: np.ndarray, scores: np.ndarray, H: np.ndarray, shape_other: Sequence[int], keep_k: int | None
) -> np.ndarray:
    """Indices of the points visible in the other image after warping by ``H``, then the ``keep_k`` best of those
    by score, best first: the reference's ``keep_shared_points`` (filter *before* top-k, as rpautrat)."""
    vis = np.flatnonzero(visible_mask(kp, H, shape_other))
    _, _, order = top_k(np.asarray(kp)[vis], np.asarray(scores).reshape(-1)[vis], keep_k)
    return vis[order]


# ---------------------------------------------------------------------------------------------------- detector
def _point_min_dists(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For point sets ``a [N,2]``, ``b [M,2]`` (both non-empty): each ``a``'s distance to its closest ``b`` and
    each ``b``'s to its closest ``a``, in row chunks so memory stays ``O(_CHUNK · M)``."""
    min_a = np.empty(len(a))
    min_b = np.full(len(b), np.inf)
    for start in range(0, len(a), _CHUNK):
        d = np.linalg.norm(a[start : start + _CHUNK, None, :] - b[None, :, :], axis=2)
        min_a[start : start + _CHUNK] = d.min(axis=1)
        min_b = np.minimum(min_b, d.min(axis=0))
    return min_a, min_b


def repeatability_and_mle(
    kp1_xy: np.ndarray,
    kp2_xy: np.ndarray,
    H: np.ndarray,
    shape1: Sequence[int],
    shape2: Sequence[int],
    distance: float = 3.0,
    scores1: np.ndarray | None = None,
    scores2: np.ndarray | None = None,
    keep_k: int | None = None,
) -> tuple[float, float]:
    """Repeatability and mean localisation error (MLE) of one pair (SuperPoint §7.1, Table 3/4).

    Definition (rpautrat ``detector_evaluation.compute_repeatability``; MLE from eric-yyjau's version of it):

    1. keep the points of image 1 whose warp ``H·p1`` lies inside image 2 and the points of image 2 whose warp
       ``H⁻¹·p2`` lies inside image 1; if ``keep_k`` is given (it needs ``scores1`` and ``scores2``), keep the
       ``keep_k`` best of each *after* this filter (the paper: 300 points);
    2. in image 2's frame, ``d_ij = ‖H·p1_i − p2_j‖``; ``c1 = |{i : min_j d_ij ≤ ε}|``, ``c2 = |{j : min_i d_ij ≤ ε}|``;
    3. ``repeatability = (c1 + c2) / (N1 + N2)`` with ``N1, N2`` the kept counts;
    4. ``MLE = (Σ_{i counted} min_j d_ij + Σ_{j counted} min_i d_ij) / (c1 + c2)`` — the mean distance of the
       correct nearest-neighbour correspondences of both directions.

    Returns:
        ``(repeatability, mle)``; repeatability is ``nan`` when no point is in the shared view (rpautrat skips
        such pairs), MLE ``nan`` when there is no correct correspondence (eric-yyjau drops those, ``-1``).
    """
    kp1 = np.asarray(kp1_xy, dtype=np.float64).reshape(-1, 2)
    kp2 = np.asarray(kp2_xy, dtype=np.float64).reshape(-1, 2)
    H = np.asarray(H, dtype=np.float64)
    s1 = np.zeros(len(kp1)) if scores1 is None else np.asarray(scores1, dtype=np.float64)
    s2 = np.zeros(len(kp2)) if scores2 is None else np.asarray(scores2, dtype=np.float64)
    if keep_k is not None and (scores1 is None or scores2 is None):
        raise ValueError("repeatability: keep_k needs scores1 and scores2 to rank the points")
    idx1 = shared_points(kp1, s1, H, shape2, keep_k)
    idx2 = shared_points(kp2, s2, np.linalg.inv(H), shape1, keep_k)
    warped1, pts2 = warp_points(kp1[idx1], H), kp2[idx2]
    n1, n2 = len(warped1), len(pts2)
    if n1 + n2 == 0:
        return math.nan, math.nan
    if n1 == 0 or n2 == 0:
        return 0.0, math.nan
    min1, min2 = _point_min_dists(warped1, pts2)
    ok1, ok2 = min1 <= distance, min2 <= distance
    count = int(ok1.sum() + ok2.sum())
    rep = count / (n1 + n2)
    mle = float((min1[ok1].sum() + min2[ok2].sum()) / count) if count else math.nan
    return float(rep), mle


# ---------------------------------------------------------------------------------------------------- descriptors
def _pairwise_chunk(a: np.ndarray, b: np.ndarray, metric: Metric) -> np.ndarray:
    """Descriptor distances of a row chunk ``a`` to all of ``b`` (float64; exact integers for Hamming)."""
    if metric == "hamming":
        # Packed uint8 bits → {0,1}: Hamming = |a| + |b| − 2 a·b, exact in float64 for ≤ 2^53 bits.
        ab = np.unpackbits(a, axis=1).astype(np.float64)
        bb = np.unpackbits(b, axis=1).astype(np.float64)
        return ab.sum(1)[:, None] + bb.sum(1)[None, :] - 2.0 * ab @ bb.T
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    sq = (a64 * a64).sum(1)[:, None] + (b64 * b64).sum(1)[None, :] - 2.0 * a64 @ b64.T
    return np.sqrt(np.maximum(sq, 0.0))  # rounding can make the expansion slightly negative


def _check_descriptors(desc1: np.ndarray, desc2: np.ndarray, metric: Metric) -> tuple[np.ndarray, np.ndarray]:
    if metric not in ("l2", "hamming"):
        raise ValueError(f"descriptor metric {metric!r} unknown: use 'l2' or 'hamming'")
    d1, d2 = np.asarray(desc1), np.asarray(desc2)
    if d1.ndim != 2 or d2.ndim != 2 or (len(d1) and len(d2) and d1.shape[1] != d2.shape[1]):
        raise ValueError(f"descriptors must be [N, D] and [M, D]; got {d1.shape} and {d2.shape}")
    if metric == "hamming" and (d1.dtype != np.uint8 or d2.dtype != np.uint8):
        raise ValueError("Hamming descriptors must be packed uint8 bits (ORB's 32-byte rows)")
    return d1, d2


def descriptor_nn(desc1: np.ndarray, desc2: np.ndarray, metric: Metric = "l2") -> tuple[np.ndarray, np.ndarray]:
    """For each row of ``desc1``, the index of its nearest row of ``desc2`` and the distance (first index on ties),
    computed in chunks (never an N×M Python loop)."""
    d1, d2 = _check_descriptors(desc1, desc2, metric)
    if len(d1) == 0 or len(d2) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    idx = np.empty(len(d1), dtype=np.int64)
    dist = np.empty(len(d1))
    for start in range(0, len(d1), _CHUNK):
        d = _pairwise_chunk(d1[start : start + _CHUNK], d2, metric)
        idx[start : start + _CHUNK] = d.argmin(axis=1)
        dist[start : start + _CHUNK] = d.min(axis=1)
    return idx, dist


def mutual_nn_matches(desc1: np.ndarray, desc2: np.ndarray, metric: Metric = "l2") -> np.ndarray:
    """Mutual nearest neighbours ``[K, 2]`` (``i`` in ``desc1``, ``j`` in ``desc2``), sorted by ``i``: ``j`` is
    ``i``'s nearest neighbour and ``i`` is ``j``'s. The references' ``cv2.BFMatcher(NORM_L2 | NORM_HAMMING,
    crossCheck=True)``; ``metric="l2"`` for float descriptors (SIFT, SuperPoint), ``"hamming"`` for ORB's packed bits.
    """
    nn12, _ = descriptor_nn(desc1, desc2, metric)
    nn21, _ = descriptor_nn(desc2, desc1, metric)
    if len(nn12) == 0 or len(nn21) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    i = np.flatnonzero(nn21[nn12] == np.arange(len(nn12)))
    return np.stack([i, nn12[i]], axis=1).astype(np.int64)


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision of a ranking by decreasing ``scores`` — the definition of scikit-learn's
    ``average_precision_score``, which eric-yyjau's ``evaluation.py`` calls: ``AP = Σ_n (R_n − R_{n−1}) P_n`` over
    the distinct score thresholds (tied scores enter together), recall relative to the positives in the list.

    Returns:
        ``0.0`` if there is no positive (eric-yyjau's convention), ``nan`` for an empty list.
    """
    labels = np.asarray(labels, dtype=bool).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(labels) == 0:
        return math.nan
    n_pos = int(labels.sum())
    if n_pos == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]  # one threshold per distinct score
    tp = np.cumsum(y)[last_of_tie]
    precision = tp / (last_of_tie + 1)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _filter_shared(
    kp: np.ndarray, desc: np.ndarray, H: np.ndarray, shape_other: Sequence[int] | None
) -> tuple[np.ndarray, np.ndarray]:
    kp = np.asarray(kp, dtype=np.float64).reshape(-1, 2)
    desc = np.asarray(desc)
    if shape_other is None:
        return kp, desc
    keep = visible_mask(kp, H, shape_other)
    return kp[keep], desc[keep]


def _nn_ap_one_way(
    kp_a: np.ndarray, desc_a: np.ndarray, kp_b: np.ndarray, desc_b: np.ndarray, H_ab: np.ndarray, distance: float,
    metric: Metric,
) -> float:
    """AP of the nearest-neighbour matches a → b, ranked by descriptor distance, labelled by the true ``H_ab``."""
    if len(kp_a) == 0 or len(kp_b) == 0:
        return math.nan
    nn, dist = descriptor_nn(desc_a, desc_b, metric)
    correct = np.linalg.norm(warp_points(kp_a, H_ab) - kp_b[nn], axis=1) <= distance
    return average_precision(correct, -dist)


def nn_map(
    kp1: np.ndarray,
    desc1: np.ndarray,
    kp2: np.ndarray,
    desc2: np.ndarray,
    H: np.ndarray,
    distance: float = 3.0,
    *,
    metric: Metric = "l2",
    shape1: Sequence[int] | None = None,
    shape2: Sequence[int] | None = None,
) -> float:
    """Nearest-neighbour mean average precision (NN mAP, SuperPoint §7.3), computed symmetrically and averaged.

    Definition (paper §7.3: "AUC of the precision-recall curve, using the nearest neighbor matching strategy,
    computed symmetrically across the pair of images and averaged"):

    1. if ``shape1``/``shape2`` are given, keep only the points visible in the other image (shared view);
    2. 1 → 2: every point ``p1_i`` is matched to its descriptor nearest neighbour ``p2_j``; the match is a true
       positive iff ``‖H·p1_i − p2_j‖ ≤ ε`` (image-2 pixels); the matches are ranked by increasing descriptor
       distance and scored with :func:`average_precision` (= sklearn's ``average_precision_score(labels, −dist)``,
       the call of eric-yyjau's ``evaluation.py``);
    3. 2 → 1 likewise with ``H⁻¹`` (image-1 pixels); NN mAP = the mean of the two APs.

    Differences from eric-yyjau's ``evaluation.py``: it ranks only the *mutual* NN matches below a descriptor
    distance of 1.2 and labels them with the RANSAC inliers of ``cv2.findHomography`` (not the ground truth), in one
    direction. We use plain NN, ground-truth labels and both directions, as the paper defines the metric; rpautrat's
    repository has no NN mAP. Returns ``nan`` if either image has no (shared) point.
    """
    H = np.asarray(H, dtype=np.float64)
    kp1, desc1 = _filter_shared(kp1, desc1, H, shape2)
    kp2, desc2 = _filter_shared(kp2, desc2, np.linalg.inv(H), shape1)
    ap12 = _nn_ap_one_way(kp1, desc1, kp2, desc2, H, distance, metric)
    ap21 = _nn_ap_one_way(kp2, desc2, kp1, desc1, np.linalg.inv(H), distance, metric)
    if math.isnan(ap12) or math.isnan(ap21):
        return math.nan
    return 0.5 * (ap12 + ap21)


def matching_score(
    kp1: np.ndarray,
    desc1: np.ndarray,
    kp2: np.ndarray,
    desc2: np.ndarray,
    H: np.ndarray,
    distance: float = 3.0,
    *,
    metric: Metric = "l2",
    shape1: Sequence[int] | None = None,
    shape2: Sequence[int] | None = None,
) -> float:
    """Matching score (M. Score, SuperPoint §7.3, after LIFT): the ratio of ground-truth correspondences recovered by
    the whole pipeline to the number of features it proposes in the shared view.

    Definition: restrict both point sets to the shared view (when shapes are given), match them by
    :func:`mutual_nn_matches`, count the matches with ``‖H·p1_i − p2_j‖ ≤ ε`` as correct, and return
    ``2·correct / (N1 + N2)`` — eric-yyjau's ``evaluation.py`` formula ``2·inliers / (N1 + N2)``. Differences from
    it: eric-yyjau counts RANSAC inliers (not ground-truth correct matches) and filters only image 2's points into
    the shared view; we use ground truth and filter both, as the paper's definition says. ``nan`` if no point.
    """
    H = np.asarray(H, dtype=np.float64)
    kp1, desc1 = _filter_shared(kp1, desc1, H, shape2)
    kp2, desc2 = _filter_shared(kp2, desc2, np.linalg.inv(H), shape1)
    if len(kp1) + len(kp2) == 0:
        return math.nan
    matches = mutual_nn_matches(desc1, desc2, metric)
    if len(matches) == 0:
        return 0.0
    err = np.linalg.norm(warp_points(kp1[matches[:, 0]], H) - kp2[matches[:, 1]], axis=1)
    return float(2.0 * np.sum(err <= distance) / (len(kp1) + len(kp2)))


# ---------------------------------------------------------------------------------------------------- homography
def estimate_homography(
    kp1: np.ndarray, kp2: np.ndarray, matches: np.ndarray, ransac_threshold: float = 3.0
) -> tuple[np.ndarray | None, np.ndarray]:
    """``cv2.findHomography(p1, p2, cv2.RANSAC, ransac_threshold)`` on the matched points (the references call it
    with OpenCV's default reprojection threshold, 3 px).

    Returns:
        ``(H or None, inlier mask [K] bool)``; ``None`` (all outliers) with fewer than 4 matches or RANSAC failure.
    """
    matches = np.asarray(matches, dtype=np.int64).reshape(-1, 2)
    none = (None, np.zeros(len(matches), dtype=bool))
    if len(matches) < 4:
        return none
    src = np.asarray(kp1, dtype=np.float64).reshape(-1, 2)[matches[:, 0]]
    dst = np.asarray(kp2, dtype=np.float64).reshape(-1, 2)[matches[:, 1]]
    try:
        H, mask = cv2.findHomography(src, dst, cv2.RANSAC, ransac_threshold)
    except cv2.error:  # degenerate configurations can raise instead of returning None
        return none
    if H is None or mask is None or not np.all(np.isfinite(H)):
        return none
    return H, mask.reshape(-1).astype(bool)


def homography_correct(
    kp1: np.ndarray,
    kp2: np.ndarray,
    matches: np.ndarray,
    H_true: np.ndarray,
    shape: Sequence[int],
    eps: Sequence[float] = HCORR_EPS,
    ransac_threshold: float = 3.0,
) -> dict[float, bool]:
    """Homography estimation correctness at each ``ε`` (SuperPoint §7.3, Table 4 "ε = 1, 3, 5").

    ``H`` is estimated from the matched keypoints by :func:`estimate_homography` (RANSAC, 3 px); the error is
    :func:`corner_error_xy` (mean distance of image 1's four corners, ``shape = (h, w)`` of image 1, warped by the
    estimate and by ``H_true`` into image 2); correct iff error ≤ ε. Fewer than 4 matches or a RANSAC failure
    count as incorrect at every ε (eric-yyjau's ``compute_homography`` does the same when ``H`` is ``None``).
    """
    H_est, _ = estimate_homography(kp1, kp2, matches, ransac_threshold)
    if H_est is None:
        return {e: False for e in eps}
    err = corner_error(H_est, H_true, shape)
    return {e: bool(err <= e) for e in eps}


# ---------------------------------------------------------------------------------------------------- per pair
def evaluate_pair(
    kp1: np.ndarray,
    scores1: np.ndarray,
    desc1: np.ndarray,
    kp2: np.ndarray,
    scores2: np.ndarray,
    desc2: np.ndarray,
    H: np.ndarray,
    shape1: Sequence[int],
    shape2: Sequence[int],
    *,
    kind: str,
    metric: Metric = "l2",
    distance: float = 3.0,
    keep_k_rep: int | None = 300,
    keep_k_desc: int | None = 1000,
    eps: Sequence[int] = HCORR_EPS,
) -> dict[str, Any]:
    """All SuperPoint §7 metrics of one pair, as the per-pair dict :func:`evaluate_pairs` aggregates.

    Protocol (paper §7.1/7.3, rpautrat's evaluation): detector metrics on the best ``keep_k_rep`` (300) shared
    points; descriptor metrics on the best ``keep_k_desc`` (1000) shared points (``keep_shared_points``), matched
    by mutual NN for the homography. NMS (4 for Table 3's repeatability, 8 for Table 4) is the detector's job.

    Returns:
        ``{"kind", "hcorr@1", "hcorr@3", "hcorr@5", "repeatability", "mle", "nn_map", "matching_score",
        "n_matches", "n_inliers"}``.
    """
    kp1 = np.asarray(kp1, dtype=np.float64).reshape(-1, 2)
    kp2 = np.asarray(kp2, dtype=np.float64).reshape(-1, 2)
    H = np.asarray(H, dtype=np.float64)
    rep, mle = repeatability_and_mle(kp1, kp2, H, shape1, shape2, distance, scores1, scores2, keep_k_rep)
    i1 = shared_points(kp1, scores1, H, shape2, keep_k_desc)
    i2 = shared_points(kp2, scores2, np.linalg.inv(H), shape1, keep_k_desc)
    k1, d1, k2, d2 = kp1[i1], np.asarray(desc1)[i1], kp2[i2], np.asarray(desc2)[i2]
    matches = mutual_nn_matches(d1, d2, metric)
    H_est, inliers = estimate_homography(k1, k2, matches)
    err = corner_error(H_est, H, shape1) if H_est is not None else math.inf
    out: dict[str, Any] = {"kind": kind}
    out.update({f"hcorr@{e}": bool(err <= e) for e in eps})
    out.update(
        repeatability=rep,
        mle=mle,
        nn_map=nn_map(k1, d1, k2, d2, H, distance, metric=metric),
        matching_score=matching_score(k1, d1, k2, d2, H, distance, metric=metric),
        n_matches=int(len(matches)),
        n_inliers=int(inliers.sum()),
    )
    return out


# ---------------------------------------------------------------------------------------------------- aggregation
def evaluate_pairs(results: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Average per-pair dicts (``{"kind": "illumination"|"viewpoint", <metric>: value, …}``) per kind and over all.

    Each metric of :data:`METRICS` present in a pair is averaged over the pairs where it is finite (``hcorr@ε``
    booleans become the fraction of correct pairs; ``nan`` repeatability/MLE/mAP are skipped, as the references
    skip such pairs). Keys absent from every pair are left out.

    Returns:
        ``{kind: {metric: mean, "n_pairs": count}}`` for the kinds present, plus ``"all"``.
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in results:
        kind = str(r.get("kind", "all"))
        groups.setdefault(kind, []).append(r)
        if kind != "all":
            groups.setdefault("all", []).append(r)
    summary: dict[str, dict[str, float]] = {}
    for kind in [k for k in KINDS if k in groups] + sorted(set(groups) - set(KINDS)):
        rows = groups[kind]
        agg: dict[str, float] = {"n_pairs": float(len(rows))}
        for name in METRICS:
            vals = np.array([float(r[name]) for r in rows if name in r and r[name] is not None], dtype=np.float64)
            vals = vals[np.isfinite(vals)]
            if len([r for r in rows if name in r]):
                agg[name] = float(vals.mean()) if len(vals) else math.nan
        summary[kind] = agg
    return summary


_HEADERS = {
    "hcorr@1": "ε=1",
    "hcorr@3": "ε=3",
    "hcorr@5": "ε=5",
    "repeatability": "Rep.",
    "mle": "MLE",
    "nn_map": "NN mAP",
    "matching_score": "M. Score",
}


def markdown_table(
    rows: Mapping[str, Mapping[str, Mapping[str, float]]], kinds: Sequence[str] = ("all",)
) -> str:
    """SuperPoint §7 Table 4 layout as Markdown: one row per method (and per kind when several are asked), columns
    Homography estimation ε = 1, 3, 5 | Rep., MLE | NN mAP, M. Score.

    Args:
        rows: ``{method: evaluate_pairs(...)}``.
        kinds: which splits to show (``"all"``, ``"viewpoint"``, ``"illumination"``).
    """
    multi = len(kinds) > 1
    head = ["Method"] + (["Split"] if multi else []) + [_HEADERS[m] for m in METRICS]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for kind in kinds:
        for method, summary in rows.items():
            values = summary.get(kind, {})
            cells = [method] + ([kind] if multi else [])
            for m in METRICS:
                v = values.get(m)
                cells.append("–" if v is None or not math.isfinite(v) else f"{v:.3f}")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
