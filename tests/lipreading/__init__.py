"""Tests of the LipNet recipe, and the GRID fixture writer they share (real MPEG-1 files in GRID's layout)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from torchrepro.lipreading.align import format_align
from torchrepro.video.writer import write_video

GRID_FRAME = (288, 360)  # (height, width) of GRID's videos
GRID_BOX = (190, 236, 100, 200)  # the seed's mouth crop: rows 190-236, cols 100-200

# bbaf2n is GRID s1's first sentence; its alignment as the corpus ships it
BBAF2N_ALIGN = """0 23750 sil
23750 29500 bin
29500 34000 blue
34000 35500 at
35500 41000 f
41000 47250 two
47250 53000 now
53000 74500 sil
"""


def grid_intervals(words: list[str], n_frames: int = 75) -> list[tuple[int, int, str]]:
    """GRID-like intervals: silence for the first and last 15 frames (a fifth of a short video), the words evenly
    spread between."""
    silence = min(15, n_frames // 5)
    start, end = silence * 1000, (n_frames - silence) * 1000
    step = (end - start) // len(words)
    cuts = [start + i * step for i in range(len(words))] + [end]
    return [(0, start, "sil"), *[(cuts[i], cuts[i + 1], w) for i, w in enumerate(words)],
            (end, n_frames * 1000 - 500, "sil")]


def mouth_video(n_frames: int = 75, frame: tuple[int, int] = GRID_FRAME, box: tuple[int, int, int, int] = GRID_BOX,
                seed: int = 0) -> np.ndarray:
    """``(T, H, W)`` grey frames: a dark background, the mouth box bright with a bar that moves down over time (so a
    crop's content and frame order are both checkable after MPEG-1 coding)."""
    rng = np.random.default_rng(seed)
    video = np.full((n_frames, *frame), 40, dtype=np.uint8)
    top, bottom, left, right = box
    video[:, top:bottom, left:right] = 200
    for t in range(n_frames):
        row = top + (t * (bottom - top - 4)) // max(n_frames - 1, 1)
        video[t, row:row + 4, left:right] = 90
    video[:, :20, :20] = rng.integers(0, 255, (n_frames, 20, 20), dtype=np.uint8)
    return video


def write_grid(root: Path, sentences: dict[str, list[str]], n_frames: int = 75, align_frames: int | None = None,
               nested_align: bool = False, frame: tuple[int, int] = GRID_FRAME) -> Path:
    """A GRID download under ``root``: ``root/<speaker>/<code>.mpg`` (MPEG-1, 25 fps) and
    ``root/alignments/<speaker>/[align/]<code>.align`` for each sentence; the code is GRID's (initials)."""
    for speaker, texts in sentences.items():
        folder = root / "alignments" / speaker / ("align" if nested_align else "")
        folder.mkdir(parents=True, exist_ok=True)
        for i, text in enumerate(texts):
            words = text.split()
            code = grid_code(words)
            write_video(root / speaker / f"{code}.mpg", mouth_video(n_frames, frame, seed=i))
            (folder / f"{code}.align").write_text(format_align(grid_intervals(words, align_frames or n_frames)))
    return root


def grid_code(words: list[str]) -> str:
    """GRID's file name of a sentence: the initials of command, colour and preposition, the letter, the digit as a
    numeral and the adverb's initial ("bin blue at f two now" → "bbaf2n")."""
    return "".join(w[0] for w in words[:3]) + words[3] + str(DIGITS.index(words[4])) + words[5][0]


DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
SENTENCES = ["bin blue at f two now", "lay green by a one again", "place red in z nine please",
             "set white with b zero soon", "bin red with k five now", "lay white at t three soon"]
