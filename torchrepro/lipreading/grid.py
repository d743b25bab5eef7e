"""The GRID corpus on disk, and LipNet's two evaluation splits.

GRID (Cooke, Barker, Cunningham and Shao, JASA 2006): 34 speakers ``s1`` … ``s34`` (``s21`` has no video), 1,000
sentences each, 3-second videos of 75 frames at 25 fps, 360×288. As unpacked from the corpus site, or from the
archive the LipNet tutorials use::

    root/s1/bbaf2n.mpg                   the videos (or root/s1/bbaf2n/ holding its extracted frames)
    root/alignments/s1/bbaf2n.align      the alignments (the tutorials' layout), or
    root/alignments/s1/align/bbaf2n.align   a speaker's alignment archive unpacked into alignments/s1/

``video_template`` ("{speaker}" by default) and ``align_template`` ("alignments/{speaker}") are templates, so other
arrangements (e.g. ``{speaker}/video/mpg_6000`` for the high-quality videos) need only a config change.

Splits (LipNet, Assael et al. 2016, §4.1):

* **overlapped speakers**: every speaker is seen in training, and a fixed number of each seen speaker's sentences
  (LipNet: 255) is held out for testing;
* **unseen speakers**: speakers never seen in training (LipNet: s1, s2, s20 and s22), all their sentences tested.

A validation split (what chooses settings and checkpoints) is drawn from the remaining sentences of the seen
speakers. The draws are a pure function of ``split_seed`` and the speaker, not of the training seed, so runs with
different seeds are scored on the same sentences.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from torchrepro.core.errors import DataError
from torchrepro.core.seeding import derive_seed
from torchrepro.video.frames import is_video_file, natural_key

__all__ = ["GridSplits", "Utterance", "align_folder", "list_speakers", "read_speaker", "split_grid"]

_SPEAKER = re.compile(r"^s\d+$")


@dataclass(frozen=True)
class Utterance:
    """One GRID sentence: who says it, its name (GRID's sentence code), its video and its alignment file."""

    speaker: str
    name: str
    source: Path
    align: Path


@dataclass
class GridSplits:
    """Training, validation and the two held-out test sets (overlapped and unseen speakers)."""

    train: list[Utterance]
    val: list[Utterance]
    test_overlapped: list[Utterance]
    test_unseen: list[Utterance]


def list_speakers(root: Path, video_template: str = "{speaker}") -> list[str]:
    """The speakers (``s<k>`` folders) under ``root`` whose video folder exists, in natural order."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"GRID root '{root}' does not exist: point data.root at the folder holding s1/, s2/ … "
                        f"and alignments/")
    found = [p.name for p in root.iterdir() if _SPEAKER.match(p.name) and (root / video_template.format(speaker=p.name)).is_dir()]
    return sorted(found, key=natural_key)


def align_folder(root: Path, speaker: str, align_template: str = "alignments/{speaker}") -> Path:
    """The folder holding ``speaker``'s ``.align`` files: ``align_template``, or its ``align/`` sub-folder when the
    speaker's alignment archive was unpacked there."""
    folder = Path(root) / align_template.format(speaker=speaker)
    if not folder.is_dir():
        raise DataError(f"no alignments for speaker {speaker}: '{folder}' does not exist (data.align_template = "
                        f"'{align_template}'); unpack the speaker's alignments there")
    nested = folder / "align"
    if nested.is_dir() and not any(folder.glob("*.align")):
        return nested
    return folder


def _video_sources(folder: Path) -> dict[str, Path]:
    """name → video file or frames folder, for every video in ``folder``. A name present as both keeps the file."""
    sources: dict[str, Path] = {}
    for path in folder.iterdir():
        if path.is_dir():
            sources.setdefault(path.name, path)
        elif is_video_file(path):
            sources[path.stem] = path
    return sources


def read_speaker(root: Path, speaker: str, video_template: str = "{speaker}",
                 align_template: str = "alignments/{speaker}") -> list[Utterance]:
    """Every sentence of ``speaker`` that has both a video and an alignment, sorted by name.

    A video without an alignment has no transcript, so it cannot be trained or scored: such videos are left out
    with one warning that counts them (GRID's archives miss a few). An alignment without a video is ignored."""
    root = Path(root)
    folder = root / video_template.format(speaker=speaker)
    if not folder.is_dir():
        raise DataError(f"speaker {speaker} has no video folder '{folder}' (data.video_template = '{video_template}'): "
                        f"unpack the speaker's videos there or drop the speaker from data.speakers")
    aligns = align_folder(root, speaker, align_template)
    sources = _video_sources(folder)
    utterances, missing = [], []
    for name in sorted(sources, key=natural_key):
        align = aligns / f"{name}.align"
        if align.is_file():
            utterances.append(Utterance(speaker, name, sources[name], align))
        else:
            missing.append(name)
    if missing:
        warnings.warn(f"speaker {speaker}: {len(missing)} video(s) have no alignment in '{aligns}' and are left out "
                      f"(first: {missing[0]})", stacklevel=2)
    if not utterances:
        raise DataError(f"speaker {speaker}: no video in '{folder}' has an alignment in '{aligns}': check "
                        f"data.video_template and data.align_template")
    return utterances


def _held_out(utterances: list[Utterance], n: int, seed: int, speaker: str, what: str) -> set[int]:
    """Indices of ``n`` utterances drawn without replacement by a generator keyed on (seed, what, speaker)."""
    g = torch.Generator().manual_seed(derive_seed(seed, what, speaker))
    return set(torch.randperm(len(utterances), generator=g)[:n].tolist())


def split_grid(per_speaker: dict[str, list[Utterance]], unseen: list[str], test_per_speaker: int,
               val_per_speaker: int, split_seed: int) -> GridSplits:
    """LipNet's splits (module docstring). Every seen speaker must keep at least one training sentence."""
    unknown = [s for s in unseen if s not in per_speaker]
    if unknown:
        raise DataError(f"unseen speaker(s) {', '.join(unknown)} are not among the speakers read "
                        f"({', '.join(per_speaker)}): fix data.unseen_speakers")
    splits = GridSplits([], [], [], [])
    for speaker, utterances in per_speaker.items():
        if speaker in unseen:
            splits.test_unseen += utterances
            continue
        if len(utterances) <= test_per_speaker + val_per_speaker:
            raise DataError(f"speaker {speaker} has {len(utterances)} sentences, not more than data.test_per_speaker "
                            f"({test_per_speaker}) + data.val_per_speaker ({val_per_speaker}): lower them")
        test = _held_out(utterances, test_per_speaker, split_seed, speaker, "grid-test")
        rest = [i for i in range(len(utterances)) if i not in test]
        val_pos = _held_out([utterances[i] for i in rest], val_per_speaker, split_seed, speaker, "grid-val")
        val = {rest[p] for p in val_pos}
        for i, utterance in enumerate(utterances):
            (splits.test_overlapped if i in test else splits.val if i in val else splits.train).append(utterance)
    if not splits.train:
        raise DataError("no training sentences: every speaker read is in data.unseen_speakers")
    return splits
