"""Classical baselines of SuperPoint §7 Table 4 (DeTone et al., CVPRW 2018): OpenCV's SIFT and ORB, plus a
match-drawing helper.

The reference (rpautrat/SuperPoint ``superpoint/models/classical_detectors_descriptors.py``) runs
``SIFT_create(nfeatures=1500)`` / ``ORB_create(nfeatures=1500)`` on the grey image, writes the responses into a
keypoint map at the truncated integer coordinates and lets the evaluation keep the best points (NMS, top-k); SIFT
descriptors are compared with L2, ORB's 256-bit binary descriptors with Hamming (``cv2.NORM_HAMMING``). We keep
OpenCV's sub-pixel coordinates and cap the count at ``max_keypoints`` directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from torchrepro.core.errors import DataError

DESCRIPTOR_METRIC = {"sift": "l2", "orb": "hamming"}
_DESC_DIM = {"sift": 128, "orb": 32}  # float dims for SIFT, bytes (256 bits) for ORB


class ClassicalDetector:
    """OpenCV SIFT or ORB as a detector + descriptor: ``det(grey) -> (kp_xy, scores, desc)``.

    Args:
        name: ``"sift"`` (float32 ``[N, 128]`` descriptors, L2) or ``"orb"`` (uint8 ``[N, 32]`` packed bits,
            Hamming); :attr:`metric` says which.
        max_keypoints: at most this many points, the highest OpenCV ``response`` first.

    Keypoints are ``(x, y)`` float32 in OpenCV's pixel convention (pixel centres at integer coordinates); the
    scores are the keypoint responses. SIFT reports a point once per dominant orientation; we keep only the
    strongest of points at identical coordinates so duplicates do not inflate the counts or break mutual NN.
    """

    def __init__(self, name: Literal["sift", "orb"] = "sift", max_keypoints: int = 1000) -> None:
        if name not in DESCRIPTOR_METRIC:
            raise ValueError(f"classical detector {name!r} unknown: use 'sift' or 'orb'")
        if max_keypoints < 1:
            raise ValueError(f"max_keypoints={max_keypoints} must be positive")
        self.name = name
        self.max_keypoints = int(max_keypoints)
        self.metric = DESCRIPTOR_METRIC[name]
        if name == "sift":
            self._cv = cv2.SIFT_create(nfeatures=self.max_keypoints)
        else:
            self._cv = cv2.ORB_create(nfeatures=self.max_keypoints)

    def _empty(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        dtype = np.float32 if self.name == "sift" else np.uint8
        return np.zeros((0, 2), np.float32), np.zeros(0, np.float32), np.zeros((0, _DESC_DIM[self.name]), dtype)

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Detect and describe on a grey ``uint8`` ``H×W`` image (an RGB ``H×W×3`` one is converted first).

        Returns:
            ``(kp_xy float32 [N, 2], scores float32 [N], desc [N, D])`` sorted by decreasing score.
        """
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
            raise DataError(f"{self.name.upper()} needs a uint8 HxW grey (or HxWx3 RGB) image; got "
                            f"{image.dtype} {image.shape}")
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
        keypoints, desc = self._cv.detectAndCompute(np.ascontiguousarray(grey), None)
        if not keypoints or desc is None:
            return self._empty()
        kp = np.array([k.pt for k in keypoints], dtype=np.float32).reshape(-1, 2)
        scores = np.array([k.response for k in keypoints], dtype=np.float32)
        order = np.argsort(-scores, kind="stable")
        kp, scores, desc = kp[order], scores[order], desc[order]
        # After sorting, np.unique's first occurrence of each location is its strongest orientation.
        _, first = np.unique(kp, axis=0, return_index=True)
        keep = np.sort(first)[: self.max_keypoints]
        dtype = np.float32 if self.name == "sift" else np.uint8
        return kp[keep], scores[keep], np.ascontiguousarray(desc[keep], dtype=dtype)


def _to_bgr(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)


def draw_matches(
    image1: np.ndarray,
    image2: np.ndarray,
    kp1: np.ndarray,
    kp2: np.ndarray,
    matches: np.ndarray,
    inlier_mask: np.ndarray | None,
    out_png: str | Path,
) -> Path:
    """Write a side-by-side PNG of the two images (grey or RGB ``uint8``) with a line per match: green for inliers,
    red for outliers (``inlier_mask`` ``[K]`` bool; ``None`` = all inliers), in the style of the references'
    ``draw_matches`` (eric-yyjau ``utils/draw.py``).

    Args:
        matches: ``[K, 2]`` index pairs into ``kp1`` / ``kp2`` (``(x, y)`` points).

    Returns:
        The written path.
    """
    left, right = _to_bgr(image1), _to_bgr(image2)
    h = max(left.shape[0], right.shape[0])
    canvas = np.zeros((h, left.shape[1] + right.shape[1], 3), np.uint8)
    canvas[: left.shape[0], : left.shape[1]] = left
    canvas[: right.shape[0], left.shape[1] :] = right
    matches = np.asarray(matches, dtype=np.int64).reshape(-1, 2)
    mask = np.ones(len(matches), bool) if inlier_mask is None else np.asarray(inlier_mask, bool).reshape(-1)
    if len(mask) != len(matches):
        raise ValueError(f"inlier_mask has {len(mask)} entries for {len(matches)} matches")
    p1 = np.asarray(kp1, dtype=np.float64).reshape(-1, 2)
    p2 = np.asarray(kp2, dtype=np.float64).reshape(-1, 2) + [left.shape[1], 0]
    # Outliers first so the (usually fewer, more important) green inlier lines are drawn on top.
    for k in np.r_[np.flatnonzero(~mask), np.flatnonzero(mask)]:
        color = (0, 200, 0) if mask[k] else (0, 0, 230)  # BGR
        a = tuple(int(round(v)) for v in p1[matches[k, 0]])
        b = tuple(int(round(v)) for v in p2[matches[k, 1]])
        cv2.line(canvas, a, b, color, 1, cv2.LINE_AA)
        cv2.circle(canvas, a, 2, color, -1, cv2.LINE_AA)
        cv2.circle(canvas, b, 2, color, -1, cv2.LINE_AA)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out_png), canvas):
        raise DataError(f"could not write {out_png}: check the folder is writable and the name ends in .png")
    return out_png
