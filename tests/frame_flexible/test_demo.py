"""The FFN recipe's live page of ``torchrepro serve``: its functions against the tiny trained run (regime ffn,
sub-networks for 2 and 4 frames, 8-frame 32-pixel videos) and the page under Streamlit's headless AppTest."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from tests.helpers import assert_no_exception, page_app
from torchrepro.core.demo import load_model
from torchrepro.frame_flexible.demo import (class_names, clip_for, denormalise, example_videos, predict,
                                            predictions_across_frames, sub_network, validation_set)
from torchrepro.video.frames import read_frames


@pytest.fixture(scope="module")
def loaded(tiny_runs):
    return load_model(tiny_runs("ffn"), "best.ckpt", "ffn")


def test_clips_are_the_evaluation_clips_and_predict_is_the_softmax_of_the_evaluated_logits(loaded):
    examples = example_videos(loaded, n=4)
    val = validation_set(loaded)
    assert [e.index for e in examples] == [0, 3, 6, 9]  # spread over the 10 validation videos
    assert all(e.truth in class_names(loaded) and e.stored_frames == 8 for e in examples)
    index = examples[1].index
    clips, label = val[index]  # what `eval` scores: every count of eval_frames, one batch of one video
    with torch.no_grad():
        rows = loaded.module.evaluation_rows(({f: c[None] for f, c in clips.items()}, torch.tensor([label])), 0)
    for frames, centres in ((2, [2, 6]), (4, [1, 3, 5, 7])):  # TSN's segment centres int(tick/2 + tick*i)
        clip, stored = clip_for(loaded, index, frames)
        assert stored == centres
        assert torch.equal(clip, clips[frames])
        probabilities = predict(loaded, clip)
        assert list(probabilities) == class_names(loaded)
        assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        expected = rows[f"logits@{frames}"][0].softmax(0).numpy()
        assert np.allclose(list(probabilities.values()), expected, atol=1e-6)
    # the thumbnails: at resize = image_size = the stored size the transform only normalises, so de-normalising
    # gives the stored frames back (up to rounding)
    clip, stored = clip_for(loaded, index, 4)
    raw = read_frames(val.items[index].source, stored)
    assert np.abs(denormalise(clip).astype(int) - raw.astype(int)).max() <= 1


def test_sub_network_and_the_prediction_across_frame_counts(loaded):
    assert sub_network(loaded, 2) == "sub-network for 2 frames"
    assert sub_network(loaded, 4) == "sub-network for 4 frames"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the model's own once-per-count warning for an untrained count
        assert sub_network(loaded, 3).startswith("sub-network for 4 frames (none was trained for 3")  # tie: larger
        assert sub_network(loaded, 1).startswith("sub-network for 2 frames (none was trained for 1")
    rows = predictions_across_frames(loaded, 3)
    assert [r["frames"] for r in rows] == [2, 4]
    truth = class_names(loaded)[validation_set(loaded)[3][1]]
    for row in rows:
        probabilities = predict(loaded, clip_for(loaded, 3, row["frames"])[0])
        predicted = max(probabilities, key=probabilities.get)
        assert row["predicted class"] == predicted and row["runs on"] == f"sub-network for {row['frames']} frames"
        assert row["probability"] == round(probabilities[predicted], 4)
        assert row["probability of the true class"] == round(probabilities[truth], 4)
        assert row["correct"] == (predicted == truth)


# the page names the nearest sub-network itself; the model's own warning for an untrained count is expected here
@pytest.mark.filterwarnings("ignore:no sub-network was trained for 3-frame clips")
def test_page_shows_frames_prediction_and_every_frame_count(tiny_runs, loaded):
    at = page_app(tiny_runs("ffn").parent, "ffn").run()
    assert_no_exception(at)
    assert not at.error
    # defaults: the first example at the first evaluated frame count (2)
    assert at.success[0].value.startswith("Predicted class at 2 frames: **")
    truth = example_videos(loaded)[0].truth
    assert any(m.value.startswith(f"True class: **{truth}** (") for m in at.markdown)
    assert any("runs on the **sub-network for 2 frames**" in m.value for m in at.markdown)
    table = at.dataframe[0].value
    assert list(table["class"]) == class_names(loaded)
    assert table["probability"].sum() == pytest.approx(1.0, abs=1e-3)
    expected = predict(loaded, clip_for(loaded, 0, 2)[0])  # the page scores what the functions score
    assert np.allclose(table["probability"], [round(p, 4) for p in expected.values()], atol=1e-4)
    across = at.dataframe[1].value
    assert list(across["frames"]) == [2, 4]

    at.radio(key="ffn:frames").set_value(4).run()
    assert_no_exception(at)
    assert at.success[0].value.startswith("Predicted class at 4 frames: **") and not at.error

    at.selectbox(key="ffn:example").select(3).run()  # another video
    assert_no_exception(at)
    assert at.success and not at.error
    truth = example_videos(loaded)[3].truth
    assert any(m.value.startswith(f"True class: **{truth}** (") for m in at.markdown)

    at.radio(key="ffn:frames").set_value(0).run()  # another count: 3, which no sub-network was trained for
    assert_no_exception(at)
    assert at.number_input(key="ffn:other").value == 3
    assert at.success[0].value.startswith("Predicted class at 3 frames: **") and not at.error
    assert any("runs on the **sub-network for 4 frames (none was trained for 3" in m.value for m in at.markdown)
