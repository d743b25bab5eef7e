"""Cameras: the NeRF pixel grid, pose checks, look-at and the Blender focal."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from torchrepro.core.errors import DataError
from torchrepro.nerf.cameras import (check_poses, focal_from_fov, fov_from_focal, hemisphere_poses, look_at,
                                     orbit_poses, pixel_rays)


def test_identity_pose_centre_direction_and_depth_parametrisation():
    origins, dirs = pixel_rays(6, 8, 10.0, torch.eye(4))
    assert origins.shape == dirs.shape == (6, 8, 3) and dirs.dtype == torch.float32
    assert torch.allclose(dirs[3, 4], torch.tensor([0.0, 0.0, -1.0]))  # pixel (W/2, H/2): the optical axis
    assert torch.allclose(dirs[..., 2], torch.full((6, 8), -1.0))  # unnormalised: t is camera depth
    # the reference grid (no +0.5): column 0 is at x = -W/2 / f, row 0 at y = +H/2 / f
    assert torch.allclose(dirs[0, 0], torch.tensor([-0.4, 0.3, -1.0]))
    assert torch.count_nonzero(origins) == 0


def test_known_point_projects_to_expected_pixel():
    h, w, f = 40, 60, 50.0
    c2w = look_at((3.0, -2.0, 1.5), (0.1, 0.2, -0.3))
    i, j, depth = 17, 29, 3.7
    # a point at camera depth 3.7 seen through pixel (17, 29) in camera coordinates, then moved to the world
    p_cam = np.array([(i - w / 2) / f * depth, -(j - h / 2) / f * depth, -depth, 1.0])
    p_world = (c2w @ p_cam)[:3]
    origins, dirs = pixel_rays(h, w, f, torch.from_numpy(c2w))
    on_ray = origins[j, i].numpy() + depth * dirs[j, i].numpy()
    np.testing.assert_allclose(on_ray, p_world, atol=1e-9)
    # and projecting the world point back with the inverse pose gives that pixel
    q = np.linalg.inv(c2w) @ np.append(p_world, 1.0)
    assert (round(q[0] / -q[2] * f + w / 2), round(-q[1] / -q[2] * f + h / 2)) == (i, j)


def test_batched_poses():
    poses = torch.from_numpy(hemisphere_poses(3, 4.0, seed=1)).float()
    origins, dirs = pixel_rays(5, 7, 6.0, poses)
    assert dirs.shape == (3, 5, 7, 3)
    single = pixel_rays(5, 7, 6.0, poses[2])
    assert torch.allclose(dirs[2], single[1]) and torch.allclose(origins[2], single[0])


def test_look_at_points_minus_z_at_target():
    eye, target = np.array([1.0, 2.0, 3.0]), np.array([-0.5, 0.2, 0.1])
    c2w = look_at(eye, target)
    forward = -c2w[:3, 2]
    np.testing.assert_allclose(forward, (target - eye) / np.linalg.norm(target - eye), atol=1e-12)
    np.testing.assert_allclose(c2w[:3, 3], eye)
    assert abs(c2w[2, 0]) < 1e-12 and c2w[2, 1] > 0  # x horizontal, y leans up (world z up)
    check_poses(c2w[None], "look_at")
    check_poses(look_at((0, 0, 5.0))[None], "straight down")  # viewing along up still gives a rigid pose


def test_hemisphere_and_orbit_poses():
    poses = hemisphere_poses(50, 4.0, seed=3)
    check_poses(poses, "hemisphere")
    np.testing.assert_allclose(np.linalg.norm(poses[:, :3, 3], axis=1), 4.0)
    elevation = np.degrees(np.arcsin(poses[:, 2, 3] / 4.0))
    assert elevation.min() >= 10 - 1e-9 and elevation.max() <= 80 + 1e-9
    np.testing.assert_array_equal(poses, hemisphere_poses(50, 4.0, seed=3))
    assert not np.allclose(poses, hemisphere_poses(50, 4.0, seed=4))
    # every camera looks at the origin
    to_origin = -poses[:, :3, 3] / 4.0
    np.testing.assert_allclose(-poses[:, :3, 2], to_origin, atol=1e-12)
    orbit = orbit_poses(8, 3.0, 30.0)
    check_poses(orbit, "orbit")
    np.testing.assert_allclose(orbit[:, 2, 3], 3.0 * math.sin(math.radians(30)))


def test_focal_from_fov_lego():
    focal = focal_from_fov(800, 0.6911112070083618)
    assert focal == pytest.approx(1111.111, abs=1e-2)
    assert focal_from_fov(100, 0.6911112070083618) == pytest.approx(138.889, abs=1e-3)
    assert fov_from_focal(800, focal) == pytest.approx(0.6911112070083618)


@pytest.mark.parametrize("case, fragment", [
    ("shape", "shape [N, 4, 4]"), ("last_row", "last row"), ("scaled", "not rigid"), ("reflection", "determinant"),
    ("nan", "non-finite"),
])
def test_check_poses_rejects(case, fragment):
    poses = hemisphere_poses(3, 4.0, seed=0)
    if case == "shape":
        poses = poses[:, :3]
    elif case == "last_row":
        poses[1, 3] = (0, 0, 1, 1)
    elif case == "scaled":
        poses[2, :3, :3] *= 1.1
    elif case == "reflection":
        poses[0, :3, 0] *= -1
    else:
        poses[0, 0, 3] = np.nan
    with pytest.raises(DataError, match="my_scene.npz") as err:
        check_poses(poses, "my_scene.npz")
    assert fragment in str(err.value)
    with pytest.raises(DataError):
        check_poses(torch.from_numpy(poses), "tensor")
