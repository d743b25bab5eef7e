"""Deterministic synthetic data set for a driving-direction classifier.

Every image shows a road from a driver's forward-facing camera; the label says
whether the road ahead curves ``left``, curves ``right`` or goes ``straight``.

Camera model (a pinhole over a flat ground plane, all in "world units"):

* The camera looks along +z; the horizon is the image row ``y_h``.  A ground
  point at depth ``z`` projects to row ``y = y_h + A / z`` with
  ``A = size - y_h``, so the bottom edge of the image is depth ``z = 1`` and
  the horizon is ``z = inf``.
* A ground point at lateral position ``X`` projects to column
  ``x = cx + f * X / z`` with focal length ``f = FOCAL_FRACTION * size``.
* The road centreline is ``X_c(z) = x0 + yaw * z + curvature * z**2 / 2``
  (the small-angle approximation of a circular arc).  In the image this is
  ``x = cx + f * (x0 / z + yaw + curvature * z / 2)``: the first two terms are
  a straight line in image space (``1/z`` is linear in the row), so only the
  curvature term bends the road.  ``x0`` shifts the near part of the road and
  ``yaw`` tilts it (moves the vanishing point); both are random and
  independent of the label, so *where* the road is does not tell the class,
  only *how it bends* does.

On disk a split is ``<dir>/images/<name>.jpg`` plus ``<dir>/labels.csv`` with
the header ``image_name,label`` (names without extension), and ``<dir>/generated.json``, the stamp of the
parameters it was generated with (see :mod:`torchrepro.core.generated`).
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from torchrepro.core.generated import publish_once
from torchrepro.render.raster import RGB, camera_response, hsv_to_rgb, to_uint8

CLASSES: tuple[str, ...] = ("left", "right", "straight")

Rng = np.random.Generator

#: Bump when the rendering changes, so that cached splits are regenerated.
GENERATOR_VERSION = 1

#: Focal length in pixels as a fraction of the image size (~85 deg field of view).
FOCAL_FRACTION = 0.55
#: JPEG quality; fixed so that files are byte-identical across runs.
JPEG_QUALITY = 92
CSV_HEADER: tuple[str, str] = ("image_name", "label")
CSV_NAME = "labels.csv"
IMAGES_DIR = "images"

# Far-end lateral deviation ("bend", in units of f) caused by the curvature,
# i.e. curvature * view_depth / 2.  Straight roads stay inside +-STRAIGHT_BEND,
# curves lie in [MIN_BEND, MAX_BEND]; the gap keeps labels unambiguous while
# the lower end keeps gentle curves in the set.
STRAIGHT_BEND = 0.02
MIN_BEND = 0.25
MAX_BEND = 0.70

_Z_MAX = 1e4  # depth used for rows at / above the horizon (avoids inf * 0)


# --------------------------------------------------------------------------
# Scene parameters
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class CarParams:
    """A car seen from behind, standing on the road (world units)."""

    depth: float  # z of the car's rear
    lane_offset: float  # lateral offset of its centre from the road centreline
    width: float
    height: float
    rgb: RGB


@dataclass(frozen=True)
class RoadsideParams:
    """A pole or tree next to the road (world units)."""

    depth: float
    side: int  # -1: left of the road, +1: right of the road
    distance: float  # lateral distance from the road edge
    kind: str  # "pole" or "tree"
    height: float
    width: float
    rgb: RGB


@dataclass(frozen=True)
class ShadowParams:
    """A shadow band across the road, e.g. cast by a tree or a bridge."""

    depth: float  # near end of the band
    length: float  # extent along z
    side: int  # the shadow covers lateral offsets with side * d > cut
    cut: float
    darkness: float  # multiplicative factor in (0, 1)


@dataclass(frozen=True)
class RoadSceneParams:
    """Everything random about one scene.

    ``render_scene`` is a pure function of these parameters (its pixel noise
    comes from ``texture_seed``), so a scene can be stored, inspected in tests
    and re-rendered at any size.
    """

    label: str
    # -- geometry (see module docstring) --
    horizon: float  # horizon row as a fraction of the image height
    lateral_offset: float  # x0: road centre relative to the camera at z = 0
    yaw: float  # heading of the car relative to the road (moves the vanishing point)
    curvature: float  # signed; < 0 bends left, > 0 bends right
    view_depth: float  # the road is visible up to this depth (crest / fog)
    road_half_width: float
    # -- sky and far landscape --
    sky_top: RGB
    sky_horizon: RGB
    clouds: float
    hills: float  # height of the distant skyline as a fraction of the image; 0 = none
    hill_rgb: RGB
    # -- ground and road surface --
    ground_rgb: RGB
    ground_texture: float
    road_rgb: RGB
    asphalt_noise: float
    shoulder: float  # gravel shoulder width as a fraction of the half width; 0 = none
    shoulder_rgb: RGB
    # -- markings (opacity 0 means absent, small values mean faded) --
    edge_lines: float
    edge_rgb: RGB
    centre_dashes: float
    dash_rgb: RGB
    line_width: float
    dash_period: float
    dash_duty: float
    dash_phase: float
    # -- objects --
    shadows: tuple[ShadowParams, ...]
    cars: tuple[CarParams, ...]
    roadside: tuple[RoadsideParams, ...]
    # -- photometry --
    haze: float  # fog density per world unit of depth
    brightness: float
    contrast: float
    colour_gain: RGB
    noise_sigma: float
    blur: bool
    texture_seed: int

    @property
    def bend(self) -> float:
        """Far-end lateral deviation caused by the curvature (units of f)."""
        return 0.5 * self.curvature * self.view_depth


def centreline_x(params: RoadSceneParams, depth: np.ndarray | float) -> np.ndarray:
    """World lateral position of the road centre at ``depth`` (see module docstring)."""
    z = np.asarray(depth, dtype=np.float64)
    return params.lateral_offset + params.yaw * z + 0.5 * params.curvature * z**2


def road_centre_px(
    params: RoadSceneParams, size: int, depth: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray]:
    """Image position ``(x, y)`` in pixels of the road centre at ``depth``.

    Exposed so tests (and users) can check the rendered geometry without
    re-deriving the projection.
    """
    z = np.asarray(depth, dtype=np.float64)
    y_h = params.horizon * size
    x = size / 2 + FOCAL_FRACTION * size * centreline_x(params, z) / z
    return x, y_h + (size - y_h) / z


# --------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(float(x + (y - x) * t) for x, y in zip(a, b))  # type: ignore[return-value]


def _sample_bend(rng: np.random.Generator, label: str) -> float:
    """Far-end deviation: exactly the quantity that defines the class.

    Curve magnitudes are uniform between a gentle (MIN_BEND) and a sharp (MAX_BEND) bend so the task is not
    trivial; straight roads get a little noise so "straight" is not a
    pixel-perfect line.
    """
    if label == "straight":
        return float(rng.uniform(-STRAIGHT_BEND, STRAIGHT_BEND))
    magnitude = MIN_BEND + (MAX_BEND - MIN_BEND) * rng.uniform()
    return float(-magnitude if label == "left" else magnitude)


def _sample_geometry(rng: Rng, label: str) -> dict[str, float]:
    """Camera and road geometry.  Offset and yaw are label-independent nuisances."""
    half_width = rng.uniform(0.45, 0.8)
    view_depth = rng.uniform(5.0, 12.0)
    bend = _sample_bend(rng, label)
    return dict(
        horizon=rng.uniform(0.30, 0.48),
        lateral_offset=rng.uniform(-0.7, 0.7) * half_width,
        yaw=rng.uniform(-0.35, 0.35),
        curvature=2.0 * bend / view_depth,
        view_depth=view_depth,
        road_half_width=half_width,
    )


def _sample_sky(rng: Rng) -> dict[str, float | RGB]:
    """Clear, overcast or dusk sky plus an optional distant skyline."""
    kind = rng.choice(3, p=[0.55, 0.3, 0.15])
    if kind == 0:  # clear blue, lighter and paler at the horizon
        hue, val = rng.uniform(0.54, 0.63), rng.uniform(0.65, 1.0)
        top = hsv_to_rgb(hue, rng.uniform(0.35, 0.75), val)
        hor = hsv_to_rgb(hue, rng.uniform(0.05, 0.3), min(1.0, val + 0.15))
        clouds = rng.uniform(0.0, 0.35)
    elif kind == 1:  # overcast grey
        val = rng.uniform(0.5, 0.9)
        top = hsv_to_rgb(rng.uniform(0.5, 0.7), rng.uniform(0, 0.1), val)
        hor = hsv_to_rgb(rng.uniform(0.5, 0.7), rng.uniform(0, 0.06), min(1.0, val + 0.1))
        clouds = rng.uniform(0.1, 0.4)
    else:  # dusk: dark blue over orange
        top = hsv_to_rgb(rng.uniform(0.6, 0.7), rng.uniform(0.4, 0.7), rng.uniform(0.25, 0.5))
        hor = hsv_to_rgb(rng.uniform(0.02, 0.12), rng.uniform(0.4, 0.8), rng.uniform(0.7, 1.0))
        clouds = rng.uniform(0.0, 0.2)
    hills = rng.uniform(0.02, 0.09) if rng.uniform() < 0.65 else 0.0
    hill_rgb = _mix(hsv_to_rgb(rng.uniform(0.2, 0.4), rng.uniform(0.2, 0.5), 0.3), hor, 0.45)
    return dict(sky_top=top, sky_horizon=hor, clouds=clouds, hills=hills, hill_rgb=hill_rgb)


def _sample_ground(rng: np.random.Generator) -> RGB:
    """Grass, dry field, bare soil/sand or (rarely) snow."""
    kind = rng.choice(4, p=[0.45, 0.25, 0.2, 0.1])
    if kind == 0:
        return hsv_to_rgb(rng.uniform(0.2, 0.33), rng.uniform(0.3, 0.7), rng.uniform(0.25, 0.6))
    if kind == 1:
        return hsv_to_rgb(rng.uniform(0.08, 0.15), rng.uniform(0.3, 0.6), rng.uniform(0.4, 0.7))
    if kind == 2:
        return hsv_to_rgb(rng.uniform(0.05, 0.12), rng.uniform(0.05, 0.3), rng.uniform(0.35, 0.7))
    return hsv_to_rgb(rng.uniform(0.55, 0.65), rng.uniform(0.0, 0.06), rng.uniform(0.8, 0.95))


def _sample_surface(rng: Rng) -> dict[str, float | RGB]:
    """Ground, asphalt, shoulder and lane-marking appearance."""
    ground = _sample_ground(rng)
    road = hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0, 0.1), rng.uniform(0.18, 0.55))
    yellow = hsv_to_rgb(rng.uniform(0.11, 0.15), rng.uniform(0.55, 0.8), rng.uniform(0.75, 0.95))
    white = hsv_to_rgb(0.0, 0.0, rng.uniform(0.8, 1.0))
    return dict(
        ground_rgb=ground,
        ground_texture=rng.uniform(0.05, 0.25),
        road_rgb=road,
        asphalt_noise=rng.uniform(0.03, 0.12),
        shoulder=rng.uniform(0.08, 0.3) if rng.uniform() < 0.5 else 0.0,
        shoulder_rgb=_mix(ground, (0.62, 0.58, 0.52), rng.uniform(0.4, 0.8)),
        edge_lines=rng.uniform(0.25, 1.0) if rng.uniform() < 0.8 else 0.0,
        edge_rgb=white if rng.uniform() < 0.8 else yellow,
        centre_dashes=rng.uniform(0.25, 1.0) if rng.uniform() < 0.7 else 0.0,
        dash_rgb=white if rng.uniform() < 0.6 else yellow,
        line_width=rng.uniform(0.03, 0.06),
        dash_period=rng.uniform(0.6, 1.4),
        dash_duty=rng.uniform(0.3, 0.6),
        dash_phase=rng.uniform(0, 1),
    )


def _count(rng: np.random.Generator, probs: list[float]) -> int:
    return int(rng.choice(len(probs), p=probs))


def _sample_shadows(rng: Rng, view_depth: float, hw: float) -> tuple[ShadowParams, ...]:
    return tuple(
        ShadowParams(
            depth=rng.uniform(1.0, 0.8 * view_depth),
            length=rng.uniform(0.15, 1.2),
            side=int(rng.choice([-1, 1])),
            cut=rng.uniform(-1.5, 1.2) * hw,
            darkness=rng.uniform(0.45, 0.8),
        )
        for _ in range(_count(rng, [0.4, 0.35, 0.25]))
    )


def _sample_cars(rng: Rng, view_depth: float, hw: float) -> tuple[CarParams, ...]:
    """0-2 cars on the road; far ones can hide exactly the part where it bends."""
    cars = []
    for _ in range(_count(rng, [0.4, 0.35, 0.25])):
        width = rng.uniform(0.45, 0.6) * hw
        cars.append(
            CarParams(
                depth=rng.uniform(1.6, max(2.0, 0.85 * view_depth)),
                lane_offset=rng.uniform(-0.55, 0.55) * hw,
                width=width,
                height=width * rng.uniform(0.75, 1.0),
                rgb=hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0, 0.8), rng.uniform(0.15, 0.95)),
            )
        )
    return tuple(cars)


def _sample_roadside(rng: Rng, view_depth: float, hw: float) -> tuple[RoadsideParams, ...]:
    """Poles and trees next to the road; they follow the road, as in reality."""
    objs = []
    for _ in range(int(rng.integers(0, 7))):
        tree = rng.uniform() < 0.5
        objs.append(
            RoadsideParams(
                depth=rng.uniform(1.2, 1.2 * view_depth),
                side=int(rng.choice([-1, 1])),
                distance=rng.uniform(0.1, 1.5) * hw,
                kind="tree" if tree else "pole",
                height=rng.uniform(1.2, 2.5) if tree else rng.uniform(1.0, 2.0),
                width=rng.uniform(0.5, 1.0) if tree else rng.uniform(0.03, 0.07),
                rgb=hsv_to_rgb(rng.uniform(0.22, 0.38), rng.uniform(0.4, 0.8), rng.uniform(0.15, 0.4))
                if tree
                else hsv_to_rgb(rng.uniform(0.05, 0.1), rng.uniform(0.0, 0.4), rng.uniform(0.25, 0.7)),
            )
        )
    return tuple(objs)


def _sample_photometry(rng: Rng) -> dict[str, float | bool | int | RGB]:
    gain = tuple(float(g) for g in rng.uniform(0.92, 1.08, size=3))
    return dict(
        haze=rng.uniform(0.01, 0.12),
        brightness=rng.uniform(0.6, 1.25),
        contrast=rng.uniform(0.7, 1.2),
        colour_gain=gain,
        noise_sigma=rng.uniform(0.005, 0.04),
        blur=bool(rng.uniform() < 0.3),
        texture_seed=int(rng.integers(0, 2**63 - 1)),
    )


def sample_scene_params(rng: np.random.Generator, label: str) -> RoadSceneParams:
    """Draw one random scene of class ``label`` from ``rng``.

    All randomness of a scene is drawn here (the renderer only re-seeds its
    pixel noise from ``texture_seed``), so the same generator state always
    gives the same image.
    """
    if label not in CLASSES:
        raise ValueError(f"label must be one of {CLASSES}, got {label!r}")
    geo = _sample_geometry(rng, label)
    depth, hw = geo["view_depth"], geo["road_half_width"]
    fields = {**geo, **_sample_sky(rng), **_sample_surface(rng)}
    fields["shadows"] = _sample_shadows(rng, depth, hw)
    fields["cars"] = _sample_cars(rng, depth, hw)
    fields["roadside"] = _sample_roadside(rng, depth, hw)
    fields.update(_sample_photometry(rng))
    fields = {k: float(v) if isinstance(v, np.floating) else v for k, v in fields.items()}
    return RoadSceneParams(label=label, **fields)


# --------------------------------------------------------------------------
# Rendering helpers
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Camera:
    """Per-image projection quantities; rows/cols are 1-D so most maths stays cheap."""

    size: int
    focal: float
    y_h: float  # horizon row (pixels)
    cols_u: np.ndarray  # (S,) (x - cx) / f at pixel centres
    rows_z: np.ndarray  # (S,) ground depth of each row (_Z_MAX above the horizon)
    ground_cov: np.ndarray  # (S,) fraction of each row below the horizon
    px: np.ndarray  # (S,) pixel-centre coordinates (same for rows and columns)


def _camera(params: RoadSceneParams, size: int) -> _Camera:
    """Project every row to its ground depth ``z = A / (y - y_h)`` (bottom edge: z = 1)."""
    px = np.arange(size, dtype=np.float32) + 0.5
    y_h = params.horizon * size
    below = px - y_h  # rows below the horizon, in pixels
    z = np.where(below > 0, (size - y_h) / np.maximum(below, 1e-6), _Z_MAX)
    focal = FOCAL_FRACTION * size
    return _Camera(
        size=size,
        focal=focal,
        y_h=y_h,
        cols_u=(px - size / 2) / focal,
        rows_z=np.minimum(z, _Z_MAX).astype(np.float32),
        ground_cov=np.clip(below + 0.5, 0, 1).astype(np.float32),
        px=px,
    )


def _lerp(a: np.ndarray, b: np.ndarray | RGB, t: np.ndarray | float) -> np.ndarray:
    """``a + (b - a) * t`` with ``t`` broadcast over the colour axis when 2-D."""
    b = np.asarray(b, dtype=np.float32)
    if isinstance(t, np.ndarray) and t.ndim == a.ndim - 1:
        t = t[..., None]
    return a + (b - a) * t


def _value_noise(table: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smooth 2-D value noise in [-1, 1]: bilinear (smoothstep) lookup in a tiled table.

    Evaluated at *world* coordinates it gives perspective-correct texture for
    free: blobs shrink with depth exactly like the road does.
    """
    n = table.shape[0]
    fa, fb = np.floor(a), np.floor(b)
    ta, tb = a - fa, b - fb
    ta, tb = ta * ta * (3 - 2 * ta), tb * tb * (3 - 2 * tb)
    ia, ib = fa.astype(np.int64) % n, fb.astype(np.int64) % n
    ia1, ib1 = (ia + 1) % n, (ib + 1) % n
    top = table[ia, ib] + (table[ia1, ib] - table[ia, ib]) * ta
    bot = table[ia, ib1] + (table[ia1, ib1] - table[ia, ib1]) * ta
    return top + (bot - top) * tb


def _edge(signed_dist: np.ndarray, pixel: np.ndarray | float) -> np.ndarray:
    """Anti-aliased coverage of a half-space given the signed distance (inside > 0)
    and the size of one pixel in the same units."""
    return np.clip(signed_dist / pixel + 0.5, 0.0, 1.0)


def _interval_cov(coords: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """1-D coverage of pixel centres ``coords`` by the interval [lo, hi]."""
    return np.clip(np.minimum(coords - lo, hi - coords) + 0.5, 0.0, 1.0) * min(1.0, hi - lo)


def _paint_box(
    img: np.ndarray, x0: float, x1: float, y0: float, y1: float, rgb: RGB, alpha: float = 1.0
) -> None:
    """Alpha-blend an anti-aliased axis-aligned box, touching only its bounding slice."""
    s = img.shape[0]
    c0, c1 = max(int(np.floor(x0)), 0), min(int(np.ceil(x1)) + 1, s)
    r0, r1 = max(int(np.floor(y0)), 0), min(int(np.ceil(y1)) + 1, s)
    if c0 >= c1 or r0 >= r1 or x1 <= x0 or y1 <= y0:
        return
    px = np.arange(s, dtype=np.float32) + 0.5
    cov = np.outer(_interval_cov(px[r0:r1], y0, y1), _interval_cov(px[c0:c1], x0, x1)) * alpha
    img[r0:r1, c0:c1] = _lerp(img[r0:r1, c0:c1], rgb, cov)


def _paint_ellipse(img: np.ndarray, ex: float, ey: float, rx: float, ry: float, rgb: RGB) -> None:
    """Anti-aliased filled ellipse (tree canopies), shaded darker toward the bottom."""
    s = img.shape[0]
    c0, c1 = max(int(ex - rx) - 1, 0), min(int(ex + rx) + 2, s)
    r0, r1 = max(int(ey - ry) - 1, 0), min(int(ey + ry) + 2, s)
    if c0 >= c1 or r0 >= r1 or rx <= 0 or ry <= 0:
        return
    yy = (np.arange(r0, r1, dtype=np.float32)[:, None] + 0.5 - ey) / ry
    xx = (np.arange(c0, c1, dtype=np.float32)[None, :] + 0.5 - ex) / rx
    cov = np.clip((1.0 - np.sqrt(xx**2 + yy**2)) * min(rx, ry) + 0.5, 0, 1)
    shade = (1.0 - 0.25 * np.clip(yy, 0, 1))[..., None]  # crude self-shadowing
    img[r0:r1, c0:c1] = _lerp(img[r0:r1, c0:c1], np.asarray(rgb, np.float32) * shade, cov)


# --------------------------------------------------------------------------
# Rendering layers
# --------------------------------------------------------------------------


def _sky(params: RoadSceneParams, cam: _Camera, table: np.ndarray) -> np.ndarray:
    """Vertical gradient + soft clouds + optional distant skyline silhouette."""
    s = cam.size
    t = np.clip(cam.px / max(cam.y_h, 1.0), 0, 1) ** 0.7
    img = _lerp(np.broadcast_to(np.float32(params.sky_top), (s, 3)), params.sky_horizon, t)
    img = np.broadcast_to(img[:, None, :], (s, s, 3)).copy()
    if params.clouds > 0:
        g = cam.px[None, :] * (6.0 / s)
        cloud = _value_noise(table, g, cam.px[:, None] * (14.0 / s) + 7.0)
        amount = np.clip(cloud, 0, 1) * params.clouds * (1 - t[:, None])  # none at the horizon
        img = _lerp(img, (0.95, 0.95, 0.97), amount)
    if params.hills > 0:
        prof = _value_noise(table, cam.px * (5.0 / s), np.full(s, 3.5, np.float32))
        top = cam.y_h - params.hills * s * (0.6 + 0.4 * prof)  # skyline row per column
        img = _lerp(img, params.hill_rgb, _edge(cam.px[:, None] - top[None, :], 1.0))
    return img


def _ground(params: RoadSceneParams, cam: _Camera, table: np.ndarray, rng: Rng) -> np.ndarray:
    """Ground plane with texture evaluated in world coordinates (perspective-correct)."""
    z = cam.rows_z[:, None]
    x_world = cam.cols_u[None, :] * z
    tex = _value_noise(table, x_world * 2.5, z * 2.5 + 17.0)
    tex += 0.5 * _value_noise(table, x_world * 9.0 + 5.0, z * 9.0)
    tex += 0.3 * rng.standard_normal(tex.shape, dtype=np.float32)
    base = np.asarray(params.ground_rgb, np.float32)
    return base * (1.0 + params.ground_texture * tex)[..., None]


def _road(
    params: RoadSceneParams, cam: _Camera, table: np.ndarray, rng: Rng, ground: np.ndarray
) -> np.ndarray:
    """Composite shoulder, asphalt and markings onto ``ground``.

    Everything is computed from ``d``, the lateral world offset of each pixel
    from the road centreline at that pixel's depth, so the widths shrink with
    depth and follow the curve automatically.
    """
    z = cam.rows_z[:, None]
    hw = params.road_half_width
    d = cam.cols_u[None, :] * z - centreline_x(params, cam.rows_z).astype(np.float32)[:, None]
    ad = np.abs(d)
    pix = z / cam.focal  # one pixel, in world lateral units, at this depth
    # The road fades out over the last 30% of view_depth (crest / fog).
    fade = np.clip((params.view_depth - z) / (0.3 * params.view_depth), 0, 1)
    out = ground
    if params.shoulder > 0:
        out = _lerp(out, params.shoulder_rgb, _edge(hw * (1 + params.shoulder) - ad, pix) * fade)
    out = _lerp(out, _asphalt(params, d, z, table, rng), _edge(hw - ad, pix) * fade)
    lw = params.line_width / 2
    if params.edge_lines > 0:
        # a line of half-width lw centred lw inside each road edge
        line = _edge(lw - np.abs(ad - (hw - 2 * lw)), pix)
        out = _lerp(out, params.edge_rgb, line * params.edge_lines * fade)
    if params.centre_dashes > 0:
        on = ((z / params.dash_period + params.dash_phase) % 1.0) < params.dash_duty
        out = _lerp(out, params.dash_rgb, _edge(lw - ad, pix) * on * params.centre_dashes * fade)
    return out


def _asphalt(
    params: RoadSceneParams, d: np.ndarray, z: np.ndarray, table: np.ndarray, rng: Rng
) -> np.ndarray:
    """Asphalt colour: patches + grain + darker worn tyre tracks."""
    patches = _value_noise(table, d * 4.0 + 31.0, z * 3.0 + 11.0)
    grain = rng.standard_normal(d.shape, dtype=np.float32)
    hw = params.road_half_width
    tracks = np.exp(-(((np.abs(d) - 0.5 * hw) / (0.12 * hw)) ** 2))
    shade = 1.0 + params.asphalt_noise * (patches + 0.8 * grain) - 0.12 * tracks
    return np.asarray(params.road_rgb, np.float32) * shade[..., None]


def _shadow_factor(params: RoadSceneParams, cam: _Camera) -> np.ndarray:
    """Multiplicative shading map of the shadow bands lying on the ground."""
    z = cam.rows_z[:, None]
    d = cam.cols_u[None, :] * z - centreline_x(params, cam.rows_z).astype(np.float32)[:, None]
    pix = z / cam.focal
    factor = np.ones_like(d)
    for sh in params.shadows:
        # Along z one row spans ~z**2 / A world units.  Edges are blurred over
        # a few pixels: real shadows have a penumbra.
        zpix = z * z / (cam.size - cam.y_h)
        band = _edge(np.minimum(z - sh.depth, sh.depth + sh.length - z), 2.0 * zpix)
        band = band * _edge(sh.side * d - sh.cut, 3.0 * pix)
        factor *= 1.0 - (1.0 - sh.darkness) * band
    return factor


def _hazed(rgb: RGB, params: RoadSceneParams, depth: float) -> RGB:
    """Colour of an object at ``depth`` seen through the scene's fog."""
    return _mix(rgb, params.sky_horizon, 1.0 - np.exp(-params.haze * depth))


def _draw_car(img: np.ndarray, car: CarParams, params: RoadSceneParams, cam: _Camera) -> None:
    """A car from behind: body, narrower cabin, rear window, wheels, tail lights."""
    z = car.depth
    xc = cam.size / 2 + cam.focal * (float(centreline_x(params, z)) + car.lane_offset) / z
    yb = cam.y_h + (cam.size - cam.y_h) / z  # ground contact row
    w, h = cam.focal * car.width / z, cam.focal * car.height / z

    def part(x_lo: float, x_hi: float, low: float, high: float, rgb: RGB, a: float = 1.0) -> None:
        # box in car units: x in [-0.5, 0.5] * width, height 0 (ground) .. 1 (roof)
        _paint_box(img, xc + x_lo * w, xc + x_hi * w, yb - high * h, yb - low * h, rgb, a)

    body = _hazed(car.rgb, params, z)
    dark = _hazed((0.05, 0.05, 0.06), params, z)
    red = _hazed((0.75, 0.08, 0.05), params, z)
    part(-0.56, 0.56, -0.05, 0.06, (0.0, 0.0, 0.0), 0.45)  # contact shadow on the road
    for sx in (-1, 1):
        part(sx * 0.48 - 0.09, sx * 0.48 + 0.09, 0.0, 0.22, dark)  # wheels below the body
    part(-0.5, 0.5, 0.12, 0.62, body)
    part(-0.4, 0.4, 0.6, 1.0, _mix(body, (0.0, 0.0, 0.0), 0.1))  # cabin
    part(-0.34, 0.34, 0.66, 0.93, _mix(dark, body, 0.2))  # rear window: the dark band
    for sx in (-1, 1):
        part(sx * 0.4 - 0.07, sx * 0.4 + 0.07, 0.42, 0.52, red)  # tail lights
    part(-0.5, 0.5, 0.12, 0.2, _mix(body, (0.0, 0.0, 0.0), 0.4))  # bumper


def _draw_roadside(
    img: np.ndarray, obj: RoadsideParams, params: RoadSceneParams, cam: _Camera
) -> None:
    """Pole (thin bar) or tree (trunk + canopy) next to the road, scaled by depth."""
    z = obj.depth
    x_world = float(centreline_x(params, z)) + obj.side * (params.road_half_width + obj.distance)
    xc = cam.size / 2 + cam.focal * x_world / z
    yb = cam.y_h + (cam.size - cam.y_h) / z
    h, w = cam.focal * obj.height / z, cam.focal * obj.width / z
    rgb = _hazed(obj.rgb, params, z)
    if obj.kind == "pole":
        _paint_box(img, xc - w / 2, xc + w / 2, yb - h, yb, rgb)
        return
    trunk = _hazed((0.28, 0.2, 0.13), params, z)
    _paint_box(img, xc - 0.06 * w, xc + 0.06 * w, yb - 0.5 * h, yb, trunk)
    _paint_ellipse(img, xc, yb - 0.68 * h, w / 2, 0.34 * h, rgb)


def _draw_objects(img: np.ndarray, params: RoadSceneParams, cam: _Camera) -> None:
    """Painter's algorithm: far objects first so near ones occlude them."""
    items: list[tuple[float, object]] = [(c.depth, c) for c in params.cars]
    items += [(o.depth, o) for o in params.roadside]
    for _, obj in sorted(items, key=lambda it: -it[0]):
        if isinstance(obj, CarParams):
            _draw_car(img, obj, params, cam)
        else:
            _draw_roadside(img, obj, params, cam)


def _photometry(img: np.ndarray, params: RoadSceneParams, rng: Rng) -> np.ndarray:
    """Exposure, contrast, white balance, blur and sensor noise."""
    return camera_response(img, params.contrast, params.brightness, params.colour_gain, int(params.blur),
                           params.noise_sigma, rng)


def render_scene(params: RoadSceneParams, size: int) -> np.ndarray:
    """Render ``params`` as a ``size x size x 3`` uint8 RGB image (vectorised numpy)."""
    rng = np.random.default_rng(params.texture_seed)
    table = rng.uniform(-1, 1, size=(64, 64)).astype(np.float32)
    cam = _camera(params, size)
    ground = _ground(params, cam, table, rng)
    ground = _road(params, cam, table, rng, ground) * _shadow_factor(params, cam)[..., None]
    fog = 1.0 - np.exp(-params.haze * cam.rows_z)  # 1 at the horizon
    ground = _lerp(ground, params.sky_horizon, fog[:, None])
    below = np.broadcast_to(cam.ground_cov[:, None], (size, size))
    img = _lerp(_sky(params, cam, table), ground, below)
    _draw_objects(img, params, cam)
    return to_uint8(_photometry(img, params, rng))


# --------------------------------------------------------------------------
# Writing splits
# --------------------------------------------------------------------------


def _split_labels(n_images: int, seed: int) -> list[str]:
    """Balanced labels (counts differ by at most one) in a seeded random order."""
    labels = [CLASSES[i % len(CLASSES)] for i in range(n_images)]
    order = np.random.default_rng(np.random.SeedSequence([seed, 0, 0])).permutation(n_images)
    return [labels[i] for i in order]


def _image_names(n_images: int) -> list[str]:
    width = max(6, len(str(max(n_images - 1, 0))))
    return [f"{i:0{width}d}" for i in range(n_images)]


def _is_intact(out_dir: Path, stamp: dict) -> bool:
    """True if every image that ``out_dir/labels.csv`` lists is there (a stamped split may lose files)."""
    csv_path = out_dir / CSV_NAME
    if not csv_path.is_file():
        return False
    with csv_path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows or tuple(rows[0]) != CSV_HEADER or len(rows) - 1 != stamp["params"]["n_images"]:
        return False
    return all((out_dir / IMAGES_DIR / f"{r[0]}.jpg").is_file() for r in rows[1:])


def _is_legacy_split(out_dir: Path) -> bool:
    """An unstamped split written before splits were stamped: nothing but ``images/`` and the CSV."""
    return {p.name for p in out_dir.iterdir()} <= {IMAGES_DIR, CSV_NAME}


def _write_split(target: Path, n_images: int, seed: int, size: int) -> dict[str, dict[str, int]]:
    """Render and write every image plus the CSV into ``target`` (an empty dir); returns the label counts."""
    (target / IMAGES_DIR).mkdir()
    names, labels = _image_names(n_images), _split_labels(n_images, seed)
    for i, (name, label) in enumerate(zip(names, labels)):
        rng = np.random.default_rng(np.random.SeedSequence([seed, 1, i]))
        img = render_scene(sample_scene_params(rng, label), size)
        path = target / IMAGES_DIR / f"{name}.jpg"
        Image.fromarray(img).save(path, format="JPEG", quality=JPEG_QUALITY)
    with (target / CSV_NAME).open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(CSV_HEADER)
        writer.writerows(zip(names, labels))
    return {"counts": dict(sorted(Counter(labels).items()))}


def generate_split(out_dir: Path, n_images: int, seed: int, size: int = 96) -> Path:
    """Write out_dir/images/*.jpg and out_dir/labels.csv (balanced classes, shuffled order). Returns csv path.

    Deterministic: same (n_images, seed, size) -> byte-identical files. A split stamped with the same
    (n_images, seed, size) and generator version is reused as it is; any other one is regenerated, written
    into a temporary sibling dir and renamed into place, so an interrupted run never leaves a half set (see
    :func:`torchrepro.core.generated.publish_once`).
    """
    out_dir = Path(out_dir)
    if n_images < 0:
        raise ValueError(f"n_images must be >= 0, got {n_images}")
    params = {"n_images": int(n_images), "seed": int(seed), "size": int(size)}
    publish_once(
        out_dir, lambda tmp: _write_split(tmp, n_images, seed, size), generator=__name__,
        version=GENERATOR_VERSION, params=params, bytes_needed=n_images * (size * size + 4096) + 65536,
        config_key="data.synthetic_dir", intact=_is_intact, legacy=_is_legacy_split,
    )
    return out_dir / CSV_NAME


def _derived_seed(seed: int, stream: int) -> int:
    """Independent 32-bit seed for sub-stream ``stream`` of ``seed``."""
    return int(np.random.SeedSequence([seed, 2, stream]).generate_state(1)[0])


def generate_dataset(
    root: Path, n_train: int, n_val: int, seed: int, size: int = 96, n_test: int = 0
) -> list[Path]:
    """root/train, root/val and (``n_test > 0``) root/test, each from its own derived seed: different scenes, so
    validation and test are held out from training and from each other.

    Returns the CSV paths, in that order.
    """
    root = Path(root)
    counts = [("train", n_train), ("val", n_val)] + ([("test", n_test)] if n_test > 0 else [])
    return [generate_split(root / split, n, _derived_seed(seed, k), size) for k, (split, n) in enumerate(counts)]
