"""Data of the SuperPoint recipe: Synthetic Shapes for MagicPoint (SuperPoint §4).

* :class:`ShapesTrainSet`: a training sample is a pure function of ``(seed, epoch, index)``: the image and its
  points are read from the rpautrat dump layout (:mod:`torchrepro.superpoint.shapes_format`), then the seed
  config's photometric augmentation and a random homography (points warped with it, those leaving the image
  dropped) are applied, as rpautrat's ``synthetic_shapes`` pipeline (photometric first, then homographic). The
  sample carries the 65-bin cell labels and which cells the warp left fully inside the image.
* :class:`ShapesEvalSet`: held-out images without augmentation, their ground-truth points (padded to the set's
  largest count) and, for the repeatability, the image warped by a fixed homography drawn from
  ``(seed, index)`` (SuperPoint §7.1: repeatability under homographies).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from torchrepro.core.config import Config
from torchrepro.core.data import ResumableLoader, ResumableSampler
from torchrepro.core.errors import DataError
from torchrepro.core.evaluation import eval_loader
from torchrepro.core.seeding import derive_seed
from torchrepro.nn.superpoint import CELL
from torchrepro.superpoint.config import MagicPointData
from torchrepro.superpoint.homography import (HomographyConfig, inside_mask, sample_homography, valid_mask,
                                              warp_image, warp_points)
from torchrepro.superpoint.losses import cell_labels, cell_valid
from torchrepro.superpoint.photometric import PhotometricConfig, photometric_augment
from torchrepro.superpoint.shapes_format import list_samples, read_sample

__all__ = ["ShapesDataModule", "ShapesEvalSet", "ShapesTrainSet", "fit_to_size"]

Sample = tuple[Path, Path]


def fit_to_size(image: np.ndarray, points_xy: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Resize a sample to ``size`` (rows, cols) when the dump has another size (rpautrat dumps 240×320), moving its
    points with OpenCV's pixel-centre mapping ``x' = (x + ½)·W'/W − ½``."""
    h, w = image.shape[:2]
    if (h, w) == tuple(size):
        return image, points_xy
    out = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    scale = np.array([size[1] / w, size[0] / h], dtype=np.float64)
    return out, ((points_xy.astype(np.float64) + 0.5) * scale - 0.5).astype(np.float32)


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    """Grey image (uint8 or float in [0, 255]) → [1, H, W] float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32) / 255.0)[None]


class ShapesTrainSet(Dataset):
    """Augmented Synthetic Shapes for detector training; samples are keyed by ``(epoch, index)``."""

    def __init__(self, samples: list[Sample], size: tuple[int, int], photometric: PhotometricConfig,
                 homographic: HomographyConfig, homographic_enable: bool, border_margin: int, seed: int,
                 crop: tuple[int, int] | None = None) -> None:
        self.samples, self.size, self.seed, self.crop = samples, tuple(size), seed, crop
        self.photometric, self.homographic = photometric, homographic
        self.homographic_enable, self.border_margin = homographic_enable, border_margin

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        rng = np.random.default_rng(derive_seed(self.seed, "shapes", epoch, index))
        image, points = fit_to_size(*read_sample(*self.samples[index]), self.size)
        image = photometric_augment(image, rng, self.photometric) if self.photometric.enable else image
        valid = np.ones(self.size, dtype=bool)
        if self.homographic_enable:
            homography = sample_homography(rng, self.size, self.homographic)
            image = warp_image(image, homography, self.size)
            points = warp_points(points, homography)
            points = points[inside_mask(points, self.size)]
            valid = valid_mask(self.size, homography, self.size, erosion=self.border_margin)
        tie_break = torch.Generator().manual_seed(derive_seed(self.seed, "labels", epoch, index))
        labels = cell_labels([torch.from_numpy(np.asarray(points, np.float32))], *self.size, tie_break)[0]
        sample = {"image": _to_tensor(image), "labels": labels, "valid": cell_valid(torch.from_numpy(valid)[None])[0]}
        return sample if self.crop is None else _crop_cells(sample, self.crop, rng)


def _crop_cells(sample: dict[str, torch.Tensor], crop: tuple[int, int], rng: np.random.Generator) -> dict:
    """A random crop of ``crop`` (rows, cols) pixels at a whole-cell offset, so that the cell labels and valid
    cells are sliced, not recomputed."""
    hc, wc = sample["labels"].shape
    ch, cw = crop[0] // CELL, crop[1] // CELL
    i, j = int(rng.integers(0, hc - ch + 1)), int(rng.integers(0, wc - cw + 1))
    return {"image": sample["image"][:, i * CELL:(i + ch) * CELL, j * CELL:(j + cw) * CELL],
            "labels": sample["labels"][i:i + ch, j:j + cw], "valid": sample["valid"][i:i + ch, j:j + cw]}


class ShapesEvalSet(Dataset):
    """Held-out shapes: the clean image, its points (NaN-padded to ``max_points``) and a warped copy."""

    def __init__(self, samples: list[Sample], size: tuple[int, int], homographic: HomographyConfig, seed: int) -> None:
        self.samples, self.size, self.homographic, self.seed = samples, tuple(size), homographic, seed
        self.max_points = max(1, max(len(read_sample(*s)[1]) for s in samples))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image, points = fit_to_size(*read_sample(*self.samples[index]), self.size)
        rng = np.random.default_rng(derive_seed(self.seed, "repeatability", index))
        homography = sample_homography(rng, self.size, self.homographic)
        padded = np.full((self.max_points, 2), np.nan, dtype=np.float32)
        padded[: len(points)] = points
        return {"image": _to_tensor(image), "points": torch.from_numpy(padded), "index": index,
                "warped": _to_tensor(warp_image(image, homography, self.size)),
                "homography": torch.from_numpy(homography.astype(np.float64))}


class ShapesDataModule(pl.LightningDataModule):
    """Synthetic Shapes in rpautrat's dump layout: ``data.root`` when given, else generated under
    ``data.synthetic_dir`` (training / validation / test splits; validation chooses, test is scored once)."""

    SPLITS = {"train": "training", "val": "validation", "test": "test"}

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg, self.d = cfg, cfg.data
        self.train_set: ShapesTrainSet | None = None
        self.val_set: ShapesEvalSet | None = None
        self.test_set: ShapesEvalSet | None = None

    has_test_split = True

    def root(self) -> Path:
        d: MagicPointData = self.d
        if d.root is not None:
            return Path(d.root)
        counts = f"{d.shapes_train}-{d.shapes_val}-{d.shapes_test}"
        return Path(d.synthetic_dir) / f"seed{self.cfg.seed}-n{counts}-s{d.image_size[0]}x{d.image_size[1]}"

    def prepare_data(self) -> None:
        d: MagicPointData = self.d
        if d.root is None:  # Lightning calls this on local rank 0 only
            from torchrepro.superpoint.shapes import write_shapes

            write_shapes(self.root(), {"training": d.shapes_train, "validation": d.shapes_val, "test": d.shapes_test},
                         seed=self.cfg.seed, size=tuple(d.image_size), primitives=d.primitives,
                         config_key="data.synthetic_dir")

    def _samples(self, split: str) -> list[Sample]:
        root = self.root()
        if not root.is_dir():
            raise DataError(f"Synthetic Shapes folder '{root}' does not exist: point data.root at a dump in "
                            f"rpautrat's layout (<primitive>/images/<split>/), or set data.root=null to generate one")
        return list_samples(root, self.SPLITS[split], self.d.primitives)

    def setup(self, stage: str | None = None) -> None:
        d: MagicPointData = self.d
        size = tuple(d.image_size)
        if self.train_set is None and stage in (None, "fit"):
            self.train_set = ShapesTrainSet(self._samples("train"), size, d.photometric, d.homographic,
                                            d.homographic_enable, d.valid_border_margin, self.cfg.seed,
                                            tuple(d.train_crop) if d.train_crop else None)
        if self.val_set is None:
            self.val_set = ShapesEvalSet(self._samples("val"), size, d.homographic, self.cfg.seed)
        if self.test_set is None and stage in (None, "fit", "test"):
            self.test_set = ShapesEvalSet(self._samples("test"), size, d.homographic, derive_seed(self.cfg.seed, "test"))

    def train_dataloader(self) -> DataLoader:
        sampler = ResumableSampler(self.train_set, seed=self.cfg.seed, shuffle=True, keyed=True)
        return ResumableLoader(self.train_set, sampler, batch_size=self.d.batch_size, drop_last=False,
                               num_workers=self.d.num_workers, persistent_workers=False)

    def val_dataloader(self) -> DataLoader:
        return eval_loader(self.val_set, self.d.eval_batch_size, self.d.num_workers, trainer=self.trainer)

    def test_dataloader(self) -> DataLoader:
        return eval_loader(self.test_set, self.d.eval_batch_size, self.d.num_workers, trainer=self.trainer)
