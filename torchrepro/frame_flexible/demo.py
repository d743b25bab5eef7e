"""Live page of the FFN recipe (``torchrepro serve``; Frame Flexible Network, Zhang et al., CVPR 2023): one model
for any frame count.

Pick a run and a checkpoint, a video of the run's validation split and a frame count; see the frames the model
sees at that count (TSN's segment centres after the evaluation transform, :func:`clip_for`), the sub-network that
runs them (FFN §3.3-3.4: a network with sub-networks runs the one trained at the nearest frame count,
:func:`sub_network`), the predicted class with the probability of each class (:func:`predict`), and the same video
scored at every evaluated frame count (:func:`predictions_across_frames`): FFN's point is that the prediction
holds up at fewer frames, where a model trained at one frame count loses it (the temporal frequency deviation,
FFN §3.1).

Clips are cut by the recipe's own :class:`~torchrepro.frame_flexible.data.ClipDataset` with the validation
split's evaluation transform and scored by the run's module in eval mode, so the page shows what ``eval`` scores.
The model and data logic are plain functions; :func:`page` only renders.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st
import torch

from torchrepro.core.demo import LoadedModel
from torchrepro.core.demo_ui import cached, choose_model, reported
from torchrepro.frame_flexible.data import IMAGENET_MEAN, IMAGENET_STD, ClipDataset, FFNDataModule
from torchrepro.frame_flexible.model import FrameFlexibleNet
from torchrepro.video.frames import num_frames

RECIPE = "ffn"
EXAMPLES = 8
#: the frame-count option that opens a number input (a count outside ``model.eval_frames``)
OTHER = 0
#: thumbnails are enlarged (nearest neighbour) to about this height: a 32-pixel frame is unreadable in a page
THUMB_HEIGHT = 96


@dataclass(frozen=True)
class Example:
    """A video of the validation split: its position in the split, its name, its true class and stored frames."""

    index: int
    name: str
    truth: str
    stored_frames: int


def validation_set(loaded: LoadedModel) -> ClipDataset:
    """The run's validation clips as ``eval`` cuts them: the data module prepared (the synthetic videos generated
    when missing) and set up for validation once (the module is shared by every session through the cache)."""
    dm: FFNDataModule = loaded.datamodule
    if dm.val_set is None:
        dm.prepare_data()
        dm.setup("validate")
    return dm.val_set


def class_names(loaded: LoadedModel) -> list[str]:
    """The class names in the network's output order."""
    return loaded.datamodule.class_names()


def example_videos(loaded: LoadedModel, n: int = EXAMPLES) -> list[Example]:
    """``n`` videos spread evenly over the run's validation split (all of them when it holds fewer)."""
    items = validation_set(loaded).items
    picks = np.linspace(0, len(items) - 1, num=min(n, len(items))).round().astype(int)
    names = class_names(loaded)
    return [Example(int(i), items[i].name, names[items[i].label], num_frames(items[i].source)) for i in picks]


def clip_for(loaded: LoadedModel, index: int, frames: int) -> tuple[torch.Tensor, list[int]]:
    """Validation video ``index`` cut at ``frames`` frames: the clip ``[frames, 3, H, W]`` (normalised, as the
    network sees it) and the stored frame each of its frames is (0-based).

    TSN's evaluation sampling (the centre frame of each of ``frames`` equal segments, Wang et al., ECCV 2016, §3.2,
    as FFN's and TSM's test code) and the split's evaluation transform, through a :class:`ClipDataset` of that one
    frame count: for a count of ``model.eval_frames`` it is the very clip ``eval`` scores (the resize and centre
    crop act on each frame alone, so decoding fewer frames changes nothing)."""
    val = validation_set(loaded)
    one = ClipDataset(val.items, (frames,), val.transform)
    clips, _ = one[index]
    stored = one.frame_picks(num_frames(val.items[index].source), 0, index)[frames]
    return clips[frames], stored


@torch.no_grad()
def predict(loaded: LoadedModel, clip: torch.Tensor) -> dict[str, float]:
    """The softmax probability of each class (:func:`class_names` order) for one clip ``[F, 3, H, W]``: the
    run's module in eval mode, as the evaluation scores ``acc@F``."""
    probabilities = loaded.module(clip[None]).float().softmax(dim=1)[0]
    return {name: float(p) for name, p in zip(class_names(loaded), probabilities)}


def sub_network(loaded: LoadedModel, frames: int) -> str:
    """Which part of the network runs ``frames``-frame clips: "shared network" without sub-networks (regimes
    ``single`` and ``mixed``), else "sub-network for G frames", G the trained frame count nearest to ``frames``
    (FFN §3.4), with a note when no sub-network was trained for ``frames`` itself."""
    net: FrameFlexibleNet = loaded.module.net
    if not net.private:
        return "shared network"
    trained = net.frame_counts[net.branch_for(frames)]
    if trained == frames:
        return f"sub-network for {trained} frames"
    return f"sub-network for {trained} frames (none was trained for {frames}: the nearest runs, FFN §3.4)"


def predictions_across_frames(loaded: LoadedModel, index: int) -> list[dict[str, object]]:
    """Validation video ``index`` scored at every frame count of ``model.eval_frames`` (as ``eval``'s ``acc@F``
    does): one row per count with the sub-network, the predicted class, its probability, the probability of the
    true class and whether the prediction is right. One decode: the validation set cuts all the counts at once."""
    val = validation_set(loaded)
    clips, label = val[index]
    truth = class_names(loaded)[label]
    rows = []
    for frames in sorted(clips):
        probabilities = predict(loaded, clips[frames])
        predicted = max(probabilities, key=probabilities.get)
        rows.append({"frames": frames, "runs on": sub_network(loaded, frames), "predicted class": predicted,
                     "probability": round(probabilities[predicted], 4),
                     "probability of the true class": round(probabilities[truth], 4),
                     "correct": predicted == truth})
    return rows


def denormalise(clip: torch.Tensor) -> np.ndarray:
    """A normalised clip ``[F, 3, H, W]`` back to RGB uint8 ``[F, H, W, 3]`` (undoing ImageNet's normalisation of
    :func:`~torchrepro.frame_flexible.data.clip_transform`)."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    rgb = (clip.float() * std + mean).clamp(0, 1)
    return (rgb * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _enlarged(frame: np.ndarray) -> np.ndarray:
    scale = max(1, THUMB_HEIGHT // frame.shape[0])
    return np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1)


def _choose_video(loaded: LoadedModel) -> Example:
    examples = cached(f"{RECIPE}:examples:{loaded.key}", lambda: example_videos(loaded))
    pick = st.selectbox("Video of the validation split", range(len(examples)), key=f"{RECIPE}:example",
                        format_func=lambda i: f"{i}: {examples[i].name} (true class: {examples[i].truth})")
    return examples[pick]


def _choose_frames(loaded: LoadedModel, example: Example) -> int:
    """A frame count of ``model.eval_frames``, or another one typed in (up to the video's stored frames)."""
    evaluated = sorted(loaded.cfg.model.eval_frames)
    frames = st.radio("Frame count", [*evaluated, OTHER], horizontal=True, key=f"{RECIPE}:frames",
                      format_func=lambda f: f"{f} frames" if f != OTHER else "another count",
                      help="the counts the evaluation scores (acc@F); FFN trains one model for all of them")
    if frames != OTHER:
        return frames
    top = max(example.stored_frames, 1)
    # default: a count between the first two evaluated ones, which no sub-network was trained for (FFN §3.4)
    between = (evaluated[0] + evaluated[1]) // 2 if len(evaluated) > 1 else evaluated[0] + 1
    return int(st.number_input("Frames", min_value=1, max_value=top, value=min(top, between),
                               key=f"{RECIPE}:other", help=f"1 to the video's {top} stored frames"))


def _show_frames(clip: torch.Tensor, stored: list[int], frames: int, runs_on: str) -> None:
    st.markdown(f"**The {frames} frames the model sees** (TSN's segment centres, after the evaluation resize and "
                f"crop) → runs on the **{runs_on}**")
    pictures = [_enlarged(frame) for frame in denormalise(clip)]
    st.image(pictures, caption=[f"frame {i} (stored frame {j})" for i, j in enumerate(stored)])


def _show_prediction(probabilities: dict[str, float], truth: str, frames: int) -> None:
    predicted = max(probabilities, key=probabilities.get)
    st.success(f"Predicted class at {frames} frames: **{predicted}** (probability {probabilities[predicted]:.3f})")
    verdict = "correct" if truth == predicted else "wrong"
    st.markdown(f"True class: **{truth}** ({verdict})")
    table = {"class": list(probabilities), "probability": [round(p, 4) for p in probabilities.values()]}
    left, right = st.columns(2)
    left.dataframe(table, hide_index=True)
    right.bar_chart(table, x="class", y="probability", horizontal=True, sort=False)


def page(runs_dir: Path) -> None:
    """Pick an FFN run and a checkpoint, a validation video and a frame count; see the frames, the sub-network,
    the prediction and the same video's prediction at every evaluated frame count (FFN, CVPR 2023)."""
    loaded = choose_model(runs_dir, RECIPE)
    if loaded is None:
        return
    with reported():
        example = _choose_video(loaded)
        frames = _choose_frames(loaded, example)
        clip, stored = clip_for(loaded, example.index, frames)
        _show_frames(clip, stored, frames, sub_network(loaded, frames))
        _show_prediction(predict(loaded, clip), example.truth, frames)
        st.markdown("**This video at every evaluated frame count** (FFN: one model whose prediction holds up at "
                    "fewer frames)")
        st.dataframe(predictions_across_frames(loaded, example.index), hide_index=True)
