"""Live page of the SSD detection recipe (``torchrepro serve``): a picture → its detections drawn over it and a table
of the boxes, from a run's checkpoint.

The picture is one of the run's validation images (its ground-truth objects named beside it) or an upload of any
size. It goes through :func:`torchrepro.detection.inference.detect_image`, the code of ``torchrepro tool detect``:
the evaluation resize to ``model.image_size``, SSD's post-processing (Liu et al., ECCV 2016, §3.7) and the boxes
mapped back to the picture's pixels, so the page shows what ``eval`` scores. A slider sets the lowest score shown.
The model and data logic are plain functions (:func:`example_images`, :func:`box_table`, :func:`annotated_png`);
:func:`page` only renders.
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image

from torchrepro.core.demo import LoadedModel
from torchrepro.core.demo_ui import cached, choose_model, reported, upload_image
from torchrepro.detection.data import DetectionDataModule
from torchrepro.detection.inference import DEFAULT_SCORE, ImageDetections, detect_image, draw_detections, read_image
from torchrepro.detection.records import DetectionRecord

RECIPE = "detection"
EXAMPLES = 8
SOURCES = ("an image of the validation split", "upload an image")
TABLE_COLUMNS = ("class", "label", "score", "x1", "y1", "x2", "y2")


def example_images(loaded: LoadedModel, n: int = EXAMPLES) -> list[DetectionRecord]:
    """``n`` records spread evenly over the run's validation split (generated first for the synthetic source)."""
    dm: DetectionDataModule = loaded.datamodule
    dm.prepare_data()  # the synthetic scenes are generated when missing
    dm.setup("validate")
    records = dm.records["val"]
    picks = np.linspace(0, len(records) - 1, num=min(n, len(records))).round().astype(int)
    return [records[i] for i in picks]


def box_table(found: ImageDetections) -> dict[str, list]:
    """The detections as columns (:data:`TABLE_COLUMNS`), boxes in the picture's pixels, by decreasing score."""
    rows = [(d.name, d.label, round(d.score, 4), *(round(v, 1) for v in d.box)) for d in found.detections]
    return {column: [row[k] for row in rows] for k, column in enumerate(TABLE_COLUMNS)}


def annotated_png(image: Image.Image, found: ImageDetections, classes: list[str]) -> bytes:
    """The picture with ``found`` drawn, as PNG bytes (what the tool writes per picture)."""
    buffer = io.BytesIO()
    draw_detections(image, found, classes, buffer)
    return buffer.getvalue()


def _ground_truth(record: DetectionRecord, classes: list[str]) -> str:
    counts = Counter(classes[int(label) - 1] for label in record.labels)
    return ", ".join(f"{n} {name}" for name, n in sorted(counts.items())) or "no object"


def _choose_image(loaded: LoadedModel) -> tuple[Image.Image, str, str | None] | None:
    """(picture, its name, its ground truth in words or None for an upload), or None (nothing uploaded yet)."""
    source = st.radio("Image", SOURCES, horizontal=True, key=f"{RECIPE}:source")
    if source == SOURCES[1]:
        got = upload_image("A picture of any size (PNG or JPEG)", key=f"{RECIPE}:upload")
        return None if got is None else (got[1], got[0], None)
    examples = cached(f"{RECIPE}:examples:{loaded.key}", lambda: example_images(loaded))
    classes = loaded.module.classes
    pick = st.selectbox("Validation image", range(len(examples)), key=f"{RECIPE}:example",
                        format_func=lambda i: f"{i}: {examples[i].image.name} ({examples[i].width}x"
                                              f"{examples[i].height}; true: {_ground_truth(examples[i], classes)})")
    record = examples[pick]
    return read_image(record.image), record.image.name, _ground_truth(record, classes)


def _show(image: Image.Image, found: ImageDetections, score: float, classes: list[str], truth: str | None) -> None:
    left, right = st.columns([3, 2])
    left.image(annotated_png(image, found, classes), width="stretch",
               caption=f"{found.name} ({found.width}x{found.height} pixels), detections scored >= {score:.2f}")
    n = len(found.detections)
    if n:
        right.success(f"**{n}** detection{'s' if n != 1 else ''} scored at least {score:.2f}")
    else:
        right.info(f"No detection scored at least {score:.2f}: lower the score threshold.")
    if truth is not None:
        right.markdown(f"Ground truth: {truth}")
    right.dataframe(box_table(found), hide_index=True)


def page(runs_dir: Path) -> None:
    """Pick a run and a checkpoint, a score threshold and a picture; see its detections and their boxes."""
    loaded = choose_model(runs_dir, RECIPE)
    if loaded is None:
        return
    with reported():
        score = st.slider("Lowest score shown", 0.0, 1.0, DEFAULT_SCORE, 0.01, key=f"{RECIPE}:score",
                          help="the detector keeps scores above model.score_thresh (SSD: 0.01, for the AP's "
                               "ranking); a picture shows the confident ones")
        chosen = _choose_image(loaded)
        if chosen is None:
            st.caption("Upload a picture to see its detections.")
            return
        image, name, truth = chosen
        found = detect_image(loaded.module, image, name).above(score)
        _show(image, found, score, loaded.module.classes, truth)
