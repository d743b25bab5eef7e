"""Live page of the driving recipe (``torchrepro serve``): a driver's-view frame → the direction with the
probability of each class, from a run's checkpoint.

The frame is an uploaded picture or one of the run's validation frames; it goes through the recipe's own
evaluation transform (:func:`~torchrepro.driving.data.build_transforms`), so the page sees what ``eval`` scores.
The model and data logic are plain functions (:func:`predict_direction`, :func:`example_frames`); :func:`page`
only renders.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st
import torch
from PIL import Image

from torchrepro.core.demo import LoadedModel
from torchrepro.core.demo_ui import cached, choose_model, reported, upload_image
from torchrepro.core.images import load_rgb
from torchrepro.driving.data import DrivingDataModule, build_transforms

RECIPE = "driving"
EXAMPLES = 8
SOURCES = ("an example of the validation split", "upload a frame")


@torch.no_grad()
def predict_direction(loaded: LoadedModel, image: Image.Image) -> dict[str, float]:
    """The softmax probability of each direction (``data.classes`` order) for one RGB frame."""
    x = build_transforms(loaded.cfg.data.image_size, train=False)(image.convert("RGB"))[None]
    probabilities = loaded.module(x).float().softmax(dim=1)[0]
    return {name: float(p) for name, p in zip(loaded.cfg.data.classes, probabilities)}


def example_frames(loaded: LoadedModel, n: int = EXAMPLES) -> list[tuple[Path, str]]:
    """``n`` frames spread evenly over the run's validation split: (image file, true direction)."""
    dm: DrivingDataModule = loaded.datamodule
    dm.prepare_data()  # the synthetic scenes are generated when missing
    dm.setup("validate")
    items = dm.val_set.items
    picks = np.linspace(0, len(items) - 1, num=min(n, len(items))).round().astype(int)
    return [(items[i][0], loaded.cfg.data.classes[items[i][1]]) for i in picks]


def _choose_frame(loaded: LoadedModel) -> tuple[Image.Image, str | None] | None:
    """The frame the page scores and its true direction (None for an upload), or None (nothing chosen yet)."""
    source = st.radio("Frame", SOURCES, horizontal=True, key=f"{RECIPE}:source")
    if source == SOURCES[1]:
        got = upload_image("A driver's-view frame (PNG or JPEG)", key=f"{RECIPE}:upload")
        return None if got is None else (got[1], None)
    examples = cached(f"{RECIPE}:examples:{loaded.key}", lambda: example_frames(loaded))
    columns = st.columns(len(examples))
    for i, (column, (path, truth)) in enumerate(zip(columns, examples)):
        column.image(str(path), caption=f"{i}: {truth}", width="stretch")
    pick = st.selectbox("Example", range(len(examples)), key=f"{RECIPE}:example",
                        format_func=lambda i: f"{i}: {examples[i][0].name} (true direction: {examples[i][1]})")
    path, truth = examples[pick]
    return load_rgb(path), truth


def _show_prediction(image: Image.Image, probabilities: dict[str, float], truth: str | None) -> None:
    predicted = max(probabilities, key=probabilities.get)
    left, right = st.columns([1, 2])
    left.image(image, caption="the frame the model sees (before resizing)", width="stretch")
    right.success(f"Predicted direction: **{predicted}** (probability {probabilities[predicted]:.3f})")
    if truth is not None:
        verdict = "correct" if truth == predicted else "wrong"
        right.markdown(f"True direction: **{truth}** ({verdict})")
    table = {"direction": list(probabilities), "probability": [round(p, 4) for p in probabilities.values()]}
    right.dataframe(table, hide_index=True)
    right.bar_chart(table, x="direction", y="probability", horizontal=True, sort=False)


def page(runs_dir: Path) -> None:
    """Pick a run and a checkpoint, then a frame; see the predicted direction and the probabilities."""
    loaded = choose_model(runs_dir, RECIPE)
    if loaded is None:
        return
    with reported():
        chosen = _choose_frame(loaded)
        if chosen is None:
            st.caption("Upload a frame to see the predicted direction.")
            return
        image, truth = chosen
        _show_prediction(image, predict_direction(loaded, image), truth)
