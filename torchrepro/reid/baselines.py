"""Naive re-ID baselines that need no training.

:func:`colour_histogram_features` is the classic hand-crafted colour descriptor (per horizontal stripe HSV
histograms, as in the ELF/LOMO family of early re-ID features, without the texture channels): it tells how much
of a data set can be solved by clothing colour alone.  On the synthetic SAN/PIT-like set
(:mod:`torchrepro.reid.synthetic`) identities share garment colours and cameras have colour casts, so this
baseline should stay well below a trained CNN.
"""

from __future__ import annotations

import numpy as np

__all__ = ["colour_histogram_features", "rgb_to_hsv"]


def rgb_to_hsv(images: np.ndarray) -> np.ndarray:
    """uint8 RGB ``[..., 3]`` -> float32 HSV in ``[0, 1]`` (hue wraps at 1), vectorised."""
    rgb = images.astype(np.float32) / 255.0
    mx, mn = rgb.max(-1), rgb.min(-1)
    delta = mx - mn
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    safe = np.where(delta > 0, delta, 1.0)
    hue = np.where(mx == r, (g - b) / safe, np.where(mx == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
    hue = np.where(delta > 0, (hue / 6.0) % 1.0, 0.0)
    sat = np.where(mx > 0, delta / np.where(mx > 0, mx, 1.0), 0.0)
    return np.stack([hue, sat, mx], -1).astype(np.float32)


def colour_histogram_features(images: np.ndarray, bins: int = 8, stripes: int = 6) -> np.ndarray:
    """Joint HSV histograms of ``stripes`` horizontal stripes, concatenated: ``[N, stripes * bins**3]`` float32.

    Each stripe's histogram is L1-normalised (so stripes weigh equally whatever their height), square-rooted
    (Hellinger kernel: dampens the dominant background/garment bins) and the whole vector is L2-normalised, so
    the dot product is the cosine similarity.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 [N, H, W, 3], got {images.dtype} {images.shape}")
    n, h = images.shape[:2]
    if not 1 <= stripes <= h:
        raise ValueError(f"stripes must be in 1..{h} (image height), got {stripes}")
    hsv = rgb_to_hsv(images)
    q = np.minimum((hsv * bins).astype(np.int64), bins - 1)
    code = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]  # [N, H, W] joint bin
    stripe_of_row = np.arange(h) * stripes // h  # equal stripes (up to one row)
    dim = bins**3
    flat = (np.arange(n)[:, None, None] * stripes + stripe_of_row[None, :, None]) * dim + code
    hist = np.bincount(flat.reshape(-1), minlength=n * stripes * dim).astype(np.float32)
    hist = hist.reshape(n, stripes, dim)
    hist /= np.maximum(hist.sum(-1, keepdims=True), 1e-12)
    feats = np.sqrt(hist).reshape(n, stripes * dim)
    feats /= np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
    return feats
