"""The detection recipe's live page of ``torchrepro serve``: its functions against the tiny trained run (the detections
of a validation image are the evaluation's, the box table, the drawn picture), and the page under Streamlit's
headless AppTest (a validation image, the score slider, an upload of another size, a non-image, a checkpoint of
another recipe)."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers import assert_no_exception, page_app
from torchrepro.core.demo import load_model
from torchrepro.detection.demo import TABLE_COLUMNS, annotated_png, box_table, example_images
from torchrepro.detection.inference import detect_image, read_image
from torchrepro.detection.task import unpad_detections


@pytest.fixture(scope="module")
def loaded(tiny_runs):
    return load_model(tiny_runs("detection"), "best.ckpt", "detection")


def test_detections_of_a_validation_image_are_the_evaluated_ones(loaded):
    examples = example_images(loaded, n=4)
    records = loaded.datamodule.records["val"]
    assert len(examples) == 4 and examples[0] is records[0] and examples[-1] is records[-1]
    image = read_image(examples[1].image)
    found = detect_image(loaded.module, image, examples[1].image.name)
    assert (found.width, found.height) == (examples[1].width, examples[1].height) and found.detections

    # the evaluation path: the validation set's sample of that record through evaluation_rows
    index = records.index(examples[1])
    x, meta = loaded.datamodule.eval_set("val")[index]
    with torch.no_grad():
        evaluated = unpad_detections(loaded.module.evaluation_rows((x[None], meta[None]), 0))[0]
    target = found.target()
    assert torch.equal(target["labels"], evaluated["labels"])
    assert torch.allclose(target["scores"], evaluated["scores"], atol=1e-6)
    assert torch.allclose(target["boxes"], evaluated["boxes"], atol=1e-4)

    cut = found.detections[len(found.detections) // 2].score
    shown = found.above(cut)
    assert shown.detections == tuple(d for d in found.detections if d.score >= cut)
    table = box_table(shown)
    assert tuple(table) == TABLE_COLUMNS and len(table["score"]) == len(shown.detections)
    assert table["class"] == [d.name for d in shown.detections]
    assert table["x2"] == [round(d.box[2], 1) for d in shown.detections]
    picture = Image.open(io.BytesIO(annotated_png(image, shown, loaded.module.classes)))
    assert picture.format == "PNG" and picture.width == picture.height  # the 96×96 image, enlarged to be legible


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_page_shows_detections_of_an_example_and_an_upload_and_refuses_a_non_image(tiny_runs):
    at = page_app(tiny_runs("detection").parent, "detection").run()
    assert_no_exception(at)
    assert not at.error
    assert any(m.value.startswith("Ground truth: ") for m in at.markdown)
    at.slider(key="detection:score").set_value(0.0).run()  # the tiny model's scores are low: show them all
    assert_no_exception(at)
    assert not at.error and at.success[0].value.startswith("**")
    table = at.dataframe[0].value
    assert list(table.columns) == list(TABLE_COLUMNS) and len(table) > 0
    assert list(table["score"]) == sorted(table["score"], reverse=True)
    at.slider(key="detection:score").set_value(1.0).run()
    assert not at.success and "No detection scored at least 1.00" in at.info[0].value

    at.selectbox(key="detection:example").select(3).run()  # another validation image
    assert_no_exception(at)
    assert not at.error

    at.slider(key="detection:score").set_value(0.0)
    at.radio(key="detection:source").set_value("upload an image").run()
    assert not at.success  # nothing uploaded yet: no detection
    at.file_uploader(key="detection:upload").set_value(("notes.txt", b"not a picture", "text/plain"))
    at.run()
    assert_no_exception(at)
    assert len(at.error) == 1 and "'notes.txt' is not a readable image" in at.error[0].value

    at.file_uploader(key="detection:upload").set_value(("wide.png", _png(300, 100), "image/png"))
    at.run()
    assert_no_exception(at)
    assert not at.error and at.success
    table = at.dataframe[0].value
    assert table["x2"].max() <= 300.5 and table["y2"].max() <= 100.5  # boxes in the upload's own pixels
    assert table["x2"].max() > 96  # not the 96×96 network input's


def test_a_checkpoint_of_another_recipe_is_one_message(tiny_runs, tmp_path: Path):
    detection = tiny_runs("detection")
    run = tmp_path / "runs" / "foreign"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(detection / "config.yaml", run / "config.yaml")
    (run / "checkpoints" / "best.ckpt").symlink_to(tiny_runs("driving") / "checkpoints" / "best.ckpt")
    at = page_app(tmp_path / "runs", "detection").run()
    assert_no_exception(at)
    assert len(at.error) == 1 and "does not fit recipe 'detection'" in at.error[0].value
    assert not at.success and not at.dataframe
