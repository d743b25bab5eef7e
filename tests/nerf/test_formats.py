"""NeRF formats: fixtures written by hand in the official layouts, read back; every bad input is a DataError."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from torchrepro.core.errors import DataError
from torchrepro.nerf.cameras import focal_from_fov, hemisphere_poses
from torchrepro.nerf.formats import SceneData, read_blender, read_tiny_nerf, write_blender, write_tiny_nerf

LEGO_FOV = 0.6911112070083618


def _tiny_npz(path: Path, n: int = 8, size: int = 6, **override) -> Path:
    """The seed's tiny_nerf_data.npz layout: images float32 [N,H,W,3], poses float32 [N,4,4], focal float64 ()."""
    rng = np.random.default_rng(0)
    arrays = {"images": rng.random((n, size, size, 3), dtype=np.float32),
              "poses": hemisphere_poses(n, 4.0, seed=0).astype(np.float32), "focal": np.array(8.3)}
    arrays.update(override)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)
    return path


def _blender(root: Path, n_per_split=(3, 2, 2), size=(5, 4), modes=None, with_png_suffix=False,
             drop_fov=False) -> Path:
    """A NeRF-synthetic scene: transforms_*.json (file_path without .png) and RGBA PNGs (pixel (0,0) alpha 128)."""
    poses = hemisphere_poses(sum(n_per_split), 4.0, seed=1)
    w, h = size
    k = 0
    for split, n in zip(("train", "val", "test"), n_per_split):
        (root / split).mkdir(parents=True, exist_ok=True)
        frames = []
        for i in range(n):
            mode = modes[k] if modes else "RGBA"
            pixels = np.zeros((h, w, 4), np.uint8)
            pixels[..., 0], pixels[..., 3] = 200, 255
            pixels[0, 0] = (100, 50, 0, 128)
            pixels[0, 1, 3] = 0
            Image.fromarray(pixels[..., :3] if mode == "RGB" else pixels, mode).save(root / split / f"r_{i}.png")
            file_path = f"./{split}/r_{i}" + (".png" if with_png_suffix else "")
            frames.append({"file_path": file_path, "rotation": 0.012566, "transform_matrix": poses[k].tolist()})
            k += 1
        meta = {"frames": frames} if drop_fov else {"camera_angle_x": LEGO_FOV, "frames": frames}
        (root / f"transforms_{split}.json").write_text(json.dumps(meta, indent=4))
    return root


def test_read_tiny_nerf_split_and_values(tmp_path):
    path = _tiny_npz(tmp_path / "tiny_nerf_data.npz")
    data = read_tiny_nerf(path, n_train=4, test_index=5)
    assert data.images.shape == (8, 6, 6, 3) and data.images.dtype == np.float32
    assert (data.height, data.width, data.focal, data.near, data.far) == (6, 6, 8.3, 2.0, 6.0)
    assert data.splits["train"].tolist() == [0, 1, 2, 3] and data.splits["test"].tolist() == [5]
    assert data.splits["val"].tolist() == [4, 6, 7]  # the images between/after that the seed leaves unused
    assert data.depths is None and data.name == "tiny_nerf_data"
    with np.load(path) as raw:
        np.testing.assert_array_equal(data.images, raw["images"])
        np.testing.assert_array_equal(data.poses, raw["poses"])


def test_tiny_nerf_lego_split_rule(tmp_path):
    data = read_tiny_nerf(_tiny_npz(tmp_path / "t.npz", n=106, size=2))
    assert len(data.splits["train"]) == 100 and data.splits["test"].tolist() == [101]
    assert data.splits["val"].tolist() == [100, 102, 103, 104, 105]


def test_tiny_nerf_writer_round_trip_with_depths(tmp_path):
    images = np.random.default_rng(1).random((4, 3, 5, 3)).astype(np.float32)
    poses, depths = hemisphere_poses(4, 4.0, seed=2), np.full((4, 3, 5), 3.5, np.float32)
    path = write_tiny_nerf(tmp_path / "tiny_nerf_data.npz", images, poses, 7.5, depths=depths)
    data = read_tiny_nerf(path, n_train=2, test_index=3)
    np.testing.assert_array_equal(data.images, images)
    np.testing.assert_allclose(data.poses, poses, atol=1e-6)
    np.testing.assert_array_equal(data.depths, depths)


def test_read_blender_official_layout_composites_on_white(tmp_path):
    root = _blender(tmp_path / "lego")
    data = read_blender(root)
    assert data.images.shape == (7, 4, 5, 3)
    assert [data.splits[s].tolist() for s in ("train", "val", "test")] == [[0, 1, 2], [3, 4], [5, 6]]
    assert data.focal == pytest.approx(focal_from_fov(5, LEGO_FOV))
    a = 128 / 255
    np.testing.assert_allclose(data.images[0, 0, 0], [100 / 255 * a + 1 - a, 50 / 255 * a + 1 - a, 1 - a], atol=1e-6)
    np.testing.assert_allclose(data.images[0, 0, 1], [1.0, 1.0, 1.0])  # alpha 0 → white
    np.testing.assert_allclose(data.images[0, 1, 1], [200 / 255, 0, 0], atol=1e-6)
    black = read_blender(root, white_background=False)
    np.testing.assert_allclose(black.images[0, 0, 0], [100 / 255 * a, 50 / 255 * a, 0], atol=1e-6)
    np.testing.assert_allclose(black.images[0, 0, 1], [0, 0, 0])
    suffixed = read_blender(_blender(tmp_path / "suffixed", with_png_suffix=True))
    np.testing.assert_array_equal(suffixed.images, data.images)


def test_read_blender_max_side_scales_focal(tmp_path):
    root = _blender(tmp_path / "lego", size=(8, 6))
    data = read_blender(root, max_side=4)
    assert (data.height, data.width) == (3, 4)
    assert data.focal == pytest.approx(focal_from_fov(8, LEGO_FOV) / 2)


def test_blender_writer_round_trip_rgba_and_depth(tmp_path):
    rng = np.random.default_rng(3)
    alphas = (rng.random((5, 4, 6)) > 0.4).astype(np.float32)
    images = np.where(alphas[..., None] > 0, rng.random((5, 4, 6, 3)), 1.0).astype(np.float32)
    depths = (alphas * 3.0).astype(np.float32)
    poses = hemisphere_poses(5, 4.0, seed=4)
    splits = {"train": np.array([0, 3, 4]), "val": np.array([1]), "test": np.array([2])}
    root = write_blender(tmp_path / "blender", images, poses, 9.0, splits, depths=depths, alphas=alphas)
    meta = json.loads((root / "transforms_train.json").read_text())
    assert meta["frames"][1]["file_path"] == "./train/r_1"  # no .png, as the official files
    assert Image.open(root / "train" / "r_0.png").mode == "RGBA"
    data = read_blender(root)
    order = np.concatenate([splits[s] for s in ("train", "val", "test")])
    np.testing.assert_allclose(data.images, images[order], atol=0.5 / 255 + 1e-6)
    np.testing.assert_allclose(data.poses, poses[order], atol=1e-6)
    np.testing.assert_array_equal(data.depths, depths[order])
    assert data.focal == pytest.approx(9.0)


def _bad_case(tmp_path: Path, case: str):
    if case == "missing npz":
        return lambda: read_tiny_nerf(tmp_path / "nope.npz")
    if case == "missing key":
        return lambda: read_tiny_nerf(_tiny_npz(tmp_path / "t.npz", focal=None), n_train=4, test_index=5)
    if case == "count mismatch":
        poses = hemisphere_poses(7, 4.0, seed=0).astype(np.float32)
        return lambda: read_tiny_nerf(_tiny_npz(tmp_path / "t.npz", poses=poses), n_train=4, test_index=5)
    if case == "focal <= 0":
        return lambda: read_tiny_nerf(_tiny_npz(tmp_path / "t.npz", focal=np.array(0.0)), n_train=4, test_index=5)
    if case == "near >= far":
        return lambda: read_tiny_nerf(_tiny_npz(tmp_path / "t.npz"), near=6.0, far=2.0, n_train=4, test_index=5)
    if case == "rgba/rgb mix":
        return lambda: read_blender(_blender(tmp_path / "mix", modes=["RGBA"] * 4 + ["RGB"] * 3))
    if case == "missing camera_angle_x":
        return lambda: read_blender(_blender(tmp_path / "nofov", drop_fov=True))
    if case == "missing transforms":
        root = _blender(tmp_path / "lego")
        (root / "transforms_val.json").unlink()
        return lambda: read_blender(root)
    if case == "missing png":
        root = _blender(tmp_path / "lego")
        (root / "test" / "r_1.png").unlink()
        return lambda: read_blender(root)
    if case == "some depths":
        root = _blender(tmp_path / "lego")
        np.save(root / "train" / "r_0_depth.npy", np.zeros((4, 5), np.float32))
        return lambda: read_blender(root)
    raise AssertionError(case)


@pytest.mark.parametrize("case, fragment", [
    ("missing npz", "does not exist"), ("missing key", "'focal'"), ("count mismatch", "8 images but 7 poses"),
    ("focal <= 0", "focal length must be a positive"), ("near >= far", "near < far"),
    ("rgba/rgb mix", "mixes RGBA"), ("missing camera_angle_x", "camera_angle_x"),
    ("missing transforms", "transforms_val.json"), ("missing png", "r_1.png"), ("some depths", "all frames or none"),
])
def test_bad_inputs_raise_data_error(tmp_path, case, fragment):
    with pytest.raises(DataError) as err:
        _bad_case(tmp_path, case)()
    assert fragment in str(err.value)


def test_scene_data_validates_splits():
    base = dict(images=np.zeros((3, 2, 2, 3)), poses=hemisphere_poses(3, 4.0, seed=0), focal=2.0, height=2, width=2,
                near=2.0, far=6.0)
    with pytest.raises(DataError, match="disjoint"):
        SceneData(splits={"train": [0, 1], "val": [1], "test": [2]}, **base)
    with pytest.raises(DataError, match="outside"):
        SceneData(splits={"train": [0], "val": [], "test": [3]}, **base)
    SceneData(splits={"train": [0], "val": [], "test": [2]}, **base)


def test_read_llff_axes_focal_and_hold(tmp_path):
    from torchrepro.nerf.formats import read_llff
    n, (h, w) = 10, (6, 8)
    c2w = hemisphere_poses(n, 4.0, seed=5)
    # LLFF stores [down, right, backwards] rotation columns and an [H, W, focal] column at full resolution
    llff = np.concatenate([-c2w[:, :3, 1:2], c2w[:, :3, 0:1], c2w[:, :3, 2:4],
                           np.broadcast_to(np.array([h * 2, w * 2, 20.0])[None, :, None], (n, 3, 1))], 2)
    np.save(tmp_path / "poses_bounds.npy", np.concatenate([llff.reshape(n, 15), np.tile([2.5, 7.0], (n, 1))], 1))
    (tmp_path / "images").mkdir()
    for i in range(n):
        Image.fromarray(np.full((h, w, 3), i * 20, np.uint8)).save(tmp_path / "images" / f"IMG_{i:03d}.png")
    data = read_llff(tmp_path)
    np.testing.assert_allclose(data.poses, c2w, atol=1e-6)
    assert data.focal == pytest.approx(10.0) and (data.near, data.far) == (pytest.approx(2.25), 7.0)
    assert data.splits["test"].tolist() == [0, 8] and len(data.splits["train"]) == 8
    (tmp_path / "images" / "IMG_009.png").unlink()
    with pytest.raises(DataError, match="9 images but poses_bounds.npy has 10 poses"):
        read_llff(tmp_path)
