"""The LipNet recipe's live page of ``torchrepro serve``: its functions against the tiny trained run (3 synthetic
speakers, s3 unseen, 2 validation sentences per seen speaker, 75-frame clips) and the page under Streamlit's
headless AppTest (a validation sentence, an unseen-speaker sentence, a corrupt upload, a real upload)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchmetrics.functional.text import char_error_rate, word_error_rate

from tests.helpers import assert_no_exception, page_app
from torchrepro.core.demo import load_model
from torchrepro.core.errors import DataError
from torchrepro.lipreading.demo import (UNSEEN, VAL, gif_bytes, reading, sentence_crops, sentence_errors,
                                        sentences, upload_crops)


@pytest.fixture(scope="module")
def loaded(tiny_runs):
    return load_model(tiny_runs("lipnet"), "best.ckpt", "lipnet")


@pytest.fixture(scope="module")
def expected(loaded):
    """``expected(split, index) -> (truth, tokens, greedy, beam)`` computed here as the evaluation does it, apart
    from the page's functions: a fresh data module's sample (standardised, zero-padded to data.frames), the network
    on it with its length, greedy_decode and the grammar's prefix beam search of the model.beam_width."""
    from torchrepro.lipreading.align import read_align
    from torchrepro.lipreading.data import LipDataModule
    from torchrepro.lipreading.decoding import SlotGrammar, greedy_decode, prefix_beam_search
    from torchrepro.lipreading.lipread import token_string
    from torchrepro.lipreading.vocabulary import decode_ids

    dm = LipDataModule(loaded.cfg)
    dm.prepare_data()
    dm.setup("validate")
    sets = {VAL: dm.val_set, UNSEEN: dict(dm.test_sets)["unseen"]}

    def get(split: str, index: int) -> tuple[str, str, str, str]:
        sample = sets[split][index]
        n = sample["length"]
        net = loaded.module.net.eval()
        with torch.no_grad():
            log_probs = net(sample["clip"][None], torch.tensor([n])).float()
        beam = prefix_beam_search(log_probs[0, :n], loaded.cfg.model.beam_width, SlotGrammar())
        truth = read_align(sets[split].utterances[index].align).text
        return (truth, token_string(log_probs[0, :n].argmax(-1).tolist()),
                decode_ids(greedy_decode(log_probs, torch.tensor([n]))[0]), decode_ids(beam))

    return get


def _video(loaded) -> Path:
    videos = sorted(Path(loaded.cfg.data.synthetic_dir).glob("**/s3/*.mpg"))
    assert videos, f"no synthetic videos of s3 under {loaded.cfg.data.synthetic_dir}"
    return videos[0]


def test_sentences_are_the_splits_with_their_transcripts_and_readings_are_the_evaluations(loaded, expected):
    assert loaded.cfg.model.grammar and loaded.cfg.model.beam_width == 2
    val, unseen = sentences(loaded, VAL), sentences(loaded, UNSEEN)
    assert len(val) == 4 and {s.speaker for s in val} == {"s1", "s2"}  # 2 per seen speaker
    assert len(unseen) == 8 and {s.speaker for s in unseen} == {"s3"}  # every sentence of the unseen speaker
    for sentence in (val[0], val[3], unseen[5]):
        truth, tokens, greedy, beam = expected(sentence.split, sentence.index)
        assert sentence.truth == truth and len(truth.split()) == 6
        crops = sentence_crops(loaded, sentence)
        assert crops.dtype == np.uint8 and crops.shape == (75, *loaded.cfg.data.input_size)
        read = reading(loaded, crops)
        assert (read.tokens, read.greedy, read.beam) == (tokens, greedy, beam)
        rows = sentence_errors(read, truth)
        assert [(r["decoding"], r["text"]) for r in rows] == [("greedy", greedy), ("beam", beam)]
        for row in rows:
            assert row["CER"] == pytest.approx(float(char_error_rate([row["text"]], [truth])), abs=1e-4)
            assert row["WER"] == pytest.approx(float(word_error_rate([row["text"]], [truth])), abs=1e-4)


def test_gif_is_the_lipread_tools_animation_of_the_crops(loaded):
    sentence = sentences(loaded, VAL)[1]
    crops = sentence_crops(loaded, sentence)
    gif = Image.open(io.BytesIO(gif_bytes(crops, reading(loaded, crops))))
    assert gif.format == "GIF" and gif.n_frames == 75 and gif.info["duration"] == 40
    h, w = crops.shape[1:]
    top = np.asarray(gif.convert("L"))[:h * 4:4, :w * 4:4]  # the first frame's crop, ×4 nearest neighbour
    assert np.abs(top.astype(int) - crops[0].astype(int)).max() <= 8  # GIF palette rounding


def test_upload_is_read_like_the_tool_and_a_bad_one_is_a_data_error(loaded, tmp_path):
    from torchrepro.lipreading.data import mouth_crops

    video = _video(loaded)
    assert np.array_equal(upload_crops(loaded, video.read_bytes(), "mine.mpg"), mouth_crops(video, loaded.cfg.data))
    with pytest.raises(DataError, match="'broken.mpg' cannot be opened") as err:
        upload_crops(loaded, b"not a video at all", "broken.mpg")
    assert "torchrepro-lipnet-" not in str(err.value)  # the upload's name, not the temporary file's
    with pytest.raises(DataError, match="'notes.txt' is not a video file"):
        upload_crops(loaded, b"hello", "notes.txt")
    import cv2

    small = tmp_path / "small.avi"  # 32x24 frames: the run's mouth box [26, 58, 16, 80] does not fit
    writer = cv2.VideoWriter(str(small), cv2.VideoWriter_fourcc(*"MJPG"), 25, (32, 24))
    for _ in range(5):
        writer.write(np.zeros((24, 32, 3), np.uint8))
    writer.release()
    with pytest.raises(DataError, match=r"'small.avi' is 32x24: the run's mouth box data.mouth_box \[26, 58, 16, 80\]"):
        upload_crops(loaded, small.read_bytes(), "small.avi")


def test_page_reads_a_validation_and_an_unseen_sentence_and_refuses_a_corrupt_upload(tiny_runs, loaded, expected):
    at = page_app(tiny_runs("lipnet").parent, "lipnet").run()
    assert_no_exception(at)
    assert not at.error
    # defaults: the first validation sentence
    truth, tokens, greedy, beam = expected(VAL, 0)
    assert at.success[0].value == f"Read (beam search, width 2, GRID grammar): **{beam or '(nothing)'}**"
    markdown = [m.value for m in at.markdown]
    assert f"Greedy (best path): **{greedy or '(nothing)'}**" in markdown
    assert f"True transcript: **{truth}**" in markdown
    assert at.code[0].value == tokens and len(tokens) == 75
    assert len(at.image) == 1  # the GIF
    errors = at.dataframe[0].value
    assert list(errors["decoding"]) == ["greedy", "beam"] and list(errors["text"]) == [greedy, beam]
    assert errors["WER"].tolist() == pytest.approx([word_error_rate([t], [truth]).item() for t in (greedy, beam)],
                                                   abs=1e-4)

    options = at.radio(key="lipnet:source").options
    assert len(options) == 3 and "held out" in options[1]
    at.radio(key="lipnet:source").set_value(UNSEEN).run()
    assert_no_exception(at)
    assert not at.error and "nothing was chosen on them" in at.info[0].value
    at.selectbox(key="lipnet:unseen").select(6).run()
    assert_no_exception(at)
    truth, tokens, greedy, beam = expected(UNSEEN, 6)
    assert at.selectbox(key="lipnet:unseen").value == 6 and truth in at.selectbox(key="lipnet:unseen").options[6]
    assert at.success[0].value.endswith(f"**{beam or '(nothing)'}**") and at.code[0].value == tokens
    assert f"True transcript: **{truth}**" in [m.value for m in at.markdown]

    at.radio(key="lipnet:source").set_value("upload").run()
    assert_no_exception(at)
    assert not at.success and not at.error  # nothing uploaded yet: nothing read
    at.file_uploader(key="lipnet:upload").set_value(("broken.mpg", b"\x00\x01 not an mpeg", "video/mpeg")).run()
    assert_no_exception(at)
    assert len(at.error) == 1 and "video 'broken.mpg' cannot be opened" in at.error[0].value
    assert not at.success

    video = _video(loaded)
    at.file_uploader(key="lipnet:upload").set_value(("mine.mpg", video.read_bytes(), "video/mpeg")).run()
    assert_no_exception(at)
    assert not at.error and at.success and not at.dataframe  # read; no truth, no error rates
    assert not any(m.value.startswith("True transcript") for m in at.markdown)
    # the same video as s3's sentence of the unseen split: the same reading (mouth_crops = the dataset's crops)
    index = next(s.index for s in sentences(loaded, UNSEEN) if s.name == video.stem)
    _, tokens, greedy, beam = expected(UNSEEN, index)
    assert at.success[0].value.endswith(f"**{beam or '(nothing)'}**") and at.code[0].value == tokens
