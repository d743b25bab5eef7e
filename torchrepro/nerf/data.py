"""Data of the NeRF recipe: posed pictures → training ray batches and held-out views.

* :class:`RayBatches`: one training step's rays, a pure function of ``(seed, epoch, step)``: ``rays_per_batch``
  pixels drawn at random over every training picture (NeRF §5.3: "at each optimization iteration, we randomly
  sample a batch of camera rays from the set of all pixels in the dataset") or from one random picture (the seed
  tutorial), from the central crop during the first ``precrop_iters`` steps. Under DDP the step's batch is split
  across the ranks (rank ``r`` takes rays ``r, r + W, …``), so W processes train on exactly the rays one process
  would: the global batch is the configured one, whatever the world size.
* :class:`HeldOutViews`: whole validation / test pictures with their rays (and ground-truth depth when the
  source has it), one view per evaluation item.

Rays come from :func:`torchrepro.nerf.cameras.pixel_rays` (OpenGL camera, −z forward, directions not normalised).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from torchrepro.core.config import Config
from torchrepro.core.data import ResumableLoader, ResumableSampler
from torchrepro.core.evaluation import eval_loader
from torchrepro.core.seeding import derive_seed
from torchrepro.nerf.cameras import pixel_rays
from torchrepro.nerf.config import NeRFData
from torchrepro.nerf.formats import SceneData, read_blender, read_tiny_nerf

__all__ = ["HeldOutViews", "NeRFDataModule", "RayBatches", "load_scene"]


def load_scene(d: NeRFData, seed: int) -> SceneData:
    """The scene of ``data``: the embedded one generated (once) under ``synthetic_dir`` and read back through the
    reader of ``data.format``, or the user's ``tiny_nerf`` / ``blender`` files."""
    if d.source == "embedded":
        from torchrepro.nerf.scene import generate_embedded

        n_train = embedded_train_views(d.views)
        root = generate_embedded(Path(d.synthetic_dir) / f"seed{seed}-n{d.views}-s{d.image_size}", size=d.image_size,
                                 n_views=d.views, seed=seed, n_train=n_train)
        if d.format == "tiny_nerf":
            return read_tiny_nerf(root / "tiny_nerf_data.npz", d.near, d.far, n_train=n_train, test_index=n_train + 1)
        return read_blender(root / "blender", d.white_background, d.near, d.far)
    if d.source == "tiny_nerf":
        return read_tiny_nerf(Path(d.path), d.near, d.far)
    return read_blender(Path(d.path), d.white_background, d.near, d.far, d.max_side)


def embedded_train_views(views: int) -> int:
    """Training views of an embedded scene of ``views`` views: the seed's split of its 106 lego views (100 train,
    view 101 test, the five others validation) generalised as "all but six"."""
    return views - 6


class RayBatches(Dataset):
    """Training rays; item ``(epoch, index)`` is step ``index`` of ``epoch`` (this rank's share of its batch)."""

    def __init__(self, scene: SceneData, d: NeRFData, seed: int, steps_per_epoch: int, world: int = 1) -> None:
        train = scene.splits["train"]
        self.images = torch.from_numpy(np.ascontiguousarray(scene.images[train]))  # [N, H, W, 3]
        self.poses = torch.from_numpy(np.ascontiguousarray(scene.poses[train])).float()
        self.focal, self.height, self.width = float(scene.focal), scene.height, scene.width
        # every pixel's direction in camera coordinates (the identity pose's rays), rotated per ray in __getitem__:
        # the camera convention stays in pixel_rays, and no [N, H, W, 3] grid of world directions is kept
        self.camera_directions = pixel_rays(self.height, self.width, self.focal, torch.eye(4))[1]  # [H, W, 3]
        self.d, self.seed, self.steps, self.world = d, seed, steps_per_epoch, world
        if d.rays_per_batch % world:
            from torchrepro.core.errors import ConfigError

            raise ConfigError(f"config key 'data.rays_per_batch' ({d.rays_per_batch}) must divide among the {world} "
                              f"ranks: make it a multiple of {world}")

    def __len__(self) -> int:
        # item i is share i % W of step i // W: the sampler's interleaving (rank r takes r, r + W, …) hands every
        # rank its own share of every step, in step order
        return self.steps * self.world

    def _pixel_window(self, step: int) -> tuple[int, int, int, int]:
        """(row0, rows, col0, cols) that this step may draw from: the central crop while pre-cropping."""
        h, w = self.height, self.width
        if step >= self.d.precrop_iters:
            return 0, h, 0, w
        rows, cols = max(1, round(h * self.d.precrop_fraction)), max(1, round(w * self.d.precrop_fraction))
        return (h - rows) // 2, rows, (w - cols) // 2, cols

    def __getitem__(self, key: tuple[int, int] | int) -> dict[str, torch.Tensor]:
        epoch, item = key if isinstance(key, tuple) else (0, key)
        index, share = divmod(item, self.world)
        step = epoch * self.steps + index
        g = torch.Generator().manual_seed(derive_seed(self.seed, "rays", epoch, index))
        n, r = self.images.shape[0], self.d.rays_per_batch
        one = self.d.ray_sampling == "one_image"
        views = torch.full((r,), int(torch.randint(n, (1,), generator=g))) if one else torch.randint(n, (r,),
                                                                                                     generator=g)
        row0, rows, col0, cols = self._pixel_window(step)
        ys = row0 + torch.randint(rows, (r,), generator=g)
        xs = col0 + torch.randint(cols, (r,), generator=g)
        mine = slice(share, None, self.world)  # this rank's share of the step's batch
        views, ys, xs = views[mine], ys[mine], xs[mine]
        pose = self.poses[views]  # [R, 4, 4]
        directions = (pose[:, :3, :3] @ self.camera_directions[ys, xs, :, None])[..., 0]
        return {"origins": pose[:, :3, 3], "directions": directions, "rgb": self.images[views, ys, xs]}


class HeldOutViews(Dataset):
    """Whole held-out pictures: ``rgb`` [H, W, 3], the rays of every pixel, ``depth`` (NaN when unknown)."""

    def __init__(self, scene: SceneData, split: str, limit: int | None = None) -> None:
        indices = scene.splits[split]
        self.indices = indices if limit is None else indices[np.linspace(0, len(indices) - 1, min(limit, len(
            indices))).round().astype(int)]
        self.scene = scene

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        s, k = self.scene, int(self.indices[i])
        origins, directions = pixel_rays(s.height, s.width, float(s.focal), torch.from_numpy(s.poses[k]).float())
        depth = s.depths[k] if s.depths is not None else np.full((s.height, s.width), np.nan, np.float32)
        return {"rgb": torch.from_numpy(np.ascontiguousarray(s.images[k])), "origins": origins,
                "directions": directions, "depth": torch.from_numpy(np.ascontiguousarray(depth, np.float32)),
                "view": k}


def _whole_batch(batch: list[dict]) -> dict:
    """Collate of the training loader: its one item is already the step's batch of rays."""
    return batch[0]


class NeRFDataModule(pl.LightningDataModule):
    """Training ray batches and the validation / test views of one scene (validation chooses, test is scored once)."""

    has_test_split = True

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg, self.d = cfg, cfg.data
        self.scene: SceneData | None = None
        self.train_set: RayBatches | None = None
        self.val_set: HeldOutViews | None = None
        self.test_set: HeldOutViews | None = None

    def prepare_data(self) -> None:
        if self.d.source == "embedded":  # generated once, on local rank 0 (Lightning's rule for prepare_data)
            load_scene(self.d, self.cfg.seed)

    def setup(self, stage: str | None = None) -> None:
        if self.scene is None:
            self.scene = load_scene(self.d, self.cfg.seed)
        if self.train_set is None and stage in (None, "fit"):
            world = self.trainer.world_size if self.trainer is not None else 1
            self.train_set = RayBatches(self.scene, self.d, self.cfg.seed, self.d.steps_per_epoch, world)
        if self.val_set is None:
            self.val_set = HeldOutViews(self.scene, "val", self.d.val_views)
        if self.test_set is None and stage in (None, "fit", "test"):
            self.test_set = HeldOutViews(self.scene, "test")

    def train_dataloader(self) -> DataLoader:
        # in step order (the steps' rays are random already); each rank gets its share of every step (RayBatches)
        sampler = ResumableSampler(self.train_set, seed=self.cfg.seed, shuffle=False, keyed=True)
        return ResumableLoader(self.train_set, sampler, batch_size=1, collate_fn=_whole_batch,
                               num_workers=self.d.num_workers)

    def val_dataloader(self) -> DataLoader:
        return eval_loader(self.val_set, 1, self.d.num_workers, trainer=self.trainer)  # one view at a time

    def test_dataloader(self) -> DataLoader:
        return eval_loader(self.test_set, 1, self.d.num_workers, trainer=self.trainer)
