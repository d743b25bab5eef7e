"""Pinhole cameras in the NeRF convention (Mildenhall et al., ECCV 2020, §4 and the released ``run_nerf_helpers``).

Conventions (shared by every NeRF module, the data readers and the embedded scene):

* **Camera frame (OpenGL / Blender):** the camera looks down its −z axis, x points right, y points up.
* **Poses** are 4×4 *camera-to-world* matrices ``c2w``: ``c2w[:3, :3]`` rotates camera directions into the
  world, ``c2w[:3, 3]`` is the camera centre. World z is up, as in the Blender (NeRF-synthetic) scenes.
* **Pixel grid (the reference's):** pixel ``(i, j)`` (i = column, j = row) is looked at through the camera
  direction ``((i - W/2) / f, -(j - H/2) / f, -1)`` — *no* +½ pixel-centre offset, exactly as ``get_rays`` of
  the original NeRF code and the seed's tiny NeRF notebook. A scene rendered by
  :func:`torchrepro.nerf.scene.render_view` uses the same rays, so pixel colours and rays agree exactly.
* **Ray directions are not normalised:** their component along the optical axis is 1, so the point at ray
  parameter ``t`` lies at camera depth ``t`` (``near``/``far`` are depths, and a rendered depth is ``t``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from torchrepro.core.errors import DataError

__all__ = ["check_poses", "focal_from_fov", "fov_from_focal", "hemisphere_poses", "look_at", "orbit_poses",
           "pixel_rays"]

#: Tolerance of :func:`check_poses` on orthonormality, determinant and the last row.
POSE_TOLERANCE = 1e-3


def pixel_rays(height: int, width: int, focal: float, c2w: Tensor) -> tuple[Tensor, Tensor]:
    """Origins and directions of the rays through every pixel, each ``[..., H, W, 3]``.

    ``c2w`` is one pose ``[4, 4]`` (→ ``[H, W, 3]``) or a batch ``[N, 4, 4]`` (→ ``[N, H, W, 3]``); a numpy array
    is accepted too. Pixel ``(i, j)`` (column, row) has the camera direction ``((i - W/2)/f, -(j - H/2)/f, -1)``
    — the reference's grid, *without* the +½ pixel-centre offset — rotated by ``c2w[:3, :3]`` and left
    unnormalised (unit component along the optical axis, so ``t`` is camera depth). Origins are ``c2w[:3, 3]``
    broadcast. The dtype follows ``c2w`` when it is floating point (float32 in the pipeline).
    """
    c2w = torch.as_tensor(c2w)
    if not c2w.is_floating_point():
        c2w = c2w.to(torch.float32)
    if c2w.shape[-2:] != (4, 4) or c2w.ndim not in (2, 3):
        raise ValueError(f"pixel_rays needs c2w of shape [4, 4] or [N, 4, 4], got {list(c2w.shape)}")
    i, j = torch.meshgrid(torch.arange(width, dtype=c2w.dtype, device=c2w.device),
                          torch.arange(height, dtype=c2w.dtype, device=c2w.device), indexing="xy")
    dirs_cam = torch.stack([(i - width * 0.5) / focal, -(j - height * 0.5) / focal, -torch.ones_like(i)], -1)
    rot = c2w[..., :3, :3]
    dirs = torch.einsum("...ab,hwb->...hwa", rot, dirs_cam)
    origins = c2w[..., None, None, :3, 3].expand(dirs.shape)
    return origins, dirs


def focal_from_fov(width: int, camera_angle_x: float) -> float:
    """Focal length in pixels from the Blender format's horizontal field of view: ``0.5 W / tan(0.5 fov)``."""
    return float(0.5 * width / math.tan(0.5 * camera_angle_x))


def fov_from_focal(width: int, focal: float) -> float:
    """The inverse of :func:`focal_from_fov`: ``camera_angle_x = 2 atan(0.5 W / f)`` in radians."""
    return float(2.0 * math.atan(0.5 * width / focal))


def check_poses(poses: np.ndarray | Tensor, source: str) -> None:
    """Raise :class:`DataError` naming ``source`` unless ``poses`` are finite rigid camera-to-world matrices.

    Checks: shape ``[N, 4, 4]``, all finite, last row ``(0, 0, 0, 1)``, rotation orthonormal with determinant +1
    (within :data:`POSE_TOLERANCE`).
    """
    p = poses.detach().cpu().double().numpy() if isinstance(poses, Tensor) else np.asarray(poses, dtype=np.float64)
    if p.ndim != 3 or p.shape[1:] != (4, 4):
        raise DataError(f"{source}: camera poses must have shape [N, 4, 4] (camera-to-world), got {list(p.shape)}; "
                        f"fix the pose array of the data set")
    if not np.isfinite(p).all():
        bad = int(np.argmax(~np.isfinite(p).reshape(len(p), -1).all(1)))
        raise DataError(f"{source}: camera pose {bad} holds non-finite values (nan/inf); fix or drop that frame")
    last_err = np.abs(p[:, 3] - np.array([0.0, 0.0, 0.0, 1.0])).max(1)
    if (last_err > POSE_TOLERANCE).any():
        bad = int(np.argmax(last_err))
        raise DataError(f"{source}: camera pose {bad} has last row {p[bad, 3].round(4).tolist()}, not (0, 0, 0, 1); "
                        f"poses must be 4x4 homogeneous camera-to-world matrices")
    rot = p[:, :3, :3]
    ortho_err = np.abs(rot.transpose(0, 2, 1) @ rot - np.eye(3)).reshape(len(p), -1).max(1)
    det = np.linalg.det(rot) if len(p) else np.zeros(0)
    bad_rigid = (ortho_err > POSE_TOLERANCE) | (np.abs(det - 1.0) > POSE_TOLERANCE)
    if bad_rigid.any():
        bad = int(np.argmax(bad_rigid))
        raise DataError(f"{source}: camera pose {bad} is not rigid (rotation orthonormality error "
                        f"{ortho_err[bad]:.3g}, determinant {det[bad]:.4f}, need an orthonormal rotation with "
                        f"determinant +1); fix the pose or its axis convention")


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def look_at(eye: Sequence[float], target: Sequence[float] = (0.0, 0.0, 0.0),
            up: Sequence[float] = (0.0, 0.0, 1.0)) -> np.ndarray:
    """The camera-to-world pose ``[4, 4]`` (float64) of a camera at ``eye`` whose −z axis points at ``target``.

    The camera's x axis is horizontal (perpendicular to ``up``) and its y axis leans towards ``up``; when the
    viewing direction is parallel to ``up`` another up vector is used so the pose stays defined.
    """
    eye_v, target_v, up_v = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    if np.linalg.norm(target_v - eye_v) < 1e-12:
        raise ValueError("look_at needs eye and target at different positions")
    z = _unit(eye_v - target_v)  # the camera looks down -z
    x = np.cross(up_v, z)
    if np.linalg.norm(x) < 1e-9:  # looking straight along up: any horizontal x will do
        x = np.cross(np.array([0.0, 1.0, 0.0]) if abs(z[1]) < 0.9 else np.array([1.0, 0.0, 0.0]), z)
    x = _unit(x)
    y = np.cross(z, x)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = x, y, z, eye_v
    return c2w


def _sphere_point(radius: float, azimuth: float, elevation: float) -> np.ndarray:
    return radius * np.array([math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth),
                              math.sin(elevation)])


def hemisphere_poses(n: int, radius: float, seed: int, min_elevation_deg: float = 10.0,
                     max_elevation_deg: float = 80.0) -> np.ndarray:
    """``n`` poses ``[n, 4, 4]`` (float64) on the upper hemisphere of ``radius``, all looking at the origin.

    Like the NeRF-synthetic cameras: azimuth uniform in [0, 2π), elevation drawn area-uniformly (uniform in
    sin elevation) between the two bounds; world z is up. Deterministic in ``seed``.
    """
    if not 0.0 <= min_elevation_deg <= max_elevation_deg < 90.0:
        raise ValueError(f"hemisphere_poses needs 0 <= min_elevation_deg <= max_elevation_deg < 90, got "
                         f"{min_elevation_deg}, {max_elevation_deg}")
    rng = np.random.default_rng(seed)
    azimuth = rng.uniform(0.0, 2.0 * math.pi, n)
    lo, hi = math.sin(math.radians(min_elevation_deg)), math.sin(math.radians(max_elevation_deg))
    elevation = np.arcsin(rng.uniform(lo, hi, n))
    return np.stack([look_at(_sphere_point(radius, a, e)) for a, e in zip(azimuth, elevation)]).reshape(n, 4, 4)


def orbit_poses(n: int, radius: float, elevation_deg: float) -> np.ndarray:
    """``n`` poses ``[n, 4, 4]`` (float64) evenly spaced on a circle at ``elevation_deg``, looking at the origin:
    the camera path of a novel-view video (azimuth 0, 360/n, … degrees)."""
    elevation = math.radians(elevation_deg)
    azimuths = np.arange(n) * (2.0 * math.pi / max(n, 1))
    return np.stack([look_at(_sphere_point(radius, a, elevation)) for a in azimuths]).reshape(n, 4, 4)
