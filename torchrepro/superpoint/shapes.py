"""Synthetic Shapes: the MagicPoint pre-training set (SuperPoint §4 "MagicPoint: Synthetic pre-training", Fig. 4).

SuperPoint pre-trains its detector on simple rendered shapes whose corners are known exactly: lines, polygons,
ellipses, stars, checkerboards, stripes, cubes and pure noise, each drawn on a textured random background. The
ground truth are the junctions a human would agree on ("Y-, L-, T-junctions, centres of tiny ellipses and end
points of line segments", §4) — only those visible in the final image.

This module follows rpautrat/SuperPoint (``superpoint/datasets/synthetic_dataset.py`` for the drawing and
``synthetic_shapes.py`` for the dump, with that file's generation parameters), with our own code:

* every primitive draws on :func:`generate_background` (binary noise thresholded at a random level, random
  filled circles, a large box blur) at a *generation* size, returning its junctions in that image's pixels;
* :func:`downsample` then blurs (Gaussian, 11 px at 960x1280) and resizes with ``INTER_AREA`` to the output size
  (the reference's dump uses ``INTER_LINEAR`` after that blur; area averaging anti-aliases better at 4x and more)
  and maps the points with the resize's own pixel-centre transform (the reference's ``points * out / in`` forgets
  the half-pixel shift, a 0.375 px bias towards the top-left at 4x; we do not copy it);
* randomness comes from one :class:`numpy.random.Generator` per sample, so a sample is a pure function of its
  seed (the reference uses a global ``RandomState`` and, in places, the unseeded ``np.random``).

Sizes: the reference generates at 960x1280 and stores 240x320 (a 4x reduction). Our default output is the seed
config's 120x160 and the default generation size keeps the same 4x ratio (480x640), which is also 2-3x faster than
960x1280 (measured on one core: ~3 ms against ~9 ms a sample on average; see ``DEFAULT_GENERATION_SIZE``).
Pixel-valued parameters of the reference (blur kernels, blob radii) are scaled with the generation size;
parameters relative to the image size are kept as they are.

Visibility deviations, all towards "only visible junctions are points": lines shorter than 5 % of the image's
smaller side are skipped (a dot has no end points to see); a polygon of ``draw_multiple_polygons`` that would
cover the corner of an earlier one is skipped, like the reference's overlap tests that it complements; and the
random homography of checkerboards and stripes is redrawn when the board crosses its horizon (the reference then
fills garbage polygons over the whole image and labels junctions that are not there, ~13 % of its stripes).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from torchrepro.core.errors import ConfigError
from torchrepro.core.generated import publish_once, read_stamp
from torchrepro.core.seeding import derive_seed
from torchrepro.superpoint.shapes_format import PRIMITIVES, SPLITS, write_sample

__all__ = [
    "DEFAULT_GENERATION_SIZE", "DEFAULT_SIZE", "GENERATOR_NAME", "GENERATOR_VERSION", "PRIMITIVES",
    "REFERENCE_GENERATION_SIZE", "cube_corners", "downsample", "draw_checkerboard", "draw_cube", "draw_ellipses",
    "draw_lines", "draw_multiple_polygons", "draw_polygon", "draw_star", "draw_stripes", "fill_polygon",
    "gaussian_noise", "generate_background", "generate_shape", "generation_size_for", "sample_seed", "write_shapes",
]

log = logging.getLogger(__name__)

#: Bump whenever the generated files would change (drawing, parameters, down-sampling, layout).
GENERATOR_VERSION = 1
GENERATOR_NAME = "torchrepro.superpoint.shapes"
#: The reference's generation size (rows, cols); its pixel-valued parameters are expressed at this size.
REFERENCE_GENERATION_SIZE = (960, 1280)
#: Output size (rows, cols): the seed config's training size.
DEFAULT_SIZE = (120, 160)
#: Generation size (rows, cols) of the default output: 4x, the reference's ratio (960x1280 -> 240x320). At
#: 960x1280 a sample costs 2-3x more (full-size noise, blurs and textures) for detail 120x160 cannot show.
DEFAULT_GENERATION_SIZE = (480, 640)
#: Down-sampling factor of the reference, and the smallest canvas side we draw on (tiny outputs get a larger factor).
GENERATION_FACTOR = 4
MIN_GENERATION_SIDE = 240
#: Gaussian blur before down-sampling, in pixels at the reference generation size (``blur_size`` of the reference).
BLUR_SIZE = 11

Points = np.ndarray  # float64 [N, 2], (x, y) pixel coordinates of the image drawn on
Drawer = Callable[[np.random.Generator, np.ndarray], Points]


# ------------------------------------------------------------------------------------------------ small helpers
def _scale(image: np.ndarray) -> float:
    """How much larger ``image`` is than the reference generation size (for pixel-valued parameters)."""
    return min(image.shape[:2]) / min(REFERENCE_GENERATION_SIZE)


def _odd(n: float) -> int:
    """The odd kernel size at or just below ``n`` (at least 1)."""
    k = int(n)
    return k if k % 2 == 1 else max(1, k - 1)


def _randint(rng: np.random.Generator, low: float, high: float) -> int:
    """``randint(int(low), int(high))`` as the reference calls it with float bounds; ``low`` when the range is empty."""
    low, high = int(low), int(high)
    return low if high <= low else int(rng.integers(low, high))


def _random_colors(rng: np.random.Generator, background: float, n: int) -> np.ndarray:
    """``n`` grey levels, each at least 30 away from ``background`` (the reference's ``get_random_color``)."""
    colors = rng.integers(0, 256, n)
    return np.where(np.abs(colors - background) < 30, (colors + 128) % 256, colors)


def _random_color(rng: np.random.Generator, background: float) -> int:
    """One grey level at least 30 away from ``background``."""
    return int(_random_colors(rng, background, 1)[0])


def _different_color(rng: np.random.Generator, previous: Sequence[int], min_dist: int = 50,
                     max_count: int = 20) -> int:
    """A grey level ``min_dist`` away from all ``previous`` ones, if found in ``max_count`` tries."""
    color = int(rng.integers(256))
    for _ in range(max_count):
        if not any(abs(color - p) < min_dist for p in previous):
            break
        color = int(rng.integers(256))
    return color


def _no_points() -> Points:
    return np.zeros((0, 2), np.float64)


def _keep_inside(points: np.ndarray, shape: tuple[int, ...]) -> Points:
    """Points with ``0 <= x < W`` and ``0 <= y < H`` (the reference's ``keep_points_inside``)."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    inside = (pts[:, 0] >= 0) & (pts[:, 0] < shape[1]) & (pts[:, 1] >= 0) & (pts[:, 1] < shape[0])
    return pts[inside]


def _ccw(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    return (c[..., 1] - a[..., 1]) * (b[..., 0] - a[..., 0]) > (b[..., 1] - a[..., 1]) * (c[..., 0] - a[..., 0])


def _segments_intersect(old: np.ndarray, new: np.ndarray) -> bool:
    """True when any segment of ``new`` [K, 4] (x1, y1, x2, y2) crosses any of ``old`` [M, 4]."""
    if len(old) == 0 or len(new) == 0:
        return False
    a, b = old[:, None, 0:2], old[:, None, 2:4]
    c, d = new[None, :, 0:2], new[None, :, 2:4]
    return bool(np.any((_ccw(a, c, d) != _ccw(b, c, d)) & (_ccw(a, b, c) != _ccw(a, b, d))))


def _closed_segments(vertices: np.ndarray) -> np.ndarray:
    """The edges [K, 4] of the closed polygon through ``vertices`` [K, 2]."""
    return np.concatenate([vertices, np.roll(vertices, -1, axis=0)], axis=1).astype(np.float64)


# ------------------------------------------------------------------------------------------------- backgrounds
def generate_background(rng: np.random.Generator, size: tuple[int, int] = REFERENCE_GENERATION_SIZE,
                        nb_blobs: int = 100, min_rad_ratio: float = 0.02, max_rad_ratio: float = 0.031,
                        min_kernel_size: int = 150, max_kernel_size: int = 500) -> np.ndarray:
    """The textured random background every primitive draws on (reference ``generate_background``).

    Binary noise (uniform noise thresholded at a random level), ``nb_blobs`` filled circles of random grey levels
    that contrast with its mean, then a box blur of a random large kernel. The defaults are those of the
    reference's ``synthetic_shapes.py`` config; kernel sizes are in pixels at 960x1280 and scaled with ``size``.
    """
    height, width = size
    img = rng.integers(0, 256, (height, width), dtype=np.uint8)
    cv2.threshold(img, int(rng.integers(256)), 255, cv2.THRESH_BINARY, img)
    background = float(img.mean())
    dim = max(size)
    xs, ys = rng.integers(0, width, nb_blobs), rng.integers(0, height, nb_blobs)
    radii = rng.integers(int(dim * min_rad_ratio), max(int(dim * max_rad_ratio), int(dim * min_rad_ratio) + 1),
                         nb_blobs)
    colors = _random_colors(rng, background, nb_blobs)
    for x, y, r, c in zip(xs.tolist(), ys.tolist(), radii.tolist(), colors.tolist()):
        cv2.circle(img, (x, y), r, c, -1)
    scale = min(size) / min(REFERENCE_GENERATION_SIZE)
    kernel = max(1, _randint(rng, min_kernel_size * scale, max_kernel_size * scale))
    cv2.blur(img, (kernel, kernel), img)
    return img


def _texture(rng: np.random.Generator, shape: tuple[int, int], background: float, density: float,
             max_radius: int, kernel_boundaries: tuple[int, int]) -> np.ndarray:
    """The blurred blob texture that fills a polygon (reference ``generate_custom_background``).

    ``density`` is blobs per pixel, so a texture cut to a polygon's box looks like the reference's full-image one.
    """
    img = np.full(shape, _random_color(rng, background), np.uint8)
    n = max(1, int(round(density * shape[0] * shape[1])))
    xs, ys = rng.integers(0, shape[1], n), rng.integers(0, shape[0], n)
    radii, colors = rng.integers(0, max(1, max_radius), n), _random_colors(rng, background, n)
    for x, y, r, c in zip(xs.tolist(), ys.tolist(), radii.tolist(), colors.tolist()):
        cv2.circle(img, (x, y), r, c, -1)
    kernel = max(1, _randint(rng, *kernel_boundaries))
    cv2.blur(img, (kernel, kernel), img)
    return img


# ------------------------------------------------------------------------------------------------------- lines
def draw_lines(rng: np.random.Generator, image: np.ndarray, nb_lines: int = 10) -> Points:
    """Up to ``nb_lines - 1`` non-crossing segments; the points are their end points (reference ``draw_lines``)."""
    height, width = image.shape
    min_dim = min(image.shape)
    background = float(image.mean())
    segments, points = np.zeros((0, 4)), []
    for _ in range(int(rng.integers(1, nb_lines))):
        x1, y1, x2, y2 = (int(v) for v in rng.integers(0, [width, height, width, height]))
        new = np.array([[x1, y1, x2, y2]], np.float64)
        if _segments_intersect(segments, new) or math.hypot(x2 - x1, y2 - y1) < 0.05 * min_dim:
            continue  # crossings make X-junctions the reference never labels; a dot has no visible ends
        segments = np.concatenate([segments, new])
        thickness = max(1, _randint(rng, min_dim * 0.01, min_dim * 0.02))
        cv2.line(image, (x1, y1), (x2, y2), _random_color(rng, background), thickness)
        points += [(x1, y1), (x2, y2)]
    return np.array(points, np.float64).reshape(-1, 2)


# ---------------------------------------------------------------------------------------------------- polygons
def _drop_flat_corners(vertices: np.ndarray) -> np.ndarray:
    """Drop repeated vertices, then corners flatter than 120° (not a junction one can see; as the reference)."""
    vertices = vertices[np.hypot(*(vertices[[-1, *range(len(vertices) - 1)]] - vertices).T) > 0.01]
    if len(vertices) < 3:
        return vertices
    to_prev = vertices[[-1, *range(len(vertices) - 1)]] - vertices
    to_next = vertices[[*range(1, len(vertices)), 0]] - vertices
    cos = (to_prev * to_next).sum(1) / (np.hypot(*to_prev.T) * np.hypot(*to_next.T))
    return vertices[np.arccos(np.clip(cos, -1.0, 1.0)) < 2 * math.pi / 3]


def _random_polygon(rng: np.random.Generator, shape: tuple[int, ...], max_sides: int
                    ) -> tuple[np.ndarray, tuple[int, int], float]:
    """Vertices [K, 2] (int-valued, K may drop below 3), centre and radius of a random star-shaped polygon.

    One vertex per equal angular slice of a circle, at 40-100 % of the radius (reference ``draw_polygon``).
    """
    num_corners = int(rng.integers(3, max_sides))
    min_dim = min(shape[0], shape[1])
    rad = max(rng.random() * min_dim / 2, min_dim / 10)
    x, y = _randint(rng, rad, shape[1] - rad), _randint(rng, rad, shape[0] - rad)
    slices = np.linspace(0, 2 * math.pi, num_corners + 1)
    angles = slices[:-1] + rng.random(num_corners) * np.diff(slices)
    dists = np.maximum(rng.random((num_corners, 2)), 0.4) * rad
    vertices = np.stack([x + dists[:, 0] * np.cos(angles), y + dists[:, 1] * np.sin(angles)], axis=1)
    return _drop_flat_corners(vertices.astype(np.int64).astype(np.float64)), (x, y), rad


def fill_polygon(image: np.ndarray, vertices: np.ndarray, color: int) -> Points:
    """Fill the polygon through the integer pixel ``vertices`` [K, 2] (x, y); returns its corners as points."""
    corners = np.asarray(vertices, np.float64).reshape(-1, 2)
    cv2.fillPoly(image, [corners.astype(np.int32).reshape(-1, 1, 2)], int(color))
    return corners.copy()


def draw_polygon(rng: np.random.Generator, image: np.ndarray, max_sides: int = 8) -> Points:
    """One filled polygon with 3 to ``max_sides - 1`` corners; the points are its corners (reference)."""
    while True:  # the reference redraws until at least 3 corners survive the flat-corner filter
        vertices, _, _ = _random_polygon(rng, image.shape, max_sides)
        if len(vertices) >= 3:
            return fill_polygon(image, vertices, _random_color(rng, float(image.mean())))


def _polygon_mask(shape: tuple[int, ...], vertices: np.ndarray) -> tuple[np.ndarray, tuple[slice, slice]]:
    """The filled polygon as a 0/255 mask over its bounding box, and that box as slices of the image."""
    x0, y0 = np.maximum(vertices.min(axis=0).astype(int), 0)
    x1, y1 = np.minimum(vertices.max(axis=0).astype(int) + 1, [shape[1], shape[0]])
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(mask, [(vertices - [x0, y0]).astype(np.int32).reshape(-1, 1, 2)], 255)
    return mask, (slice(y0, y1), slice(x0, x1))


def _covers(mask: np.ndarray, box: tuple[slice, slice], points: np.ndarray) -> bool:
    """True when any of ``points`` (x, y) falls on the mask (it would be painted over)."""
    if len(points) == 0:
        return False
    xs, ys = points[:, 0].astype(int) - box[1].start, points[:, 1].astype(int) - box[0].start
    ok = (xs >= 0) & (xs < mask.shape[1]) & (ys >= 0) & (ys < mask.shape[0])
    return bool(np.any(mask[ys[ok], xs[ok]]))


def _nested(center: tuple[int, int], rad: float, centers: list[tuple[int, int]], rads: list[float]) -> bool:
    """The reference's ``overlap``: one polygon's circle lies inside another's."""
    return any(math.dist(center, c) + min(rad, r) < max(rad, r) for c, r in zip(centers, rads))


def draw_multiple_polygons(rng: np.random.Generator, image: np.ndarray, max_sides: int = 8, nb_polygons: int = 30,
                           kernel_boundaries: tuple[int, int] = (50, 100)) -> Points:
    """Up to ``nb_polygons`` non-overlapping polygons filled with blob textures (reference).

    A polygon whose edges cross an earlier one's, whose circle nests with an earlier one's, or that would cover an
    earlier corner is skipped, so every returned corner stays visible. The texture is the reference's 3000 blobs
    of radius < 20 px and box blur ``kernel_boundaries`` (px at 960x1280), drawn only over the polygon's box.
    """
    scale, background = _scale(image), float(image.mean())
    density = 3000 / (REFERENCE_GENERATION_SIZE[0] * REFERENCE_GENERATION_SIZE[1] * scale ** 2)
    kernels = (max(1, int(kernel_boundaries[0] * scale)), max(2, int(kernel_boundaries[1] * scale)))
    segments, points = np.zeros((0, 4)), np.zeros((0, 2))
    centers: list[tuple[int, int]] = []
    rads: list[float] = []
    for _ in range(nb_polygons):
        vertices, center, rad = _random_polygon(rng, image.shape, max_sides)
        if len(vertices) < 3:
            continue
        new_segments = _closed_segments(vertices)
        if _segments_intersect(segments, new_segments) or _nested(center, rad, centers, rads):
            continue
        mask, box = _polygon_mask(image.shape, vertices)
        if _covers(mask, box, points):
            continue
        texture = _texture(rng, mask.shape, background, density, int(20 * scale), kernels)
        image[box][mask > 0] = texture[mask > 0]
        segments, points = np.concatenate([segments, new_segments]), np.concatenate([points, vertices])
        centers.append(center)
        rads.append(rad)
    return points


# ---------------------------------------------------------------------------------------------------- ellipses
def draw_ellipses(rng: np.random.Generator, image: np.ndarray, nb_ellipses: int = 20) -> Points:
    """Up to ``nb_ellipses`` disjoint filled ellipses; they have no junctions, so no points (reference)."""
    quarter = min(image.shape) / 4
    background = float(image.mean())
    centers, rads = np.zeros((0, 2)), np.zeros(0)
    for _ in range(nb_ellipses):
        ax = int(max(rng.random() * quarter, quarter / 5))
        ay = int(max(rng.random() * quarter, quarter / 5))
        max_rad = max(ax, ay)
        x, y = _randint(rng, max_rad, image.shape[1] - max_rad), _randint(rng, max_rad, image.shape[0] - max_rad)
        if np.any(max_rad > np.hypot(centers[:, 0] - x, centers[:, 1] - y) - rads):
            continue  # overlaps an earlier ellipse's circle
        centers, rads = np.concatenate([centers, [[x, y]]]), np.concatenate([rads, [max_rad]])
        color, angle = _random_color(rng, background), rng.random() * 90
        cv2.ellipse(image, (x, y), (ax, ay), angle, 0, 360, color, -1)
    return _no_points()


# -------------------------------------------------------------------------------------------------------- star
def draw_star(rng: np.random.Generator, image: np.ndarray, nb_branches: int = 6) -> Points:
    """3 to ``nb_branches - 1`` segments from a common centre; points: the centre and the tips (reference)."""
    num_branches = int(rng.integers(3, nb_branches))
    min_dim = min(image.shape)
    thickness = max(1, _randint(rng, min_dim * 0.01, min_dim * 0.02))
    rad = max(rng.random() * min_dim / 2, min_dim / 5)
    x, y = _randint(rng, rad, image.shape[1] - rad), _randint(rng, rad, image.shape[0] - rad)
    slices = np.linspace(0, 2 * math.pi, num_branches + 1)
    angles = slices[:-1] + rng.random(num_branches) * np.diff(slices)
    dists = np.maximum(rng.random((num_branches, 2)), 0.3) * rad
    tips = np.stack([x + dists[:, 0] * np.cos(angles), y + dists[:, 1] * np.sin(angles)], 1).astype(np.int64)
    background = float(image.mean())
    for tx, ty in tips.tolist():
        cv2.line(image, (x, y), (tx, ty), _random_color(rng, background), thickness)
    return np.concatenate([[[x, y]], tips]).astype(np.float64)


# -------------------------------------------------------------------------------- checkerboard and stripes
def _random_warp(rng: np.random.Generator, shape: tuple[int, ...], params: tuple[float, float]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """A random affine transform and homography close to the identity (reference checkerboard / stripes).

    Four points of a square around the image centre are jittered by up to ``alpha`` pixels (half that for the
    homography), ``alpha = max(shape) * (params[0] + U(0, 1) * params[1])``. As in the reference, the square's
    centre is taken in (row, col) order and used as (x, y): it only sets where the jitter is measured.
    """
    alpha = max(shape[:2]) * (params[0] + rng.random() * params[1])
    center = np.float32(shape[:2]) // 2
    half = min(shape[:2]) // 3
    square = np.float32([center + half, [center[0] + half, center[1] - half], center - half,
                         [center[0] - half, center[1] + half]])
    affine = cv2.getAffineTransform(square[:3], square[:3] + rng.uniform(-alpha, alpha, (3, 2)).astype(np.float32))
    jittered = square + rng.uniform(-alpha / 2, alpha / 2, (4, 2)).astype(np.float32)
    return affine, cv2.getPerspectiveTransform(square, jittered)


def _warp(points: np.ndarray, affine: np.ndarray, homography: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points after the affine transform then the homography, and the homogeneous scale w of each."""
    pts = points @ affine[:, :2].T + affine[:, 2]
    projected = np.concatenate([pts, np.ones((len(pts), 1))], axis=1) @ homography.T
    return projected[:, :2] / projected[:, 2:], projected[:, 2]


def _warp_board(rng: np.random.Generator, shape: tuple[int, ...], params: tuple[float, float], grid: np.ndarray,
                max_tries: int = 100) -> np.ndarray:
    """``grid`` [N, 2] warped by a random :func:`_random_warp`, truncated to integer pixels as the reference does.

    The board (the grid's bounding box, larger than the image for stripes) must stay in front of the homography's
    horizon (w > 0.25 at its four corners, so w > 0.25 everywhere on it): the reference does not check, and a
    board that crosses the horizon is filled with garbage polygons that hide the junctions it labels.
    """
    (x0, y0), (x1, y1) = grid.min(axis=0), grid.max(axis=0)
    board = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)
    for _ in range(max_tries):
        affine, homography = _random_warp(rng, shape, params)
        if _warp(board, affine, homography)[1].min() > 0.25:
            break
    else:  # practically unreachable (the jitter is small); the identity keeps the sample valid
        affine, homography = np.eye(2, 3), np.eye(3)
    return _warp(grid.astype(np.float64), affine, homography)[0].astype(np.int64)


def _draw_grid_lines(rng: np.random.Generator, image: np.ndarray, pts: np.ndarray, pairs: list[tuple[int, int]],
                     background: float, thickness: int) -> None:
    """Lines of random grey levels between the given pairs of grid points (the reference's boundary lines)."""
    for i, j in pairs:
        cv2.line(image, tuple(pts[i].tolist()), tuple(pts[j].tolist()), _random_color(rng, background), thickness)


def _fill_cells(rng: np.random.Generator, image: np.ndarray, pts: np.ndarray, rows: int, cols: int,
                background: float) -> None:
    """Fill each warped cell with a grey level that differs from its upper and left neighbours."""
    colors = np.zeros((rows, cols), np.int64)
    for i in range(rows):
        for j in range(cols):
            neighbours = ([colors[i - 1, j]] if i else []) + ([colors[i, j - 1]] if j else [])
            colors[i, j] = _different_color(rng, neighbours) if neighbours else _random_color(rng, background)
            k = i * (cols + 1) + j
            quad = pts[[k, k + 1, k + cols + 2, k + cols + 1]].astype(np.int32)
            cv2.fillConvexPoly(image, quad, int(colors[i, j]))


def draw_checkerboard(rng: np.random.Generator, image: np.ndarray, max_rows: int = 7, max_cols: int = 7,
                      transform_params: tuple[float, float] = (0.05, 0.15)) -> Points:
    """A warped checkerboard with random boundary lines; the points are its grid corners (reference)."""
    background, min_dim = float(image.mean()), min(image.shape)
    rows, cols = int(rng.integers(3, max_rows)), int(rng.integers(3, max_cols))
    cell = min((image.shape[1] - 1) // cols, (image.shape[0] - 1) // rows)
    grid = cell * np.stack(np.meshgrid(np.arange(cols + 1), np.arange(rows + 1)), -1).reshape(-1, 2)
    pts = _warp_board(rng, image.shape, transform_params, grid)
    _fill_cells(rng, image, pts, rows, cols, background)
    nb_rows, nb_cols = int(rng.integers(2, rows + 2)), int(rng.integers(2, cols + 2))
    thickness = max(1, _randint(rng, min_dim * 0.01, min_dim * 0.015))
    pairs = []
    for _ in range(nb_rows):  # along a grid row, between two random columns
        r, c1, c2 = int(rng.integers(rows + 1)), int(rng.integers(cols + 1)), int(rng.integers(cols + 1))
        pairs.append((r * (cols + 1) + c1, r * (cols + 1) + c2))
    for _ in range(nb_cols):  # along a grid column, between two random rows
        c, r1, r2 = int(rng.integers(cols + 1)), int(rng.integers(rows + 1)), int(rng.integers(rows + 1))
        pairs.append((r1 * (cols + 1) + c, r2 * (cols + 1) + c))
    _draw_grid_lines(rng, image, pts, pairs, background, thickness)
    return _keep_inside(pts, image.shape)


def _stripe_columns(rng: np.random.Generator, board_width: int, max_nb_cols: int, min_width: float) -> np.ndarray:
    """Sorted stripe boundaries in [0, board_width - 1], at least ``min_width`` apart (reference)."""
    n = int(rng.integers(5, max_nb_cols))
    cols = np.unique(np.concatenate([board_width * rng.random(n - 1), [0, board_width - 1]]).astype(np.int64))
    gaps = np.concatenate([cols[1:], [board_width + min_width]]) - cols
    return cols[gaps >= min_width]


def draw_stripes(rng: np.random.Generator, image: np.ndarray, max_nb_cols: int = 13, min_width_ratio: float = 0.04,
                 transform_params: tuple[float, float] = (0.1, 0.1)) -> Points:
    """Warped vertical stripes on a board larger than the image; points: stripe ends on the board's top and
    bottom edges (reference ``draw_stripes``; ``transform_params`` as the reference's synthetic_shapes config)."""
    background, min_dim = float(image.mean()), min(image.shape)
    board_h, board_w = int(image.shape[0] * (1 + rng.random())), int(image.shape[1] * (1 + rng.random()))
    cols = _stripe_columns(rng, board_w, max_nb_cols, min_dim * min_width_ratio)
    n = len(cols) - 1  # number of stripes
    top, bottom = np.zeros_like(cols), np.full_like(cols, board_h - 1)
    grid = np.concatenate([np.stack([cols, top], 1), np.stack([cols, bottom], 1)])  # top ends, then bottom ends
    pts = _warp_board(rng, image.shape, transform_params, grid)
    color = _random_color(rng, background)
    for i in range(n):  # alternate roughly opposite grey levels so neighbouring stripes contrast
        color = (color + 128 + int(rng.integers(-30, 30))) % 256
        cv2.fillConvexPoly(image, pts[[i, i + 1, i + n + 2, i + n + 1]].astype(np.int32), color)
    thickness = max(1, _randint(rng, min_dim * 0.01, min_dim * 0.015))
    nb_rows, nb_cols = int(rng.integers(2, 5)), int(rng.integers(2, n + 2))
    pairs = []
    for _ in range(nb_rows):  # along the top or bottom edge, between two stripe ends
        edge = int(rng.choice([0, n + 1]))
        pairs.append((edge + int(rng.integers(n + 1)), edge + int(rng.integers(n + 1))))
    for _ in range(nb_cols):  # along a stripe boundary, top to bottom
        c = int(rng.integers(n + 1))
        pairs.append((c, c + n + 1))
    _draw_grid_lines(rng, image, pts, pairs, background, thickness)
    return _keep_inside(pts, image.shape)


# -------------------------------------------------------------------------------------------------------- cube
#: Corner i of the box is (bit0 * lx, bit1 * ly, bit2 * lz); corner 7 faces the viewer, corner 0 is hidden.
_CUBE_FACES = np.array([[7, 3, 1, 5], [7, 5, 4, 6], [7, 6, 2, 3]])


def _rotation(angles: np.ndarray) -> np.ndarray:
    """R_z(a0) · R_x(a1) · R_y'(a2), the reference's rotation order (its third matrix is a transposed R_y)."""
    c, s = np.cos(angles), np.sin(angles)
    r1 = np.array([[c[0], -s[0], 0], [s[0], c[0], 0], [0, 0, 1]])
    r2 = np.array([[1, 0, 0], [0, c[1], -s[1]], [0, s[1], c[1]]])
    r3 = np.array([[c[2], 0, -s[2]], [0, 1, 0], [s[2], 0, c[2]]])
    return r1 @ r2 @ r3


def cube_corners(rng: np.random.Generator, shape: tuple[int, ...], min_size_ratio: float = 0.2,
                 scale_interval: tuple[float, float] = (0.4, 0.6), trans_interval: tuple[float, float] = (0.5, 0.2)
                 ) -> np.ndarray:
    """The 8 projected corners [8, 2] (int-valued x, y) of a random box (reference ``draw_cube``).

    Corner i is (bit0 * lx, bit1 * ly, bit2 * lz), rotated by angles in [π/10, 4π/10], scaled by
    ``scale_interval`` and projected orthographically; this range of rotations keeps corner 0 at the back.
    """
    min_dim = min(shape[:2])
    sides = min_dim * min_size_ratio + rng.random(3) * 2 * min_dim / 3
    box = ((np.arange(8)[:, None] >> np.arange(3)) & 1) * sides
    rotation = _rotation(rng.random(3) * 3 * math.pi / 10 + math.pi / 10)
    scaling = np.diag(scale_interval[0] + rng.random(3) * scale_interval[1])
    height, width = shape[:2]
    shift_x = _randint(rng, -width * trans_interval[1], width * trans_interval[1])
    shift_y = _randint(rng, -height * trans_interval[1], height * trans_interval[1])
    trans = np.array([width * trans_interval[0] + shift_x, height * trans_interval[0] + shift_y])
    return ((scaling @ rotation @ box.T).T[:, :2] + trans).astype(np.int64)


def draw_cube(rng: np.random.Generator, image: np.ndarray, min_size_ratio: float = 0.2,
              scale_interval: tuple[float, float] = (0.4, 0.6), trans_interval: tuple[float, float] = (0.5, 0.2)
              ) -> Points:
    """The orthographic projection of a rotated box: three faces, contrasting edges; points: the 7 visible
    corners (the hidden corner 0 is not a point; reference ``draw_cube``)."""
    background, min_dim = float(image.mean()), min(image.shape)
    corners = cube_corners(rng, image.shape, min_size_ratio, scale_interval, trans_interval)
    face_color = _random_color(rng, background)
    for face in _CUBE_FACES:
        cv2.fillPoly(image, [corners[face].astype(np.int32).reshape(-1, 1, 2)], face_color)
    thickness = max(1, _randint(rng, min_dim * 0.003, min_dim * 0.015))
    for face in _CUBE_FACES:
        for j in range(4):  # edge colours roughly opposite the face's, so the edges stand out
            edge_color = (face_color + 128 + int(rng.integers(-64, 64))) % 256
            p, q = corners[face[j]], corners[face[(j + 1) % 4]]
            cv2.line(image, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), edge_color, thickness)
    return _keep_inside(corners[1:], image.shape)


# ------------------------------------------------------------------------------------------------------- noise
def gaussian_noise(rng: np.random.Generator, image: np.ndarray) -> Points:
    """Replace the image by uniform noise (the reference's ``gaussian_noise``, despite its name); no points.

    The later blur and down-sampling turn it into fine noise with no junction: a negative example.
    """
    image[...] = rng.integers(0, 256, image.shape, dtype=np.uint8)
    return _no_points()


_DRAWERS: dict[str, Drawer] = {
    "draw_lines": draw_lines, "draw_polygon": draw_polygon, "draw_multiple_polygons": draw_multiple_polygons,
    "draw_ellipses": draw_ellipses, "draw_star": draw_star, "draw_checkerboard": draw_checkerboard,
    "draw_stripes": draw_stripes, "draw_cube": draw_cube, "gaussian_noise": gaussian_noise,
}


# ---------------------------------------------------------------------------------------------- down-sampling
def downsample(image: np.ndarray, points_xy: np.ndarray, size: tuple[int, int],
               blur_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Blur, resize with ``INTER_AREA`` to ``size`` (rows, cols) and map the points along (reference preprocessing).

    ``blur_size`` defaults to the reference's 11 px scaled to the image's size relative to 960x1280. The points
    follow the resize's own pixel-centre mapping ``x' = (x + 0.5) * W' / W - 0.5`` (and likewise for y), and only
    points that land on the output's pixel grid, ``0 <= x' <= W' - 1`` and ``0 <= y' <= H' - 1``, are kept.
    Returns ``(image uint8 HxW, points_xy float32 [N, 2])``.
    """
    if blur_size is None:
        blur_size = _odd(BLUR_SIZE * _scale(image))
    if blur_size > 1:
        image = cv2.GaussianBlur(image, (blur_size, blur_size), 0)
    out_h, out_w = size
    small = cv2.resize(image, (out_w, out_h), interpolation=cv2.INTER_AREA)
    ratio = np.array([out_w / image.shape[1], out_h / image.shape[0]])
    pts = (np.asarray(points_xy, np.float64).reshape(-1, 2) + 0.5) * ratio - 0.5
    keep = (pts[:, 0] >= 0) & (pts[:, 0] <= out_w - 1) & (pts[:, 1] >= 0) & (pts[:, 1] <= out_h - 1)
    return small, pts[keep].astype(np.float32)


def generation_size_for(size: tuple[int, int]) -> tuple[int, int]:
    """The default generation size for an output ``size``: 4x (the reference's ratio), more for tiny outputs so the
    canvas's smaller side is at least 240 px (the shapes' thickness and blur are fractions of it)."""
    factor = max(GENERATION_FACTOR, math.ceil(MIN_GENERATION_SIDE / max(1, min(size))))
    return int(size[0]) * factor, int(size[1]) * factor


def _check_sizes(size: tuple[int, int], generation_size: tuple[int, int]) -> None:
    if len(size) != 2 or len(generation_size) != 2 or min(*size, *generation_size) < 1:
        raise ConfigError(f"Synthetic Shapes sizes must be (rows, cols) of positive integers, got size={size} and "
                          f"generation_size={generation_size}")
    if generation_size[0] < size[0] or generation_size[1] < size[1]:
        raise ConfigError(f"Synthetic Shapes are drawn large then down-sampled: generation_size {generation_size} "
                          f"must be at least the output size {size}; raise generation_size")
    if min(generation_size) < 60:
        raise ConfigError(f"Synthetic Shapes generation_size {generation_size} is too small to draw on (min side "
                          f"< 60 px); use at least 4x the output size")


def _check_primitive(primitive: str) -> Drawer:
    if primitive not in _DRAWERS:
        raise ConfigError(f"unknown Synthetic Shapes primitive {primitive!r}; use one of {', '.join(PRIMITIVES)}")
    return _DRAWERS[primitive]


def _sizes(size: Sequence[int], generation_size: Sequence[int] | None) -> tuple[tuple[int, int], tuple[int, int]]:
    """``size`` and ``generation_size`` (default :func:`generation_size_for`) as checked int pairs."""
    out = tuple(int(v) for v in size)
    if len(out) != 2:
        raise ConfigError(f"Synthetic Shapes size must be (rows, cols), got {size}")
    gen = generation_size_for(out) if generation_size is None else tuple(int(v) for v in generation_size)
    _check_sizes(out, gen)
    return out, gen


def generate_shape(primitive: str, seed: int, size: tuple[int, int] = DEFAULT_SIZE,
                   generation_size: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One sample: ``(image uint8 HxW grey, points_xy float32 [N, 2])``, a pure function of its arguments.

    Draws ``primitive`` on :func:`generate_background` at ``generation_size`` (rows, cols; default
    :func:`generation_size_for` ``(size)``, i.e. 480x640 for 120x160 and the reference's 960x1280 for 240x320),
    then :func:`downsample` s to ``size`` (SuperPoint §4, Fig. 4; reference ``dump_primitive_data``).
    """
    drawer = _check_primitive(primitive)
    size, generation_size = _sizes(size, generation_size)
    rng = np.random.default_rng(seed)
    image = generate_background(rng, generation_size)
    points = drawer(rng, image)
    return downsample(image, points, size)


def sample_seed(seed: int, primitive: str, split: str, index: int) -> int:
    """The seed of one sample, hashed from all four parts: splits are disjoint and any sample regenerates alone."""
    return derive_seed(seed, "synthetic_shapes", primitive, split, index)


# ------------------------------------------------------------------------------------------------- whole set
def _check_counts(counts: Mapping[str, int], primitives: Sequence[str]) -> None:
    for split, n in counts.items():
        if split not in SPLITS:
            raise ConfigError(f"unknown Synthetic Shapes split {split!r} in the counts; use {', '.join(SPLITS)}")
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ConfigError(f"Synthetic Shapes count for split {split!r} must be a non-negative integer, got {n!r}")
    if sum(counts.values()) == 0:
        raise ConfigError(f"Synthetic Shapes counts {dict(counts)} ask for no image; give a split a positive count")
    for primitive in primitives:
        _check_primitive(primitive)
    if not primitives or len(set(primitives)) != len(primitives):
        raise ConfigError(f"Synthetic Shapes primitives must be a non-empty list without repeats, got {primitives}")


def _write_primitive(folder: Path, primitive: str, counts: Mapping[str, int], seed: int, size: tuple[int, int],
                     generation_size: tuple[int, int]) -> dict[str, int]:
    """Generate and write every split of one primitive; returns the number of points per split."""
    n_points = {}
    for split, n in counts.items():
        for sub in ("images", "points"):  # present even when empty, as in the reference dump
            (folder / primitive / sub / split).mkdir(parents=True, exist_ok=True)
        n_points[split] = 0
        for index in range(n):
            image, points = generate_shape(primitive, sample_seed(seed, primitive, split, index), size,
                                           generation_size)
            write_sample(folder, primitive, split, index, image, points)
            n_points[split] += len(points)
    return n_points


def _count_files(folder: Path, suffix: str) -> int:
    return sum(1 for p in folder.iterdir() if p.suffix == suffix) if folder.is_dir() else 0


def _is_intact(root: Path, stamp: dict[str, Any]) -> bool:
    """A matching stamp only counts if every split folder still holds the stamped number of files."""
    images = stamp.get("images")
    if not isinstance(images, dict):
        return False
    return all(_count_files(root / primitive / "images" / split, ".png") == n
               and _count_files(root / primitive / "points" / split, ".npy") == n
               for primitive, splits in images.items() for split, n in splits.items())


def write_shapes(root: Path, counts: Mapping[str, int], seed: int, size: tuple[int, int] = DEFAULT_SIZE,
                 primitives: Sequence[str] = PRIMITIVES, generation_size: tuple[int, int] | None = None,
                 config_key: str = "data.synthetic_dir") -> dict[str, Any]:
    """Write the Synthetic Shapes set in the reference dump layout under ``root``, once (SuperPoint §4, Fig. 4).

    ``counts`` maps a split (``training``, ``validation``, ``test``) to the number of images *per primitive*, so
    every primitive — ``gaussian_noise`` included — gets the same share, as in the reference. Sample ``index`` of
    ``split`` for ``primitive`` is ``generate_shape(primitive, sample_seed(seed, primitive, split, index), ...)``.
    The set goes through :func:`~torchrepro.core.generated.publish_once`: written aside, stamped, renamed into
    place, and reused as it is when the stamp (generator, ``GENERATOR_VERSION``, parameters) matches and the files
    are all there. ``config_key`` is the config key that names ``root``, for error messages.

    Returns the stamp's extras: ``images`` and ``points`` as {primitive: {split: count}}, their totals
    ``num_images`` / ``num_points``, plus ``generated`` (False when an existing set was reused).
    """
    primitives = list(primitives)
    size, generation_size = _sizes(size, generation_size)
    _check_counts(counts, primitives)
    counts = {split: int(n) for split, n in counts.items()}
    params = {"counts": counts, "seed": int(seed), "size": list(size), "generation_size": list(generation_size),
              "primitives": primitives}

    def write(folder: Path) -> dict[str, Any]:
        images, points = {}, {}
        for primitive in primitives:
            start = time.perf_counter()
            points[primitive] = _write_primitive(folder, primitive, counts, int(seed), size, generation_size)
            images[primitive] = dict(counts)
            log.info("synthetic shapes: %s: %d images, %d points in %.1f s", primitive, sum(counts.values()),
                     sum(points[primitive].values()), time.perf_counter() - start)
        return {"images": images, "points": points, "num_images": sum(sum(v.values()) for v in images.values()),
                "num_points": sum(sum(v.values()) for v in points.values())}

    n_images = len(primitives) * sum(counts.values())
    # A 120x160 PNG of a blurred shape is ~5-15 KB, of noise up to H*W bytes; points files are ~0.2-1 KB.
    bytes_needed = n_images * (size[0] * size[1] + 2048) + 65536
    generated = publish_once(Path(root), write, generator=GENERATOR_NAME, version=GENERATOR_VERSION, params=params,
                             bytes_needed=bytes_needed, config_key=config_key, intact=_is_intact)
    stamp = read_stamp(Path(root)) or {}
    extras = {k: v for k, v in stamp.items() if k not in ("generator", "version", "params")}
    return {**extras, "generated": generated}
