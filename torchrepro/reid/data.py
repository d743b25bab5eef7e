"""Re-ID image datasets, transforms and the data manager (several sources, several targets), as in torchreid.

Training items come from :class:`~torchrepro.retrieval.sampler.RandomIdentitySampler` in keyed mode, so each
item's augmentation is a pure function of ``(seed, epoch, slot)`` (exact resume, any worker count). Optional
aligned textures (SAN, SEEDS.md §2) are read from the path :func:`texture_path` derives from the image path,
normalised with mean 0.5 and std 0.5 to [−1, 1]. Textures are not augmented: a texture lives in the body's UV
space, where an image flip or crop has no simple counterpart (the seed loads them untouched too).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import v2

from torchrepro.core.errors import DataError
from torchrepro.core.seeding import derive_seed
from torchrepro.reid.synthetic import texture_path  # the loader convention lives with the generator
from torchrepro.reid.datasets import ReidItem, ReidSplit, combine_sources, read_cuhk03_new, read_dukemtmc, read_market1501

__all__ = ["DATASETS", "ReidImageDataset", "build_transforms", "load_target", "load_sources", "texture_path"]

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

DATASETS: dict[str, Callable[[Path], ReidSplit]] = {
    "market1501": read_market1501,
    "dukemtmc": read_dukemtmc,
    "cuhk03_labeled": lambda root: read_cuhk03_new(root, "labeled"),
    "cuhk03_detected": lambda root: read_cuhk03_new(root, "detected"),
    "synthetic": read_market1501,  # the generator writes the Market-1501 layout
}


def build_transforms(height: int, width: int, train: bool, flip: float = 0.5, pad: int = 10,
                     erasing: float = 0.5) -> v2.Compose:
    """Bag-of-Tricks augmentation (Luo et al. 2019, §3): resize, flip, pad-and-crop, ImageNet normalisation,
    random erasing (Zhong et al. 2020) with the mean value (0 after normalisation)."""
    ops: list = [v2.PILToTensor(), v2.Resize((height, width), antialias=True)]
    if train:
        if flip > 0:
            ops.append(v2.RandomHorizontalFlip(flip))
        if pad > 0:
            ops += [v2.Pad(pad), v2.RandomCrop((height, width))]
    ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if train and erasing > 0:
        ops.append(v2.RandomErasing(p=erasing, value=0))
    return v2.Compose(ops)


def _open_rgb(path: Path) -> Image.Image:
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError:
        raise DataError(f"image {path} is missing; the data set folder is incomplete") from None
    except OSError as err:
        raise DataError(f"image {path} cannot be read ({err}); remove or replace the file") from None


class ReidImageDataset(Dataset):
    """``(image, pid, camid, index[, texture])`` items; ``texture_roots`` (the data set root of every item, see
    :func:`texture_path`) set → textures are loaded too.

    Accepts plain indices (evaluation) or ``(epoch, slot, index)`` keys (training, keyed sampler).
    """

    def __init__(self, items: list[ReidItem], transform: v2.Compose, seed: int = 0,
                 texture_roots: list[Path] | None = None, texture_size: tuple[int, int] = (256, 256)) -> None:
        self.items, self.transform, self.seed = items, transform, seed
        if texture_roots is not None and len(texture_roots) != len(items):
            raise ValueError(f"texture_roots has {len(texture_roots)} entries for {len(items)} items")
        self.texture_roots, self.texture_size = texture_roots, tuple(texture_size)

    def __len__(self) -> int:
        return len(self.items)

    def _texture(self, index: int) -> torch.Tensor:
        item = self.items[index]
        path = texture_path(self.texture_roots[index], item.path)
        if not path.is_file():
            raise DataError(
                f"texture {path} for image {item.path} is missing, and the reconstruction loss needs it; "
                f"write pseudo textures with `torchrepro reid-textures` or set model.recon_weight=0"
            )
        img = _open_rgb(path).resize(self.texture_size[::-1], Image.BILINEAR)
        tex = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
        return (tex - 0.5) / 0.5

    def __getitem__(self, key: int | tuple[int, int, int]) -> tuple:
        if isinstance(key, tuple):
            epoch, slot, index = key
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(derive_seed(self.seed, "reid-aug", epoch, slot))
                image = self.transform(_open_rgb(self.items[index].path))
        else:
            index = int(key)
            image = self.transform(_open_rgb(self.items[index].path))
        item = self.items[index]
        out = (image, item.pid, item.camid, index)
        return out + (self._texture(index),) if self.texture_roots is not None else out


@dataclass
class TargetSet:
    """One evaluation target: its name, query and gallery items."""

    name: str
    query: list[ReidItem]
    gallery: list[ReidItem]
    root: Path


def _read(name: str, root: Path) -> ReidSplit:
    if name not in DATASETS:
        raise DataError(f"unknown re-ID data set '{name}'; choose from {', '.join(sorted(DATASETS))}")
    return DATASETS[name](Path(root))


def load_sources(names: list[str], roots: dict[str, str]) -> tuple[list[ReidItem], list[Path]]:
    """Training items of all sources, pids offset per source (torchreid's data manager); item roots too."""
    splits = [_read(n, Path(roots[n])) for n in names]
    merged = combine_sources(splits)
    item_roots = [Path(roots[n]) for n, s in zip(names, splits) for _ in s.train]
    return merged, item_roots


def load_target(name: str, root: str) -> TargetSet:
    split = _read(name, Path(root))
    return TargetSet(name, split.query, split.gallery, Path(root))
