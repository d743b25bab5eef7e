"""Raster helpers shared by the synthetic image generators: colour, lattice noise, blur and camera response.

Every function is a plain NumPy computation whose order of floating-point operations is part of its
contract: the generators' files are byte-identical across versions only while these stay as they are.
"""

from __future__ import annotations

import colorsys

import numpy as np

__all__ = ["RGB", "bilinear_lattice", "blur121", "camera_response", "hsv_to_rgb", "to_uint8"]

RGB = tuple[float, float, float]


def hsv_to_rgb(h: float, s: float, v: float) -> RGB:
    """HSV -> RGB as plain floats, the hue wrapped into [0, 1) and saturation and value clipped to [0, 1]."""
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1)))
    return (float(r), float(g), float(b))


def bilinear_lattice(lattice: np.ndarray, i0: np.ndarray, wi: np.ndarray, j0: np.ndarray,
                     wj: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of a 2-D ``lattice`` at rows ``i0 + wi`` and columns ``j0 + wj`` (value noise).

    ``i0``/``j0`` are the integer lattice cells of the output rows/columns and ``wi``/``wj`` the fractions
    inside them; the lattice must reach ``i0 + 1`` and ``j0 + 1``. Columns are interpolated first (on the
    small lattice), then rows: the result has shape ``(len(i0), len(j0))`` and the dtype the inputs promote to.
    """
    cols = lattice[:, j0] * (1 - wj)[None, :] + lattice[:, j0 + 1] * wj[None, :]
    return cols[i0] * (1 - wi)[:, None] + cols[i0 + 1] * wi[:, None]


def blur121(img: np.ndarray) -> np.ndarray:
    """Separable [1, 2, 1] / 4 blur of an (H, W, C) image with edge replication (slight defocus or motion)."""
    p = np.pad(img, ((1, 1), (0, 0), (0, 0)), mode="edge")
    img = 0.25 * p[:-2] + 0.5 * p[1:-1] + 0.25 * p[2:]
    p = np.pad(img, ((0, 0), (1, 1), (0, 0)), mode="edge")
    return 0.25 * p[:, :-2] + 0.5 * p[:, 1:-1] + 0.25 * p[:, 2:]


def camera_response(img: np.ndarray, contrast: float, brightness: float, gain: RGB, blur_passes: int,
                    noise_sigma: float, rng: np.random.Generator) -> np.ndarray:
    """A camera's look on a linear (H, W, 3) image in [0, 1]: contrast about mid-grey, exposure times a
    white-balance ``gain`` per channel, ``blur_passes`` of :func:`blur121`, then Gaussian sensor noise."""
    img = (img - 0.5) * contrast + 0.5
    img = img * (brightness * np.asarray(gain, np.float32))
    for _ in range(blur_passes):
        img = blur121(img)
    return img + noise_sigma * rng.standard_normal(img.shape, dtype=np.float32)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """An image in [0, 1] (values outside are clipped) as uint8, rounded half up."""
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
