"""The GRID sentence grammar and LipNet's character vocabulary.

GRID (Cooke, Barker, Cunningham and Shao, "An audio-visual corpus for speech perception and automatic speech
recognition", JASA 2006, Table I): every sentence is six words, one from each slot, in this order::

    command  colour  preposition  letter        digit  adverb
    bin      blue    at           a-z except w  0-9    again
    lay      green   by                                now
    place    red     in                                please
    set      white   with                              soon

51 words in all. Alignment files spell letters as the letter itself (``f``) and digits as words (``two``).

LipNet (§3.2) predicts characters with CTC: 26 letters, the space and the CTC blank, 28 classes. The blank is
index 0, as ``torch.nn.functional.ctc_loss`` expects by default; the space is 1 and ``a``-``z`` are 2-27.
"""

from __future__ import annotations

import string
from collections.abc import Sequence

from torchrepro.core.errors import DataError

__all__ = ["BLANK", "CHARACTERS", "GRID_SLOTS", "GRID_WORDS", "NUM_CLASSES", "SLOT_NAMES", "SPACE", "decode_ids",
           "encode_text", "is_grid_sentence"]

#: the six slots of a GRID sentence, in spoken order
SLOT_NAMES: tuple[str, ...] = ("command", "colour", "preposition", "letter", "digit", "adverb")

#: the words of each slot (GRID, Table I); letters exclude "w", whose name has three syllables
GRID_SLOTS: tuple[tuple[str, ...], ...] = (
    ("bin", "lay", "place", "set"),
    ("blue", "green", "red", "white"),
    ("at", "by", "in", "with"),
    tuple(c for c in string.ascii_lowercase if c != "w"),
    ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    ("again", "now", "please", "soon"),
)

#: every GRID word
GRID_WORDS: frozenset[str] = frozenset(w for slot in GRID_SLOTS for w in slot)

BLANK = 0
SPACE = 1
#: index → character; index 0 (the CTC blank) has no character
CHARACTERS: tuple[str, ...] = ("", " ", *string.ascii_lowercase)
NUM_CLASSES = len(CHARACTERS)  # 28, LipNet §3.2
_INDEX = {c: i for i, c in enumerate(CHARACTERS) if c}


def encode_text(text: str, where: str = "text") -> list[int]:
    """Class indices of ``text`` (lower-case letters and spaces); any other character is a DataError naming it."""
    bad = sorted({c for c in text if c not in _INDEX})
    if bad:
        raise DataError(f"{where} '{text}' has characters outside LipNet's vocabulary (a-z and space): "
                        f"{''.join(bad)!r}; fix the transcript or extend the vocabulary")
    return [_INDEX[c] for c in text]


def decode_ids(ids: Sequence[int]) -> str:
    """The text of a sequence of class indices (blanks dropped; no CTC collapsing: see ``decoding``)."""
    return "".join(CHARACTERS[i] for i in ids if i != BLANK)


def is_grid_sentence(words: Sequence[str]) -> bool:
    """Whether ``words`` is a sentence of the GRID grammar (six words, each from its slot)."""
    return len(words) == len(GRID_SLOTS) and all(w in slot for w, slot in zip(words, GRID_SLOTS))
