"""Clips for the FFN recipe: the same video cut at several frame counts, from the synthetic set, a frames-folder +
CSV data set or Something-Something V2 (layouts in :mod:`torchrepro.video.layouts`).

A sample is ``({F: clip[F, 3, H, W]} for every frame count F, label)``: FFN trains its sub-networks on clips of one
video at 4, 8 and 16 frames (the reference code samples the three sequences from each video), and evaluation scores
every frame count. Clips are cut by TSN segment sampling (:func:`~torchrepro.video.sampling.segment_indices`); the
frames of all the clips of a video are decoded once and share one random crop, so the clips differ only in time.
Training samples are keyed by ``(epoch, index)``: their frames and crop are a pure function of
``(seed, epoch, index)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from torchrepro.core.config import Config
from torchrepro.core.data import ResumableLoader, ResumableSampler, keyed_rng
from torchrepro.core.evaluation import eval_loader
from torchrepro.core.seeding import derive_seed
from torchrepro.frame_flexible.config import FFNData
from torchrepro.video.frames import num_frames, read_frames
from torchrepro.video.layouts import (VideoItem, read_class_list, read_frames_csv, read_sthv2_classes,
                                      read_sthv2_split)
from torchrepro.video.sampling import is_short, segment_indices, warn_short_once

__all__ = ["ClipDataset", "FFNDataModule", "clip_transform", "split_off_validation"]

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def clip_transform(d: FFNData, train: bool) -> v2.Compose:
    """Resize the shorter side to ``resize``, crop ``image_size`` (random-resized in training, centre otherwise),
    normalise with ImageNet's statistics. Applied to a ``tv_tensors.Video`` ``[T, 3, H, W]``, v2 draws one set of
    parameters for all its frames."""
    crop = (v2.RandomResizedCrop(d.image_size, scale=tuple(d.crop_scale), antialias=True) if train
            else v2.CenterCrop(d.image_size))
    return v2.Compose([v2.Resize(d.resize, antialias=True), crop, v2.ToDtype(torch.float32, scale=True),
                       v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


class ClipDataset(Dataset):
    """Videos → ``({F: clip}, label)`` for every frame count in ``frame_counts`` (see the module docstring)."""

    def __init__(self, items: Sequence[VideoItem], frame_counts: Sequence[int], transform: v2.Compose,
                 seed: int = 0, train: bool = False) -> None:
        self.items = list(items)
        self.frame_counts = tuple(sorted(frame_counts))
        self.transform = transform
        self.seed = seed
        self.train = train
        self._lengths: dict[int, int] = {}  # frames per video, counted once (a folder listing or a decode)

    def __len__(self) -> int:
        return len(self.items)

    def labels(self) -> list[int]:
        return [item.label for item in self.items]

    def frame_picks(self, n_frames: int, epoch: int, index: int) -> dict[int, list[int]]:
        """The stored frames each clip of video ``index`` takes: TSN's random draw per segment in training
        (a function of ``(seed, epoch, index)``), the segment centres otherwise."""
        generator = torch.Generator().manual_seed(derive_seed(self.seed, epoch, index)) if self.train else None
        name = self.items[index].name
        picks = {}
        for frames in self.frame_counts:
            if is_short(n_frames, frames):
                warn_short_once(name, n_frames, frames)
            picks[frames] = segment_indices(n_frames, frames, train=self.train, generator=generator)
        return picks

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[dict[int, torch.Tensor], int]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        item = self.items[index]
        if index not in self._lengths:
            self._lengths[index] = num_frames(item.source)
        picks = self.frame_picks(self._lengths[index], epoch, index)
        wanted = sorted({i for indices in picks.values() for i in indices})
        # [T, H, W, 3] → a contiguous [T, 3, H, W]: a permuted view would reach the network channels-last, and
        # torch 2.14.1's CPU backward of a plain ResNet-18 at width 4 corrupts memory on such input (measured)
        decoded = tv_tensors.Video(torch.from_numpy(read_frames(item.source, wanted)).permute(0, 3, 1, 2).contiguous())
        if self.train:  # the crop, too, is a function of (seed, epoch, index)
            with keyed_rng(self.seed, "crop", epoch, index):
                frames = self.transform(decoded)
        else:
            frames = self.transform(decoded)
        row = {i: r for r, i in enumerate(wanted)}
        clips = {f: frames[[row[i] for i in picks[f]]].as_subclass(torch.Tensor) for f in self.frame_counts}
        return clips, item.label


def split_off_validation(items: list[VideoItem], fraction: float, seed: int) -> tuple[list[VideoItem], list[VideoItem]]:
    """(training, validation) items: a fixed, seeded ``fraction`` of ``items`` held out for validation."""
    order = torch.randperm(len(items), generator=torch.Generator().manual_seed(derive_seed(seed, "val-split")))
    n_val = max(1, round(fraction * len(items)))
    held = set(order[:n_val].tolist())
    return ([it for i, it in enumerate(items) if i not in held], [it for i, it in enumerate(items) if i in held])


class FFNDataModule(pl.LightningDataModule):
    """The training, validation and held-out test splits of the ``data:`` block (:class:`FFNData`)."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.d: FFNData = cfg.data
        self.train_frames = tuple(sorted(cfg.model.train_frames))
        self.eval_frames = tuple(sorted(cfg.model.eval_frames))
        self.classes: list[str] = []
        self.splits: dict[str, list[VideoItem]] = {}
        self.train_set: ClipDataset | None = None
        self.val_set: ClipDataset | None = None
        self.test_set: ClipDataset | None = None

    @property
    def has_test_split(self) -> bool:
        return self.d.source == "sthv2" or self.d.test_split is not None

    def synthetic_root(self) -> Path:
        d = self.d
        return (Path(d.synthetic_dir) / f"seed{self.cfg.seed}-n{d.synthetic_train}-{d.synthetic_val}-"
                f"{d.synthetic_test}-s{d.synthetic_size}-t{d.synthetic_frames}")

    def prepare_data(self) -> None:
        if self.d.source == "synthetic":  # Lightning calls this on local rank 0 only
            from torchrepro.frame_flexible.synthetic import generate_videos

            d = self.d
            generate_videos(self.synthetic_root(), n_train=d.synthetic_train, n_val=d.synthetic_val,
                            n_test=d.synthetic_test, seed=self.cfg.seed, size=d.synthetic_size,
                            n_frames=d.synthetic_frames)

    def class_names(self) -> list[str]:
        """The class names in index order, known before any video is read (the network's output size)."""
        if not self.classes:
            d = self.d
            if d.source == "synthetic":
                from torchrepro.frame_flexible.synthetic import CLASSES

                self.classes = list(CLASSES)
            elif d.source == "sthv2":
                self.classes = read_sthv2_classes(Path(d.root))
            else:
                self.classes = read_class_list(Path(d.root))
        return self.classes

    def _read_splits(self) -> None:
        d = self.d
        if d.source == "sthv2":
            root = Path(d.root)
            train = read_sthv2_split(root, "train.json", videos_dir=d.videos_dir, frames_dir=d.frames_dir)
            train, val = split_off_validation(train, d.val_fraction, self.cfg.seed)
            test = read_sthv2_split(root, "validation.json", videos_dir=d.videos_dir, frames_dir=d.frames_dir)
            self.splits = {"train": train, "val": val, "test": test}
            return
        root = self.synthetic_root() if d.source == "synthetic" else Path(d.root)
        names = {"train": d.train_split, "val": d.val_split, "test": d.test_split}
        self.splits = {k: read_frames_csv(root, v, self.class_names()) for k, v in names.items() if v is not None}

    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            self._read_splits()
        seed = self.cfg.seed
        if self.train_set is None and stage in (None, "fit"):
            self.train_set = ClipDataset(self.splits["train"], self.train_frames, clip_transform(self.d, True),
                                         seed=seed, train=True)
        if self.val_set is None:
            self.val_set = ClipDataset(self.splits["val"], self.eval_frames, clip_transform(self.d, False))
        if self.test_set is None and "test" in self.splits and stage in (None, "fit", "test"):
            self.test_set = ClipDataset(self.splits["test"], self.eval_frames, clip_transform(self.d, False))

    def check_files(self) -> None:
        """Decode every frame of every video of the splits set up (``torchrepro data``): an unreadable frame is
        named now rather than mid-epoch."""
        for dataset in (self.train_set, self.val_set, self.test_set):
            for item in dataset.items if dataset is not None else ():
                read_frames(item.source, range(num_frames(item.source)))

    def train_dataloader(self) -> DataLoader:
        sampler = ResumableSampler(self.train_set, seed=self.cfg.seed, shuffle=True, keyed=True)
        return ResumableLoader(self.train_set, sampler, batch_size=self.d.batch_size, drop_last=True,
                               num_workers=self.d.num_workers, persistent_workers=False)

    def val_dataloader(self) -> DataLoader:
        return eval_loader(self.val_set, self.d.val_batch_size, self.d.num_workers, trainer=self.trainer)

    def test_dataloader(self) -> DataLoader:
        return eval_loader(self.test_set, self.d.val_batch_size, self.d.num_workers, trainer=self.trainer)
