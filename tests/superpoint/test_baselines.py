"""OpenCV SIFT / ORB baselines through the whole HPatches chain on a real photograph and a known warp."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from torchrepro.core.errors import DataError
from torchrepro.superpoint.baselines import ClassicalDetector, draw_matches
from torchrepro.superpoint.hpatches_metrics import (
    estimate_homography,
    evaluate_pair,
    homography_correct,
    mutual_nn_matches,
    repeatability_and_mle,
    shared_points,
)

# A moderate viewpoint change: rotation ~6°, scale 0.9, some perspective, centred on the 512×512 image.
H_VIEW = np.array([[0.88, -0.10, 60.0], [0.09, 0.90, 10.0], [1.5e-4, -1.0e-4, 1.0]])


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    grey = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2GRAY)
    warped = cv2.warpPerspective(grey, H_VIEW, (grey.shape[1], grey.shape[0]), flags=cv2.INTER_LINEAR)
    return grey, warped


def test_outputs_contract(pair: tuple[np.ndarray, np.ndarray]) -> None:
    grey, _ = pair
    for name, dim, dtype in (("sift", 128, np.float32), ("orb", 32, np.uint8)):
        det = ClassicalDetector(name, max_keypoints=300)
        kp, scores, desc = det(grey)
        assert 50 < len(kp) <= 300 and kp.dtype == np.float32 and kp.shape[1] == 2
        assert scores.dtype == np.float32 and np.all(np.diff(scores) <= 0)  # sorted by response
        assert desc.shape == (len(kp), dim) and desc.dtype == dtype
        assert len(np.unique(kp, axis=0)) == len(kp)  # one entry per location
        # (x, y): inside the 512-wide, 512-high image
        assert kp[:, 0].max() < grey.shape[1] and kp[:, 1].max() < grey.shape[0]
    assert ClassicalDetector("orb").metric == "hamming" and ClassicalDetector("sift").metric == "l2"
    kp, scores, desc = ClassicalDetector("sift")(np.zeros((64, 64), np.uint8))  # flat image: empty but typed
    assert kp.shape == (0, 2) and desc.shape == (0, 128)
    with pytest.raises(DataError, match="uint8"):
        ClassicalDetector("sift")(np.zeros((64, 64), np.float32))


def test_sift_chain_recovers_homography(pair: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    grey, warped = pair
    det = ClassicalDetector("sift", max_keypoints=1000)
    kp1, s1, d1 = det(grey)
    kp2, s2, d2 = det(warped)
    shape = grey.shape

    i1 = shared_points(kp1, s1, H_VIEW, shape, 1000)
    i2 = shared_points(kp2, s2, np.linalg.inv(H_VIEW), shape, 1000)
    matches = mutual_nn_matches(d1[i1], d2[i2], "l2")
    assert homography_correct(kp1[i1], kp2[i2], matches, H_VIEW, shape)[3]

    rep = repeatability_and_mle(kp1, kp2, H_VIEW, shape, shape, 3, s1, s2, keep_k=300)[0]
    rng = np.random.default_rng(0)
    rand1, rand2 = rng.uniform(0, 511, (300, 2)), rng.uniform(0, 511, (300, 2))
    rep_random = repeatability_and_mle(rand1, rand2, H_VIEW, shape, shape, 3)[0]
    assert rep > 0.3 and rep > 4 * rep_random

    r = evaluate_pair(kp1, s1, d1, kp2, s2, d2, H_VIEW, shape, shape, kind="viewpoint", metric="l2")
    assert r["hcorr@3"] and r["nn_map"] > 0.3 and r["matching_score"] > 0.1 and r["mle"] < 3

    H_est, inliers = estimate_homography(kp1[i1], kp2[i2], matches)
    assert H_est is not None and inliers.sum() > 20 and (~inliers).sum() > 0
    out = draw_matches(grey, warped, kp1[i1], kp2[i2], matches, inliers, tmp_path / "viz" / "sift.png")
    img = cv2.imread(str(out))
    assert img.shape == (512, 1024, 3)
    green = (img[..., 1] > 150) & (img[..., 0] < 80) & (img[..., 2] < 80)
    red = (img[..., 2] > 150) & (img[..., 0] < 80) & (img[..., 1] < 80)
    assert green.sum() > 100 and red.sum() > 10


def test_orb_matches_with_hamming(pair: tuple[np.ndarray, np.ndarray]) -> None:
    grey, warped = pair
    det = ClassicalDetector("orb", max_keypoints=1000)
    kp1, s1, d1 = det(grey)
    kp2, s2, d2 = det(warped)
    matches = mutual_nn_matches(d1, d2, det.metric)
    cv = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(d1, d2)
    # the same mutual matches as OpenCV's Hamming cross-check (up to ties, which are rare)
    ours = {tuple(m) for m in matches.tolist()}
    theirs = {(m.queryIdx, m.trainIdx) for m in cv}
    assert len(ours & theirs) >= 0.95 * max(len(ours), len(theirs))
    r = evaluate_pair(kp1, s1, d1, kp2, s2, d2, H_VIEW, grey.shape, grey.shape, kind="viewpoint", metric="hamming")
    assert r["hcorr@5"] and r["matching_score"] > 0.05
