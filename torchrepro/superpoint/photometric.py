"""Photometric augmentation of grey images for SuperPoint (DeTone et al., CVPRW 2018).

MagicPoint is trained on synthetic shapes made "more robust to noise and certain photometric changes" (§4, §5)
by random brightness and contrast changes, Gaussian and speckle noise, shading and motion blur. The primitives,
their parameters and the way they combine follow the reference implementation (rpautrat/SuperPoint
``superpoint/datasets/utils/photometric_augmentation.py`` and ``datasets/utils/pipeline.py``), with the values of
the synthetic-shapes config (rpautrat ``configs/magic-point_shapes.yaml`` = eric-yyjau/pytorch-superpoint
``configs/magicpoint_shapes_pair.yaml``, ``augmentation.photometric``).

Images are grey (H×W, or H×W×C with every channel treated alike) with intensities in ``[0, 255]`` (uint8 or
float). Every primitive is a pure function of its input and of an ``np.random.Generator`` and returns float32
clipped to ``[0, 255]``, as the reference clips after each primitive.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from torchrepro.superpoint.augment_config import PHOTOMETRIC_PRIMITIVES as PRIMITIVES, PhotometricConfig

__all__ = ["PRIMITIVES", "PhotometricConfig", "additive_gaussian_noise", "additive_shade", "additive_speckle_noise",
           "motion_blur", "photometric_augment", "random_brightness", "random_contrast"]


def _as_float(image: np.ndarray) -> np.ndarray:
    return np.asarray(image, dtype=np.float32)


def _clip(image: np.ndarray) -> np.ndarray:
    return np.clip(image, 0.0, 255.0).astype(np.float32, copy=False)


# ---------------------------------------------------------------------------------------------------- primitives
def random_brightness(image: np.ndarray, rng: np.random.Generator, max_abs_change: float = 75.0) -> np.ndarray:
    """Add one value drawn uniformly in ``[-max_abs_change, max_abs_change]`` (``tf.image.random_brightness``)."""
    return _clip(_as_float(image) + np.float32(rng.uniform(-max_abs_change, max_abs_change)))


def random_contrast(image: np.ndarray, rng: np.random.Generator,
                    strength_range: tuple[float, float] = (0.3, 1.8)) -> np.ndarray:
    """Scale the deviations from the image mean (per channel) by a factor drawn uniformly in ``strength_range``
    (``tf.image.random_contrast``)."""
    img = _as_float(image)
    factor = np.float32(rng.uniform(*strength_range))
    mean = img.mean(axis=(0, 1), keepdims=True, dtype=np.float64).astype(np.float32)
    return _clip((img - mean) * factor + mean)


def additive_gaussian_noise(image: np.ndarray, rng: np.random.Generator,
                            stddev_range: tuple[float, float] = (0.0, 15.0)) -> np.ndarray:
    """Add i.i.d. Gaussian noise whose std is drawn uniformly in ``stddev_range`` (grey levels)."""
    img = _as_float(image)
    std = rng.uniform(*stddev_range)
    return _clip(img + (std * rng.standard_normal(img.shape)).astype(np.float32))


def additive_speckle_noise(image: np.ndarray, rng: np.random.Generator,
                           prob_range: tuple[float, float] = (0.0, 0.0035)) -> np.ndarray:
    """Salt and pepper: with ``p`` drawn uniformly in ``prob_range``, each pixel turns black with probability
    ``p`` and white with probability ``p``."""
    img = _as_float(image).copy()
    prob = rng.uniform(*prob_range)
    u = rng.random(img.shape)
    img[u <= prob] = 0.0
    img[u >= 1.0 - prob] = 255.0
    return _clip(img)


def _shade_mask(rng: np.random.Generator, shape: tuple[int, int], nb_ellipses: int) -> np.ndarray:
    """``nb_ellipses`` filled random ellipses (255 on 0), semi-axes between 1/20 and 1/4 of the short side."""
    h, w = shape
    min_dim = min(h, w) / 4
    mask = np.zeros((h, w), np.uint8)
    for _ in range(nb_ellipses):
        ax = int(max(rng.random() * min_dim, min_dim / 5))
        ay = int(max(rng.random() * min_dim, min_dim / 5))
        max_rad = max(ax, ay)
        x = int(rng.integers(max_rad, max(w - max_rad, max_rad + 1)))  # centre: the ellipse fits in the image
        y = int(rng.integers(max_rad, max(h - max_rad, max_rad + 1)))
        angle = rng.random() * 90
        cv2.ellipse(mask, (x, y), (ax, ay), angle, 0, 360, 255, -1)
    return mask


def additive_shade(image: np.ndarray, rng: np.random.Generator, nb_ellipses: int = 20,
                   transparency_range: tuple[float, float] = (-0.5, 0.8),
                   kernel_size_range: tuple[int, int] = (50, 100), kernel_reference_size: int = 120) -> np.ndarray:
    """Darken (transparency > 0) or brighten (< 0) the image under blurred random ellipses:
    ``image · (1 - transparency · mask)`` with ``mask`` in [0, 1].

    The Gaussian blur kernel side is drawn in ``[kernel_size_range[0], kernel_size_range[1])`` (made odd). The
    reference applies its kernel sizes to images already resized to 120×160 (the shapes pipeline resizes, then
    augments), so the sizes are pixels of an image whose short side is ``kernel_reference_size`` (120): on an
    image with short side ``s`` the kernel is scaled by ``s / kernel_reference_size`` (0 disables the scaling). At
    120×160 this is exactly the reference; the ellipses already scale with the image in the reference.
    """
    img = _as_float(image)
    h, w = img.shape[:2]
    mask = _shade_mask(rng, (h, w), nb_ellipses)
    transparency = rng.uniform(*transparency_range)
    low, high = int(kernel_size_range[0]), int(kernel_size_range[1])
    kernel = low if high <= low else int(rng.integers(low, high))
    if kernel_reference_size > 0:
        kernel = int(round(kernel * min(h, w) / kernel_reference_size))
    kernel = max(kernel, 1)
    kernel += 1 - kernel % 2  # GaussianBlur needs an odd side
    blurred = cv2.GaussianBlur(mask.astype(np.float32), (kernel, kernel), 0) / 255.0
    shade = 1.0 - transparency * blurred
    return _clip(img * (shade[..., None] if img.ndim == 3 else shade))


def _motion_kernel(mode: str, ksize: int) -> np.ndarray:
    """A line kernel (horizontal, vertical or one diagonal) weighted by a Gaussian of variance ksize²/16."""
    centre = (ksize - 1) // 2
    if mode == "h":
        kernel = np.zeros((ksize, ksize))
        kernel[centre, :] = 1.0
    elif mode == "v":
        kernel = np.zeros((ksize, ksize))
        kernel[:, centre] = 1.0
    elif mode == "diag_down":
        kernel = np.eye(ksize)
    else:  # diag_up
        kernel = np.flipud(np.eye(ksize))
    grid = np.arange(ksize)[:, None] - centre
    gaussian = np.exp(-(grid ** 2 + grid.T ** 2) / (2.0 * ksize * ksize / 16.0))
    kernel = kernel * gaussian
    return kernel / kernel.sum()


def motion_blur(image: np.ndarray, rng: np.random.Generator, max_kernel_size: int = 7) -> np.ndarray:
    """Blur along a random direction (horizontal, vertical, two diagonals) with an odd kernel side drawn in
    ``{1, 3, …, max_kernel_size}`` (the largest odd side ≤ max_kernel_size; side 1 leaves the image as is).
    The kernel sums to 1, so constant regions keep their value."""
    img = _as_float(image)
    mode = ("h", "v", "diag_down", "diag_up")[int(rng.integers(0, 4))]
    ksize = int(rng.integers(0, (max_kernel_size + 1) // 2)) * 2 + 1
    kernel = _motion_kernel(mode, ksize).astype(np.float32)
    return _clip(cv2.filter2D(img, -1, kernel))


def _primitive_calls(cfg: PhotometricConfig) -> dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]]:
    """Each primitive bound to its parameters from ``cfg``."""
    return {
        "random_brightness": lambda im, rng: random_brightness(im, rng, cfg.max_abs_change),
        "random_contrast": lambda im, rng: random_contrast(im, rng, tuple(cfg.strength_range)),
        "additive_speckle_noise": lambda im, rng: additive_speckle_noise(im, rng, tuple(cfg.prob_range)),
        "additive_gaussian_noise": lambda im, rng: additive_gaussian_noise(im, rng, tuple(cfg.stddev_range)),
        "additive_shade": lambda im, rng: additive_shade(im, rng, cfg.nb_ellipses, tuple(cfg.transparency_range),
                                                         tuple(cfg.kernel_size_range), cfg.kernel_reference_size),
        "motion_blur": lambda im, rng: motion_blur(im, rng, cfg.max_kernel_size),
    }


def photometric_augment(image: np.ndarray, rng: np.random.Generator, cfg: PhotometricConfig) -> np.ndarray:
    """Apply ``cfg.primitives`` to ``image`` (grey, [0, 255]), in a random order drawn from ``rng`` when
    ``cfg.random_order`` (as the reference's ``tf.random_shuffle``), each clipping to [0, 255].

    Returns float32 in [0, 255]; with ``cfg.enable`` false, the image converted and clipped, ``rng`` untouched.
    """
    out = _clip(_as_float(image))
    if not cfg.enable:
        return out
    calls = _primitive_calls(cfg)
    names = list(cfg.primitives)
    order = rng.permutation(len(names)) if cfg.random_order else range(len(names))
    for i in order:
        out = calls[names[i]](out, rng)
    return out
