"""SuperPoint §7 HPatches metrics against hand-computed values and plain-loop re-implementations."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from torchrepro.superpoint.homography import corner_error, warp_points
from torchrepro.superpoint.hpatches_metrics import (
    average_precision,
    evaluate_pair,
    evaluate_pairs,
    homography_correct,
    markdown_table,
    matching_score,
    mutual_nn_matches,
    nn_map,
    repeatability_and_mle,
    top_k,
    visible_mask,
)

H_PERSP = np.array([[0.95, 0.08, 12.0], [-0.05, 1.02, -7.0], [2e-4, -1e-4, 1.0]])


def _translation(tx: float, ty: float) -> np.ndarray:
    return np.array([[1.0, 0, tx], [0, 1.0, ty], [0, 0, 1.0]])


# ------------------------------------------------------------------------------------------------ repeatability
def test_repeatability_and_mle_hand_values() -> None:
    # identity H: p1_0↔p2_0 at 1 px, p1_1↔p2_1 at 2 px, the third points are ≥ 36 px from anything.
    kp1 = np.array([[10, 10], [50, 50], [80, 80]], float)
    kp2 = np.array([[11, 10], [50, 52], [20, 70]], float)
    rep, mle = repeatability_and_mle(kp1, kp2, np.eye(3), (100, 100), (100, 100), distance=3)
    assert rep == pytest.approx(4 / 6)  # (c1 + c2) / (N1 + N2) = (2 + 2) / (3 + 3)
    assert mle == pytest.approx((1 + 2 + 1 + 2) / 4)
    rep, mle = repeatability_and_mle(kp1, kp2, np.eye(3), (100, 100), (100, 100))
    assert rep == pytest.approx(2 / 3)
    assert mle == pytest.approx(1.5)
    # ε = 1.5 keeps only the 1-px pair
    assert repeatability_and_mle(kp1, kp2, np.eye(3), (100, 100), (100, 100), distance=1.5)[0] == pytest.approx(
        2 / 6)

    # A translation by (+5, 0): points that leave the other image are not counted (visibility filter).
    H = _translation(5, 0)
    kp1t = np.vstack([kp1, [[97, 20]]])  # → (102, 20): outside image 2
    kp2t = np.vstack([kp2 + [5, 0], [[2, 30]]])  # H⁻¹ → (−3, 30): outside image 1
    rep_t, mle_t = repeatability_and_mle(kp1t, kp2t, H, (100, 100), (100, 100))
    assert rep_t == pytest.approx(4 / 6) and mle_t == pytest.approx(1.5)

    # keep_k keeps the best points *after* the visibility filter: drop the unmatched third points
    s1, s2 = np.array([3.0, 2.0, 1.0, 9.0]), np.array([3.0, 2.0, 1.0, 9.0])
    assert repeatability_and_mle(kp1t, kp2t, H, (100, 100), (100, 100), scores1=s1, scores2=s2, keep_k=2)[0] == 1.0

    with pytest.raises(ValueError, match="keep_k needs scores"):
        repeatability_and_mle(kp1, kp2, np.eye(3), (100, 100), (100, 100), keep_k=2)
    # degenerate cases
    assert math.isnan(repeatability_and_mle(np.zeros((0, 2)), np.zeros((0, 2)), np.eye(3), (10, 10), (10, 10))[0])
    rep0, mle0 = repeatability_and_mle(kp1, np.zeros((0, 2)), np.eye(3), (100, 100), (100, 100))
    assert rep0 == 0.0 and math.isnan(mle0)


def _repeatability_loops(kp1, kp2, H, shape1, shape2, eps, s1, s2, k):
    """Plain re-implementation of rpautrat's compute_repeatability + eric-yyjau's MLE, with Python loops."""
    Hinv = np.linalg.inv(H)

    def warp(p, M):
        x, y = p
        d = M[2, 0] * x + M[2, 1] * y + M[2, 2]
        return ((M[0, 0] * x + M[0, 1] * y + M[0, 2]) / d, (M[1, 0] * x + M[1, 1] * y + M[1, 2]) / d)

    def inside(p, shape):
        return 0 <= p[0] <= shape[1] - 1 and 0 <= p[1] <= shape[0] - 1  # on the pixel grid

    a = [(s1[i], i) for i in range(len(kp1)) if inside(warp(kp1[i], H), shape2)]
    b = [(s2[j], j) for j in range(len(kp2)) if inside(warp(kp2[j], Hinv), shape1)]
    a = [i for _, i in sorted(a, key=lambda t: -t[0])[:k]]
    b = [j for _, j in sorted(b, key=lambda t: -t[0])[:k]]
    w1 = [warp(kp1[i], H) for i in a]
    w2 = [tuple(kp2[j]) for j in b]
    counted = []
    for p in w1:
        d = min(math.dist(p, q) for q in w2)
        if d <= eps:
            counted.append(d)
    for q in w2:
        d = min(math.dist(p, q) for p in w1)
        if d <= eps:
            counted.append(d)
    return len(counted) / (len(w1) + len(w2)), sum(counted) / len(counted)


def test_repeatability_matches_plain_loops_on_random_data() -> None:
    rng = np.random.default_rng(0)
    for trial in range(5):
        shape1, shape2 = (120, 160), (130, 150)
        kp1 = rng.uniform(-5, 165, (150, 2))
        # half the points of image 2 are noisy true re-detections, so the repeatability is far from 0
        kp2 = np.vstack([warp_points(kp1[:80], H_PERSP) + rng.normal(0, 2, (80, 2)), rng.uniform(0, 150, (60, 2))])
        s1, s2 = rng.random(len(kp1)), rng.random(len(kp2))
        k = [None, 50, 100, 300, 20][trial]
        got = repeatability_and_mle(kp1, kp2, H_PERSP, shape1, shape2, 3.0, s1, s2, k)
        want = _repeatability_loops(kp1, kp2, H_PERSP, shape1, shape2, 3.0, s1, s2, k or 10**9)
        assert got[0] == pytest.approx(want[0], abs=1e-9) and got[1] == pytest.approx(want[1], abs=1e-9)
        assert 0.0 <= got[0] <= 1.0
        if k is None:
            assert 0.1 < got[0] < 0.9


def test_top_k() -> None:
    kp = np.array([[0, 0], [1, 1], [2, 2], [3, 3]], float)
    kk, ss, idx = top_k(kp, np.array([0.2, 0.9, 0.5, 0.9]), 3)
    assert idx.tolist() == [1, 3, 2] and ss.tolist() == [0.9, 0.9, 0.5] and kk[0].tolist() == [1, 1]
    assert top_k(kp, np.zeros(4), None)[2].tolist() == [0, 1, 2, 3]


# ------------------------------------------------------------------------------------------------ homography
def test_homography_correctness() -> None:
    shape = (240, 320)
    rng = np.random.default_rng(1)
    kp1 = rng.uniform(0, 300, (60, 2))
    matches = np.stack([np.arange(60), np.arange(60)], axis=1)
    # exact correspondences: error ≈ 0, correct at every ε
    assert homography_correct(kp1, warp_points(kp1, H_PERSP), matches, H_PERSP, shape) == {
        1: True, 3: True, 5: True
    }
    # an estimate off by a pure translation (3, 4) moves every corner by exactly 5 px
    H_shift = _translation(3, 4) @ H_PERSP
    assert corner_error(H_shift, H_PERSP, shape) == pytest.approx(5.0, abs=1e-9)
    got = homography_correct(kp1, warp_points(kp1, H_shift), matches, H_PERSP, shape, eps=(1, 3, 4.99, 5.01))
    assert got == {1: False, 3: False, 4.99: False, 5.01: True}
    # the corners are those of image 1, in (x, y): a shift of image 1's far column only (x = w − 1) shows up
    # in half the corners
    H_scale = np.diag([1.0 + 4 / 319, 1.0, 1.0])  # moves x = 319 by 4 px, x = 0 not at all
    assert corner_error(H_scale, np.eye(3), shape) == pytest.approx(2.0)
    # outliers are rejected by RANSAC (3 px)
    kp2 = warp_points(kp1, H_PERSP)
    kp2[:15] += rng.uniform(20, 60, (15, 2))
    assert homography_correct(kp1, kp2, matches, H_PERSP, shape)[1]
    # fewer than 4 matches, or a degenerate (collinear) set: incorrect, no exception
    assert homography_correct(kp1, kp2, matches[:3], H_PERSP, shape) == {1: False, 3: False, 5: False}
    line = np.c_[np.arange(10.0), np.arange(10.0)]
    assert not any(homography_correct(line, 2 * line, matches[:10], np.eye(3), shape).values())


# ------------------------------------------------------------------------------------------------ descriptors
def test_mutual_nn_hand_made() -> None:
    desc1 = np.array([[0, 0], [1, 0], [5, 5], [0.3, 0]], np.float32)
    desc2 = np.array([[0.1, 0], [5, 4], [0.9, 0.1], [10, 10]], np.float32)
    # desc1[3]'s NN is desc2[0], whose NN is desc1[0]: not mutual; desc2[3] is nobody's NN.
    assert mutual_nn_matches(desc1, desc2).tolist() == [[0, 0], [1, 2], [2, 1]]
    bits1 = np.array([[0b00000000], [0b11111111]], np.uint8)
    bits2 = np.array([[0b11110111], [0b00000011]], np.uint8)
    assert mutual_nn_matches(bits1, bits2, "hamming").tolist() == [[0, 1], [1, 0]]
    assert mutual_nn_matches(desc1[:0], desc2).shape == (0, 2)
    with pytest.raises(ValueError, match="packed uint8"):
        mutual_nn_matches(desc1, desc2, "hamming")


def test_mutual_nn_matches_opencv_cross_check_and_loops() -> None:
    rng = np.random.default_rng(2)
    d1, d2 = rng.normal(size=(300, 64)).astype(np.float32), rng.normal(size=(250, 64)).astype(np.float32)
    cv = cv2.BFMatcher(cv2.NORM_L2, crossCheck=True).match(d1, d2)
    want = sorted((m.queryIdx, m.trainIdx) for m in cv)
    assert [tuple(r) for r in mutual_nn_matches(d1, d2).tolist()] == want
    # Hamming on packed bits, against a loop (first index on ties, as np.argmin)
    b1, b2 = rng.integers(0, 256, (120, 32), dtype=np.uint8), rng.integers(0, 256, (90, 32), dtype=np.uint8)

    def ham(a, b):
        return int(np.unpackbits(np.bitwise_xor(a, b)).sum())

    nn12 = [min(range(len(b2)), key=lambda j: (ham(b1[i], b2[j]), j)) for i in range(len(b1))]
    nn21 = [min(range(len(b1)), key=lambda i: (ham(b1[i], b2[j]), i)) for j in range(len(b2))]
    loops = [[i, nn12[i]] for i in range(len(b1)) if nn21[nn12[i]] == i]
    assert mutual_nn_matches(b1, b2, "hamming").tolist() == loops


def test_average_precision_hand_values() -> None:
    # ranking T, F, T: AP = 1/2 · 1 + 1/2 · 2/3
    assert average_precision([True, False, True], [3, 2, 1]) == pytest.approx(5 / 6)
    # tied scores enter together (sklearn's average_precision_score): one threshold, P = 1/2, R = 1
    assert average_precision([True, False], [1.0, 1.0]) == pytest.approx(0.5)
    assert average_precision([False, False], [1, 2]) == 0.0
    assert math.isnan(average_precision([], []))


# Points on a line, 20 px apart; point i of image 1 corresponds to point i of image 2 except the third,
# which image 2 detects 60 px away; image 2 has a fourth point 1 px from image 1's third. 1-D descriptors.
KP1 = np.array([[0, 0], [20, 0], [40, 0]], float)
KP2 = np.array([[0, 0], [20, 0], [100, 0], [41, 0]], float)
D1 = np.array([[0.0], [1.0], [2.0]], np.float32)
D2 = np.array([[0.1], [1.3], [2.2], [5.0]], np.float32)


def test_nn_map_hand_value() -> None:
    # 1→2: NN (dist, correct) = (0.1, T), (0.3, T), (0.2, F) → ranking T F T → AP 5/6
    # 2→1: (0.1, T), (0.3, T), (0.2, F), (3.0, T: desc 5.0 → desc1[2] at (40,0), 1 px from (41,0))
    #      → ranking T F T T → AP (1 + 2/3 + 3/4) / 3 = 29/36
    assert nn_map(KP1, D1, KP2, D2, np.eye(3)) == pytest.approx((5 / 6 + 29 / 36) / 2)


def test_matching_score_hand_value() -> None:
    # mutual NN: (0,0) T, (1,1) T, (2,2) F → 2 correct; 2·2 / (3 + 4)
    assert matching_score(KP1, D1, KP2, D2, np.eye(3)) == pytest.approx(4 / 7)
    # with a 10×50 image, image 2's point (100, 0) is outside the shared view: (2, 1) is then not mutual,
    # 2 correct of 3 + 3 points
    assert matching_score(KP1, D1, KP2, D2, np.eye(3), shape1=(10, 50), shape2=(10, 50)) == pytest.approx(2 / 3)


def _nn_map_loops(kp1, d1, kp2, d2, H, eps):
    """Plain re-implementation: symmetric NN, ground-truth labels, sklearn-style AP, with Python loops."""

    def ap(pairs):  # pairs: (descriptor distance, correct); no ties on random data
        pairs = sorted(pairs)
        n_pos = sum(c for _, c in pairs)
        tp, total = 0, 0.0
        for rank, (_, c) in enumerate(pairs, start=1):
            if c:
                tp += 1
                total += tp / rank
        return total / n_pos if n_pos else 0.0

    def one_way(ka, da, kb, db, M):
        pairs = []
        for i in range(len(ka)):
            dists = [math.dist(da[i], db[j]) for j in range(len(kb))]
            j = int(np.argmin(dists))
            x, y = ka[i]
            w = M[2, 0] * x + M[2, 1] * y + M[2, 2]
            p = ((M[0, 0] * x + M[0, 1] * y + M[0, 2]) / w, (M[1, 0] * x + M[1, 1] * y + M[1, 2]) / w)
            pairs.append((dists[j], math.dist(p, kb[j]) <= eps))
        return ap(pairs)

    return 0.5 * (one_way(kp1, d1, kp2, d2, H) + one_way(kp2, d2, kp1, d1, np.linalg.inv(H)))


def test_nn_map_matches_plain_loops_on_random_data() -> None:
    rng = np.random.default_rng(3)
    for _ in range(3):
        kp1 = rng.uniform(0, 150, (80, 2))
        kp2 = np.vstack([warp_points(kp1[:50], H_PERSP) + rng.normal(0, 1.5, (50, 2)), rng.uniform(0, 150, (30, 2))])
        d1 = rng.normal(size=(80, 16))
        d2 = np.vstack([d1[:50] + rng.normal(0, 0.8, (50, 16)), rng.normal(size=(30, 16))])
        got = nn_map(kp1, d1, kp2, d2, H_PERSP, 3.0)
        assert got == pytest.approx(_nn_map_loops(kp1, d1, kp2, d2, H_PERSP, 3.0), abs=1e-9)
        assert 0.2 < got < 0.99


# ------------------------------------------------------------------------------------------------ aggregation
def test_evaluate_pair_and_pairs_and_table() -> None:
    rng = np.random.default_rng(4)
    shape = (120, 160)
    kp1 = rng.uniform(0, 159, (300, 2)) * [1, 119 / 159]  # on image 1's pixel grid
    kp1 = kp1[visible_mask(kp1, H_PERSP, shape)]  # a perfect detector: every visible point re-detected exactly
    kp2 = warp_points(kp1, H_PERSP)
    desc = rng.normal(size=(len(kp1), 32)).astype(np.float32)
    sc = rng.random(len(kp1))
    r = evaluate_pair(kp1, sc, desc, kp2, sc, desc, H_PERSP, shape, shape, kind="viewpoint", keep_k_rep=100)
    assert r["kind"] == "viewpoint" and r["repeatability"] == pytest.approx(1.0) and r["mle"] < 1e-9
    assert r["hcorr@1"] and r["nn_map"] == pytest.approx(1.0) and r["matching_score"] == pytest.approx(1.0)

    results = [
        {"kind": "viewpoint", "hcorr@1": True, "hcorr@3": True, "hcorr@5": True, "repeatability": 0.5, "mle": 1.0},
        {"kind": "viewpoint", "hcorr@1": False, "hcorr@3": True, "hcorr@5": True, "repeatability": 0.7,
         "mle": math.nan},
        {"kind": "illumination", "hcorr@1": False, "hcorr@3": False, "hcorr@5": True, "repeatability": 0.9,
         "mle": 2.0},
    ]
    s = evaluate_pairs(results)
    assert list(s) == ["illumination", "viewpoint", "all"]
    assert s["viewpoint"]["hcorr@1"] == 0.5 and s["viewpoint"]["repeatability"] == pytest.approx(0.6)
    assert s["viewpoint"]["mle"] == 1.0  # nan skipped
    assert s["all"]["hcorr@3"] == pytest.approx(2 / 3) and s["all"]["n_pairs"] == 3
    assert s["all"]["mle"] == pytest.approx(1.5) and "nn_map" not in s["all"]

    table = markdown_table({"SIFT": s, "ORB": s}, kinds=("viewpoint", "all"))
    lines = table.strip().splitlines()
    assert lines[0] == "| Method | Split | ε=1 | ε=3 | ε=5 | Rep. | MLE | NN mAP | M. Score |"
    assert lines[2] == "| SIFT | viewpoint | 0.500 | 1.000 | 1.000 | 0.600 | 1.000 | – | – |"
    assert len(lines) == 6
    assert markdown_table({"SIFT": s}).splitlines()[0].startswith("| Method | ε=1 |")
