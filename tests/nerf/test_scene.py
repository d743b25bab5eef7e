"""The embedded scene: determinism, depth on the surfaces, occlusions, and both written layouts read back."""

from __future__ import annotations

import numpy as np
import pytest

from torchrepro.core.generated import read_stamp
from torchrepro.nerf import scene
from torchrepro.nerf.cameras import focal_from_fov, hemisphere_poses, look_at, pixel_rays
from torchrepro.nerf.formats import read_blender, read_tiny_nerf

SIZE = 40
FOCAL = focal_from_fov(SIZE, scene.LEGO_CAMERA_ANGLE_X)
POSES = hemisphere_poses(6, 4.0, seed=0)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    return scene.generate_embedded(tmp_path_factory.mktemp("nerf") / "embedded", size=24, n_views=9, n_train=5,
                                   seed=0)


def test_render_is_deterministic_and_well_formed():
    rgb, depth, alpha = scene.render_view(SIZE, SIZE, FOCAL, POSES[0])
    again = scene.render_view(SIZE, SIZE, FOCAL, POSES[0])
    for a, b in zip((rgb, depth, alpha), again):
        np.testing.assert_array_equal(a, b)
    assert rgb.shape == (SIZE, SIZE, 3) and depth.shape == alpha.shape == (SIZE, SIZE)
    assert rgb.dtype == depth.dtype == alpha.dtype == np.float32
    assert set(np.unique(alpha)) == {0.0, 1.0} and 0.1 < alpha.mean() < 0.9
    np.testing.assert_array_equal(rgb[alpha == 0], 1.0)  # white background
    np.testing.assert_array_equal(depth[alpha == 0], 0.0)  # background depth is 0
    assert len(np.unique(rgb[alpha == 1].round(2), axis=0)) > 20  # colours and textures, not flat shapes


def test_depth_backprojects_onto_a_surface_within_near_far():
    for c2w in POSES:
        _, depth, alpha = scene.render_view(SIZE, SIZE, FOCAL, c2w)
        origins, dirs = (a.numpy().reshape(-1, 3) for a in pixel_rays(SIZE, SIZE, FOCAL, c2w))
        fg = alpha.reshape(-1) > 0
        points = origins[fg] + depth.reshape(-1)[fg, None].astype(np.float64) * dirs[fg]
        assert scene.surface_distance(points).max() < 1e-5  # float32 depth rounding only
        # camera depth along the optical axis: the point's -z coordinate in the camera frame
        cam = (points - c2w[:3, 3]) @ c2w[:3, :3]
        np.testing.assert_allclose(-cam[:, 2], depth.reshape(-1)[fg], rtol=1e-6)
        assert 2.0 < depth[alpha > 0].min() and depth.max() < 6.0  # the seed's near/far enclose the scene


def test_sphere_depth_matches_its_implicit_equation():
    c2w = look_at((0.3 + 3.0, 0.15, -0.08), (0.3, 0.15, -0.08))  # straight at the striped sphere's centre
    _, depth, _ = scene.render_view(SIZE, SIZE, FOCAL, c2w)
    # the centre pixel ray is the optical axis: the first hit is the sphere's near pole at distance 3 - r
    assert depth[SIZE // 2, SIZE // 2] == pytest.approx(3.0 - 0.32, abs=1e-5)


def test_occlusions_between_objects():
    names = [obj.name for obj in scene.OBJECTS]
    occluded_pairs = set()
    for c2w in POSES:
        hits = scene.ray_hits(SIZE, SIZE, FOCAL, c2w)
        _, depth, alpha = scene.render_view(SIZE, SIZE, FOCAL, c2w)
        nearest = np.where(np.isfinite(hits.min(0)), hits.min(0), 0.0)
        np.testing.assert_allclose(depth, nearest, rtol=1e-6)  # the picture shows the nearest object
        finite = np.isfinite(hits)
        front = hits.argmin(0)
        for k in range(len(names)):  # object k hidden behind another object on some pixel
            behind = finite[k] & (front != k)
            occluded_pairs.update((names[int(f)], names[k]) for f in np.unique(front[behind]))
    non_ground = {(a, b) for a, b in occluded_pairs if "ground" not in (a, b)}
    assert len(non_ground) >= 3, occluded_pairs


def test_thin_parts_are_visible():
    hits = scene.ray_hits(100, 100, focal_from_fov(100, scene.LEGO_CAMERA_ANGLE_X), POSES[1])
    front = np.where(np.isfinite(hits.min(0)), hits.argmin(0), -1)
    names = [obj.name for obj in scene.OBJECTS]
    widths = [np.count_nonzero(front == names.index(n)) for n in ("pole_a", "pole_b", "pole_c", "ring")]
    assert sum(w > 0 for w in widths) >= 3 and max(widths) < 200  # visible but only a few pixels wide


def test_generated_layouts_read_back_identically(generated):
    tiny = read_tiny_nerf(generated / "tiny_nerf_data.npz", n_train=5, test_index=8)
    blender = read_blender(generated / "blender")
    assert tiny.depths is not None and blender.depths is not None
    assert [tiny.splits[s].tolist() for s in ("train", "val", "test")] == [[0, 1, 2, 3, 4], [5, 6, 7], [8]]
    seen: set[int] = set()
    for name in ("train", "val", "test"):  # the Blender folder orders frames by split: compare split by split
        t, b = tiny.splits[name], blender.splits[name]
        assert len(t) == len(b) and seen.isdisjoint(b.tolist())
        seen.update(b.tolist())
        np.testing.assert_allclose(blender.images[b], tiny.images[t], atol=0.5 / 255 + 1e-6)  # PNG 8-bit rounding
        np.testing.assert_allclose(blender.poses[b], tiny.poses[t], atol=1e-6)
        np.testing.assert_array_equal(blender.depths[b], tiny.depths[t])
    assert blender.focal == pytest.approx(tiny.focal, rel=1e-6)
    rgb, depth, _ = scene.render_view(24, 24, tiny.focal, tiny.poses[3].astype(np.float64))
    np.testing.assert_allclose(tiny.images[3], rgb, atol=1e-3)  # float32 poses on disk
    stamp = read_stamp(generated)
    assert stamp["params"]["n_views"] == 9 and 2.0 < stamp["depth_min"] < stamp["depth_max"] < 6.0


def test_generate_embedded_is_stamped_reused_and_seeded(generated, tmp_path):
    stamp = generated / "generated.json"
    before = (stamp.stat().st_mtime_ns, (generated / "tiny_nerf_data.npz").stat().st_mtime_ns)
    assert scene.generate_embedded(generated, size=24, n_views=9, n_train=5, seed=0) == generated
    assert (stamp.stat().st_mtime_ns, (generated / "tiny_nerf_data.npz").stat().st_mtime_ns) == before
    other = scene.generate_embedded(tmp_path / "seed1", size=24, n_views=9, n_train=5, seed=1)
    with np.load(generated / "tiny_nerf_data.npz") as a, np.load(other / "tiny_nerf_data.npz") as b:
        assert not np.allclose(a["poses"], b["poses"])
    same = scene.generate_embedded(tmp_path / "seed0", size=24, n_views=9, n_train=5, seed=0)
    with np.load(generated / "tiny_nerf_data.npz") as a, np.load(same / "tiny_nerf_data.npz") as b:
        np.testing.assert_array_equal(a["images"], b["images"])
        np.testing.assert_array_equal(a["depths"], b["depths"])
