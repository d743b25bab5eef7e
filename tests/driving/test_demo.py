"""The driving recipe's live page of ``torchrepro serve``: its functions against a tiny trained run, and the page under
Streamlit's headless AppTest (an example frame, an uploaded frame, a file that is not an image)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers import assert_no_exception, page_app
from torchrepro.core.demo import load_model
from torchrepro.core.images import load_rgb
from torchrepro.driving.data import build_transforms
from torchrepro.driving.demo import example_frames, predict_direction


@pytest.fixture(scope="module")
def loaded(tiny_runs):
    return load_model(tiny_runs("driving"), "best.ckpt", "driving")


def test_predict_direction_is_the_softmax_of_the_evaluated_model(loaded):
    frames = example_frames(loaded, n=4)
    assert len(frames) == 4 and all(path.is_file() and truth in loaded.cfg.data.classes for path, truth in frames)
    image = load_rgb(frames[0][0])
    probabilities = predict_direction(loaded, image)
    assert list(probabilities) == loaded.cfg.data.classes
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    # the same numbers as the recipe's evaluation path: its transform, the model in eval mode
    x = build_transforms(loaded.cfg.data.image_size, train=False)(image)[None]
    with torch.no_grad():
        logits = loaded.module(x)[0]
    assert np.allclose(list(probabilities.values()), logits.softmax(0).numpy(), atol=1e-6)
    predicted = max(probabilities, key=probabilities.get)
    assert predicted == loaded.cfg.data.classes[int(logits.argmax())]


def test_page_scores_an_example_and_an_upload_and_refuses_a_non_image(tiny_runs):
    runs = tiny_runs("driving").parent
    at = page_app(runs, "driving").run()
    assert_no_exception(at)
    assert not at.error
    assert at.success[0].value.startswith("Predicted direction: **")
    assert any(m.value.startswith("True direction: **") for m in at.markdown)
    probabilities = at.dataframe[0].value
    assert list(probabilities["direction"]) == ["left", "right", "straight"]
    assert probabilities["probability"].sum() == pytest.approx(1.0, abs=1e-3)

    at.selectbox(key="driving:example").select(2).run()  # another example
    assert_no_exception(at)
    assert at.success and not at.error

    at.radio(key="driving:source").set_value("upload a frame").run()
    assert not at.success  # nothing uploaded yet: no prediction
    at.file_uploader(key="driving:upload").set_value(("notes.txt", b"not a picture", "text/plain"))
    at.run()
    assert_no_exception(at)
    assert len(at.error) == 1 and "'notes.txt' is not a readable image" in at.error[0].value
    assert "upload a PNG or JPEG" in at.error[0].value

    frame = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(frame, format="PNG")
    at.file_uploader(key="driving:upload").set_value(("frame.png", frame.getvalue(), "image/png"))
    at.run()
    assert_no_exception(at)
    assert not at.error and at.success[0].value.startswith("Predicted direction: **")
