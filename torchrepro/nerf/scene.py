"""The embedded NeRF scene: a procedural 3-D still life rendered by our own analytic ray tracer.

It stands in for the lego scene of the NeRF-synthetic set (Mildenhall et al., ECCV 2020, §5.1) so the recipe runs
offline. Everything lies within about the unit cube around the origin (world z up), on a white background:

* a checkerboard-textured ground disc (radius 1, top at z = −0.4),
* a sphere with longitudinal stripes, a banded cylinder, a cone with a colour gradient,
* thin parts NeRF must resolve: a tilted thin ring (torus, tube radius 0.035) and three thin poles (radius 0.02,
  about 1½ px wide at 100 px from distance 4),

with occlusions between them from most viewpoints. Shading is Lambertian with a fixed directional light, hard
shadows and an ambient term: colours are **view-independent** (no specular term), so a NeRF without the view
branch can fit them too. Rays come from :func:`torchrepro.nerf.cameras.pixel_rays` (the reference pixel grid,
no +½ offset), one ray per pixel (no anti-aliasing), so alpha is exactly 0 or 1 and the training rays hit the
very points that coloured the pixels. Depth is the camera depth along the optical axis (= ray parameter ``t``),
**0 on the background**, as in :class:`torchrepro.nerf.formats.SceneData`.

:func:`generate_embedded` writes the views in both real layouts (``tiny_nerf_data.npz`` and a Blender folder)
through :func:`torchrepro.core.generated.publish_once`; the recipe then reads them with the ordinary readers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from torchrepro.core.generated import publish_once
from torchrepro.nerf.cameras import focal_from_fov, hemisphere_poses, pixel_rays
from torchrepro.nerf.formats import split_tiny_nerf, write_blender, write_tiny_nerf

__all__ = ["LEGO_CAMERA_ANGLE_X", "OBJECTS", "generate_embedded", "ray_hits", "render_rays", "render_view",
           "surface_distance"]

#: The horizontal field of view of the NeRF-synthetic lego scene (focal 138.89 px at 100 px wide).
LEGO_CAMERA_ANGLE_X = 0.6911112070083618
#: Direction towards the light (unit), ambient share and the small offset that starts shadow rays off a surface.
LIGHT = np.array([0.45, -0.35, 0.82]) / np.linalg.norm([0.45, -0.35, 0.82])
AMBIENT = 0.35
_EPS = 1e-4
_GENERATOR_VERSION = 1


def _smallest_positive(roots: list[np.ndarray]) -> np.ndarray:
    """Per ray, the smallest root > ``_EPS`` (inf when none)."""
    stacked = np.stack([np.where(np.isfinite(r) & (r > _EPS), r, np.inf) for r in roots])
    return stacked.min(0)


def _quadratic(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both real roots of ``a t² + b t + c`` (nan where none), smaller first."""
    disc = b * b - 4 * a * c
    sq = np.sqrt(np.where(disc >= 0, disc, np.nan))
    return (-b - sq) / (2 * a), (-b + sq) / (2 * a)


# ------------------------------------------------------------------------------------------------------- primitives
@dataclass(frozen=True)
class _Revolved:
    """A solid of revolution about a vertical axis through ``(cx, cy)``, from ``z0`` to ``z1``: a capped cylinder
    (``top_radius == radius``), a cone (``top_radius == 0``) or a sphere (``kind == "sphere"``, centre at
    ``(cx, cy, z0)``). Its surface distance uses the 2-D profile (r, z)."""

    name: str
    kind: str  # "cylinder" | "cone" | "sphere"
    cx: float
    cy: float
    z0: float
    z1: float
    radius: float

    def intersect(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        ox, oy, oz = o[:, 0] - self.cx, o[:, 1] - self.cy, o[:, 2]
        dx, dy, dz = d[:, 0], d[:, 1], d[:, 2]
        if self.kind == "sphere":
            oz = oz - self.z0
            return _smallest_positive(list(_quadratic(dx * dx + dy * dy + dz * dz, 2 * (ox * dx + oy * dy + oz * dz),
                                                      ox * ox + oy * oy + oz * oz - self.radius ** 2)))
        if self.kind == "cylinder":
            a, b, c = dx * dx + dy * dy, 2 * (ox * dx + oy * dy), ox * ox + oy * oy - self.radius ** 2
        else:  # cone: x² + y² = k² (z1 - z)²
            k2 = (self.radius / (self.z1 - self.z0)) ** 2
            h = self.z1 - oz
            a, b = dx * dx + dy * dy - k2 * dz * dz, 2 * (ox * dx + oy * dy + k2 * h * dz)
            c = ox * ox + oy * oy - k2 * h * h
        roots = []
        with np.errstate(divide="ignore", invalid="ignore"):
            for t in _quadratic(a, b, c):
                z = oz + t * dz
                roots.append(np.where((z >= self.z0) & (z <= self.z1), t, np.nan))
            caps = (self.z0, self.z1) if self.kind == "cylinder" else (self.z0,)
            for zc in caps:
                t = (zc - oz) / dz
                inside = (ox + t * dx) ** 2 + (oy + t * dy) ** 2 <= self.radius ** 2
                roots.append(np.where(inside, t, np.nan))
        return _smallest_positive(roots)

    def normal(self, p: np.ndarray) -> np.ndarray:
        x, y, z = p[:, 0] - self.cx, p[:, 1] - self.cy, p[:, 2]
        if self.kind == "sphere":
            n = np.stack([x, y, z - self.z0], -1)
        else:
            r = np.sqrt(x * x + y * y) + 1e-12
            slope = 0.0 if self.kind == "cylinder" else self.radius / (self.z1 - self.z0)
            n = np.stack([x / r, y / r, np.full_like(r, slope)], -1)
            on_bottom = np.abs(z - self.z0) < 1e-6
            on_top = (np.abs(z - self.z1) < 1e-6) & (self.kind == "cylinder")
            n[on_bottom], n[on_top] = (0.0, 0.0, -1.0), (0.0, 0.0, 1.0)
        return n / np.linalg.norm(n, axis=-1, keepdims=True)

    def distance(self, p: np.ndarray) -> np.ndarray:
        """Unsigned distance of points ``[M, 3]`` to the surface."""
        x, y, z = p[:, 0] - self.cx, p[:, 1] - self.cy, p[:, 2]
        if self.kind == "sphere":
            return np.abs(np.sqrt(x * x + y * y + (z - self.z0) ** 2) - self.radius)
        r, R = np.sqrt(x * x + y * y), self.radius
        if self.kind == "cylinder":
            profile = [((0, self.z1), (R, self.z1)), ((R, self.z1), (R, self.z0)), ((R, self.z0), (0, self.z0))]
        else:
            profile = [((0, self.z1), (R, self.z0)), ((R, self.z0), (0, self.z0))]
        return np.min([_segment_distance(r, z, a, b) for a, b in profile], axis=0)


def _segment_distance(r: np.ndarray, z: np.ndarray, a: tuple[float, float], b: tuple[float, float]) -> np.ndarray:
    """Distance of 2-D points (r, z) to the segment a–b."""
    ab = np.subtract(b, a, dtype=np.float64)
    s = np.clip(((r - a[0]) * ab[0] + (z - a[1]) * ab[1]) / (ab @ ab), 0.0, 1.0)
    return np.hypot(r - a[0] - s * ab[0], z - a[1] - s * ab[1])


@dataclass(frozen=True)
class _Torus:
    """A torus of major radius ``R`` and tube radius ``r`` centred at ``centre``, its axis the third row of
    ``frame`` (world-to-local rotation). Intersected exactly: the quartic's roots are the eigenvalues of its
    companion matrices, batched over rays that meet the bounding sphere."""

    name: str
    centre: tuple[float, float, float]
    frame: np.ndarray
    R: float
    r: float

    def _local(self, p: np.ndarray) -> np.ndarray:
        return (p - np.asarray(self.centre)) @ self.frame.T

    def intersect(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        out = np.full(len(o), np.inf)
        lo, ld = self._local(o), d @ self.frame.T
        bound = self.R + self.r
        t_near, t_far = _quadratic((ld * ld).sum(1), 2 * (lo * ld).sum(1), (lo * lo).sum(1) - bound ** 2)
        hit = np.isfinite(t_far) & (t_far > _EPS)
        if not hit.any():
            return out
        lo, ld = lo[hit], ld[hit]
        shift = np.maximum(t_near[hit], 0.0)  # solve from the bounding-sphere entry: small, well-scaled roots
        lo = lo + shift[:, None] * ld
        g, h = (ld * ld).sum(1), 2 * (lo * ld).sum(1)
        i = (lo * lo).sum(1) + self.R ** 2 - self.r ** 2
        four_r2 = 4 * self.R ** 2
        coeffs = np.stack([2 * g * h, h * h + 2 * g * i - four_r2 * (ld[:, 0] ** 2 + ld[:, 1] ** 2),
                           2 * h * i - 2 * four_r2 * (lo[:, 0] * ld[:, 0] + lo[:, 1] * ld[:, 1]),
                           i * i - four_r2 * (lo[:, 0] ** 2 + lo[:, 1] ** 2)], 1) / (g * g)[:, None]
        companion = np.zeros((len(lo), 4, 4))
        companion[:, 0, :] = -coeffs
        companion[:, 1, 0] = companion[:, 2, 1] = companion[:, 3, 2] = 1.0
        roots = np.linalg.eigvals(companion)
        real = np.where(np.abs(roots.imag) < 1e-6, roots.real, np.nan)
        real = self._polish(real, lo, ld)
        t = _smallest_positive([real[:, k] + shift for k in range(4)])
        out[hit] = t
        return out

    def _polish(self, t: np.ndarray, lo: np.ndarray, ld: np.ndarray) -> np.ndarray:
        """Two Newton steps on the implicit function, so hit points lie on the surface to float64 precision."""
        for _ in range(2):
            p = lo[:, None, :] + t[..., None] * ld[:, None, :]
            q = (p * p).sum(-1) + self.R ** 2 - self.r ** 2
            f = q * q - 4 * self.R ** 2 * (p[..., 0] ** 2 + p[..., 1] ** 2)
            grad = 4 * q[..., None] * p
            grad[..., :2] -= 8 * self.R ** 2 * p[..., :2]
            df = (grad * ld[:, None, :]).sum(-1)
            with np.errstate(divide="ignore", invalid="ignore"):
                step = np.where(np.abs(df) > 1e-12, f / df, 0.0)
            t = t - np.clip(step, -1e-2, 1e-2)
        return t

    def normal(self, p: np.ndarray) -> np.ndarray:
        lp = self._local(p)
        ring = lp.copy()
        ring[:, 2] = 0.0
        ring *= self.R / (np.linalg.norm(ring, axis=1, keepdims=True) + 1e-12)
        n = (lp - ring) @ self.frame  # local → world
        return n / np.linalg.norm(n, axis=-1, keepdims=True)

    def distance(self, p: np.ndarray) -> np.ndarray:
        lp = self._local(p)
        return np.abs(np.hypot(np.hypot(lp[:, 0], lp[:, 1]) - self.R, lp[:, 2]) - self.r)


def _tilted_frame(tilt_deg: float, azimuth_deg: float) -> np.ndarray:
    """World-to-local rotation whose local z (the torus axis) is tilted from world z by ``tilt_deg``."""
    t, a = math.radians(tilt_deg), math.radians(azimuth_deg)
    axis = np.array([math.sin(t) * math.cos(a), math.sin(t) * math.sin(a), math.cos(t)])
    x = np.cross([0.0, 0.0, 1.0], axis)
    x = x / np.linalg.norm(x) if np.linalg.norm(x) > 1e-9 else np.array([1.0, 0.0, 0.0])
    return np.stack([x, np.cross(axis, x), axis])


#: The scene, in a fixed order (indices of :func:`ray_hits`).
OBJECTS: tuple[_Revolved | _Torus, ...] = (
    _Revolved("ground", "cylinder", 0.0, 0.0, -0.5, -0.4, 1.0),
    _Revolved("sphere", "sphere", 0.3, 0.15, -0.08, -0.08, 0.32),
    _Revolved("cylinder", "cylinder", -0.42, 0.3, -0.4, 0.25, 0.17),
    _Revolved("cone", "cone", 0.05, -0.5, -0.4, 0.2, 0.22),
    _Torus("ring", (-0.25, -0.15, -0.05), _tilted_frame(70.0, 30.0), 0.28, 0.035),
    _Revolved("pole_a", "cylinder", 0.62, -0.3, -0.4, 0.45, 0.02),
    _Revolved("pole_b", "cylinder", -0.1, 0.62, -0.4, 0.55, 0.02),
    _Revolved("pole_c", "cylinder", -0.65, -0.25, -0.4, 0.35, 0.02),
)


# --------------------------------------------------------------------------------------------------------- textures
def _albedo(name: str, obj: _Revolved | _Torus, p: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Base colour ``[M, 3]`` of object ``name`` at surface points ``p`` (textures are functions of position)."""
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    ones = np.ones_like(x)[:, None]
    if name == "ground":
        top = n[:, 2] > 0.5
        checker = (np.floor(x / 0.2) + np.floor(y / 0.2)) % 2 == 0
        colour = np.where(checker[:, None], [0.85, 0.82, 0.7], [0.25, 0.3, 0.45])
        return np.where(top[:, None], colour, [0.45, 0.32, 0.2])
    if name == "sphere":
        azimuth = np.arctan2(y - obj.cy, x - obj.cx)
        stripe = np.floor(azimuth / (2 * math.pi) * 12) % 2 == 0
        return np.where(stripe[:, None], [0.95, 0.75, 0.1], [0.15, 0.35, 0.85])
    if name == "cylinder":
        band = np.floor((z - obj.z0) / 0.09) % 3
        palette = np.array([[0.1, 0.65, 0.3], [0.95, 0.95, 0.95], [0.05, 0.4, 0.2]])
        return palette[band.astype(int)]
    if name == "cone":
        s = np.clip((z - obj.z0) / (obj.z1 - obj.z0), 0, 1)[:, None]
        return (1 - s) * np.array([0.85, 0.15, 0.1]) + s * np.array([1.0, 0.7, 0.2])
    if name == "ring":
        return ones * [0.8, 0.1, 0.7]
    return ones * [0.12, 0.12, 0.14]  # poles


# ---------------------------------------------------------------------------------------------------------- tracing
def _hits(origins: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """Ray parameter of the first hit with every object, ``[K, M]`` (inf when missed)."""
    return np.stack([obj.intersect(origins, dirs) for obj in OBJECTS])


def render_rays(origins: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shade rays ``[M, 3]`` (float64): rgb ``[M, 3]`` on white, ray parameter ``t`` (0 on background), alpha."""
    t_all = _hits(origins, dirs)
    nearest = np.argmin(t_all, 0)
    t = t_all[nearest, np.arange(len(origins))]
    hit = np.isfinite(t)
    rgb = np.ones((len(origins), 3))
    p = origins + np.where(hit, t, 0.0)[:, None] * dirs
    for k, obj in enumerate(OBJECTS):
        sel = hit & (nearest == k)
        if not sel.any():
            continue
        n = obj.normal(p[sel])
        n = np.where(((n * dirs[sel]).sum(1) > 0)[:, None], -n, n)  # face the camera (thin parts: both sides)
        p_shadow = p[sel] + 1e-3 * n
        lit = ~np.isfinite(_hits(p_shadow, np.broadcast_to(LIGHT, p_shadow.shape)).min(0))
        diffuse = np.clip(n @ LIGHT, 0.0, None) * lit
        rgb[sel] = _albedo(obj.name, obj, p[sel], n) * (AMBIENT + (1 - AMBIENT) * diffuse)[:, None]
    return np.clip(rgb, 0.0, 1.0), np.where(hit, t, 0.0), hit.astype(np.float64)


def render_view(height: int, width: int, focal: float, c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render one view: rgb ``[H, W, 3]`` float32 in [0, 1] on white, depth ``[H, W]`` float32 (camera depth along
    the optical axis, 0 on background) and alpha ``[H, W]`` float32 (1 on objects, 0 on background)."""
    origins, dirs = (a.numpy().reshape(-1, 3) for a in pixel_rays(height, width, focal, np.asarray(c2w, np.float64)))
    rgb, depth, alpha = render_rays(origins, dirs)
    return (rgb.reshape(height, width, 3).astype(np.float32), depth.reshape(height, width).astype(np.float32),
            alpha.reshape(height, width).astype(np.float32))


def ray_hits(height: int, width: int, focal: float, c2w: np.ndarray) -> np.ndarray:
    """Ray parameter (camera depth) of every object along every pixel's ray, ``[K, H, W]`` in :data:`OBJECTS`
    order, inf where the ray misses that object — for occlusion checks."""
    origins, dirs = (a.numpy().reshape(-1, 3) for a in pixel_rays(height, width, focal, np.asarray(c2w, np.float64)))
    return _hits(origins, dirs).reshape(len(OBJECTS), height, width)


def surface_distance(points: np.ndarray) -> np.ndarray:
    """Unsigned distance of points ``[M, 3]`` to the nearest object surface (exact per object)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    return np.min([obj.distance(points) for obj in OBJECTS], axis=0)


# ------------------------------------------------------------------------------------------------------- generation
def generate_embedded(out_dir: Path, size: int = 100, n_views: int = 106, radius: float = 4.0, seed: int = 0,
                      n_train: int = 100) -> Path:
    """Render ``n_views`` hemisphere views and publish them in both layouts under ``out_dir``; returns ``out_dir``.

    ``out_dir/tiny_nerf_data.npz`` (with ``depths``) and ``out_dir/blender/`` (RGBA PNGs + ``_depth.npy``) hold the
    same views and the same split (:func:`~torchrepro.nerf.formats.split_tiny_nerf`: first ``n_train`` train,
    view ``min(101, n_views - 1)`` test, the rest val). The Blender folder lists its frames split by split
    (train, val, test), so with the default 106 views npz view 101 is Blender frame 105: compare by split. The focal
    length gives the lego field of view; cameras at ``radius`` 4 see the scene between depths ~3.1 and ~5.1, inside
    the seed's near 2 / far 6. The set is stamped with these parameters and reused when present.
    """
    test_index = min(101, n_views - 1)
    splits = split_tiny_nerf(n_views, n_train, test_index)
    params = {"size": size, "n_views": n_views, "radius": radius, "seed": seed, "n_train": n_train}

    def write(folder: Path) -> dict:
        focal = focal_from_fov(size, LEGO_CAMERA_ANGLE_X)
        poses = hemisphere_poses(n_views, radius, seed)
        views = [render_view(size, size, focal, pose) for pose in poses]
        images, depths, alphas = (np.stack(v) for v in zip(*views))
        write_tiny_nerf(folder / "tiny_nerf_data.npz", images, poses, focal, depths=depths)
        write_blender(folder / "blender", images, poses, focal, splits, depths=depths, alphas=alphas)
        fg = depths[depths > 0]
        return {"focal": focal, "test_index": test_index, "depth_min": float(fg.min(initial=np.inf)),
                "depth_max": float(fg.max(initial=0.0)), "foreground_fraction": float(alphas.mean())}

    bytes_needed = int(n_views * size * size * (3 * 4 + 4 + 4 + 4 + 4) * 1.5) + (1 << 20)
    publish_once(Path(out_dir), write, generator="torchrepro.nerf.scene.generate_embedded",
                 version=_GENERATOR_VERSION, params=params, bytes_needed=bytes_needed, config_key="data.root")
    return Path(out_dir)
