"""The MagicPoint and SuperPoint live pages of ``torchrepro serve``: their functions against the tiny trained runs (a
validation shape's key points are the evaluation's, the drawn pictures, a validation pair's matches and corner
error as the HPatches metrics compute them), and the pages under Streamlit's headless AppTest (an example, the
sliders, uploads of another size, a non-image, a checkpoint of another recipe)."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers import assert_no_exception, page_app
from torchrepro.core.demo import load_model
from torchrepro.superpoint import demo
from torchrepro.superpoint.detection_metrics import match_detections
from torchrepro.superpoint.homography import corner_error
from torchrepro.superpoint.hpatches_metrics import HCORR_EPS, homography_correct
from torchrepro.superpoint.keypoints import extract_keypoints, heatmap_from_logits


@pytest.fixture(scope="module")
def magicpoint(tiny_runs):
    return load_model(tiny_runs("magicpoint"), "best.ckpt", "magicpoint")


@pytest.fixture(scope="module")
def superpoint(tiny_runs):
    return load_model(tiny_runs("superpoint"), "best.ckpt", "superpoint")


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _captions(at) -> list[str]:
    """The captions of the page's pictures (AppTest has no accessor for st.image)."""
    return [caption for element in at.get("image") for caption in element.captions]


# ------------------------------------------------------------------------------------------------------ MagicPoint
def test_key_points_of_a_validation_shape_are_the_evaluated_ones(magicpoint):
    examples = demo.example_shapes(magicpoint, n=4)
    val = magicpoint.datamodule.val_set
    assert len(examples) == 4 and examples[0].name == "draw_lines/0.png"
    assert examples[-1].name.startswith("gaussian_noise/")  # spread over the whole split, the last primitive's
    shape, module, m = examples[2], magicpoint.module, magicpoint.module.m
    assert shape.image.dtype == np.uint8 and shape.image.shape == tuple(magicpoint.cfg.data.image_size)

    # the evaluation path: the validation sample of that image through the network, evaluation_rows' heatmap
    sample = val[int(np.linspace(0, len(val) - 1, 4).round()[2])]
    assert np.array_equal(shape.points, sample["points"].numpy()[: len(shape.points)]) and len(shape.points)
    with torch.no_grad():
        heat = heatmap_from_logits(module.net(sample["image"][None])["semi"])[0].float()
    for threshold in (m.detection_threshold, 0.0):  # the tiny model's heatmap is flat: 0 shows every peak
        found = demo.detect_keypoints(module, shape.image, threshold, m.nms_radius)
        assert np.array_equal(found.heatmap, heat.numpy())
        xy, scores = extract_keypoints(heat, threshold, m.nms_radius, None, m.border)
        assert np.array_equal(found.xy, xy.numpy()) and np.array_equal(found.scores, scores.numpy())
    evaluated = module._keypoints(heat, None)[0]  # the task's own extraction, at its threshold and NMS radius
    assert np.array_equal(evaluated, demo.detect_keypoints(module, shape.image, m.detection_threshold, m.nms_radius).xy)

    found = demo.detect_keypoints(module, shape.image, 0.0, m.nms_radius)
    assert len(found.xy) > 0 and list(found.scores) == sorted(found.scores, reverse=True)
    assert demo.correct_detections(found, shape.points, m.match_distance) == \
        match_detections(found.xy, found.scores, shape.points, m.match_distance).sum()
    # NMS 0 keeps every pixel above 0 away from the border (the recipe's is 0: junctions may lie at the edge)
    h, w = shape.image.shape
    assert len(demo.detect_keypoints(module, shape.image, 0.0, 0).xy) == (h - 2 * m.border) * (w - 2 * m.border)

    drawn = demo.draw_keypoints(shape.image, found, shape.points)
    s = drawn.shape[0] // h
    assert drawn.shape == (h * s, w * s, 3) and s > 1  # enlarged to stay legible
    x, y = found.xy[0].astype(int)
    assert tuple(drawn[y * s + s // 2, x * s + s // 2]) == demo.DETECTED
    assert (drawn == demo.TRUTH).all(axis=-1).any()
    assert demo.heatmap_picture(found.heatmap).shape == drawn.shape


def test_an_upload_is_read_grey_and_shrunk_to_the_training_size(magicpoint, superpoint):
    wide = Image.open(io.BytesIO(_png(300, 100)))
    assert demo.upload_max_side(magicpoint) == max(magicpoint.cfg.data.image_size) == 48
    grey = demo.grey_picture(wide, "wide.png", demo.upload_max_side(magicpoint))
    assert grey.dtype == np.uint8 and grey.shape == (16, 48)
    found = demo.detect_keypoints(magicpoint.module, grey, 0.0, 4)
    assert found.heatmap.shape == (16, 48)  # the padding to cells is cropped away
    assert demo.upload_max_side(superpoint) == superpoint.cfg.data.hpatches_max_side == 320
    assert demo.grey_picture(wide, "wide.png", 320).shape == (100, 300)  # never enlarged


# ------------------------------------------------------------------------------------------------------ SuperPoint
def test_matches_of_a_validation_pair_and_their_corner_error(superpoint):
    val = demo.validation_set(superpoint)
    names = demo.pair_names(val)
    assert len(names) == superpoint.cfg.data.hpatches_pairs == len(val)
    assert {n.kind for n in names} == {"illumination", "viewpoint"}
    index = next(i for i, n in enumerate(names) if n.kind == "viewpoint")
    pair = demo.validation_pair(val, index)
    assert (pair.sequence, pair.kind, pair.index) == (names[index].sequence, names[index].kind, names[index].k)
    assert str(names[index]).startswith(f"{pair.sequence} (viewpoint, 1 → {pair.index})")

    found = demo.match_pair(superpoint.module, pair.image1, pair.image2, top_k=1000)
    kp1, kp2, matches, inliers = found["kp1"], found["kp2"], found["matches"], found["inliers"]
    assert len(matches) == len(inliers) > 0 and len(matches) <= min(len(kp1), len(kp2))
    assert matches[:, 0].max() < len(kp1) and matches[:, 1].max() < len(kp2)
    few = demo.match_pair(superpoint.module, pair.image1, pair.image2, top_k=5)
    assert len(few["kp1"]) <= 5 and len(few["kp2"]) <= 5

    picture = np.asarray(Image.open(io.BytesIO(demo.matches_png(pair.image1, pair.image2, found))).convert("RGB"))
    (h1, w1), (h2, w2) = pair.image1.shape, pair.image2.shape
    assert picture.shape == (max(h1, h2), w1 + w2, 3)
    green, red = ((picture == colour).all(axis=-1).any() for colour in ((0, 200, 0), (230, 0, 0)))
    assert green == bool(inliers.any()) and red == bool((~inliers).any())

    assert found["homography"] is not None
    err = demo.homography_error(found, pair.H, pair.image1.shape)
    assert err == corner_error(pair.H, found["homography"], pair.image1.shape) and np.isfinite(err)
    assert homography_correct(kp1, kp2, matches, pair.H, pair.image1.shape) == {e: err <= e for e in HCORR_EPS}
    assert demo.homography_error({"homography": None}, pair.H, pair.image1.shape) == np.inf


# ------------------------------------------------------------------------------------------------------ the pages
def _count(at) -> int:
    return int(re.match(r"\*\*(\d+)\*\* key point", at.success[0].value).group(1))


def test_magicpoint_page_shows_key_points_of_a_shape_and_an_upload_and_refuses_a_non_image(tiny_runs):
    at = page_app(tiny_runs("magicpoint").parent, "magicpoint").run()
    assert_no_exception(at)
    assert not at.error and at.markdown[0].value.startswith("Ground truth: ")
    at.slider(key="magicpoint:threshold").set_value(0.0).run()  # the tiny model's probabilities are low: show all
    assert_no_exception(at)
    wide = _count(at)
    at.slider(key="magicpoint:nms").set_value(0).run()
    assert _count(at) == 32 * 48 > wide  # every pixel (the recipe's border is 0): NMS made the difference
    at.slider(key="magicpoint:threshold").set_value(0.999).run()
    assert not at.success and "No key point above 0.999" in at.info[0].value
    captions = _captions(at)
    assert len(captions) == 2 and "ground truth red" in captions[0] and captions[1].startswith("heatmap")

    at.selectbox(key="magicpoint:example").select(5).run()  # another validation shape
    assert_no_exception(at)
    assert not at.error

    at.slider(key="magicpoint:threshold").set_value(0.0)
    at.radio(key="magicpoint:source").set_value("upload a picture").run()
    assert not at.success and not at.markdown  # nothing uploaded yet
    at.file_uploader(key="magicpoint:upload").set_value(("notes.txt", b"not a picture", "text/plain")).run()
    assert_no_exception(at)
    assert len(at.error) == 1 and "'notes.txt' is not a readable image" in at.error[0].value
    at.file_uploader(key="magicpoint:upload").set_value(("wide.png", _png(300, 100), "image/png")).run()
    assert_no_exception(at)
    assert not at.error and _count(at) > 0 and not at.markdown  # no ground truth for an upload
    assert "wide.png (48x16 pixels)" in _captions(at)[0]  # shrunk to the training size's longer side


def test_superpoint_page_matches_a_validation_pair_and_uploads_and_refuses_a_non_image(tiny_runs):
    at = page_app(tiny_runs("superpoint").parent, "superpoint").run()
    assert_no_exception(at)
    assert not at.error and "RANSAC inliers" in (at.success or at.warning)[0].value
    assert at.markdown[0].value.startswith("Mean corner error of the estimated homography: **")
    at.slider(key="superpoint:top_k").set_value(10).run()
    assert_no_exception(at)
    counts = re.match(r".*: (\d+) key points, .*: (\d+);", (at.success or at.warning)[0].value).groups()
    assert max(int(c) for c in counts) <= 10
    at.selectbox(key="superpoint:pair").select(4).run()
    assert_no_exception(at)
    assert not at.error and "v_" in _captions(at)[0]

    at.radio(key="superpoint:source").set_value("upload two pictures").run()
    assert not at.success and not at.warning and not at.markdown  # nothing uploaded yet
    at.file_uploader(key="superpoint:upload1").set_value(("notes.txt", b"not a picture", "text/plain"))
    at.file_uploader(key="superpoint:upload2").set_value(("wide.png", _png(300, 100), "image/png")).run()
    assert_no_exception(at)
    assert len(at.error) == 1 and "'notes.txt' is not a readable image" in at.error[0].value
    at.file_uploader(key="superpoint:upload1").set_value(("square.png", _png(120, 120), "image/png")).run()
    assert_no_exception(at)
    assert not at.error and "square.png: " in (at.success or at.warning)[0].value
    assert not at.markdown  # no true homography for uploads: no corner error
    assert "square.png (120x120) | wide.png (300x100)" in _captions(at)[0]  # uploads of their own sizes
    at.file_uploader(key="superpoint:upload1").set_value(("tiny.png", _png(12, 40), "image/png")).run()
    assert_no_exception(at)
    assert len(at.error) == 1 and "SuperPoint needs at least 16x16" in at.error[0].value


def test_a_checkpoint_of_another_recipe_is_one_message(tiny_runs, tmp_path: Path):
    run = tmp_path / "runs" / "foreign"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(tiny_runs("superpoint") / "config.yaml", run / "config.yaml")
    (run / "checkpoints" / "best.ckpt").symlink_to(tiny_runs("magicpoint") / "checkpoints" / "best.ckpt")
    at = page_app(tmp_path / "runs", "superpoint").run()
    assert_no_exception(at)
    assert len(at.error) == 1 and "does not fit recipe 'superpoint'" in at.error[0].value
    assert not at.success and not at.warning and not _captions(at)
