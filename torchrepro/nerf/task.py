"""NeRF recipe ("nerf"): a radiance field fitted to posed pictures, scored by PSNR / SSIM on held-out views.

Training (NeRF, Mildenhall et al., ECCV 2020, §5.3): each step renders a batch of training rays with the coarse and
fine passes (§5.2: stratified samples, then inverse-CDF samples from the coarse weights) and minimises the sum of
their squared errors against the pixels (Eq. 6). The fast field (Instant-NGP, Müller et al. 2022, §3–4) is one
hash-grid field used by both passes, its occupancy grid refreshed every ``model.occupancy_every`` steps so empty
space is skipped.

Every evaluation renders whole held-out views without perturbation and reports, per view then averaged (NeRF §6.1):
``psnr`` and ``ssim`` of the fine render (torchmetrics; PSNR = −10·log10 MSE, the seed's metric) — never of the
coarse + fine sum, a mistake users of the public ports report — ``psnr_coarse``, ``depth_mae`` (mean absolute
error of the expected depth on the pixels where the ground truth shows an object, when the source has depth) and
the trivial baseline ``baseline_mean_psnr`` / ``baseline_mean_ssim``: every pixel painted the training pictures'
mean colour.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics.functional.image import structural_similarity_index_measure

from torchrepro.core.callbacks import RunArtefacts
from torchrepro.core.config import Config
from torchrepro.core.task import TaskModule
from torchrepro.nerf.config import NeRFModel
from torchrepro.nerf.data import NeRFDataModule
from torchrepro.nerf.fields import paper_nerf_mlps, tiny_nerf_mlps
from torchrepro.nerf.rendering import psnr, ray_box_bounds, render_rays

#: held-out views kept in memory for ``views.png`` (the first ones of the evaluated split)
SHOWN_VIEWS = 4


class NeRFTask(TaskModule):
    """Coarse and fine fields (or one hash-grid field with its occupancy grid) trained on rays of one scene."""

    progress_metric = "psnr"

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        self.m: NeRFModel = cfg.model
        self.coarse, self.fine, self.occupancy = build_fields(self.m)
        #: the training pictures' mean colour (the trivial baseline), set by the data module's scene in setup
        self.register_buffer("mean_colour", torch.full((3,), 0.5))
        self.shown: list[dict[str, np.ndarray]] = []

    def setup(self, stage: str) -> None:
        # Lightning has set up the data module (and read the scene) before it calls this hook
        dm = self.trainer.datamodule if self.trainer is not None else None
        if isinstance(dm, NeRFDataModule) and dm.scene is not None:
            train = dm.scene.images[dm.scene.splits["train"]]
            self.mean_colour.copy_(torch.from_numpy(train.reshape(-1, 3).mean(0)))

    def batch_size(self, batch: dict) -> int:
        return batch["rgb"].shape[0]

    # ------------------------------------------------------------------------------------------------ rendering
    def render(self, origins: torch.Tensor, directions: torch.Tensor, perturb: bool) -> dict:
        """``render_rays`` with this model's fields and sampling (NeRF §5.2)."""
        d, m = self.cfg.data, self.m
        coarse, fine = self._fields()
        near, far = d.near, d.far
        if m.field == "hash_grid" and m.clip_to_aabb:  # the grid is empty outside its box: sample inside it only
            near, far = ray_box_bounds(origins, directions, tuple(m.aabb), d.near, d.far)
        return render_rays(coarse, fine, origins, directions, near, far, m.n_coarse, m.n_fine, perturb,
                           d.white_background, m.chunk)

    def _fields(self):  # noqa: ANN202 - (field, field | None)
        """(coarse, fine) as the renderer calls them: the hash-grid field answers both passes, through its
        occupancy grid (density 0 in empty cells, never evaluated there) when there is one."""
        if self.fine is not None or self.m.field != "hash_grid":
            return self.coarse, self.fine
        field = self.coarse if self.occupancy is None else self.occupancy.masked_field(self.coarse)
        return field, (field if self.m.n_fine > 0 else None)

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        if self.occupancy is not None:  # every model.occupancy_every steps; draws from the (checkpointed) global RNG
            self.occupancy.update(self.coarse, self.global_step)
        out = self.render(batch["origins"], batch["directions"], perturb=self.m.perturb)
        parts = {"coarse": F.mse_loss(out["coarse"]["rgb"], batch["rgb"])}
        if "fine" in out:
            parts["fine"] = F.mse_loss(out["fine"]["rgb"], batch["rgb"])
        final = parts.get("fine", parts["coarse"])
        self.log("train_psnr", psnr(final.detach()), batch_size=batch["rgb"].shape[0])
        return parts

    @torch.no_grad()
    def render_view(self, origins: torch.Tensor, directions: torch.Tensor) -> dict[str, torch.Tensor]:
        """A whole view [H, W, 3] rendered in chunks of rays (no perturbation): ``rgb``, ``depth``, ``acc`` of the
        fine pass (coarse when there is none) and ``rgb_coarse``."""
        h, w = origins.shape[:2]
        rays_o, rays_d = origins.reshape(-1, 3), directions.reshape(-1, 3)
        per_call = max(1, self.m.chunk // (self.m.n_coarse + self.m.n_fine))
        parts: dict[str, list[torch.Tensor]] = {"rgb": [], "depth": [], "acc": [], "rgb_coarse": []}
        for start in range(0, rays_o.shape[0], per_call):
            out = self.render(rays_o[start:start + per_call], rays_d[start:start + per_call], perturb=False)
            final = out.get("fine", out["coarse"])
            for key in ("rgb", "depth", "acc"):
                parts[key].append(final[key])
            parts["rgb_coarse"].append(out["coarse"]["rgb"])
        return {k: torch.cat(v).reshape(h, w, -1).squeeze(-1) for k, v in parts.items()}

    # ----------------------------------------------------------------------------------------------- evaluation
    def evaluation_rows(self, batch: dict, dataloader_idx: int) -> dict[str, torch.Tensor]:
        truth = batch["rgb"][0]
        out = self.render_view(batch["origins"][0], batch["directions"][0])
        baseline = self.mean_colour.expand_as(truth)
        rows = {"psnr": view_psnr(out["rgb"], truth), "ssim": view_ssim(out["rgb"], truth),
                "psnr_coarse": view_psnr(out["rgb_coarse"], truth),
                "baseline_mean_psnr": view_psnr(baseline, truth), "baseline_mean_ssim": view_ssim(baseline, truth),
                "depth_mae": _depth_error(out["depth"], batch["depth"][0])}
        if len(self.shown) < SHOWN_VIEWS:
            self.shown.append({"truth": truth.cpu().numpy(), "render": out["rgb"].clamp(0, 1).cpu().numpy(),
                               "depth": out["depth"].cpu().numpy(), "view": int(batch["view"][0])})
        return {k: v.reshape(1).double() for k, v in rows.items()}

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        self.shown = []

    def on_test_epoch_start(self) -> None:
        super().on_test_epoch_start()
        self.shown = []

    def evaluation_metrics(self, targets: list[dict[str, torch.Tensor]]) -> dict[str, float]:
        rows = targets[0]
        metrics = {k: float(v.mean()) for k, v in rows.items() if k != "depth_mae"}
        depth = rows["depth_mae"][~torch.isnan(rows["depth_mae"])]
        if depth.numel():
            metrics["depth_mae"] = float(depth.mean())
        return metrics


def build_fields(m: NeRFModel):  # noqa: ANN201 - (coarse, fine | None, occupancy | None)
    """The model's fields: the seed's tiny MLPs, the paper's 8×256 pair, or one hash-grid field and its
    occupancy grid."""
    if m.field == "tiny_nerf":
        coarse, fine = tiny_nerf_mlps(density_activation=m.density_activation)
    elif m.field == "paper_nerf":
        coarse, fine = paper_nerf_mlps(density_activation=m.density_activation)
    else:
        from torchrepro.nerf.hashgrid import HashGridField
        from torchrepro.nerf.occupancy import OccupancyGrid

        coarse = HashGridField(tuple(m.aabb), n_levels=m.hash_levels, n_features=m.hash_features,
                               log2_table_size=m.hash_log2_table, base_resolution=m.hash_base_resolution,
                               max_resolution=m.hash_max_resolution)
        grid = OccupancyGrid(tuple(m.aabb), m.occupancy_resolution, threshold=m.occupancy_threshold,
                             every=m.occupancy_every) if m.occupancy else None
        return coarse, None, grid
    return coarse, (fine if m.n_fine > 0 else None), None


def view_psnr(image: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    return psnr(F.mse_loss(image.clamp(0, 1), truth))


def view_ssim(image: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """SSIM (Wang et al. 2004; torchmetrics' Gaussian 11×11 window, σ 1.5) of two [H, W, 3] pictures in [0, 1]."""
    as_batch = lambda x: x.clamp(0, 1).permute(2, 0, 1)[None].float()  # noqa: E731
    return structural_similarity_index_measure(as_batch(image), as_batch(truth), data_range=1.0)


def _depth_error(depth: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Mean |depth − true depth| over the pixels whose true depth is known and shows an object (NaN: none)."""
    known = torch.isfinite(truth) & (truth > 0)
    if not bool(known.any()):
        return torch.tensor(math.nan, device=depth.device)
    return (depth[known] - truth[known]).abs().mean()


class NeRFViews(RunArtefacts):
    """``views.png`` (ground truth, render, depth, error of the first held-out views of the last evaluation: the test
    split's when it was scored), the same picture per view in ``views/view_<index>.png``, and ``curves.png``
    (training loss and validation PSNR per epoch)."""

    def on_test_end(self, trainer, pl_module) -> None:  # noqa: ANN001 - the held-out views replace validation's
        self._write(trainer, pl_module)

    def write(self, run_dir: Path, trainer, module: NeRFTask) -> None:  # noqa: ANN001 - Lightning objects
        from torchrepro.core.plots import plot_curves
        from torchrepro.nerf.plots import plot_views

        if module.shown:
            plot_views(module.shown, run_dir / "views.png")
            (run_dir / "views").mkdir(exist_ok=True)
            for view in module.shown:
                plot_views([view], run_dir / "views" / f"view_{view['view']:03d}.png")
        plot_curves(run_dir / "metrics.json", run_dir / "curves.png", ["train_loss", "psnr"])


def build(cfg: Config) -> tuple[NeRFTask, NeRFDataModule]:
    return NeRFTask(cfg), NeRFDataModule(cfg)


def callbacks(cfg: Config) -> list:
    return [NeRFViews()]
