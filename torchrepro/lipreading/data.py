"""Mouth clips and transcripts for LipNet, from the GRID layout (real or synthetic).

A sample is a dict: ``clip`` ``[1, frames, H, W]`` float (the grey mouth crop, standardised per video, zero-padded
after ``length`` frames), ``length`` (the video's frames), ``target`` (the transcript's class indices, LipNet's 28
classes) and ``index``. :func:`collate` pads the targets of a batch to :data:`MAX_TEXT` with the blank; CTC reads
only the first ``target_length`` of each row.

The mouth crop of a video is computed once per process and kept as uint8 (75 × 50 × 100 bytes ≈ 0.4 MB a GRID
sentence; the synthetic crops are 0.15 MB): decoding an MPEG-1 video costs far more than the network's input.
Training flips a clip at random (LipNet §3.3), as a pure function of ``(seed, epoch, index)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

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
from torchrepro.lipreading.align import Alignment, read_align
from torchrepro.lipreading.config import LipData
from torchrepro.lipreading.grid import GridSplits, Utterance, list_speakers, read_speaker, split_grid
from torchrepro.lipreading.vocabulary import encode_text
from torchrepro.video.frames import num_frames, read_frames

__all__ = ["LipClipDataset", "LipDataModule", "MAX_TEXT", "collate", "ctc_min_frames", "mouth_clip", "mouth_crops",
           "standardise"]

#: targets are padded to this many characters (the longest GRID sentence has 31)
MAX_TEXT = 64


def ctc_min_frames(target: Sequence[int]) -> int:
    """The fewest frames a CTC alignment of ``target`` needs: one per character plus a blank between each pair of
    equal neighbours ("ll" cannot be emitted without a blank between; Graves et al., ICML 2006, §3.1)."""
    return len(target) + sum(a == b for a, b in zip(target, target[1:]))


#: the mouth points of the 68-point iBUG 300-W scheme that dlib's shape predictor outputs (points 49-68, 1-based)
MOUTH_POINTS_68 = slice(48, 68)
#: the margin added around the landmarks' mouth on each side, as a fraction of the mouth's width
LANDMARK_MARGIN = 0.25


def box_from_points(points: np.ndarray, aspect: float, frame: tuple[int, int]) -> np.ndarray:
    """A ``[top, bottom, left, right]`` box around mouth landmarks ``[K, 2]`` (x, y): their bounding box widened by
    :data:`LANDMARK_MARGIN` of the mouth's width on each side, grown to the ``aspect`` (height / width) of the network
    input about its centre, and shifted (not clipped, which would change its aspect) into the ``frame`` (H, W)."""
    (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
    width = (x1 - x0) * (1 + 2 * LANDMARK_MARGIN)
    height = max(width * aspect, (y1 - y0) * (1 + 2 * LANDMARK_MARGIN))
    width = height / aspect
    frame_h, frame_w = frame
    height, width = min(height, frame_h), min(width, frame_w)
    top = float(np.clip((y0 + y1) / 2 - height / 2, 0, frame_h - height))
    left = float(np.clip((x0 + x1) / 2 - width / 2, 0, frame_w - width))
    top_px, left_px = round(top), round(left)
    return np.array([top_px, top_px + round(height), left_px, left_px + round(width)])


def read_boxes(path: Path, n_frames: int, aspect: float = 0.5, frame: tuple[int, int] = (288, 360)) -> np.ndarray:
    """Per-frame mouth boxes ``[n_frames, 4]`` (top, bottom, left, right) from a text file of one line per frame:
    either the box itself (4 numbers) or facial landmarks ``x1 y1 x2 y2 …`` (68 points: dlib's scheme, of which the
    mouth's 20 are used; any other number: all are the mouth), turned into a box by :func:`box_from_points`."""
    try:
        rows = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except (OSError, ValueError) as err:
        raise DataError(f"mouth boxes '{path}' cannot be read ({err}): one 'top bottom left right' line (or one line "
                        f"of landmark x y pairs) per frame") from None
    if rows.shape[0] != n_frames or (rows.shape[1] != 4 and rows.shape[1] % 2):
        raise DataError(f"mouth boxes '{path}' hold {rows.shape[0]} rows of {rows.shape[1]} numbers; the video has "
                        f"{n_frames} frames: write one 'top bottom left right' line (or landmark x y pairs) per frame")
    if rows.shape[1] == 4:
        return rows.round().astype(np.int64)
    points = rows.reshape(n_frames, -1, 2)
    if points.shape[1] == 68:
        points = points[:, MOUTH_POINTS_68]
    return np.stack([box_from_points(p, aspect, frame) for p in points]).astype(np.int64)


def _crop(frame: np.ndarray, box: Sequence[int], source: Path, size: tuple[int, int]) -> np.ndarray:
    top, bottom, left, right = (int(v) for v in box)
    h, w = frame.shape[:2]
    if not (0 <= top < bottom <= h and 0 <= left < right <= w):
        raise DataError(f"mouth box [{top}, {bottom}, {left}, {right}] does not fit the {w}x{h} frames of '{source}': "
                        f"fix data.mouth_box (or the boxes file)")
    return cv2.resize(frame[top:bottom, left:right], (size[1], size[0]), interpolation=cv2.INTER_AREA)


def _fit_length(frames: np.ndarray, alignment: Alignment, u: Utterance, mode: str) -> np.ndarray:
    """The video cut or padded (with its last frame) to its alignment's length, or a DataError in ``error`` mode."""
    n, want = len(frames), alignment.n_frames
    if n == want:
        return frames
    if mode == "error":
        raise DataError(f"video '{u.source}' has {n} frames but its alignment '{u.align}' covers {want}: fix the pair "
                        f"or set data.length_mismatch=pad (pad with the last frame / cut to the alignment)")
    if n > want:
        return frames[:want]
    return np.concatenate([frames, np.repeat(frames[-1:], want - n, axis=0)])


def mouth_crops(source: Path, d: LipData, boxes_file: Path | None = None) -> np.ndarray:
    """The grey mouth crops ``[T, H, W]`` uint8 of every frame of a video (file or frames folder), resized to
    ``d.input_size``: the fixed ``d.mouth_box``, or one box per frame read from ``boxes_file``."""
    n = num_frames(source)
    rgb = read_frames(source, range(n))
    grey = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in rgb])
    size = (d.input_size[0], d.input_size[1])
    if boxes_file is not None:
        boxes = read_boxes(boxes_file, n, aspect=size[0] / size[1], frame=grey.shape[1:3])
    else:
        boxes = np.tile(np.asarray(d.mouth_box), (n, 1))
    return np.stack([_crop(f, b, source, size) for f, b in zip(grey, boxes)])


def mouth_clip(u: Utterance, alignment: Alignment, d: LipData) -> np.ndarray:
    """:func:`mouth_crops` of an utterance (its boxes file under ``d.boxes`` when set), cut or padded to its
    alignment's length (:func:`_fit_length`)."""
    boxes = Path(d.boxes) / u.speaker / f"{u.name}.txt" if d.boxes else None
    return _fit_length(mouth_crops(u.source, d, boxes), alignment, u, d.length_mismatch)


def standardise(crops: np.ndarray) -> torch.Tensor:
    """Float crops with zero mean and unit standard deviation over the whole video (the seed's normalisation)."""
    clip = torch.from_numpy(crops.astype(np.float32))
    return (clip - clip.mean()) / clip.std().clamp_min(1e-6)


class LipClipDataset(Dataset):
    """Utterances → samples (module docstring). ``train``: random flips keyed by ``(seed, epoch, index)``."""

    def __init__(self, utterances: Sequence[Utterance], d: LipData, seed: int = 0, train: bool = False) -> None:
        self.utterances = list(utterances)
        self.d = d
        self.seed = seed
        self.train = train
        self._cache: dict[int, tuple[np.ndarray, list[int]]] = {}
        self._alignments: dict[int, Alignment] = {}  # parsed once: every evaluation reads the transcripts again

    def __len__(self) -> int:
        return len(self.utterances)

    def alignment(self, index: int) -> Alignment:
        if index not in self._alignments:
            self._alignments[index] = read_align(self.utterances[index].align)
        return self._alignments[index]

    def text(self, index: int) -> str:
        return self.alignment(index).text

    def load(self, index: int) -> tuple[np.ndarray, list[int]]:
        """The uint8 mouth crops and the encoded transcript of utterance ``index`` (cached), with their checks."""
        if index not in self._cache:
            u = self.utterances[index]
            alignment = self.alignment(index)
            target = encode_text(alignment.text, where=f"transcript of '{u.align}'")
            crops = mouth_clip(u, alignment, self.d)
            if len(crops) > self.d.frames:
                raise DataError(f"'{u.source}' has {len(crops)} frames, more than data.frames ({self.d.frames}): raise "
                                f"data.frames")
            if ctc_min_frames(target) > len(crops):
                raise DataError(f"the transcript of '{u.align}' needs at least {ctc_min_frames(target)} frames for CTC "
                                f"(characters + repeats) but the video has {len(crops)}: the pair is corrupt")
            self._cache[index] = (crops, target)
        return self._cache[index]

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor | int]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        crops, target = self.load(index)
        clip = standardise(crops)
        if self.train and self.d.flip:
            g = torch.Generator().manual_seed(derive_seed(self.seed, "flip", epoch, index))
            if torch.rand((), generator=g) < 0.5:
                clip = clip.flip(-1)
        padded = torch.zeros((1, self.d.frames, *clip.shape[1:]))
        padded[0, :len(clip)] = clip
        return {"clip": padded, "length": len(clip), "target": torch.tensor(target, dtype=torch.long), "index": index}


def collate(samples: list[dict]) -> dict[str, torch.Tensor]:
    """Stack clips and lengths; pad targets to ``[B, MAX_TEXT]`` with the blank and keep their lengths."""
    targets = torch.zeros((len(samples), MAX_TEXT), dtype=torch.long)
    for row, s in enumerate(samples):
        targets[row, :len(s["target"])] = s["target"]
    return {"clip": torch.stack([s["clip"] for s in samples]),
            "length": torch.tensor([s["length"] for s in samples], dtype=torch.long),
            "target": targets,
            "target_length": torch.tensor([len(s["target"]) for s in samples], dtype=torch.long),
            "index": torch.tensor([s["index"] for s in samples], dtype=torch.long)}


class LipDataModule(pl.LightningDataModule):
    """The training, validation and two test splits (overlapped and unseen speakers) of the ``data:`` block."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.d: LipData = cfg.data
        self.splits: GridSplits | None = None
        self.train_set: LipClipDataset | None = None
        self.val_set: LipClipDataset | None = None
        #: the non-empty test sets, in loader order: ("overlapped", dataset), ("unseen", dataset)
        self.test_sets: list[tuple[str, LipClipDataset]] = []

    @property
    def has_test_split(self) -> bool:
        return self.d.test_per_speaker > 0 or bool(self.d.unseen_speakers)

    def root(self) -> Path:
        d = self.d
        if d.source == "grid":
            return Path(d.root)
        return Path(d.synthetic_dir) / f"seed{d.split_seed}-k{d.synthetic_speakers}-n{d.synthetic_sentences}-t{d.frames}"

    def prepare_data(self) -> None:
        if self.d.source == "synthetic":  # Lightning calls this on local rank 0 only
            from torchrepro.lipreading.synthetic import generate_corpus

            generate_corpus(self.root(), speakers=self.d.synthetic_speakers,
                            sentences_per_speaker=self.d.synthetic_sentences, seed=self.d.split_seed,
                            n_frames=self.d.frames)

    def read_splits(self) -> GridSplits:
        if self.splits is None:
            d, root = self.d, self.root()
            speakers = d.speakers or list_speakers(root, d.video_template)
            if not speakers:
                raise DataError(f"no speaker folders (s1, s2 …) with videos under '{root}' (data.video_template = "
                                f"'{d.video_template}'): check data.root")
            per_speaker = {s: read_speaker(root, s, d.video_template, d.align_template) for s in speakers}
            self.splits = split_grid(per_speaker, d.unseen_speakers, d.test_per_speaker, d.val_per_speaker,
                                     d.split_seed)
        return self.splits

    def setup(self, stage: str | None = None) -> None:
        splits = self.read_splits()
        if self.train_set is None:
            self.train_set = LipClipDataset(splits.train, self.d, seed=self.cfg.seed, train=True)
        if self.val_set is None:
            self.val_set = LipClipDataset(splits.val, self.d)
        if not self.test_sets:
            self.test_sets = [(name, LipClipDataset(items, self.d)) for name, items in
                              (("overlapped", splits.test_overlapped), ("unseen", splits.test_unseen)) if items]

    def check_files(self) -> None:
        """Decode and check every utterance of every split (``torchrepro data``): a bad pair is named now."""
        for dataset in [self.train_set, self.val_set, *(s for _, s in self.test_sets)]:
            for index in range(len(dataset) if dataset is not None else 0):
                dataset.load(index)

    def train_dataloader(self) -> DataLoader:
        sampler = ResumableSampler(self.train_set, seed=self.cfg.seed, shuffle=True, keyed=True)
        return ResumableLoader(self.train_set, sampler, batch_size=self.d.batch_size, drop_last=True,
                               num_workers=self.d.num_workers, persistent_workers=False, collate_fn=collate)

    def val_dataloader(self) -> DataLoader:
        return eval_loader(self.val_set, self.d.val_batch_size, self.d.num_workers, collate_fn=collate,
                           trainer=self.trainer)

    def test_dataloader(self) -> list[DataLoader]:
        return [eval_loader(s, self.d.val_batch_size, self.d.num_workers, collate_fn=collate, trainer=self.trainer)
                for _, s in self.test_sets]
