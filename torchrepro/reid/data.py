"""Re-ID image datasets, transforms and the data manager (several sources, several targets), as in torchreid.

Training items come from :class:`~torchrepro.retrieval.sampler.RandomIdentitySampler` in keyed mode, so each
item's augmentation is a pure function of ``(seed, epoch, slot)`` (exact resume, any worker count). Optional
aligned textures (SAN: Jin et al., "Semantics-Aligned Representation Learning for Person Re-identification",
AAAI 2020, §3) are read from the path :func:`texture_path` derives from the image path,
normalised with mean 0.5 and std 0.5 to [−1, 1]. Textures are not augmented: a texture lives in the body's UV
space, where an image flip or crop has no simple counterpart (the seed loads them untouched too).

Splits: every setting, epoch and checkpoint is chosen on the **validation** split, ``data.val_ids`` identities
held out of the sources' training folders (:func:`~torchrepro.reid.datasets.hold_out_identities`: one query per
camera as in Market-1501, Zheng et al., ICCV 2015, §3); the targets' own query/gallery is the **test** split,
scored once with the chosen checkpoint when training ends (the engine's ``has_test_split`` / ``test_dataloader``).
Both are scored with the Market-1501 protocol of the BoT recipe (Luo et al., CVPRW 2019, §4).
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
from torchrepro.core.images import load_rgb
from torchrepro.core.seeding import derive_seed
from torchrepro.reid.config import ReidData, uses_decoder
from torchrepro.retrieval.rank import evaluate_market1501
from torchrepro.retrieval.sampler import RandomIdentitySampler
from torchrepro.reid.datasets import (
    DATASETS,
    ReidItem,
    ReidSplit,
    combine_sources,
    hold_out_identities,
    relabel_pids,
    require_matches,
    require_subsets,
    texture_path,
)

__all__ = ["DATASETS", "ReidDataModule", "ReidImageDataset", "TargetSet", "build_transforms",
           "colour_baseline", "load_target", "load_sources", "target_ids", "texture_path"]

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
        img = load_rgb(path).resize(self.texture_size[::-1], Image.BILINEAR)
        tex = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
        return (tex - 0.5) / 0.5

    def __getitem__(self, key: int | tuple[int, int, int]) -> tuple:
        if isinstance(key, tuple):
            epoch, slot, index = key
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(derive_seed(self.seed, "reid-aug", epoch, slot))
                image = self.transform(load_rgb(self.items[index].path))
        else:
            index = int(key)
            image = self.transform(load_rgb(self.items[index].path))
        item = self.items[index]
        out = (image, item.pid, item.camid, index)
        return out + (self._texture(index),) if self.texture_roots is not None else out


@dataclass
class TargetSet:
    """One evaluation set: its name (the data set, or ``val``), query and gallery items."""

    name: str
    query: list[ReidItem]
    gallery: list[ReidItem]


def _read(name: str, root: Path) -> ReidSplit:
    if name not in DATASETS:
        raise DataError(f"unknown re-ID data set '{name}'; choose from {', '.join(sorted(DATASETS))}")
    return DATASETS[name](Path(root))


def load_sources(names: list[str], roots: dict[str, str]) -> tuple[list[ReidItem], list[Path]]:
    """Training items of all sources, pids offset per source (torchreid's data manager); item roots too. A source
    without training images is refused, naming its folder."""
    splits = [_read(n, Path(roots[n])) for n in names]
    for name, split in zip(names, splits):
        require_subsets(split, name, ("train",), "data.sources")
    merged = combine_sources(splits)
    item_roots = [Path(roots[n]) for n, s in zip(names, splits) for _ in s.train]
    return merged, item_roots


def load_target(name: str, root: str) -> TargetSet:
    """A data set's own query / gallery: the held-out test split. An empty query or gallery, or a query set none of
    whose identities the gallery shows from another camera, is refused here, naming the folders: before training,
    not when the test split is scored."""
    split = _read(name, Path(root))
    require_subsets(split, name, ("query", "gallery"), "data.targets")
    require_matches(split, name)
    return TargetSet(name, split.query, split.gallery)


class ReidDataModule(pl.LightningDataModule):
    """Training images of ``data.sources`` minus ``data.val_ids`` held-out identities; the validation split made
    of those identities (every epoch; chooses ``best.ckpt``); the targets' query/gallery as the test split (scored
    once, after training, with ``best.ckpt``). Validation and test each have their own references: query and
    gallery ids and cameras, and the colour-histogram baseline."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.d: ReidData = cfg.data
        self.train_set: ReidImageDataset | None = None
        #: ``"val"`` → the held-out training identities, ``"test"`` → one set per target; the task looks its
        #: references up under :attr:`~torchrepro.core.evaluation.OrderedEvaluation.eval_split`
        self.splits: dict[str, list[TargetSet]] = {}
        self.eval_sets: dict[str, list[ReidImageDataset]] = {}
        self._baselines: dict[str, dict[str, float]] = {}

    @property
    def has_test_split(self) -> bool:
        """The targets' query/gallery is a held-out test split, scored once when training ends."""
        return bool(self.d.targets)

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
        keep, val_query, val_gallery = hold_out_identities(
            items, d.val_ids, derive_seed(self.cfg.seed, "reid-val-ids"), min_train_ids=d.batch_size // d.num_instances)
        items, item_roots = relabel_pids([items[i] for i in keep]), [item_roots[i] for i in keep]
        tex_size = (d.texture_height, d.texture_width)
        train_tf = build_transforms(d.height, d.width, True, d.flip, d.pad, d.erasing)
        self.train_set = ReidImageDataset(items, train_tf, self.cfg.seed,
                                          item_roots if uses_decoder(self.cfg) else None, tex_size)
        if uses_decoder(self.cfg):
            check_textures(items, item_roots)
        self.splits = {"val": [TargetSet("val", val_query, val_gallery)],
                       "test": [load_target(name, roots[name]) for name in d.targets]}
        test_tf = build_transforms(d.height, d.width, False)
        self.eval_sets = {split: [ReidImageDataset(t.query + t.gallery, test_tf) for t in sets]
                          for split, sets in self.splits.items()}
        log.info("re-ID: %d training images of %d identities; validation: %d held-out training identities "
                 "(%d query / %d gallery); test (held out): %s", len(items), self.num_classes, d.val_ids,
                 len(val_query), len(val_gallery),
                 ", ".join(f"{t.name} ({len(t.query)} query / {len(t.gallery)} gallery)" for t in self.splits["test"]))

    def check_files(self) -> None:
        """Decode every image of the training, validation and test sets, and the aligned texture of every training
        image when the method reads them (``torchrepro data``): a file that is not an image, or is truncated, is
        named now rather than when a batch or the evaluation reaches it."""
        for dataset in [self.train_set, *(ds for sets in self.eval_sets.values() for ds in sets)]:
            for item in dataset.items:
                load_rgb(item.path, check_only=True)
        roots = self.train_set.texture_roots
        for item, root in zip(self.train_set.items, roots or ()):
            load_rgb(texture_path(root, item.path), check_only=True)

    def colour_baseline(self, split: str) -> dict[str, float]:
        """The non-learned reference of ``split``'s sets (``baseline_colour_rank-1`` / ``_mAP``, prefixed by the set
        name when the split has several), computed on first use and kept: it does not change between epochs."""
        if split not in self._baselines:
            sets = self.splits[split]
            out: dict[str, float] = {}
            for target in sets:
                prefix = "" if len(sets) == 1 else f"{target.name}/"
                out.update({prefix + k: v for k, v in colour_baseline(target, self.d.height, self.d.width).items()})
            self._baselines[split] = out
        return self._baselines[split]

    def train_dataloader(self) -> DataLoader:
        d = self.d
        pids = [it.pid for it in self.train_set.items]
        sampler = RandomIdentitySampler(pids, d.batch_size, d.num_instances, seed=self.cfg.seed, keyed=True)
        return ResumableLoader(self.train_set, sampler, batch_size=d.batch_size, drop_last=False,
                               num_workers=d.num_workers, persistent_workers=False)

    def _eval_loaders(self, split: str) -> list[DataLoader]:
        return [eval_loader(ds, self.d.test_batch_size, self.d.num_workers, trainer=self.trainer)
                for ds in self.eval_sets[split]]

    def val_dataloader(self) -> list[DataLoader]:
        return self._eval_loaders("val")

    def test_dataloader(self) -> list[DataLoader]:
        return self._eval_loaders("test")


def _colour_features(items: list[ReidItem], height: int, width: int, chunk: int = 256) -> np.ndarray:
    """Stripe colour histograms of ``items`` resized to ``height`` × ``width``, read ``chunk`` images at a time
    (a real gallery of ~20,000 images would not fit in memory at once)."""
    from torchrepro.reid.baselines import colour_histogram_features

    parts = [colour_histogram_features(np.stack([np.asarray(load_rgb(it.path).resize((width, height)))
                                                 for it in items[start:start + chunk]]))
             for start in range(0, len(items), chunk)]
    return np.concatenate(parts)


def colour_baseline(target: TargetSet, height: int, width: int) -> dict[str, float]:
    """The non-learned reference of an evaluation set: stripe colour histograms compared by cosine, Market-1501
    protocol (:func:`torchrepro.reid.baselines.colour_histogram_features`)."""
    q, g = _colour_features(target.query, height, width), _colour_features(target.gallery, height, width)
    res = evaluate_market1501(1.0 - q @ g.T, *target_ids(target))
    return {f"baseline_colour_{k}": float(res[k]) for k in ("rank-1", "mAP")}


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
