"""Live page of the LipNet recipe (``torchrepro serve``; LipNet, Assael, Shillingford, Whiteson and de Freitas,
"LipNet: End-to-End Sentence-level Lipreading", 2016): read the lips of a sentence.

Pick a run and a checkpoint, then a sentence: one of the run's validation split (what chose the checkpoint), one of
its unseen-speaker test split (held-out videos of speakers never seen in training, shown for illustration only:
nothing is chosen on them), or an uploaded video. See the mouth crop the network sees as an animated GIF (with the
raw per-frame tokens under it, :func:`~torchrepro.lipreading.lipread.render_gif`), the raw per-frame argmax tokens,
the greedy (best-path) text and the prefix beam search text (LipNet §3.2; constrained to GRID sentences when the
run's ``model.grammar`` says so, width ``model.beam_width``), and, when the truth is known, the true transcript with
this sentence's character and word error rates of both decodings (LipNet §4.1's CER and WER, of one sentence).

A sentence of a split is cut by the recipe's own :class:`~torchrepro.lipreading.data.LipClipDataset` (the crops
``eval`` scores, :func:`sentence_crops`); an upload goes through
:func:`~torchrepro.lipreading.data.mouth_crops` with the run's ``data:`` block (its fixed ``mouth_box``), as
``torchrepro tool lipread`` reads a video. Both are read by :func:`~torchrepro.lipreading.lipread.read_lips`, the
tool's own function. The model and data logic are plain functions; :func:`page` only renders.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from torchrepro.core.demo import LoadedModel
from torchrepro.core.demo_ui import cached, choose_model, reported
from torchrepro.core.errors import DataError
from torchrepro.lipreading.data import LipClipDataset, LipDataModule, mouth_crops, standardise
from torchrepro.lipreading.lipread import BLANK_MARK, FPS, SPACE_MARK, Reading, read_lips, render_gif
from torchrepro.lipreading.task import error_rates
from torchrepro.video.frames import VIDEO_EXTENSIONS, read_frames

RECIPE = "lipnet"
#: the splits a sentence is picked from: the validation split and the unseen-speaker test split
VAL, UNSEEN = "val", "unseen"
#: the page's sentence sources (the unseen-speaker one only when the run has that split)
SOURCES = {VAL: "a validation sentence",
           UNSEEN: "an unseen-speaker test sentence (held out, for illustration)",
           "upload": "upload a video"}


@dataclass(frozen=True)
class Sentence:
    """A sentence of a split: the split (:data:`VAL` or :data:`UNSEEN`), its position in it, who says it, its GRID
    name and its true transcript."""

    split: str
    index: int
    speaker: str
    name: str
    truth: str

    @property
    def label(self) -> str:
        return f"{self.speaker}/{self.name}: \u201c{self.truth}\u201d"


def data_module(loaded: LoadedModel) -> LipDataModule:
    """The run's data module, prepared (the synthetic corpus generated when missing) and set up once (it is shared
    by every session through the model's cache)."""
    dm: LipDataModule = loaded.datamodule
    if dm.val_set is None:
        dm.prepare_data()
        dm.setup("validate")
    return dm


def split_set(loaded: LoadedModel, split: str) -> LipClipDataset | None:
    """The validation set (:data:`VAL`) or the unseen-speaker test set (:data:`UNSEEN`; None when the run has
    none: no ``data.unseen_speakers``)."""
    dm = data_module(loaded)
    if split == VAL:
        return dm.val_set
    return dict(dm.test_sets).get(UNSEEN)


def sentences(loaded: LoadedModel, split: str) -> list[Sentence]:
    """Every sentence of ``split`` (:func:`split_set`) with its true transcript; empty when the run has no such
    split."""
    dataset = split_set(loaded, split)
    if dataset is None:
        return []
    return [Sentence(split, i, u.speaker, u.name, dataset.text(i)) for i, u in enumerate(dataset.utterances)]


def sentence_crops(loaded: LoadedModel, sentence: Sentence) -> np.ndarray:
    """The grey uint8 mouth crops ``[T, H, W]`` of a sentence of a split, as ``eval`` reads them
    (:meth:`LipClipDataset.load`: the run's mouth box or per-frame boxes, cut or padded to its alignment)."""
    return split_set(loaded, sentence.split).load(sentence.index)[0]


def upload_crops(loaded: LoadedModel, data: bytes, name: str) -> np.ndarray:
    """The grey uint8 mouth crops ``[T, H, W]`` of an uploaded video, read as ``torchrepro tool lipread`` reads a
    video: :func:`mouth_crops` with the run's ``data:`` block (its fixed ``mouth_box``); a DataError naming the
    upload when it is not a readable video or the mouth box does not fit its frames."""
    suffix = Path(name).suffix.lower()
    if suffix not in VIDEO_EXTENSIONS:
        raise DataError(f"the uploaded file '{name}' is not a video file: upload one of {', '.join(VIDEO_EXTENSIONS)}")
    with tempfile.TemporaryDirectory(prefix="torchrepro-lipnet-") as folder:
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(data)
        try:
            _check_box_fits(path, name, loaded.cfg.data.mouth_box)
            return mouth_crops(path, loaded.cfg.data)
        except DataError as err:  # named by the upload's name, not the temporary file's
            raise DataError(str(err).replace(str(path), name)) from None


def _check_box_fits(path: Path, name: str, box: list[int]) -> None:
    """A DataError for the page's user when the run's fixed mouth box does not fit the uploaded video's frames
    (decoding it here costs nothing more: the decoded video is cached for :func:`mouth_crops`)."""
    height, width = read_frames(path, [0])[0].shape[:2]
    _, bottom, _, right = box
    if bottom > height or right > width:
        raise DataError(f"the uploaded video '{name}' is {width}x{height}: the run's mouth box data.mouth_box {box} "
                        f"(top, bottom, left, right) does not fit its frames; upload a video framed like the run's "
                        f"training videos")


def reading(loaded: LoadedModel, crops: np.ndarray) -> Reading:
    """LipNet's reading of the crops (:func:`read_lips`, the lipread tool's function): the raw per-frame tokens,
    the greedy text and the prefix beam search text (LipNet §3.2) with the run's ``model.beam_width``, constrained
    to GRID sentences when ``model.grammar`` is set."""
    task = loaded.module
    return read_lips(task.net, standardise(crops), task.m.beam_width, task.grammar)


def gif_bytes(crops: np.ndarray, read: Reading) -> bytes:
    """The lipread tool's GIF (:func:`render_gif`: the mouth crop the network sees, its tokens and texts) as the
    bytes of an animated GIF at GRID's 25 fps, looping."""
    frames = render_gif(crops, read)
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=1000 // FPS, loop=0)
    return out.getvalue()


def sentence_errors(read: Reading, truth: str) -> list[dict[str, object]]:
    """This sentence's CER and WER (torchmetrics, as the recipe's evaluation: edits over the reference's length,
    LipNet §4.1) of the greedy and the beam text: one row per decoding."""
    rows = []
    for decoding, text in (("greedy", read.greedy), ("beam", read.beam)):
        rates = error_rates([text], [truth])
        rows.append({"decoding": decoding, "text": text, "CER": round(rates["cer"], 4), "WER": round(rates["wer"], 4)})
    return rows


def _analyse(loaded: LoadedModel, key: str, crops_of) -> tuple[np.ndarray, Reading, bytes]:
    """The crops, the reading and the GIF of one video, computed once per model and video (cached)."""
    def build() -> tuple[np.ndarray, Reading, bytes]:
        crops = crops_of()
        read = reading(loaded, crops)
        return crops, read, gif_bytes(crops, read)

    return cached(f"{RECIPE}:{loaded.key}:{key}", build)


def _choose_source(loaded: LoadedModel) -> str:
    has_unseen = bool(cached(f"{RECIPE}:{UNSEEN}:{loaded.key}", lambda: sentences(loaded, UNSEEN)))
    options = [VAL, UNSEEN, "upload"] if has_unseen else [VAL, "upload"]
    return st.radio("Sentence", options, horizontal=True, key=f"{RECIPE}:source", format_func=SOURCES.get)


def _choose_sentence(loaded: LoadedModel, split: str) -> Sentence:
    if split == UNSEEN:
        st.info("Held-out test videos of speakers never seen in training (LipNet §4.1's unseen speakers), shown for "
                "illustration: nothing was chosen on them, the checkpoint was chosen on the validation split.",
                icon=":material/visibility:")
    choices = cached(f"{RECIPE}:{split}:{loaded.key}", lambda: sentences(loaded, split))
    title = "Validation sentence" if split == VAL else "Unseen-speaker test sentence"
    pick = st.selectbox(title, range(len(choices)), key=f"{RECIPE}:{split}",
                        format_func=lambda i: f"{i}: {choices[i].label}")
    return choices[pick]


def _choose_video(loaded: LoadedModel) -> tuple[tuple[np.ndarray, Reading, bytes], str | None] | None:
    """The analysed video the page shows and its true transcript (None for an upload), or None (nothing
    uploaded yet)."""
    source = _choose_source(loaded)
    if source != "upload":
        sentence = _choose_sentence(loaded, source)
        key = f"{sentence.split}:{sentence.index}"
        return _analyse(loaded, key, lambda: sentence_crops(loaded, sentence)), sentence.truth
    d = loaded.cfg.data
    uploaded = st.file_uploader("A video of a speaking face", key=f"{RECIPE}:upload",
                                help=f"{', '.join(VIDEO_EXTENSIONS)}; the mouth is cut at the run's fixed "
                                     f"data.mouth_box {d.mouth_box} of every frame, as in training")
    if uploaded is None:
        return None
    if d.boxes:
        st.warning(f"The run was trained on per-frame mouth boxes (data.boxes = '{d.boxes}'); an upload is cut at "
                   f"the fixed data.mouth_box {d.mouth_box} instead, which may miss the mouth.")
    data, name = uploaded.getvalue(), uploaded.name
    digest = hashlib.sha1(data).hexdigest()
    return _analyse(loaded, f"upload:{digest}", lambda: upload_crops(loaded, data, name)), None


def _show_reading(loaded: LoadedModel, crops: np.ndarray, read: Reading, gif: bytes, truth: str | None) -> None:
    m = loaded.cfg.model
    left, right = st.columns([2, 3])
    left.image(gif, caption=f"what the model sees: the {len(crops)}-frame grey mouth crop (×4, before "
                            f"standardisation) with its per-frame tokens, at 25 fps")
    beam = f"beam search, width {m.beam_width}" + (", GRID grammar" if m.grammar else ", no grammar")
    right.success(f"Read ({beam}): **{read.beam or '(nothing)'}**")
    right.markdown(f"Greedy (best path): **{read.greedy or '(nothing)'}**")
    if truth is not None:
        right.markdown(f"True transcript: **{truth}**")
    right.markdown(f"Raw per-frame tokens (`{BLANK_MARK}` the CTC blank, `{SPACE_MARK}` the space):")
    right.code(read.tokens, language=None, wrap_lines=True)
    if len(crops) > loaded.cfg.data.frames:
        right.caption(f"the video has {len(crops)} frames, more than the {loaded.cfg.data.frames} of the run's "
                      f"clips: read in full, though the model never saw a clip so long")
    if truth is not None:
        st.markdown("**This sentence's error rates** (edit distance over the true transcript's length, in "
                    "characters and in words; LipNet §4.1)")
        st.dataframe(sentence_errors(read, truth), hide_index=True)


def page(runs_dir: Path) -> None:
    """Pick a LipNet run and a checkpoint, then a validation sentence, an unseen-speaker test sentence or an
    uploaded video; see the mouth crop the model sees, its raw tokens, the greedy and beam texts and, when the
    truth is known, the sentence's CER and WER (LipNet, Assael et al. 2016)."""
    loaded = choose_model(runs_dir, RECIPE)
    if loaded is None:
        return
    with reported():
        chosen = _choose_video(loaded)
        if chosen is None:
            st.caption("Upload a video to read its lips.")
            return
        (crops, read, gif), truth = chosen
        _show_reading(loaded, crops, read, gif, truth)
