"""The NeRF live page of ``torchrepro serve``: its functions against the tiny trained run (a held-out view is the
evaluation's render with the evaluation's PSNR and SSIM, a reduced render size keeps the same rays, a novel view at a
training camera's azimuth and elevation is that camera), and the page under Streamlit's headless AppTest (a
validation view, the render size, a novel view and its sliders, a checkpoint of another model)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import assert_no_exception, page_app
from torchrepro.core.demo import load_model
from torchrepro.nerf import demo
from torchrepro.nerf.cameras import look_at
from torchrepro.nerf.render_tool import scene_orbit
from torchrepro.nerf.task import view_psnr, view_ssim


@pytest.fixture(scope="module")
def loaded(tiny_runs):
    return load_model(tiny_runs("nerf"), "best.ckpt", "nerf")


@pytest.fixture(scope="module")
def scene(loaded) -> demo.Scene:
    return demo.load_views(loaded)


def _captions(at) -> list[str]:
    """The captions of the page's pictures (AppTest has no accessor for st.image)."""
    return [caption for element in at.get("image") for caption in element.captions]


def test_a_held_out_view_is_the_evaluated_render_with_its_psnr_and_ssim(loaded, scene):
    module, val = loaded.module, scene.val
    assert len(val) == loaded.cfg.data.val_views == 2 and (scene.data.height, scene.data.width) == (24, 24)
    item = val[1]
    expected = module.render_view(item["origins"], item["directions"])  # the evaluation's rays and renderer
    shown = demo.render_held_out(module, val, 1)
    assert np.array_equal(shown.rgb, expected["rgb"].clamp(0, 1).numpy())
    assert np.array_equal(shown.depth, expected["depth"].numpy()) and np.array_equal(shown.truth, item["rgb"].numpy())
    assert shown.psnr == float(view_psnr(expected["rgb"], item["rgb"])) and shown.ssim == float(view_ssim(expected["rgb"],
                                                                                                    item["rgb"]))
    batch = {k: (v[None] if torch.is_tensor(v) else torch.tensor([v])) for k, v in item.items()}
    with torch.no_grad():
        rows = module.evaluation_rows(batch, 0)  # the evaluation's per-view figures
    assert shown.psnr == pytest.approx(float(rows["psnr"]), abs=1e-5)
    assert shown.ssim == pytest.approx(float(rows["ssim"]), abs=1e-5)

    assert demo.strides(scene.data) == [1, 2] and demo.default_stride([1, 2], scene.data) == 1
    half = demo.render_held_out(module, val, 1, stride=2)  # every other ray of the same grid, the same pixels
    assert half.rgb.shape == (12, 12, 3) and np.array_equal(half.truth, item["rgb"][::2, ::2].numpy())
    torch.testing.assert_close(torch.from_numpy(half.rgb), expected["rgb"][::2, ::2].clamp(0, 1), rtol=0, atol=1e-5)
    picture = demo.view_picture(shown, loaded.cfg.data.near, loaded.cfg.data.far)
    s = demo.DRAW_HEIGHT // 24
    assert picture.dtype == np.uint8 and picture.shape == (24 * s, 4 * 24 * s, 3)  # truth | render | depth | error
    assert np.array_equal(picture[::s, : 24 * s : s], (shown.truth * 255).round().astype(np.uint8))


def test_a_novel_view_at_a_training_camera_is_that_camera(loaded, scene):
    train = scene.train_poses
    for pose in train[[0, 3]]:
        centre = pose[:3, 3].astype(np.float64)
        azimuth = math.degrees(math.atan2(centre[1], centre[0])) % 360.0
        elevation = math.degrees(math.asin(centre[2] / np.linalg.norm(centre)))
        novel = demo.novel_pose(train, azimuth, elevation)
        np.testing.assert_allclose(novel[:3, 3], centre, atol=1e-5)  # all embedded cameras lie at distance 4
        np.testing.assert_allclose(novel, look_at(centre), atol=1e-5)
        np.testing.assert_allclose(novel, pose, atol=1e-5)
    mean_elevation = float(np.degrees(np.arcsin(train[:, 2, 3] / np.linalg.norm(train[:, :3, 3], axis=1))).mean())
    np.testing.assert_allclose(demo.novel_pose(train, 0.0, mean_elevation), scene_orbit(train, 1, None, None)[0],
                               atol=1e-12)  # the nerf-render tool's orbit starts there

    view = demo.render_novel(loaded.module, scene.data, train[0].astype(np.float64), stride=2)
    assert view.rgb.shape == (12, 12, 3) and view.depth.shape == (12, 12) and view.truth is None
    assert demo.view_picture(view, 2.0, 6.0).shape == (12 * (demo.DRAW_HEIGHT // 12), 2 * 240, 3)


def test_page_shows_a_validation_view_and_a_novel_view(tiny_runs, loaded, scene):
    at = page_app(tiny_runs("nerf").parent, "nerf").run()
    assert_no_exception(at)
    assert not at.error
    first = demo.render_held_out(loaded.module, scene.val, 0)
    assert at.markdown[0].value.startswith(f"PSNR **{first.psnr:.2f} dB**, SSIM **{first.ssim:.4f}** (the evaluation")
    assert _captions(at)[0].startswith(f"view {int(scene.val.indices[0])}: ground truth | render")
    at.selectbox(key="nerf:view").select(1).run()
    at.selectbox(key="nerf:stride").select(2).run()
    assert_no_exception(at)
    assert not at.error and "the evaluation scores the scene's size" in at.markdown[0].value

    at.radio(key="nerf:source").set_value("a novel view").run()
    assert_no_exception(at)
    assert not at.error and not at.markdown and "azimuth 0°" in _captions(at)[0]
    at.slider(key="nerf:azimuth").set_value(90)
    at.slider(key="nerf:elevation").set_value(60).run()
    assert_no_exception(at)
    assert not at.error and re.search(r"novel view at azimuth 90°, elevation 60°, distance 4\.00", _captions(at)[0])


def test_a_checkpoint_of_another_model_is_one_message(tiny_runs, tmp_path: Path):
    run = tmp_path / "runs" / "foreign"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text((tiny_runs("nerf") / "config.yaml").read_text())
    torch.save({"state_dict": {"backbone.0.weight": torch.zeros(8, 3, 3, 3)}}, run / "checkpoints" / "best.ckpt")
    at = page_app(tmp_path / "runs", "nerf").run()
    assert_no_exception(at)
    assert len(at.error) == 1 and "does not fit recipe 'nerf'" in at.error[0].value
    assert not at.markdown and not _captions(at)
