"""Live pages of the MagicPoint and SuperPoint recipes (``torchrepro serve``; SuperPoint, DeTone et al., CVPRW 2018).

* :func:`magicpoint_page`: a validation shape of the run (its ground-truth junctions drawn too) or an upload →
  the key points MagicPoint detects (§3.2's heatmap, then the evaluation's threshold, border removal and NMS:
  :func:`~torchrepro.superpoint.keypoints.extract_keypoints`) and the heatmap beside them. Sliders set the
  detection threshold and the NMS radius (the evaluation's are ``model.detection_threshold`` and
  ``model.nms_radius``).
* :func:`superpoint_page`: a pair of the run's validation HPatches-layout folder or two uploads → the mutual
  nearest-neighbour matches and the RANSAC homography of ``torchrepro tool superpoint-match``
  (:func:`~torchrepro.superpoint.match_tool.match_pictures`, §7.3's setting: NMS 8, top-k key points), drawn
  by :func:`~torchrepro.superpoint.baselines.draw_matches`; for a validation pair, the mean corner error of the
  estimated homography against the true one (the HPatches homography-correctness quantity, §7.3).

An upload is read grey, shrunk to a longer side and padded to whole 8×8 cells as the match tool does
(:func:`~torchrepro.superpoint.match_tool.fit_picture`). The model and data logic are plain functions; the two
page functions only render. Both recipes register this module with ``demo="torchrepro.superpoint.demo:<page>"``.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import streamlit as st
import torch
from PIL import Image

from torchrepro.core.demo import LoadedModel
from torchrepro.core.demo_ui import cached, choose_model, reported, upload_image
from torchrepro.superpoint import match_tool
from torchrepro.superpoint.baselines import draw_matches
from torchrepro.superpoint.detection_metrics import match_detections
from torchrepro.superpoint.homography import corner_error
from torchrepro.superpoint.hpatches import HPatchesPair, sequence_kind
from torchrepro.superpoint.hpatches_metrics import HCORR_EPS
from torchrepro.superpoint.keypoints import extract_keypoints, heatmap_from_logits
from torchrepro.superpoint.magicpoint_task import MagicPointTask, valid_points
from torchrepro.superpoint.pairs_data import HPatchesEvalSet, pad_to_cells
from torchrepro.superpoint.shapes_data import ShapesDataModule, ShapesEvalSet
from torchrepro.superpoint.superpoint_task import SuperPointTask

MAGICPOINT, SUPERPOINT = "magicpoint", "superpoint"
EXAMPLES = 8
SHAPE_SOURCES = ("a shape of the validation split", "upload a picture")
PAIR_SOURCES = ("a pair of the validation folder", "upload two pictures")
DETECTED, TRUTH = (0, 200, 0), (230, 0, 0)  # RGB: detections green, ground-truth junctions red
DRAW_SIDE = 480  # small shapes (120×160, 32×48 for a tiny run) are enlarged to about this side to stay legible


# ------------------------------------------------------------------------------------------------------ MagicPoint
@dataclass(frozen=True)
class Shape:
    """A validation shape as the evaluation sees it: grey uint8 [H, W] and its ground-truth junctions (x, y)."""

    name: str
    image: np.ndarray
    points: np.ndarray


@dataclass(frozen=True)
class KeyPoints:
    """One picture's heatmap [H, W] (§3.2) and the key points (x, y) [N, 2] extracted from it, by decreasing
    score [N]."""

    heatmap: np.ndarray
    xy: np.ndarray
    scores: np.ndarray


def example_shapes(loaded: LoadedModel, n: int = EXAMPLES) -> list[Shape]:
    """``n`` shapes spread evenly over the run's validation split (SuperPoint §4; generated first when missing),
    each as its :class:`~torchrepro.superpoint.shapes_data.ShapesEvalSet` sample: resized to ``data.image_size``."""
    dm: ShapesDataModule = loaded.datamodule
    dm.prepare_data()  # the synthetic shapes are generated when missing
    dm.setup("validate")
    val = dm.val_set
    picks = np.linspace(0, len(val) - 1, num=min(n, len(val))).round().astype(int)
    return [_shape(val, int(i)) for i in picks]


def _shape(val: ShapesEvalSet, index: int) -> Shape:
    sample = val[index]
    image_path = val.samples[index][0]  # <root>/<primitive>/images/validation/<i>.png
    # the sample's tensor is the uint8 image / 255: rounding back is exact
    image = (sample["image"][0].numpy() * 255.0).round().astype(np.uint8)
    return Shape(f"{image_path.parents[2].name}/{image_path.name}", image, valid_points(sample["points"]))


def upload_max_side(loaded: LoadedModel) -> int:
    """The longer side an upload is shrunk to: MagicPoint's training size (``data.image_size``), SuperPoint's
    HPatches scoring size (``data.hpatches_max_side``, else the match tool's default), the scales the networks
    were trained and scored at."""
    d = loaded.cfg.data
    if loaded.cfg.recipe == MAGICPOINT:
        return max(d.image_size)
    return d.hpatches_max_side or match_tool.DEFAULT_MAX_SIDE


def grey_picture(image: Image.Image, name: str, max_side: int) -> np.ndarray:
    """An uploaded RGB picture as the network takes it: grey uint8 (ITU-R 601 luma, OpenCV's grey too), at least
    two cells, shrunk to ``max_side`` (:func:`~torchrepro.superpoint.match_tool.fit_picture`)."""
    return match_tool.fit_picture(np.asarray(image.convert("L")), name, max_side)


@torch.inference_mode()
def detect_keypoints(module: MagicPointTask, image: np.ndarray, threshold: float, nms_radius: int) -> KeyPoints:
    """MagicPoint's key points of a grey uint8 picture: padded to whole cells, the heatmap of §3.2
    (:func:`~torchrepro.superpoint.keypoints.heatmap_from_logits`) cropped back to the picture, then the
    evaluation's extraction (threshold, ``model.border``, NMS of ``nms_radius`` pixels; every point kept, as the
    detection mAP scores them)."""
    h, w = image.shape
    x = torch.from_numpy(pad_to_cells(image).astype(np.float32) / 255.0)[None, None]  # what the data sets feed
    heat = heatmap_from_logits(module.net(x)["semi"])[0, :h, :w].float()
    xy, scores = extract_keypoints(heat, threshold, nms_radius, None, module.m.border)
    return KeyPoints(heat.numpy(), xy.numpy(), scores.numpy())


def correct_detections(found: KeyPoints, truth: np.ndarray, distance: float) -> int:
    """How many detections are true positives of the evaluation: within ``distance`` pixels of a ground-truth
    junction not taken by a higher-scored one (:func:`~torchrepro.superpoint.detection_metrics.match_detections`,
    rpautrat's protocol)."""
    return int(match_detections(found.xy, found.scores, truth, distance).sum())


def _scale(shape: tuple[int, ...]) -> int:
    return max(1, DRAW_SIDE // max(shape[:2]))


def _enlarged(image: np.ndarray) -> np.ndarray:
    s = _scale(image.shape)
    return cv2.resize(image, (image.shape[1] * s, image.shape[0] * s), interpolation=cv2.INTER_NEAREST)


def _centre(xy: np.ndarray, s: int) -> list[tuple[int, int]]:
    # pixel centres are integers (OpenCV's convention): pixel x spans s·x … s·x + s − 1 once enlarged
    pixels = np.round((np.asarray(xy, np.float64).reshape(-1, 2) + 0.5) * s - 0.5).astype(int)
    return [(int(x), int(y)) for x, y in pixels]


def draw_keypoints(image: np.ndarray, found: KeyPoints, truth: np.ndarray | None = None) -> np.ndarray:
    """The grey picture enlarged (nearest neighbour) as RGB uint8, detections as green dots and, when given,
    the ground-truth junctions as red rings."""
    canvas = cv2.cvtColor(_enlarged(image), cv2.COLOR_GRAY2RGB)
    s = _scale(image.shape)
    for centre in _centre(truth if truth is not None else np.zeros((0, 2)), s):
        cv2.circle(canvas, centre, 3 + s // 2, TRUTH, 1, cv2.LINE_AA)
    for centre in _centre(found.xy, s):
        cv2.circle(canvas, centre, 2 + s // 4, DETECTED, -1, cv2.LINE_AA)
    return canvas


def heatmap_picture(heatmap: np.ndarray) -> np.ndarray:
    """The heatmap scaled to its maximum (the probabilities of a cell share 1: most are tiny) in the viridis
    colour map, enlarged like :func:`draw_keypoints`, RGB uint8."""
    scaled = np.round(255.0 * heatmap / max(float(heatmap.max()), 1e-12)).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(_enlarged(scaled), cv2.COLORMAP_VIRIDIS), cv2.COLOR_BGR2RGB)


def _choose_shape(loaded: LoadedModel) -> tuple[np.ndarray, str, np.ndarray | None] | None:
    """(grey picture, its name, its ground-truth junctions or None for an upload), or None (nothing uploaded)."""
    source = st.radio("Picture", SHAPE_SOURCES, horizontal=True, key=f"{MAGICPOINT}:source")
    if source == SHAPE_SOURCES[1]:
        got = upload_image("A picture of any size (PNG or JPEG; read grey)", key=f"{MAGICPOINT}:upload")
        if got is None:
            return None
        return grey_picture(got[1], got[0], upload_max_side(loaded)), got[0], None
    examples = cached(f"{MAGICPOINT}:examples:{loaded.key}", lambda: example_shapes(loaded))
    pick = st.selectbox("Validation shape", range(len(examples)), key=f"{MAGICPOINT}:example",
                        format_func=lambda i: f"{i}: {examples[i].name} ({len(examples[i].points)} true junctions)")
    shape = examples[pick]
    return shape.image, shape.name, shape.points


def _show_keypoints(image: np.ndarray, name: str, truth: np.ndarray | None, found: KeyPoints, threshold: float,
                    nms_radius: int, distance: float) -> None:
    n = len(found.xy)
    setting = f"above {threshold:.3f}, NMS {nms_radius} px"
    if n:
        st.success(f"**{n}** key point{'s' if n != 1 else ''} {setting}")
    else:
        st.info(f"No key point {setting}: lower the detection threshold.")
    if truth is not None:
        st.markdown(f"Ground truth: {len(truth)} junctions; {correct_detections(found, truth, distance)} "
                    f"detections within {distance:g} px of one (the evaluation's true positives)")
    left, right = st.columns(2)
    left.image(draw_keypoints(image, found, truth), width="stretch",
               caption=f"{name} ({image.shape[1]}x{image.shape[0]} pixels): detections green"
                       + ("" if truth is None else ", ground truth red"))
    right.image(heatmap_picture(found.heatmap), width="stretch",
                caption=f"heatmap, scaled to its maximum p = {found.heatmap.max():.3f}")


def magicpoint_page(runs_dir: Path) -> None:
    """Pick a MagicPoint run and a checkpoint, a threshold, an NMS radius and a picture; see its key points and
    heatmap (SuperPoint §3.2, §4)."""
    loaded = choose_model(runs_dir, MAGICPOINT)
    if loaded is None:
        return
    m = loaded.module.m
    with reported():
        left, right = st.columns(2)
        threshold = left.slider("Detection threshold", 0.0, 0.999, float(m.detection_threshold), 0.001,
                                format="%.3f", key=f"{MAGICPOINT}:threshold",
                                help="a pixel is a candidate when its heatmap probability exceeds this (the "
                                     "evaluation's: model.detection_threshold)")
        nms_radius = right.slider("NMS radius (px)", 0, 16, int(m.nms_radius), key=f"{MAGICPOINT}:nms",
                                  help="a key point suppresses weaker ones within this distance (model.nms_radius)")
        chosen = _choose_shape(loaded)
        if chosen is None:
            st.caption("Upload a picture to see its key points.")
            return
        image, name, truth = chosen
        found = detect_keypoints(loaded.module, image, threshold, nms_radius)
        _show_keypoints(image, name, truth, found, threshold, nms_radius, m.match_distance)


# ------------------------------------------------------------------------------------------------------ SuperPoint
@dataclass(frozen=True)
class PairName:
    """A pair ``(1, k)`` of the validation folder, named without reading its images."""

    sequence: str
    kind: str
    k: int

    def __str__(self) -> str:
        return f"{self.sequence} ({self.kind}, 1 → {self.k})"


def validation_set(loaded: LoadedModel) -> HPatchesEvalSet:
    """The run's validation HPatches-layout folder (SuperPoint §7), as the evaluation reads it: shrunk to
    ``data.hpatches_max_side``, ``data.hpatches_pairs`` of its pairs. Generated first when the photo folders are
    missing (``prepare_data``, which also exports the training labels: only then)."""
    dm = loaded.datamodule  # a SuperPointDataModule
    if not dm.hpatches_dir("val").is_dir():
        dm.prepare_data()
    dm.setup("validate")
    return dm.val_set


def pair_names(val: HPatchesEvalSet) -> list[PairName]:
    """The names of the pairs the validation scores (its ``chosen`` ones), in order."""
    keys = [val.pairs.keys[i] for i in val.chosen]
    return [PairName(folder.name, sequence_kind(folder.name), k) for folder, k in keys]


def validation_pair(val: HPatchesEvalSet, index: int) -> HPatchesPair:
    """Pair ``index`` of :func:`pair_names`: grey images and the true homography H (image 1 → image 2)."""
    return val.pairs[val.chosen[index]]


def match_pair(module: SuperPointTask, image1: np.ndarray, image2: np.ndarray, top_k: int) -> dict:
    """:func:`~torchrepro.superpoint.match_tool.match_pictures` with the run's settings, as ``superpoint-match``
    calls it: ``model.detection_threshold``, NMS ``model.descriptor_nms_radius`` (8, §7.3), the best ``top_k``."""
    m = module.m
    return match_tool.match_pictures(module.net, image1, image2, top_k=top_k, threshold=m.detection_threshold,
                                     nms_radius=m.descriptor_nms_radius)


def matches_png(image1: np.ndarray, image2: np.ndarray, found: dict) -> bytes:
    """The match picture of ``superpoint-match`` (:func:`~torchrepro.superpoint.baselines.draw_matches`: inliers
    green, outliers red) as PNG bytes."""
    with tempfile.TemporaryDirectory() as folder:  # draw_matches writes a file, as the tool and the report need
        out = draw_matches(image1, image2, found["kp1"], found["kp2"], found["matches"], found["inliers"],
                           Path(folder) / "matches.png")
        return out.read_bytes()


def homography_error(found: dict, true_homography: np.ndarray, shape1: tuple[int, int]) -> float:
    """Mean corner error (pixels) of the estimated homography against the true one, over image 1's four corners
    (:func:`~torchrepro.superpoint.homography.corner_error`, the HPatches protocol's correctness quantity, §7.3);
    infinite when RANSAC found none (counted incorrect at every ε, as the evaluation does)."""
    if found["homography"] is None:
        return math.inf
    return corner_error(np.asarray(true_homography, np.float64), found["homography"], shape1)


def _choose_pair(loaded: LoadedModel) -> tuple[np.ndarray, np.ndarray, str, str, HPatchesPair | None] | None:
    """(picture 1, picture 2, their names, the validation pair or None for uploads), or None (not uploaded yet)."""
    source = st.radio("Pictures", PAIR_SOURCES, horizontal=True, key=f"{SUPERPOINT}:source")
    if source == PAIR_SOURCES[1]:
        got = []
        for i, column in enumerate(st.columns(2), start=1):
            with column:
                got.append(upload_image(f"Picture {i} (PNG or JPEG; read grey)", key=f"{SUPERPOINT}:upload{i}"))
        if any(g is None for g in got):
            return None
        (name1, image1), (name2, image2) = got
        side = upload_max_side(loaded)
        return grey_picture(image1, name1, side), grey_picture(image2, name2, side), name1, name2, None
    val = cached(f"{SUPERPOINT}:val:{loaded.key}", lambda: validation_set(loaded))
    names = pair_names(val)
    pick = st.selectbox("Validation pair", range(len(names)), key=f"{SUPERPOINT}:pair",
                        format_func=lambda i: f"{i}: {names[i]}")
    pair = validation_pair(val, pick)
    return pair.image1, pair.image2, f"{pair.sequence}/1", f"{pair.sequence}/{pair.index}", pair


def _show_matches(image1: np.ndarray, image2: np.ndarray, names: tuple[str, str], found: dict,
                  pair: HPatchesPair | None) -> None:
    line = match_tool.match_summary(found, *names)
    (st.success if found["homography"] is not None else st.warning)(line)
    if pair is not None:
        err = homography_error(found, pair.H, pair.image1.shape)
        verdict = ", ".join(f"ε = {e}: {'✓' if err <= e else '✗'}" for e in HCORR_EPS)
        st.markdown(f"Mean corner error of the estimated homography: **{err:.2f} px** (correct at {verdict})")
    st.image(matches_png(image1, image2, found), width="stretch",
             caption=f"{names[0]} ({image1.shape[1]}x{image1.shape[0]}) | {names[1]} ({image2.shape[1]}x"
                     f"{image2.shape[0]}): mutual matches, RANSAC inliers green, outliers red")


def superpoint_page(runs_dir: Path) -> None:
    """Pick a SuperPoint run and a checkpoint, a validation pair or two uploads and the top-k; see the matches and
    the homography's error (SuperPoint §7.3)."""
    loaded = choose_model(runs_dir, SUPERPOINT)
    if loaded is None:
        return
    with reported():
        default = int(loaded.module.m.top_k_descriptors)
        top_k = st.slider("Key points kept per picture (top-k)", 10, max(2000, default), default, 10,
                          key=f"{SUPERPOINT}:top_k", help="the best-scored after NMS (the protocol's: 1,000)")
        chosen = _choose_pair(loaded)
        if chosen is None:
            st.caption("Upload two pictures to match them.")
            return
        image1, image2, name1, name2, pair = chosen
        found = match_pair(loaded.module, image1, image2, top_k)
        _show_matches(image1, image2, (name1, name2), found, pair)
