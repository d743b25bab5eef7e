"""Re-ID image datasets, transforms and the data manager (several sources, several targets), as in torchreid.

Training items come from :class:`~torchrepro.retrieval.sampler.RandomIdentitySampler` in keyed mode, so each
item's augmentation is a pure function of ``(seed, epoch, slot)`` (exact resume, any worker count). Optional
aligned textures (SAN: Jin et al., "Semantics-Aligned Representation Learning for Person Re-identification",
AAAI 2020, §3) are read from the path :func:`texture_path` derives from the image path,
normalised with mean 0.5 and std 0.5 to [−1, 1]. Textures are not augmented: a texture lives in the body's UV
space, where an image flip or crop has no simple counterpart (the seed loads them untouched too).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from torchrepro.core.config import Config
from torchrepro.core.data import ResumableLoader
from torchrepro.core.distributed import rank_zero_first
from torchrepro.core.errors import DataError
from torchrepro.core.evaluation import eval_loader
from torchrepro.core.seeding import derive_seed
from torchrepro.reid.config import ReidData, uses_decoder
from torchrepro.retrieval.rank import evaluate_market1501
from torchrepro.retrieval.sampler import RandomIdentitySampler
from torchrepro.reid.datasets import DATASETS, ReidItem, ReidSplit, combine_sources, texture_path

__all__ = ["DATASETS", "ReidDataModule", "ReidImageDataset", "build_transforms", "load_target", "load_sources",
           "target_ids", "texture_path"]

log = logging.getLogger(__name__)

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)



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


class ReidDataModule(pl.LightningDataModule):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.d: ReidData = cfg.data
        self.train_set: ReidImageDataset | None = None
        self.targets: list[TargetSet] = []
        self.eval_sets: list[ReidImageDataset] = []
        self.baseline: dict[str, float] = {}

    def _roots(self) -> dict[str, str]:
        roots = dict(self.d.roots)
        if "synthetic" in [*self.d.sources, *self.d.targets]:
            roots["synthetic"] = str(self._synthetic_root())
        return roots

    def _synthetic_root(self) -> Path:
        from torchrepro.reid.synthetic import generate_persons

        d = self.d
        root = Path(d.synthetic_dir) / f"seed{self.cfg.seed}-ids{d.synthetic_train_ids}-{d.synthetic_test_ids}"
        generate_persons(root, seed=self.cfg.seed, num_train_ids=d.synthetic_train_ids, num_test_ids=d.synthetic_test_ids)
        return root

    def prepare_data(self) -> None:
        if "synthetic" in [*self.d.sources, *self.d.targets]:
            self._synthetic_root()

    @property
    def num_classes(self) -> int:
        return len({it.pid for it in self.train_set.items})

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        d = self.d
        with rank_zero_first():
            roots = self._roots()
        items, item_roots = load_sources(d.sources, roots)
        tex_size = (d.texture_height, d.texture_width)
        train_tf = build_transforms(d.height, d.width, True, d.flip, d.pad, d.erasing)
        self.train_set = ReidImageDataset(items, train_tf, self.cfg.seed,
                                          item_roots if uses_decoder(self.cfg) else None, tex_size)
        if uses_decoder(self.cfg):
            check_textures(items, item_roots)
        test_tf = build_transforms(d.height, d.width, False)
        self.targets = [load_target(name, roots[name]) for name in d.targets]
        self.eval_sets = [ReidImageDataset(t.query + t.gallery, test_tf) for t in self.targets]
        if "synthetic" in d.targets:
            self.baseline = self._colour_baseline(self.targets[d.targets.index("synthetic")])
        log.info("re-ID: %d training images of %d identities; targets: %s", len(items), self.num_classes,
                 ", ".join(f"{t.name} ({len(t.query)} query / {len(t.gallery)} gallery)" for t in self.targets))

    def _colour_baseline(self, target: TargetSet) -> dict[str, float]:
        """The non-learned reference: stripe colour histograms compared by cosine, Market-1501 protocol."""
        from PIL import Image

        from torchrepro.reid.baselines import colour_histogram_features

        def feats(items):
            imgs = np.stack([np.asarray(Image.open(it.path).convert("RGB").resize((self.d.width, self.d.height)))
                             for it in items])
            return colour_histogram_features(imgs)

        q, g = feats(target.query), feats(target.gallery)
        res = evaluate_market1501(1.0 - q @ g.T, *target_ids(target))
        return {f"baseline_colour_{k}": float(res[k]) for k in ("rank-1", "mAP")}

    def train_dataloader(self) -> DataLoader:
        d = self.d
        pids = [it.pid for it in self.train_set.items]
        sampler = RandomIdentitySampler(pids, d.batch_size, d.num_instances, seed=self.cfg.seed, keyed=True)
        return ResumableLoader(self.train_set, sampler, batch_size=d.batch_size, drop_last=False,
                               num_workers=d.num_workers, persistent_workers=False)

    def val_dataloader(self) -> list[DataLoader]:
        return [eval_loader(ds, self.d.test_batch_size, self.d.num_workers, trainer=self.trainer)
                for ds in self.eval_sets]

def check_textures(items: list, roots: list[Path]) -> None:
    """Fail before training when an image lacks its aligned texture (the reconstruction loss needs every one)."""
    missing = [(it.path, texture_path(root, it.path)) for it, root in zip(items, roots)
               if not texture_path(root, it.path).is_file()]
    if missing:
        image, texture = missing[0]
        raise DataError(
            f"texture {texture} for image {image} is missing ({len(missing)} of {len(items)} training images have "
            f"none); write pseudo textures with `torchrepro tool reid-textures` or use model.method=bot"
        )


def target_ids(target: TargetSet) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    q, g = target.query, target.gallery
    return (np.array([i.pid for i in q]), np.array([i.pid for i in g]),
            np.array([i.camid for i in q]), np.array([i.camid for i in g]))
