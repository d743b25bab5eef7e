"""Classical corner detectors as heatmaps: the baselines of SuperPoint's synthetic-shapes table (§4, Fig. 4).

The paper compares MagicPoint with FAST, Harris and Shi-Tomasi on Synthetic Shapes (mAP 0.979 against 0.405,
0.678 and 0.686). As rpautrat/SuperPoint's ``classical_detectors``, each detector gives a response map over the
image, scaled to [0, 1] by its maximum, which then goes through the very same threshold → NMS → top-k as the
network's heatmap (:func:`torchrepro.superpoint.keypoints.extract_keypoints`), so that the detectors differ only in
their response:

* ``harris``: ``cv2.cornerHarris`` (block 4, Sobel aperture 3, k 0.04), negative (edge) responses set to 0;
* ``shi``: ``cv2.cornerMinEigenVal`` (block 3), the smaller eigenvalue of the structure tensor (Shi & Tomasi 1994);
* ``fast``: ``cv2.FastFeatureDetector`` (threshold 10, its own non-maximum suppression), each key point's
  response written at its pixel.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["CORNER_DETECTORS", "corner_heatmap"]

CORNER_DETECTORS: tuple[str, ...] = ("harris", "shi", "fast")


def _fast(image: np.ndarray) -> np.ndarray:
    response = np.zeros(image.shape, np.float32)
    for kp in cv2.FastFeatureDetector_create(threshold=10, nonmaxSuppression=True).detect(image):
        x, y = int(round(kp.pt[0])), int(round(kp.pt[1]))
        response[y, x] = max(response[y, x], kp.response)
    return response


def corner_heatmap(image: np.ndarray, detector: str) -> np.ndarray:
    """Response map [H, W] float32 in [0, 1] of ``detector`` on a grey uint8 image [H, W]."""
    if detector == "harris":
        response = cv2.cornerHarris(image.astype(np.float32), 4, 3, 0.04)
    elif detector == "shi":
        response = cv2.cornerMinEigenVal(image.astype(np.float32), 3)
    elif detector == "fast":
        response = _fast(image)
    else:
        raise ValueError(f"unknown corner detector {detector!r}: choose one of {', '.join(CORNER_DETECTORS)}")
    response = np.clip(response, 0.0, None)
    peak = float(response.max())
    return (response / peak if peak > 0 else response).astype(np.float32)
