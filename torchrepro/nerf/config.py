"""Config schemas of the NeRF recipe (``data:`` and ``model:`` blocks), their checks, and its registration.

NeRF: Mildenhall et al., "NeRF: Representing Scenes as Neural Radiance Fields for View Synthesis", ECCV 2020.
The fast field: Müller et al., "Instant Neural Graphics Primitives with a Multiresolution Hash Encoding",
SIGGRAPH 2022. No torch here: the CLI validates configs without importing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as default_list  # "field" is a config key of the model block
from pathlib import Path
from typing import Literal

from torchrepro.core.errors import ConfigError
from torchrepro.core.registry import Recipe, Tool, register, register_tool

__all__ = ["NeRFData", "NeRFModel"]


@dataclass
class NeRFData:
    """Posed pictures of one scene and how training rays are drawn from them.

    ``source``: ``embedded`` (our ray-traced scene, generated under ``synthetic_dir`` in the tiny-NeRF ``.npz`` and
    NeRF-synthetic Blender layouts, then read back through ``format``), ``tiny_nerf`` (the seed's
    ``tiny_nerf_data.npz`` at ``path``) or ``blender`` (a NeRF-synthetic scene folder at ``path`` with
    ``transforms_{train,val,test}.json``). ``near`` / ``far`` bound every ray (the lego scene's 2 and 6).
    Training (NeRF §5.3): every step draws ``rays_per_batch`` pixels, at random over all training pictures
    (``ray_sampling: all_images``, the paper's practice) or from one random picture (``one_image``, the seed
    tutorial's); the first ``precrop_iters`` steps draw only from the central ``precrop_fraction`` of each picture
    (the seed's cure for runs that collapse to the background). An epoch is ``steps_per_epoch`` steps; validation
    renders ``val_views`` held-out views (null: all) after each epoch.
    """

    source: Literal["embedded", "tiny_nerf", "blender"] = "embedded"
    format: Literal["tiny_nerf", "blender"] = "blender"
    path: str | None = None
    synthetic_dir: str = "data/synthetic/nerf_embedded"
    image_size: int = 100
    views: int = 106
    white_background: bool = True
    max_side: int | None = None
    near: float = 2.0
    far: float = 6.0
    rays_per_batch: int = 1024
    ray_sampling: Literal["all_images", "one_image"] = "all_images"
    precrop_iters: int = 0
    precrop_fraction: float = 0.5
    steps_per_epoch: int = 250
    val_views: int | None = None
    num_workers: int = 0

    def check(self, where: str) -> None:
        if self.source != "embedded":
            if self.path is None:
                raise ConfigError(f"config key '{where}.path' is needed with source '{self.source}': give the "
                                  f"{'tiny_nerf_data.npz file' if self.source == 'tiny_nerf' else 'scene folder'}")
            exists = Path(self.path).is_file() if self.source == "tiny_nerf" else Path(self.path).is_dir()
            if not exists:
                what = "the seed's tiny_nerf_data.npz" if self.source == "tiny_nerf" else \
                    "a NeRF-synthetic scene folder with transforms_train.json"
                raise ConfigError(f"config key '{where}.path' names '{self.path}', which does not exist: point it at "
                                  f"{what}, or set {where}.source=embedded for the built-in scene")
        if not 0 <= self.near < self.far:
            raise ConfigError(f"config key '{where}.near' must be >= 0 and below {where}.far, got near {self.near}, "
                              f"far {self.far}")
        if not 0 < self.precrop_fraction <= 1:
            raise ConfigError(f"config key '{where}.precrop_fraction' must be in (0, 1], got {self.precrop_fraction}")
        for key in ("rays_per_batch", "steps_per_epoch"):
            if getattr(self, key) < 1:
                raise ConfigError(f"config key '{where}.{key}' must be >= 1, got {getattr(self, key)}")
        if self.image_size < 8:
            raise ConfigError(f"config key '{where}.image_size' must be >= 8 pixels, got {self.image_size}")
        if self.views < 8:
            raise ConfigError(f"config key '{where}.views' must be >= 8 (train, validation and test views), got "
                              f"{self.views}")
        if self.val_views is not None and self.val_views < 1:
            raise ConfigError(f"config key '{where}.val_views' must be >= 1 or null (every view), got {self.val_views}")
        if self.precrop_iters < 0:
            raise ConfigError(f"config key '{where}.precrop_iters' must be >= 0, got {self.precrop_iters}")


@dataclass
class NeRFModel:
    """The radiance field, the sampling along rays and the loss.

    ``field``: ``tiny_nerf`` (the seed: filter 128, 2 layers coarse, 6 fine, positional encoding of 10 / 4
    frequencies), ``paper_nerf`` (NeRF Appendix A: 8×256 with a skip at layer 5, coarse and fine) or
    ``hash_grid`` (Instant-NGP §3: a multi-resolution hash encoding and a tiny MLP, one field for both passes,
    with an occupancy grid that skips empty space when ``occupancy``; samples and grid cover the box ``aabb``,
    and ``clip_to_aabb`` draws a ray's samples between its entry and exit of the box instead of over
    [near, far]: denser samples inside, but every one of them evaluated — measured twice the time per step on the
    embedded scene, docs/nerf.md). Sampling (NeRF §5.2): ``n_coarse``
    stratified samples per ray (perturbed in training when ``perturb``), then ``n_fine`` more by inverse-CDF
    sampling of the coarse weights (0: no fine pass). The loss sums the squared errors of the coarse and fine
    renders (Eq. 6); PSNR and SSIM are the fine render's (the coarse one when there is no fine pass).
    ``density_activation`` of the MLP fields: ``relu`` (the paper; the density output starts with a small positive
    bias so no sample starts dead, which is what the seed's restarts cured) or ``softplus`` (mip-NeRF's shifted
    softplus; measured in docs/nerf.md: it starts as an opaque fog and left one seed of three flat). ``chunk``:
    points per field evaluation (memory bound).
    """

    field: Literal["tiny_nerf", "paper_nerf", "hash_grid"] = "hash_grid"
    n_coarse: int = 64
    n_fine: int = 64
    perturb: bool = True
    density_activation: Literal["relu", "softplus"] = "relu"
    chunk: int = 32768
    aabb: list[float] = default_list(default_factory=lambda: [-1.5, -1.5, -1.5, 1.5, 1.5, 1.5])
    hash_levels: int = 16
    hash_features: int = 2
    hash_log2_table: int = 17
    hash_base_resolution: int = 16
    hash_max_resolution: int = 512
    occupancy: bool = True
    occupancy_resolution: int = 64
    occupancy_every: int = 16
    occupancy_threshold: float = 0.01
    clip_to_aabb: bool = False

    def check(self, where: str) -> None:
        if self.n_coarse < 2:
            raise ConfigError(f"config key '{where}.n_coarse' must be >= 2 samples per ray, got {self.n_coarse}")
        if self.n_fine < 0:
            raise ConfigError(f"config key '{where}.n_fine' must be >= 0 (0: no fine pass), got {self.n_fine}")
        if self.chunk < 1024:
            raise ConfigError(f"config key '{where}.chunk' must be >= 1024 points, got {self.chunk}")
        if len(self.aabb) != 6 or any(lo >= hi for lo, hi in zip(self.aabb[:3], self.aabb[3:])):
            raise ConfigError(f"config key '{where}.aabb' must be [xmin, ymin, zmin, xmax, ymax, zmax] with each min "
                              f"below its max, got {self.aabb}")
        for key in ("hash_levels", "hash_features", "occupancy_resolution", "occupancy_every"):
            if getattr(self, key) < 1:
                raise ConfigError(f"config key '{where}.{key}' must be >= 1, got {getattr(self, key)}")
        if not 10 <= self.hash_log2_table <= 24:
            raise ConfigError(f"config key '{where}.hash_log2_table' must be in [10, 24], got {self.hash_log2_table}")
        if not 1 < self.hash_base_resolution < self.hash_max_resolution:
            raise ConfigError(f"config key '{where}.hash_base_resolution' must be > 1 and below "
                              f"{where}.hash_max_resolution, got {self.hash_base_resolution} and "
                              f"{self.hash_max_resolution}")


RECIPE = register(Recipe(
    name="nerf",
    description="NeRF (Mildenhall et al., ECCV 2020) and an Instant-NGP hash-grid field: novel views of one scene "
                "from posed pictures, PSNR / SSIM on held-out views against the training pictures' mean colour",
    data_schema=NeRFData,
    model_schema=NeRFModel,
    task="torchrepro.nerf.task",
    demo="torchrepro.nerf.demo",  # page(runs_dir): the live page of `torchrepro serve`
    default_monitor="psnr",
    default_mode="max",
    baseline_metric="baseline_mean_psnr",
    synthetic_config="configs/nerf_embedded.yaml",
    # a 24x24 embedded scene with 12 views, 2 epochs of 3 steps of 256 rays, 16 + 16 samples, a small grid
    tiny_overrides=("data.image_size=24", "data.views=12", "data.rays_per_batch=256", "data.steps_per_epoch=3",
                    "data.val_views=2", "model.n_coarse=16", "model.n_fine=16", "model.hash_levels=4",
                    "model.hash_log2_table=12", "model.hash_max_resolution=64", "model.occupancy_resolution=16",
                    "trainer.max_epochs=2"),
    report_figures=(  # written by torchrepro.nerf.task.NeRFViews
        ("views.png", "Held-out views of the last evaluation: ground truth, render, depth and absolute error."),
        ("curves.png", "Training loss and validation PSNR per epoch."),
    ),
))

register_tool(Tool("nerf-render", "render a NeRF checkpoint along a camera path (an orbit or a poses .npy): PNG "
                   "frames, a GIF and an MP4 where a codec is present", "torchrepro.nerf.render_tool", "render_main"))
