"""Live page of the NeRF recipe (``torchrepro serve``; NeRF, Mildenhall et al., ECCV 2020).

Pick a run and a checkpoint, then either

* a held-out view of the run's validation split → ground truth | render | expected depth | |error| side by side,
  with the view's PSNR and SSIM computed by the task's own helpers (:func:`~torchrepro.nerf.task.view_psnr`,
  :func:`~torchrepro.nerf.task.view_ssim`), so at the scene's size they are the numbers ``eval`` reports (NeRF §6.1);
* or a novel view (NeRF §6: "view synthesis"): sliders for the azimuth and the elevation of a camera looking at the
  world origin at the training cameras' mean distance (:func:`~torchrepro.nerf.render_tool.training_orbit`, the
  orbit of ``torchrepro tool nerf-render``) → the render and its expected depth.

Views are rendered by :meth:`~torchrepro.nerf.task.NeRFTask.render_view` (the evaluation's renderer: whole views,
no perturbation). A render-size select keeps the page responsive on a CPU: it renders every ``stride``-th pixel of
the scene's grid in both directions (the same rays the evaluation casts there, so a held-out view at a reduced size
is compared with the same pixels of its ground truth). The scene is loaded once per checkpoint (:func:`cached`).
The model and data logic are plain functions; :func:`page` only renders.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import streamlit as st
import torch

from torchrepro.core.demo import LoadedModel
from torchrepro.core.demo_ui import cached, choose_model, reported
from torchrepro.nerf.cameras import orbit_poses, pixel_rays
from torchrepro.nerf.data import HeldOutViews, NeRFDataModule
from torchrepro.nerf.formats import SceneData
from torchrepro.nerf.render_tool import render_and_depth, training_orbit
from torchrepro.nerf.task import NeRFTask, view_psnr, view_ssim

RECIPE = "nerf"
SOURCES = ("a held-out view of the validation split", "a novel view")
#: pixel strides the render-size select offers (1: the scene's size), kept while the shorter side stays >= MIN_SIDE
STRIDES = (1, 2, 4, 8)
MIN_SIDE = 8
#: the default render size is the largest whose longer side is at most this (CPU rendering stays interactive)
DEFAULT_SIDE = 128
ELEVATION_RANGE = (5, 85)  # degrees: the upper hemisphere the NeRF-synthetic cameras cover, poles excluded
DRAW_HEIGHT = 240  # small views (24×24 for a tiny run) are enlarged to about this height to stay legible


@dataclass(frozen=True)
class Scene:
    """The run's scene (:func:`~torchrepro.nerf.data.load_scene` through its data module) and its validation
    views as the evaluation iterates them."""

    data: SceneData
    val: HeldOutViews

    @property
    def train_poses(self) -> np.ndarray:
        """The training cameras' camera-to-world poses [N, 4, 4]."""
        return self.data.poses[self.data.splits["train"]]


@dataclass(frozen=True)
class Render:
    """A rendered view: ``rgb`` [h, w, 3] in [0, 1] and expected ``depth`` [h, w]; for a held-out view its
    ``truth`` (the same pixels), PSNR (dB) and SSIM, for a novel view its camera-to-world ``pose``."""

    rgb: np.ndarray
    depth: np.ndarray
    truth: np.ndarray | None = None
    psnr: float | None = None
    ssim: float | None = None
    pose: np.ndarray | None = None

    @property
    def error(self) -> np.ndarray:
        """|render − truth| averaged over the channels [h, w] (a held-out view only)."""
        return np.abs(self.rgb - self.truth).mean(-1)


def load_views(loaded: LoadedModel) -> Scene:
    """The run's scene and validation views: the data module prepared (the embedded scene generated when missing)
    and set up for validation, as ``torchrepro eval`` does."""
    dm: NeRFDataModule = loaded.datamodule
    dm.prepare_data()
    dm.setup("validate")
    return Scene(dm.scene, dm.val_set)


def strides(scene: SceneData) -> list[int]:
    """The pixel strides of :data:`STRIDES` that leave at least :data:`MIN_SIDE` pixels on the shorter side."""
    short = min(scene.height, scene.width)
    return [s for s in STRIDES if s == 1 or math.ceil(short / s) >= MIN_SIDE]


def default_stride(options: list[int], scene: SceneData) -> int:
    """The smallest stride whose longer side is at most :data:`DEFAULT_SIDE` (else the largest offered)."""
    longer = max(scene.height, scene.width)
    return next((s for s in options if math.ceil(longer / s) <= DEFAULT_SIDE), options[-1])


def render_grid(module: NeRFTask, origins: torch.Tensor, directions: torch.Tensor,
                stride: int) -> dict[str, torch.Tensor]:
    """:meth:`~torchrepro.nerf.task.NeRFTask.render_view` of every ``stride``-th ray of a view's grid [H, W, 3]."""
    return module.render_view(origins[::stride, ::stride], directions[::stride, ::stride])


def render_held_out(module: NeRFTask, val: HeldOutViews, index: int, stride: int = 1) -> Render:
    """Validation view ``index`` rendered from its evaluation rays (every ``stride``-th pixel), with the PSNR and
    SSIM of the fine render against the same pixels of the ground truth (NeRF §6.1; the task's helpers, so at
    stride 1 they equal the evaluation's per-view figures)."""
    item = val[index]
    out = render_grid(module, item["origins"], item["directions"], stride)
    truth = item["rgb"][::stride, ::stride]
    return Render(out["rgb"].clamp(0, 1).numpy(), out["depth"].numpy(), truth.numpy(),
                  float(view_psnr(out["rgb"], truth)), float(view_ssim(out["rgb"], truth)))


def novel_pose(train_poses: np.ndarray, azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """The camera-to-world pose [4, 4] of a camera looking at the world origin from ``azimuth_deg`` (about the z
    axis, from +x) and ``elevation_deg``, at the training cameras' mean distance: the orbit pose of
    :func:`~torchrepro.nerf.cameras.orbit_poses` at azimuth 0 turned about z (a look-at pose with z up turns with
    its eye)."""
    radius, _ = training_orbit(train_poses)
    a = math.radians(azimuth_deg)
    turn = np.eye(4)
    turn[:2, :2] = [[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]
    return turn @ orbit_poses(1, radius, elevation_deg)[0]


def render_novel(module: NeRFTask, scene: SceneData, pose: np.ndarray, stride: int = 1) -> Render:
    """A novel view from ``pose`` with the scene's intrinsics (every ``stride``-th pixel of its grid)."""
    origins, directions = pixel_rays(scene.height, scene.width, float(scene.focal), torch.from_numpy(pose).float())
    out = render_grid(module, origins, directions, stride)
    return Render(out["rgb"].clamp(0, 1).numpy(), out["depth"].numpy(), pose=pose)


def error_picture(render: Render) -> np.ndarray:
    """|render − truth| averaged over the channels, scaled to its maximum, in the magma colour map: RGB uint8."""
    error = render.error
    scaled = np.round(255.0 * error / max(float(error.max()), 1e-12)).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(scaled, cv2.COLORMAP_MAGMA), cv2.COLOR_BGR2RGB)


def view_picture(render: Render, near: float, far: float) -> np.ndarray:
    """RGB uint8: [ground truth |] render | depth (near white, far black) [| |error|], enlarged (nearest
    neighbour) to about :data:`DRAW_HEIGHT` pixels high."""
    panels = [render_and_depth(render.rgb, render.depth, near, far)]
    if render.truth is not None:
        truth = (render.truth * 255).round().astype(np.uint8)
        panels = [truth, *panels, error_picture(render)]
    picture = np.concatenate(panels, axis=1)
    scale = max(1, DRAW_HEIGHT // picture.shape[0])
    return np.repeat(np.repeat(picture, scale, axis=0), scale, axis=1)


def _size_label(scene: SceneData, stride: int) -> str:
    size = f"{math.ceil(scene.width / stride)}x{math.ceil(scene.height / stride)}"
    return f"{size} (the scene's)" if stride == 1 else f"{size} (every {stride}th pixel)"


def _show_held_out(module: NeRFTask, scene: Scene, stride: int, near: float, far: float) -> None:
    val = scene.val
    index = st.selectbox("Validation view", range(len(val)), key=f"{RECIPE}:view",
                         format_func=lambda i: f"{i}: view {int(val.indices[i])} of the scene")
    render = render_held_out(module, val, index, stride)
    note = "the evaluation's figures" if stride == 1 else "on these pixels; the evaluation scores the scene's size"
    st.markdown(f"PSNR **{render.psnr:.2f} dB**, SSIM **{render.ssim:.4f}** ({note})")
    st.image(view_picture(render, near, far), width="stretch",
             caption=f"view {int(val.indices[index])}: ground truth | render | expected depth (near white) | "
                     f"|error| (max {render.error.max():.3f})")


def _show_novel(module: NeRFTask, scene: Scene, stride: int, near: float, far: float) -> None:
    radius, mean_elevation = training_orbit(scene.train_poses)
    left, right = st.columns(2)
    azimuth = left.slider("Azimuth (°)", 0, 360, 0, key=f"{RECIPE}:azimuth", help="about the world z axis, from +x")
    default = int(round(min(max(mean_elevation, ELEVATION_RANGE[0]), ELEVATION_RANGE[1])))
    elevation = right.slider("Elevation (°)", *ELEVATION_RANGE, default, key=f"{RECIPE}:elevation",
                             help=f"above the ground plane (the training cameras': {mean_elevation:.1f}° on average)")
    render = render_novel(module, scene.data, novel_pose(scene.train_poses, azimuth, elevation), stride)
    st.image(view_picture(render, near, far), width="stretch",
             caption=f"novel view at azimuth {azimuth}°, elevation {elevation}°, distance {radius:.2f} "
                     f"(the training cameras' mean): render | expected depth (near white)")


def page(runs_dir: Path) -> None:
    """Pick a NeRF run and a checkpoint, a render size and a held-out or a novel view; see the render, its depth
    and, for a held-out view, its error, PSNR and SSIM (NeRF §6)."""
    loaded = choose_model(runs_dir, RECIPE)
    if loaded is None:
        return
    with reported():
        scene = cached(f"{RECIPE}:scene:{loaded.key}", lambda: load_views(loaded))
        options = strides(scene.data)
        stride = st.selectbox("Render size", options, index=options.index(default_stride(options, scene.data)),
                              key=f"{RECIPE}:stride", format_func=lambda s: _size_label(scene.data, s),
                              help="fewer pixels render faster on a CPU")
        source = st.radio("View", SOURCES, horizontal=True, key=f"{RECIPE}:source")
        near, far = loaded.cfg.data.near, loaded.cfg.data.far
        show = _show_held_out if source == SOURCES[0] else _show_novel
        show(loaded.module, scene, stride, near, far)
