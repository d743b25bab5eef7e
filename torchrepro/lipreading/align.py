"""GRID alignment files (``<name>.align``): the words of a sentence and when they are spoken.

One line per interval, ``start end word``, times as integers in 1/1000 of a video frame (GRID videos run at
25 fps, so 1000 units are 40 ms)::

    0 23750 sil
    23750 29500 bin
    ...
    53000 74500 sil

``sil`` (silence) and ``sp`` (a short pause) are not words: LipNet's transcripts (§3.2) are the remaining words
joined by single spaces. Intervals must be sorted and must not overlap; every word must be a GRID word (an
unknown word means a corrupt file or a different corpus, and it would be silently learnt as a new word).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from torchrepro.core.errors import DataError
from torchrepro.lipreading.vocabulary import GRID_WORDS

__all__ = ["Alignment", "NON_WORDS", "UNITS_PER_FRAME", "format_align", "read_align"]

#: alignment time units per video frame
UNITS_PER_FRAME = 1000
#: interval labels that are not words of the transcript
NON_WORDS = frozenset({"sil", "sp"})


@dataclass(frozen=True)
class Alignment:
    """The intervals of one ``.align`` file: ``(start, end, word)`` in alignment units, sorted, disjoint."""

    intervals: tuple[tuple[int, int, str], ...]

    @property
    def words(self) -> list[str]:
        """The spoken words, ``sil`` and ``sp`` left out."""
        return [w for _, _, w in self.intervals if w not in NON_WORDS]

    @property
    def text(self) -> str:
        """The transcript: the words joined by single spaces."""
        return " ".join(self.words)

    @property
    def n_frames(self) -> int:
        """Video frames the alignment covers: its last end time, rounded up to whole frames."""
        return math.ceil(self.intervals[-1][1] / UNITS_PER_FRAME)

    def word_frames(self) -> list[tuple[float, float, str]]:
        """The words' ``(start, end)`` in frames (fractional), ``sil``/``sp`` left out."""
        return [(s / UNITS_PER_FRAME, e / UNITS_PER_FRAME, w) for s, e, w in self.intervals if w not in NON_WORDS]


def _parse_line(path: Path, line_no: int, line: str, known_words: frozenset[str] | None) -> tuple[int, int, str]:
    parts = line.split()
    where = f"alignment '{path}' line {line_no}"
    if len(parts) != 3:
        raise DataError(f"{where} is '{line.strip()}': expected 'start end word' (times in 1/1000 frame)")
    try:
        start, end = int(parts[0]), int(parts[1])
    except ValueError:
        raise DataError(f"{where} is '{line.strip()}': start and end must be integers (1/1000 frame)") from None
    word = parts[2]
    if start < 0 or end <= start:
        raise DataError(f"{where}: interval [{start}, {end}) of '{word}' is empty or negative: fix or regenerate "
                        f"the alignment")
    if known_words is not None and word not in known_words and word not in NON_WORDS:
        raise DataError(f"{where}: unknown word '{word}' (not a GRID word, nor sil/sp): the file is corrupt or from "
                        f"another corpus")
    return start, end, word


def read_align(path: Path, known_words: frozenset[str] | None = GRID_WORDS) -> Alignment:
    """Parse a ``.align`` file; a missing, empty, malformed, unsorted or overlapping file, or an unknown word,
    is a one-line DataError naming the file and line. ``known_words=None`` accepts any word."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise DataError(f"alignment '{path}' cannot be read ({err.strerror}): check the alignments folder") from None
    intervals: list[tuple[int, int, str]] = []
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        start, end, word = _parse_line(path, line_no, line, known_words)
        if intervals and start < intervals[-1][1]:
            prev = intervals[-1]
            raise DataError(f"alignment '{path}' line {line_no}: '{word}' starts at {start}, before the previous "
                            f"interval '{prev[2]}' ends ({prev[1]}): intervals must be sorted and must not overlap")
        intervals.append((start, end, word))
    if not any(w not in NON_WORDS for _, _, w in intervals):
        raise DataError(f"alignment '{path}' holds no words (only sil/sp, or nothing): the file is empty or corrupt")
    return Alignment(tuple(intervals))


def format_align(intervals: Sequence[tuple[int, int, str]]) -> str:
    """The text of a ``.align`` file for ``intervals`` (what :func:`read_align` reads back)."""
    return "".join(f"{start} {end} {word}\n" for start, end, word in intervals)
