"""Driver's-view road scenes: the renderer the driving and detection generators share.

Camera model (a pinhole over a flat ground plane, all in "world units"; one unit is roughly 6 m: a car is
~0.3 wide, the road's half width 0.45-0.8):

* The camera looks along +z; the horizon is the image row ``y_h``.  A ground point at depth ``z`` projects to
  row ``y = y_h + A / z`` with ``A = size - y_h``, so the bottom edge of the image is depth ``z = 1`` and the
  horizon is ``z = inf``.  A point at height ``Y`` above the ground rises ``f * Y / z`` pixels above that row.
* A point at lateral position ``X`` projects to column ``x = cx + f * X / z`` with focal length
  ``f = FOCAL_FRACTION * size``.
* The road centreline is ``X_c(z) = x0 + yaw * z + curvature * z**2 / 2`` (the small-angle approximation of a
  circular arc).  In the image this is ``x = cx + f * (x0 / z + yaw + curvature * z / 2)``: the first two terms
  are a straight line in image space (``1/z`` is linear in the row), so only the curvature term bends the road.

A scene (:class:`RoadScene`) holds every random choice; :func:`render_road_scene` is a pure function of it (its
pixel noise is drawn from ``texture_seed``).  The layers are exposed one by one (:func:`render_background`,
:func:`draw_objects`, :func:`photometry`) so that a generator can paint its own objects between the background
and the camera's response, in the same painter's order.

Like :mod:`torchrepro.render.raster`, the order of floating-point operations here is a contract: the driving
generator's files are byte-identical across versions only while it stays as it is (float32 image maths, float64
geometry, the same sequence of draws from the generators).  ``tests/render/test_road.py`` pins it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from torchrepro.render.raster import RGB, camera_response, hsv_to_rgb, to_uint8

__all__ = [
    "FOCAL_FRACTION", "Z_MAX", "Rng", "Camera", "CarParams", "RoadsideParams", "ShadowParams", "RoadScene",
    "centreline_x", "road_centre_px", "mix", "count", "sample_sky", "sample_ground", "sample_surface",
    "sample_shadows", "sample_car_rgb", "sample_cars", "sample_roadside", "sample_photometry", "make_camera",
    "lerp", "value_noise", "edge", "interval_cov", "paint_box", "paint_ellipse", "sky_layer", "ground_layer",
    "road_layer", "asphalt", "shadow_factor", "hazed", "CAR_PARTS", "CarPart", "car_parts", "draw_car",
    "draw_roadside", "draw_objects", "photometry", "texture_source", "render_background", "render_road_scene",
]

Rng = np.random.Generator

#: Focal length in pixels as a fraction of the image size (~85 deg field of view).
FOCAL_FRACTION = 0.55
#: Depth used for rows at / above the horizon (avoids inf * 0).
Z_MAX = 1e4


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
class RoadScene:
    """Everything random about one road scene (no labels: a generator subclasses or wraps it).

    ``render_road_scene`` is a pure function of these parameters (its pixel noise comes from ``texture_seed``),
    so a scene can be stored, inspected in tests and re-rendered at any size.
    """

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


def centreline_x(params: RoadScene, depth: np.ndarray | float) -> np.ndarray:
    """World lateral position of the road centre at ``depth`` (see module docstring)."""
    z = np.asarray(depth, dtype=np.float64)
    return params.lateral_offset + params.yaw * z + 0.5 * params.curvature * z**2


def road_centre_px(params: RoadScene, size: int, depth: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Image position ``(x, y)`` in pixels of the road centre at ``depth``.

    Exposed so tests (and users) can check the rendered geometry without re-deriving the projection.
    """
    z = np.asarray(depth, dtype=np.float64)
    y_h = params.horizon * size
    x = size / 2 + FOCAL_FRACTION * size * centreline_x(params, z) / z
    return x, y_h + (size - y_h) / z


# --------------------------------------------------------------------------
# Sampling (the order of draws from the generator is part of the contract)
# --------------------------------------------------------------------------


def mix(a: RGB, b: RGB, t: float) -> RGB:
    """``a + (b - a) * t`` per channel, as plain floats."""
    return tuple(float(x + (y - x) * t) for x, y in zip(a, b))  # type: ignore[return-value]


def count(rng: Rng, probs: list[float]) -> int:
    """A count ``k`` drawn with probability ``probs[k]``."""
    return int(rng.choice(len(probs), p=probs))


def sample_sky(rng: Rng) -> dict[str, float | RGB]:
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
    hill_rgb = mix(hsv_to_rgb(rng.uniform(0.2, 0.4), rng.uniform(0.2, 0.5), 0.3), hor, 0.45)
    return dict(sky_top=top, sky_horizon=hor, clouds=clouds, hills=hills, hill_rgb=hill_rgb)


def sample_ground(rng: Rng) -> RGB:
    """Grass, dry field, bare soil/sand or (rarely) snow."""
    kind = rng.choice(4, p=[0.45, 0.25, 0.2, 0.1])
    if kind == 0:
        return hsv_to_rgb(rng.uniform(0.2, 0.33), rng.uniform(0.3, 0.7), rng.uniform(0.25, 0.6))
    if kind == 1:
        return hsv_to_rgb(rng.uniform(0.08, 0.15), rng.uniform(0.3, 0.6), rng.uniform(0.4, 0.7))
    if kind == 2:
        return hsv_to_rgb(rng.uniform(0.05, 0.12), rng.uniform(0.05, 0.3), rng.uniform(0.35, 0.7))
    return hsv_to_rgb(rng.uniform(0.55, 0.65), rng.uniform(0.0, 0.06), rng.uniform(0.8, 0.95))


def sample_surface(rng: Rng) -> dict[str, float | RGB]:
    """Ground, asphalt, shoulder and lane-marking appearance."""
    ground = sample_ground(rng)
    road = hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0, 0.1), rng.uniform(0.18, 0.55))
    yellow = hsv_to_rgb(rng.uniform(0.11, 0.15), rng.uniform(0.55, 0.8), rng.uniform(0.75, 0.95))
    white = hsv_to_rgb(0.0, 0.0, rng.uniform(0.8, 1.0))
    return dict(
        ground_rgb=ground,
        ground_texture=rng.uniform(0.05, 0.25),
        road_rgb=road,
        asphalt_noise=rng.uniform(0.03, 0.12),
        shoulder=rng.uniform(0.08, 0.3) if rng.uniform() < 0.5 else 0.0,
        shoulder_rgb=mix(ground, (0.62, 0.58, 0.52), rng.uniform(0.4, 0.8)),
        edge_lines=rng.uniform(0.25, 1.0) if rng.uniform() < 0.8 else 0.0,
        edge_rgb=white if rng.uniform() < 0.8 else yellow,
        centre_dashes=rng.uniform(0.25, 1.0) if rng.uniform() < 0.7 else 0.0,
        dash_rgb=white if rng.uniform() < 0.6 else yellow,
        line_width=rng.uniform(0.03, 0.06),
        dash_period=rng.uniform(0.6, 1.4),
        dash_duty=rng.uniform(0.3, 0.6),
        dash_phase=rng.uniform(0, 1),
    )


def sample_shadows(rng: Rng, view_depth: float, hw: float) -> tuple[ShadowParams, ...]:
    """0-2 shadow bands across the road."""
    return tuple(
        ShadowParams(
            depth=rng.uniform(1.0, 0.8 * view_depth),
            length=rng.uniform(0.15, 1.2),
            side=int(rng.choice([-1, 1])),
            cut=rng.uniform(-1.5, 1.2) * hw,
            darkness=rng.uniform(0.45, 0.8),
        )
        for _ in range(count(rng, [0.4, 0.35, 0.25]))
    )


def sample_car_rgb(rng: Rng) -> RGB:
    """Any hue, from grey to saturated, from dark to light."""
    return hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0, 0.8), rng.uniform(0.15, 0.95))


def sample_cars(rng: Rng, view_depth: float, hw: float) -> tuple[CarParams, ...]:
    """0-2 cars on the road; far ones can hide exactly the part where it bends."""
    cars = []
    for _ in range(count(rng, [0.4, 0.35, 0.25])):
        width = rng.uniform(0.45, 0.6) * hw
        cars.append(
            CarParams(
                depth=rng.uniform(1.6, max(2.0, 0.85 * view_depth)),
                lane_offset=rng.uniform(-0.55, 0.55) * hw,
                width=width,
                height=width * rng.uniform(0.75, 1.0),
                rgb=sample_car_rgb(rng),
            )
        )
    return tuple(cars)


def sample_roadside(rng: Rng, view_depth: float, hw: float, max_count: int = 6) -> tuple[RoadsideParams, ...]:
    """0-``max_count`` poles and trees next to the road; they follow the road, as in reality."""
    objs = []
    for _ in range(int(rng.integers(0, max_count + 1))):
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


def sample_photometry(rng: Rng) -> dict[str, float | bool | int | RGB]:
    """Haze, exposure, contrast, white balance, noise, blur and the seed of the pixel noise."""
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


# --------------------------------------------------------------------------
# Rendering helpers
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Camera:
    """Per-image projection quantities; rows/cols are 1-D so most maths stays cheap."""

    size: int
    focal: float
    y_h: float  # horizon row (pixels)
    cols_u: np.ndarray  # (S,) (x - cx) / f at pixel centres
    rows_z: np.ndarray  # (S,) ground depth of each row (Z_MAX above the horizon)
    ground_cov: np.ndarray  # (S,) fraction of each row below the horizon
    px: np.ndarray  # (S,) pixel-centre coordinates (same for rows and columns)

    def column(self, x_world: float, depth: float) -> float:
        """Image column of lateral world position ``x_world`` at ``depth``."""
        return self.size / 2 + self.focal * x_world / depth

    def ground_row(self, depth: float) -> float:
        """Image row where the ground at ``depth`` is seen."""
        return self.y_h + (self.size - self.y_h) / depth


def make_camera(params: RoadScene, size: int) -> Camera:
    """Project every row to its ground depth ``z = A / (y - y_h)`` (bottom edge: z = 1)."""
    px = np.arange(size, dtype=np.float32) + 0.5
    y_h = params.horizon * size
    below = px - y_h  # rows below the horizon, in pixels
    z = np.where(below > 0, (size - y_h) / np.maximum(below, 1e-6), Z_MAX)
    focal = FOCAL_FRACTION * size
    return Camera(
        size=size,
        focal=focal,
        y_h=y_h,
        cols_u=(px - size / 2) / focal,
        rows_z=np.minimum(z, Z_MAX).astype(np.float32),
        ground_cov=np.clip(below + 0.5, 0, 1).astype(np.float32),
        px=px,
    )


def lerp(a: np.ndarray, b: np.ndarray | RGB, t: np.ndarray | float) -> np.ndarray:
    """``a + (b - a) * t`` with ``t`` broadcast over the colour axis when 2-D."""
    b = np.asarray(b, dtype=np.float32)
    if isinstance(t, np.ndarray) and t.ndim == a.ndim - 1:
        t = t[..., None]
    return a + (b - a) * t


def value_noise(table: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smooth 2-D value noise in [-1, 1]: bilinear (smoothstep) lookup in a tiled square table.

    Evaluated at *world* coordinates it gives perspective-correct texture for free: blobs shrink with depth
    exactly like the road does.  The four lattice values are gathered from the flattened table with one
    index each (the same values as ``table[ia, ib]``, about twice as fast).
    """
    n = table.shape[0]
    fa, fb = np.floor(a), np.floor(b)
    ta, tb = a - fa, b - fb
    ta, tb = ta * ta * (3 - 2 * ta), tb * tb * (3 - 2 * tb)
    if n & (n - 1) == 0:  # a power of two: the bit mask is the (non-negative) remainder, and cheaper
        ia, ib = fa.astype(np.int64) & (n - 1), fb.astype(np.int64) & (n - 1)
        ia1, ib1 = (ia + 1) & (n - 1), (ib + 1) & (n - 1)
    else:
        ia, ib = fa.astype(np.int64) % n, fb.astype(np.int64) % n
        ia1, ib1 = (ia + 1) % n, (ib + 1) % n
    flat = table.ravel()
    row, row1 = ia * n, ia1 * n
    t00, t10 = flat.take(row + ib), flat.take(row1 + ib)
    t01, t11 = flat.take(row + ib1), flat.take(row1 + ib1)
    top = t00 + (t10 - t00) * ta
    bot = t01 + (t11 - t01) * ta
    return top + (bot - top) * tb


def edge(signed_dist: np.ndarray, pixel: np.ndarray | float) -> np.ndarray:
    """Anti-aliased coverage of a half-space given the signed distance (inside > 0)
    and the size of one pixel in the same units."""
    return np.clip(signed_dist / pixel + 0.5, 0.0, 1.0)


def interval_cov(coords: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """1-D coverage of pixel centres ``coords`` by the interval [lo, hi].

    For ``hi - lo >= 1`` this is the exact overlap of pixel ``[c - 0.5, c + 0.5]`` with the interval, so it is
    > 0 exactly on the pixels the interval touches (``floor(lo) .. ceil(hi) - 1``).
    """
    return np.clip(np.minimum(coords - lo, hi - coords) + 0.5, 0.0, 1.0) * min(1.0, hi - lo)


def paint_box(img: np.ndarray, x0: float, x1: float, y0: float, y1: float, rgb: RGB, alpha: float = 1.0) -> None:
    """Alpha-blend an anti-aliased axis-aligned box, touching only its bounding slice."""
    s = img.shape[0]
    c0, c1 = max(int(np.floor(x0)), 0), min(int(np.ceil(x1)) + 1, s)
    r0, r1 = max(int(np.floor(y0)), 0), min(int(np.ceil(y1)) + 1, s)
    if c0 >= c1 or r0 >= r1 or x1 <= x0 or y1 <= y0:
        return
    px = np.arange(s, dtype=np.float32) + 0.5
    cov = np.outer(interval_cov(px[r0:r1], y0, y1), interval_cov(px[c0:c1], x0, x1)) * alpha
    img[r0:r1, c0:c1] = lerp(img[r0:r1, c0:c1], rgb, cov)


def paint_ellipse(img: np.ndarray, ex: float, ey: float, rx: float, ry: float, rgb: RGB) -> None:
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
    img[r0:r1, c0:c1] = lerp(img[r0:r1, c0:c1], np.asarray(rgb, np.float32) * shade, cov)


# --------------------------------------------------------------------------
# Rendering layers
# --------------------------------------------------------------------------


def sky_layer(params: RoadScene, cam: Camera, table: np.ndarray) -> np.ndarray:
    """Vertical gradient + soft clouds + optional distant skyline silhouette."""
    s = cam.size
    t = np.clip(cam.px / max(cam.y_h, 1.0), 0, 1) ** 0.7
    img = lerp(np.broadcast_to(np.float32(params.sky_top), (s, 3)), params.sky_horizon, t)
    img = np.broadcast_to(img[:, None, :], (s, s, 3)).copy()
    if params.clouds > 0:
        g = cam.px[None, :] * (6.0 / s)
        cloud = value_noise(table, g, cam.px[:, None] * (14.0 / s) + 7.0)
        amount = np.clip(cloud, 0, 1) * params.clouds * (1 - t[:, None])  # none at the horizon
        img = lerp(img, (0.95, 0.95, 0.97), amount)
    if params.hills > 0:
        prof = value_noise(table, cam.px * (5.0 / s), np.full(s, 3.5, np.float32))
        top = cam.y_h - params.hills * s * (0.6 + 0.4 * prof)  # skyline row per column
        img = lerp(img, params.hill_rgb, edge(cam.px[:, None] - top[None, :], 1.0))
    return img


def ground_layer(params: RoadScene, cam: Camera, table: np.ndarray, rng: Rng) -> np.ndarray:
    """Ground plane with texture evaluated in world coordinates (perspective-correct)."""
    z = cam.rows_z[:, None]
    x_world = cam.cols_u[None, :] * z
    tex = value_noise(table, x_world * 2.5, z * 2.5 + 17.0)
    tex += 0.5 * value_noise(table, x_world * 9.0 + 5.0, z * 9.0)
    tex += 0.3 * rng.standard_normal(tex.shape, dtype=np.float32)
    base = np.asarray(params.ground_rgb, np.float32)
    return base * (1.0 + params.ground_texture * tex)[..., None]


def road_layer(params: RoadScene, cam: Camera, table: np.ndarray, rng: Rng, ground: np.ndarray) -> np.ndarray:
    """Composite shoulder, asphalt and markings onto ``ground``.

    Everything is computed from ``d``, the lateral world offset of each pixel from the road centreline at that
    pixel's depth, so the widths shrink with depth and follow the curve automatically.
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
        out = lerp(out, params.shoulder_rgb, edge(hw * (1 + params.shoulder) - ad, pix) * fade)
    out = lerp(out, asphalt(params, d, z, table, rng), edge(hw - ad, pix) * fade)
    lw = params.line_width / 2
    if params.edge_lines > 0:
        # a line of half-width lw centred lw inside each road edge
        line = edge(lw - np.abs(ad - (hw - 2 * lw)), pix)
        out = lerp(out, params.edge_rgb, line * params.edge_lines * fade)
    if params.centre_dashes > 0:
        on = ((z / params.dash_period + params.dash_phase) % 1.0) < params.dash_duty
        out = lerp(out, params.dash_rgb, edge(lw - ad, pix) * on * params.centre_dashes * fade)
    return out


def asphalt(params: RoadScene, d: np.ndarray, z: np.ndarray, table: np.ndarray, rng: Rng) -> np.ndarray:
    """Asphalt colour: patches + grain + darker worn tyre tracks."""
    patches = value_noise(table, d * 4.0 + 31.0, z * 3.0 + 11.0)
    grain = rng.standard_normal(d.shape, dtype=np.float32)
    hw = params.road_half_width
    tracks = np.exp(-(((np.abs(d) - 0.5 * hw) / (0.12 * hw)) ** 2))
    shade = 1.0 + params.asphalt_noise * (patches + 0.8 * grain) - 0.12 * tracks
    return np.asarray(params.road_rgb, np.float32) * shade[..., None]


def shadow_factor(params: RoadScene, cam: Camera) -> np.ndarray:
    """Multiplicative shading map of the shadow bands lying on the ground."""
    z = cam.rows_z[:, None]
    d = cam.cols_u[None, :] * z - centreline_x(params, cam.rows_z).astype(np.float32)[:, None]
    pix = z / cam.focal
    factor = np.ones_like(d)
    for sh in params.shadows:
        # Along z one row spans ~z**2 / A world units.  Edges are blurred over
        # a few pixels: real shadows have a penumbra.
        zpix = z * z / (cam.size - cam.y_h)
        band = edge(np.minimum(z - sh.depth, sh.depth + sh.length - z), 2.0 * zpix)
        band = band * edge(sh.side * d - sh.cut, 3.0 * pix)
        factor *= 1.0 - (1.0 - sh.darkness) * band
    return factor


def hazed(rgb: RGB, params: RoadScene, depth: float) -> RGB:
    """Colour of an object at ``depth`` seen through the scene's fog."""
    return mix(rgb, params.sky_horizon, 1.0 - np.exp(-params.haze * depth))


#: A car's parts in car units, in painting order: (x_lo, x_hi, low, high, role), x in [-0.5, 0.5] * width,
#: height 0 (ground) .. 1 (roof). Roles: "shadow" is shading on the road, not part of the car.
CAR_PARTS: tuple[tuple[float, float, float, float, str], ...] = (
    (-0.56, 0.56, -0.05, 0.06, "shadow"),  # contact shadow on the road
    (-1 * 0.48 - 0.09, -1 * 0.48 + 0.09, 0.0, 0.22, "wheel"),  # wheels below the body
    (1 * 0.48 - 0.09, 1 * 0.48 + 0.09, 0.0, 0.22, "wheel"),
    (-0.5, 0.5, 0.12, 0.62, "body"),
    (-0.4, 0.4, 0.6, 1.0, "cabin"),
    (-0.34, 0.34, 0.66, 0.93, "window"),  # rear window: the dark band
    (-1 * 0.4 - 0.07, -1 * 0.4 + 0.07, 0.42, 0.52, "light"),  # tail lights
    (1 * 0.4 - 0.07, 1 * 0.4 + 0.07, 0.42, 0.52, "light"),
    (-0.5, 0.5, 0.12, 0.2, "bumper"),
)


#: A car part in pixels: (x0, x1, y0, y1, rgb, alpha, role).
CarPart = tuple[float, float, float, float, RGB, float, str]


def car_parts(car: CarParams, params: RoadScene, cam: Camera) -> list[CarPart]:
    """A car from behind as pixel boxes ``(x0, x1, y0, y1, rgb, alpha, role)``, in painting order.

    Body, narrower cabin, rear window, wheels, tail lights, bumper, plus a translucent contact shadow (role
    ``"shadow"``). Every other part is opaque and belongs to the car's extent.
    """
    z = car.depth
    xc = cam.size / 2 + cam.focal * (float(centreline_x(params, z)) + car.lane_offset) / z
    yb = cam.y_h + (cam.size - cam.y_h) / z  # ground contact row
    w, h = cam.focal * car.width / z, cam.focal * car.height / z
    body = hazed(car.rgb, params, z)
    dark = hazed((0.05, 0.05, 0.06), params, z)
    colours = {
        "shadow": (0.0, 0.0, 0.0),
        "wheel": dark,
        "body": body,
        "cabin": mix(body, (0.0, 0.0, 0.0), 0.1),
        "window": mix(dark, body, 0.2),
        "light": hazed((0.75, 0.08, 0.05), params, z),
        "bumper": mix(body, (0.0, 0.0, 0.0), 0.4),
    }
    return [
        (xc + x_lo * w, xc + x_hi * w, yb - high * h, yb - low * h, colours[role], 0.45 if role == "shadow" else 1.0,
         role)
        for x_lo, x_hi, low, high, role in CAR_PARTS
    ]


def draw_car(img: np.ndarray, car: CarParams, params: RoadScene, cam: Camera) -> None:
    """Paint a car from behind (:func:`car_parts`)."""
    for x0, x1, y0, y1, rgb, alpha, _ in car_parts(car, params, cam):
        paint_box(img, x0, x1, y0, y1, rgb, alpha)


def draw_roadside(img: np.ndarray, obj: RoadsideParams, params: RoadScene, cam: Camera) -> None:
    """Pole (thin bar) or tree (trunk + canopy) next to the road, scaled by depth."""
    z = obj.depth
    x_world = float(centreline_x(params, z)) + obj.side * (params.road_half_width + obj.distance)
    xc = cam.size / 2 + cam.focal * x_world / z
    yb = cam.y_h + (cam.size - cam.y_h) / z
    h, w = cam.focal * obj.height / z, cam.focal * obj.width / z
    rgb = hazed(obj.rgb, params, z)
    if obj.kind == "pole":
        paint_box(img, xc - w / 2, xc + w / 2, yb - h, yb, rgb)
        return
    trunk = hazed((0.28, 0.2, 0.13), params, z)
    paint_box(img, xc - 0.06 * w, xc + 0.06 * w, yb - 0.5 * h, yb, trunk)
    paint_ellipse(img, xc, yb - 0.68 * h, w / 2, 0.34 * h, rgb)


def draw_objects(img: np.ndarray, params: RoadScene, cam: Camera) -> None:
    """Painter's algorithm: far objects first so near ones occlude them."""
    items: list[tuple[float, object]] = [(c.depth, c) for c in params.cars]
    items += [(o.depth, o) for o in params.roadside]
    for _, obj in sorted(items, key=lambda it: -it[0]):
        if isinstance(obj, CarParams):
            draw_car(img, obj, params, cam)
        else:
            draw_roadside(img, obj, params, cam)  # type: ignore[arg-type]


def photometry(img: np.ndarray, params: RoadScene, rng: Rng) -> np.ndarray:
    """Exposure, contrast, white balance, blur and sensor noise."""
    return camera_response(img, params.contrast, params.brightness, params.colour_gain, int(params.blur),
                           params.noise_sigma, rng)


def texture_source(params: RoadScene) -> tuple[Rng, np.ndarray]:
    """The scene's pixel-noise generator and its value-noise table (drawn first from it)."""
    rng = np.random.default_rng(params.texture_seed)
    table = rng.uniform(-1, 1, size=(64, 64)).astype(np.float32)
    return rng, table


def render_background(params: RoadScene, cam: Camera, table: np.ndarray, rng: Rng) -> np.ndarray:
    """Sky, ground, road, shadows and fog as a float32 (S, S, 3) image in about [0, 1] (before objects)."""
    ground = ground_layer(params, cam, table, rng)
    ground = road_layer(params, cam, table, rng, ground) * shadow_factor(params, cam)[..., None]
    fog = 1.0 - np.exp(-params.haze * cam.rows_z)  # 1 at the horizon
    ground = lerp(ground, params.sky_horizon, fog[:, None])
    below = np.broadcast_to(cam.ground_cov[:, None], (cam.size, cam.size))
    return lerp(sky_layer(params, cam, table), ground, below)


def render_road_scene(params: RoadScene, size: int) -> np.ndarray:
    """Render ``params`` (with its cars and roadside objects) as a ``size x size x 3`` uint8 RGB image."""
    rng, table = texture_source(params)
    cam = make_camera(params, size)
    img = render_background(params, cam, table, rng)
    draw_objects(img, params, cam)
    return to_uint8(photometry(img, params, rng))
