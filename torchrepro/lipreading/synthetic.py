"""A synthetic talking-mouth corpus in GRID's layout, the LipNet recipe's offline default.

GRID (Cooke, Barker, Cunningham and Shao, "An audio-visual corpus for speech perception and automatic speech
recognition", JASA 2006) holds, per speaker ``s<k>``, sentences of six words (command colour preposition letter
digit adverb) filmed at 25 fps for 3 s (75 frames) as MPEG-1 videos, with word alignments. LipNet (Assael et al.,
2016, §4.1) crops the mouth and reads the sentence from the lip motion alone. This module writes a corpus with
the same files, read back by the recipe's GRID reader::

    root/s<k>/<name>.mpg                 grey lower-face video, FRAME_SIZE, n_frames at 25 fps (MPEG-1)
    root/alignments/s<k>/<name>.align    sil, the six words (with an occasional sp between them), sil
    root/generated.json                  the stamp of :func:`torchrepro.core.generated.publish_once`

``<name>`` is GRID's sentence code: the initials of command, colour, preposition and adverb around the letter
and the digit (``bin blue at f two now`` → ``bbaf2n``).

What makes it a lip-reading problem rather than a pattern-matching one:

* Words → phonemes → visemes. Each GRID word has an ARPAbet pronunciation (British: ``z`` is "zed", ``r`` is
  "ah", ``four`` has no r). Phonemes map onto 14 viseme classes after Jeffers and Barley ("Speechreading
  (Lipreading)", 1971): bilabial p/b/m, labiodental f/v, dental th/dh, alveolar t/d/n/l, sibilant s/z,
  post-alveolar sh/ch/jh, velar k/g/ng, r, w, and five vowel shapes. Diphthongs glide between two vowel shapes.
  Phonemes of one viseme class are *identical* on the lips, timing included (durations are drawn per viseme
  class), so the letters ``b``/``p``, ``d``/``t`` and ``l``/``n`` cannot be told apart, as in real lip reading.
* Visemes → mouth shape: six articulatory parameters (:data:`PARAMETERS`: opening, spread, rounding, teeth,
  tongue, lip press) with a target per viseme, scaled by the speaker's articulation strength.
* Coarticulation: the dominance model of Cohen and Massaro ("Modeling coarticulation in synthetic visual
  speech", 1993): each segment pulls every parameter towards its target with a dominance that decays
  exponentially away from the segment, and the trajectory is the dominance-weighted mean of the targets.
  Bilabial closure and labiodental contact dominate; alveolars and velars are weak and take their neighbours'
  shape; lip rounding is anticipated over a longer span. A viseme's shape thus depends on its context.
* Timing: phoneme durations with log-normal jitter, a per-speaker speaking rate and a per-video tempo, an
  occasional short pause (``sp``) between words, silence at both ends (speech starts at 12-35 % of the clip,
  as GRID's speech covers roughly frames 15-65). The ``.align`` intervals are the rendered segment boundaries.
* Rendering (vectorised over all frames): skin with a lighting gradient, nose and chin shading and a static
  texture (stubble for some speakers); lips as soft-edged (area-coverage anti-aliased) contours shaped by the
  parameters, with a cupid's bow and shaded upper/lower lip; the dark mouth cavity, upper and lower teeth and
  the tongue when visible; a shadow under the lower lip that follows the jaw. Per speaker: skin, lip, teeth
  and cavity grey levels, mouth width and opening, lip thickness, profile and cupid's bow, lighting, nostrils,
  nasolabial folds, moles, stubble, speaking rate and articulation strength, so an unseen speaker looks
  different. Per video: slow head motion (up to ±2.2 px sideways, ±1.3 px vertically, ±1.5°, ±6 % scale),
  a ±4 % brightness drift with 0.5 % flicker, and Gaussian sensor noise (σ 1-3 grey levels). The mouth stays
  inside :data:`MOUTH_BOX` in every frame (checked when rendering); nothing outside it moves with speech.

Every video is a pure function of ``(seed, speaker, sentence index)`` and a speaker's appearance and
sentence list of ``(seed, speaker)``, so a corpus is the same whatever its size or the order of generation.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from torchrepro.core.generated import publish_once
from torchrepro.lipreading.align import UNITS_PER_FRAME, format_align
from torchrepro.lipreading.vocabulary import GRID_SLOTS
from torchrepro.video.writer import write_video

__all__ = [
    "FPS", "FRAME_SIZE", "GENERATOR", "GENERATOR_VERSION", "MOUTH_BOX", "N_SENTENCES", "PARAMETERS",
    "PRONUNCIATIONS", "VISEMES", "VISEME_OF", "HeadMotion", "SpeakerLook", "SpokenSentence", "generate_corpus",
    "mouth_trajectory", "render_frames", "render_video", "sample_motion", "sample_spoken", "sentence_code",
    "speaker_look", "speaker_name", "speaker_sentences", "video_rng", "word_visemes",
]

GENERATOR = "lipnet-synthetic-grid"
#: Bump when the files would change, so that published corpora are regenerated.
GENERATOR_VERSION = 1
FPS = 25.0
#: (height, width) of the frames: a lower face, nose tip to chin; multiples of 16 suit MPEG-1's macroblocks
FRAME_SIZE: tuple[int, int] = (64, 96)
#: (top, bottom, left, right): the 32x64 mouth crop, rows top:bottom and columns left:right of a frame
MOUTH_BOX: tuple[int, int, int, int] = (26, 58, 16, 80)
#: the mouth parameters of :func:`mouth_trajectory`, in column order
PARAMETERS: tuple[str, ...] = ("open", "spread", "round", "teeth", "tongue", "press")

# Independent random streams of one seed.
_SPEAKER_STREAM, _SENTENCE_STREAM, _VIDEO_STREAM = 1, 2, 3
# Geometry bounds (pixels): the mouth's largest extents, used by the MOUTH_BOX check.
_LIP_ROW = 12.0  # the lip line's row inside MOUTH_BOX (more room below it: the jaw opens downwards)
_MAX_HEAD_SHIFT = (1.2, 0.8)  # largest head translation (x, y), on top of the per-video camera offset
_MAX_CAMERA_SHIFT = (1.0, 0.5)
_MAX_ROTATION = math.radians(1.5)
_MAX_SCALE = 0.03  # per-video camera distance and per-frame head scale, each at most ±3 %
_SUBSTEPS = 4  # trajectory samples per frame, averaged over the exposure

Rng = np.random.Generator

# --------------------------------------------------------------------------
# Pronunciations and visemes
# --------------------------------------------------------------------------

#: ARPAbet pronunciation of every GRID word (British English, as GRID's speakers; letters by their names)
PRONUNCIATIONS: dict[str, tuple[str, ...]] = {k: tuple(v.split()) for k, v in {
    "bin": "B IH N", "lay": "L EY", "place": "P L EY S", "set": "S EH T",
    "blue": "B L UW", "green": "G R IY N", "red": "R EH D", "white": "W AY T",
    "at": "AE T", "by": "B AY", "in": "IH N", "with": "W IH DH",
    "a": "EY", "b": "B IY", "c": "S IY", "d": "D IY", "e": "IY", "f": "EH F", "g": "JH IY", "h": "EY CH",
    "i": "AY", "j": "JH EY", "k": "K EY", "l": "EH L", "m": "EH M", "n": "EH N", "o": "OW", "p": "P IY",
    "q": "K Y UW", "r": "AA", "s": "EH S", "t": "T IY", "u": "Y UW", "v": "V IY", "x": "EH K S", "y": "W AY",
    "z": "Z EH D",
    "zero": "Z IH R OW", "one": "W AH N", "two": "T UW", "three": "TH R IY", "four": "F AO", "five": "F AY V",
    "six": "S IH K S", "seven": "S EH V AH N", "eight": "EY T", "nine": "N AY N",
    "again": "AH G EH N", "now": "N AW", "please": "P L IY Z", "soon": "S UW N",
}.items()}

#: viseme → (target of each of PARAMETERS, dominance of each, mean duration in frames). Targets: open 0-1 of
#: the speaker's largest opening, spread -1 (pursed) to 1 (smile), round/teeth/tongue/press 0-1. Dominance
#: (Cohen and Massaro 1993): how strongly a segment holds a parameter against its neighbours. "sil" is the
#: rest before and after the sentence, "pause" a short pause (sp) between words: a partial relaxation.
VISEMES: dict[str, tuple[tuple[float, ...], tuple[float, ...], float]] = {
    #                 open spread round teeth tongue press    dominance                     frames
    "sil":          ((0.00, 0.00, 0.00, 0.00, 0.00, 0.00), (2.0, 2.0, 2.0, 2.0, 2.0, 2.0), 4.0),
    "pause":        ((0.05, 0.00, 0.00, 0.00, 0.00, 0.00), (0.4, 0.4, 0.4, 0.4, 0.4, 0.4), 1.5),
    "bilabial":     ((0.00, 0.00, 0.00, 0.00, 0.00, 1.00), (4.0, 0.6, 0.4, 3.0, 3.0, 6.0), 2.3),
    "labiodental":  ((0.12, 0.15, 0.00, 1.00, 0.00, 0.00), (4.0, 0.8, 0.8, 5.0, 2.0, 2.0), 2.8),
    "dental":       ((0.28, 0.10, 0.00, 0.80, 1.00, 0.00), (2.5, 0.8, 0.6, 3.0, 5.0, 1.0), 2.5),
    "alveolar":     ((0.22, 0.20, 0.00, 0.60, 0.30, 0.00), (0.8, 0.4, 0.3, 0.8, 0.8, 1.0), 2.1),
    "sibilant":     ((0.15, 0.45, 0.00, 1.00, 0.00, 0.00), (2.0, 1.0, 0.6, 3.0, 1.5, 1.0), 2.8),
    "postalveolar": ((0.22, -0.40, 0.70, 0.90, 0.00, 0.00), (2.0, 2.5, 2.5, 2.5, 1.5, 1.0), 2.8),
    "velar":        ((0.35, 0.10, 0.00, 0.30, 0.00, 0.00), (0.6, 0.3, 0.3, 0.5, 0.8, 1.0), 2.1),
    "r":            ((0.25, -0.35, 0.60, 0.25, 0.00, 0.00), (1.0, 1.5, 1.5, 1.0, 1.0, 1.0), 2.1),
    "w":            ((0.10, -0.80, 1.00, 0.00, 0.00, 0.00), (2.5, 3.0, 3.0, 1.5, 1.0, 1.0), 2.1),
    "open":         ((1.00, 0.20, 0.00, 0.35, 0.15, 0.00), (2.5, 1.0, 1.0, 1.0, 1.0, 1.0), 3.4),
    "mid":          ((0.60, 0.40, 0.00, 0.55, 0.10, 0.00), (1.8, 1.0, 1.0, 1.0, 1.0, 1.0), 2.8),
    "spread":       ((0.28, 1.00, 0.00, 0.90, 0.00, 0.00), (1.2, 1.5, 1.0, 1.0, 1.0, 1.0), 2.8),
    "rounded":      ((0.30, -0.80, 0.95, 0.00, 0.00, 0.00), (1.2, 2.0, 2.0, 1.0, 1.0, 1.0), 3.2),
    "open_rounded": ((0.65, -0.40, 0.60, 0.10, 0.05, 0.00), (1.2, 1.5, 1.5, 1.0, 1.0, 1.0), 3.0),
}
# Dominance decay (per frame) of each parameter away from a segment: rounding spreads furthest (anticipation).
_DECAY = np.array([1.6, 1.0, 0.6, 1.3, 1.5, 1.6], dtype=np.float64)

#: ARPAbet phoneme → its viseme(s): a diphthong glides from the first shape to the second
VISEME_OF: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("P", "B", "M"), ("bilabial",)), **dict.fromkeys(("F", "V"), ("labiodental",)),
    **dict.fromkeys(("TH", "DH"), ("dental",)), **dict.fromkeys(("T", "D", "N", "L"), ("alveolar",)),
    **dict.fromkeys(("S", "Z"), ("sibilant",)), **dict.fromkeys(("SH", "ZH", "CH", "JH"), ("postalveolar",)),
    **dict.fromkeys(("K", "G", "NG"), ("velar",)), "R": ("r",), "W": ("w",), "Y": ("spread",),
    "AA": ("open",), "AE": ("open",), "AH": ("mid",), "EH": ("mid",), "IH": ("spread",), "IY": ("spread",),
    "UW": ("rounded",), "AO": ("open_rounded",), "AY": ("open", "spread"), "AW": ("open", "rounded"),
    "EY": ("mid", "spread"), "OW": ("open_rounded", "rounded"),
}

_TARGETS = {v: np.array(t) for v, (t, _, _) in VISEMES.items()}
_DOMINANCE = {v: np.array(d) for v, (_, d, _) in VISEMES.items()}


def word_visemes(word: str) -> list[tuple[str, ...]]:
    """The viseme(s) of each phoneme of ``word``."""
    return [VISEME_OF[p] for p in PRONUNCIATIONS[word]]


# --------------------------------------------------------------------------
# Sentences and names
# --------------------------------------------------------------------------

_SLOT_SIZES = tuple(len(slot) for slot in GRID_SLOTS)
N_SENTENCES = math.prod(_SLOT_SIZES)  # 64,000 distinct GRID sentences


def speaker_name(k: int) -> str:
    """GRID's speaker folder name: ``s1``, ``s2``, ... (1-based)."""
    return f"s{k}"


def sentence_code(words: list[str] | tuple[str, ...]) -> str:
    """GRID's file name of a sentence: initials of command, colour and preposition, the letter, the digit, the
    adverb's initial (``bin blue at f two now`` → ``bbaf2n``)."""
    command, colour, preposition, letter, digit, adverb = words
    return f"{command[0]}{colour[0]}{preposition[0]}{letter}{GRID_SLOTS[4].index(digit)}{adverb[0]}"


def _sentence(index: int) -> list[str]:
    """The GRID sentence numbered ``index`` in mixed radix over the slots."""
    words = []
    for slot, size in zip(reversed(GRID_SLOTS), reversed(_SLOT_SIZES)):
        index, i = divmod(index, size)
        words.append(slot[i])
    return words[::-1]


def _speaker_sentence_order(seed: int, k: int) -> np.ndarray:
    """Speaker k's sentences in drawing order: a seeded permutation of all of them, so the first n are drawn
    without replacement and do not depend on n."""
    return np.random.default_rng([seed, _SENTENCE_STREAM, k]).permutation(N_SENTENCES)


def speaker_sentences(speakers: int, sentences_per_speaker: int, seed: int) -> dict[str, list[list[str]]]:
    """The sentences of each speaker ``s1`` .. ``s<speakers>``, distinct within a speaker, in index order."""
    if not 0 < sentences_per_speaker <= N_SENTENCES:
        raise ValueError(f"sentences_per_speaker must be in 1..{N_SENTENCES}, got {sentences_per_speaker}")
    return {speaker_name(k): [_sentence(int(i)) for i in _speaker_sentence_order(seed, k)[:sentences_per_speaker]]
            for k in range(1, speakers + 1)}


# --------------------------------------------------------------------------
# Speakers, timing, head motion
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class SpeakerLook:
    """A speaker's appearance and manner (pixels, grey levels 0-255); a function of (seed, speaker)."""

    skin: float
    lip: float  # lip grey relative to the skin (negative: darker)
    teeth: float
    cavity: float
    half_width: float  # mouth half-width at rest
    max_open: float  # inner-lip opening at "open" = 1
    upper_lip: float  # lip thicknesses at the centre
    lower_lip: float
    profile: float  # exponent of the lip contour: small = blunt corners, large = pointed
    bow: float  # depth of the cupid's bow
    centre_x: float  # mouth centre offset from the frame's centre column
    light: tuple[float, float]  # lighting gradient (grey levels across the frame, x and y)
    stubble: float  # darkness of a stubble texture (0: clean-shaven)
    nostrils: tuple[float, float]  # half-gap between the nostrils, their darkness
    folds: tuple[float, float, float]  # nasolabial folds: offset from the mouth's centre, slope, darkness
    moles: tuple[tuple[float, float, float], ...]  # (row, column, darkness) of small dark spots
    texture_seed: int
    rate: float  # duration multiplier (< 1: fast speaker)
    articulation: float  # how far the mouth moves towards each target
    rest_spread: float


def speaker_look(seed: int, k: int) -> SpeakerLook:
    """Speaker k's appearance, drawn from its own stream of ``seed``."""
    rng = np.random.default_rng([seed, _SPEAKER_STREAM, k])
    u = rng.uniform
    skin = u(90.0, 190.0)
    return SpeakerLook(
        skin=skin, lip=u(-70.0, -30.0), teeth=min(245.0, skin + u(15.0, 50.0)), cavity=u(12.0, 40.0),
        half_width=u(16.0, 20.0), max_open=u(7.0, 9.5), upper_lip=u(2.8, 4.0), lower_lip=u(3.2, 4.8),
        profile=u(0.45, 0.8), bow=u(0.0, 1.0), centre_x=u(-1.5, 1.5), light=(u(-30.0, 30.0), u(-20.0, 20.0)),
        stubble=u(10.0, 25.0) if u() < 0.3 else 0.0, texture_seed=int(rng.integers(2**31)),
        rate=u(0.85, 1.15), articulation=u(0.8, 1.1), rest_spread=u(-0.15, 0.15),
        nostrils=(u(5.0, 9.0), u(25.0, 60.0)), folds=(u(17.0, 24.0), u(0.15, 0.45), u(4.0, 18.0)),
        moles=tuple((u(4.0, FRAME_SIZE[0] - 4.0), u(8.0, FRAME_SIZE[1] - 8.0), u(20.0, 50.0))
                    for _ in range(int(rng.integers(0, 4)))),
    )


@dataclass(frozen=True, eq=False)
class SpokenSentence:
    """The rendered segments of one spoken sentence (a viseme each, "sil" at both ends, "pause" for an sp) and
    their boundaries in alignment units; ``intervals`` are the ``.align`` lines (words, sil and sp)."""

    words: tuple[str, ...]
    visemes: tuple[str, ...]  # one per rendered segment (a diphthong is two)
    bounds: np.ndarray  # (len(visemes) + 1,) int64 alignment units, from 0 to n_frames * UNITS_PER_FRAME
    intervals: tuple[tuple[int, int, str], ...]

    @property
    def n_frames(self) -> int:
        """Frames the sentence's clip lasts."""
        return int(self.bounds[-1]) // UNITS_PER_FRAME


def sample_spoken(words: list[str] | tuple[str, ...], rng: Rng, look: SpeakerLook, n_frames: int) -> SpokenSentence:
    """Time ``words`` as spoken by ``look``: durations are drawn per viseme class, never per phoneme, and the
    number of draws depends on the segment count only, so look-alike words get the same timing."""
    segments: list[tuple[str, int]] = []  # (viseme, word position or -1 for an sp)
    means: list[float] = []  # mean durations in frames: each half of a diphthong 60 % of its viseme's
    for w, word in enumerate(words):
        if w > 0 and rng.uniform() < 0.15:
            segments.append(("pause", -1))
            means.append(VISEMES["pause"][2])
        for phone in word_visemes(word):
            segments += [(v, w) for v in phone]
            means += [VISEMES[v][2] * (0.6 if len(phone) > 1 else 1.0) for v in phone]
    tempo = look.rate * rng.normal(1.0, 0.05)
    durations = np.maximum(np.array(means) * tempo * rng.lognormal(0.0, 0.2, len(segments)), 0.6)
    lead_lo, tail = 0.12 * n_frames, 0.08 * n_frames
    budget = n_frames - lead_lo - tail
    if durations.sum() > budget:  # a slow speaker on a long sentence: speed up to fit
        durations *= budget / durations.sum()
    lead_hi = max(lead_lo, min(0.35 * n_frames, n_frames - tail - durations.sum()))
    start = rng.uniform(lead_lo, lead_hi)
    frames = np.concatenate([[0.0], start + np.concatenate([[0.0], np.cumsum(durations)]), [float(n_frames)]])
    bounds = np.round(frames * UNITS_PER_FRAME).astype(np.int64)
    visemes = ("sil", *(v for v, _ in segments), "sil")
    return SpokenSentence(tuple(words), visemes, bounds, _intervals(words, segments, bounds))


def _intervals(words: list[str] | tuple[str, ...], segments: list[tuple[str, int]],
               bounds: np.ndarray) -> tuple[tuple[int, int, str], ...]:
    """The ``.align`` lines: a word spans its segments, an sp its pause, sil the two ends."""
    out = [(0, int(bounds[1]), "sil")]
    i = 0
    while i < len(segments):
        j = i
        while j + 1 < len(segments) and segments[j + 1][1] == segments[i][1] and segments[i][1] >= 0:
            j += 1
        label = words[segments[i][1]] if segments[i][1] >= 0 else "sp"
        out.append((int(bounds[i + 1]), int(bounds[j + 2]), label))
        i = j + 1
    out.append((int(bounds[-2]), int(bounds[-1]), "sil"))
    return tuple(out)


@dataclass(frozen=True, eq=False)
class HeadMotion:
    """Per-frame nuisances of one video: head pose (pixels, radians, scale), brightness gain, noise."""

    shift: np.ndarray  # (T, 2) x, y
    angle: np.ndarray  # (T,)
    scale: np.ndarray  # (T,)
    gain: np.ndarray  # (T,)
    noise_sigma: float
    noise_seed: int


def _slow_wave(rng: Rng, n_frames: int, amplitude: float) -> np.ndarray:
    """A smooth random path within ±amplitude: two sinusoids of 0.1-0.5 cycles per second plus a drift."""
    t = np.arange(n_frames) / FPS
    freq, phase, weight = rng.uniform(0.1, 0.5, 2), rng.uniform(0, 2 * np.pi, 2), rng.uniform(-1, 1, 3)
    path = weight[0] * np.sin(2 * np.pi * freq[0] * t + phase[0]) + weight[1] * np.sin(
        2 * np.pi * freq[1] * t + phase[1]) + weight[2] * np.linspace(-1, 1, n_frames)
    return amplitude * path / 3.0


def sample_motion(rng: Rng, n_frames: int) -> HeadMotion:
    """Draw a video's head motion, brightness drift and flicker and sensor noise level."""
    camera = rng.uniform(-1, 1, 2) * _MAX_CAMERA_SHIFT
    shift = np.stack([camera[0] + _slow_wave(rng, n_frames, _MAX_HEAD_SHIFT[0]),
                      camera[1] + _slow_wave(rng, n_frames, _MAX_HEAD_SHIFT[1])], axis=1)
    angle = _slow_wave(rng, n_frames, _MAX_ROTATION)
    scale = 1.0 + rng.uniform(-_MAX_SCALE, _MAX_SCALE) + _slow_wave(rng, n_frames, _MAX_SCALE)
    gain = 1.0 + np.linspace(*rng.uniform(-0.04, 0.04, 2), n_frames) + rng.normal(0.0, 0.005, n_frames)
    return HeadMotion(shift, angle, scale, gain, float(rng.uniform(1.0, 3.0)), int(rng.integers(2**63)))


# --------------------------------------------------------------------------
# Mouth trajectories (coarticulation)
# --------------------------------------------------------------------------


def mouth_trajectory(spoken: SpokenSentence, look: SpeakerLook) -> np.ndarray:
    """The mouth parameters (:data:`PARAMETERS`) of every frame, ``(n_frames, 6)``: Cohen and Massaro's (1993)
    dominance-weighted blend of the segments' targets, averaged over each frame's exposure.

    A segment's dominance is its viseme's at every instant of the segment and decays as exp(-decay * d) at a
    distance of d frames outside it; rounding decays slowest, so it is anticipated furthest.
    """
    n = spoken.n_frames
    t = (np.arange(n * _SUBSTEPS) + 0.5) / _SUBSTEPS  # sample instants in frames
    edges = spoken.bounds / UNITS_PER_FRAME
    distance = np.maximum(edges[:-1, None] - t, 0.0) + np.maximum(t - edges[1:, None], 0.0)  # (S, N)
    targets = np.stack([_TARGETS[v] for v in spoken.visemes])  # (S, P)
    alpha = np.stack([_DOMINANCE[v] for v in spoken.visemes])
    weight = alpha[:, None, :] * np.exp(-distance[:, :, None] * _DECAY)  # (S, N, P)
    blend = (weight * targets[:, None, :]).sum(0) / weight.sum(0)
    rest = np.array([0.0, look.rest_spread, 0.0, 0.0, 0.0, 0.0])
    params = rest + look.articulation * (blend - _TARGETS["sil"])
    return params.reshape(n, _SUBSTEPS, -1).mean(1)


# --------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------


def _mouth_centre(look: SpeakerLook) -> tuple[float, float]:
    """(row, column) of the lip line's centre in the frame (pixel centres at integer coordinates)."""
    return MOUTH_BOX[0] + _LIP_ROW, (MOUTH_BOX[2] + MOUTH_BOX[3]) / 2 - 0.5 + look.centre_x


@functools.lru_cache(maxsize=16)
def _face(look: SpeakerLook) -> np.ndarray:
    """The speaker's lower face without the mouth, float32 (H, W): skin, light, nose, chin, texture."""
    h, w = FRAME_SIZE
    cy, cx = _mouth_centre(look)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    face = np.full((h, w), look.skin, np.float32)
    face += look.light[0] * (x / w - 0.5) + look.light[1] * (y / h - 0.5)
    # Nose: a bright tip and two dark nostrils at the top; a dark philtrum groove; nasolabial folds.
    face += 18 * np.exp(-((x - cx) ** 2 / 120 + (y - 4) ** 2 / 40))
    gap, nostril = look.nostrils
    offset, slope, fold_dark = look.folds
    for side in (-1, 1):
        face -= nostril * np.exp(-((x - cx - side * gap) ** 2 / 8 + (y - 11) ** 2 / 3))
        fold = cx + side * (offset + slope * (y - cy) + 0.004 * (y - 10) ** 2)  # curves outwards to the chin
        face -= fold_dark * np.exp(-((x - fold) ** 2) / 2.5) * np.exp(-((y - 30) ** 2) / 250) * (y > 12)
    for row, col, dark in look.moles:
        face -= dark * np.exp(-((x - col) ** 2 + (y - row) ** 2) / 1.2)
    face -= 6 * np.exp(-((x - cx) ** 2 / 6 + (y - (cy - 8)) ** 2 / 12))
    # Chin: darker towards the jaw line at the bottom corners.
    face -= 20 * np.clip(((x - cx) / 45) ** 2 + ((y - h) / 30) ** 2 - 0.25, 0, 1) * np.clip((y - cy - 12) / 8, 0, 1)
    tex = np.random.default_rng(look.texture_seed)
    face += cv2.GaussianBlur(tex.normal(0, 6, (h, w)).astype(np.float32), (0, 0), 2.0)
    if look.stubble:
        region = np.exp(-(((x - cx) / 26) ** 2 + ((y - cy - 4) / 22) ** 2) ** 2)
        face -= look.stubble * region * tex.uniform(0.3, 1.0, (h, w)).astype(np.float32)
    face.flags.writeable = False  # shared by every video of the speaker through the cache
    return face


def _coverage(y: np.ndarray, top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """Fraction of each pixel [y - 0.5, y + 0.5] inside the vertical interval [top, bottom] (anti-aliasing)."""
    return np.clip(np.minimum(y + 0.5, bottom) - np.maximum(y - 0.5, top), 0.0, 1.0)


def _profile(x: np.ndarray, half: np.ndarray, exponent: float) -> np.ndarray:
    """1 at the centre falling to 0 at ±half: the shape of a lip contour."""
    return np.clip(1.0 - (x / half) ** 2, 0.0, None) ** exponent


def _mouth_geometry(look: SpeakerLook, params: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame contour sizes (pixels), each (T, 1, 1), from the mouth parameters."""
    p = {name: params[:, i, None, None].astype(np.float32) for i, name in enumerate(PARAMETERS)}
    opening = look.max_open * np.clip(p["open"], 0.0, None)
    half = look.half_width * (1.0 + 0.16 * p["spread"] - 0.22 * p["round"])
    thick = 1.0 + 0.35 * p["round"] - 0.3 * p["press"] - 0.1 * np.clip(p["spread"], 0.0, None)
    return {
        "half": half, "inner_half": half * (0.82 - 0.3 * p["round"]) + 0.8 * opening * p["round"],
        "up": 0.3 * opening, "down": 0.7 * opening,
        "upper_lip": look.upper_lip * thick, "lower_lip": look.lower_lip * (thick - 0.2 * p["teeth"] * (1 - p["open"])),
        "seam": 0.35 * (1.0 - p["press"]), "teeth": p["teeth"], "tongue": p["tongue"], "open": p["open"],
    }


def _mouth_extent(look: SpeakerLook, g: dict[str, np.ndarray]) -> tuple[float, float, float]:
    """Largest (upward, downward, sideways) reach of the mouth's drawing from the lip line's centre."""
    up = float((g["up"] + g["upper_lip"]).max())
    down = float((g["down"] + g["lower_lip"]).max()) + 2.5  # the shadow below the lower lip
    return up + 0.5, down + 0.5, float(g["half"].max()) + 0.5


def _check_in_box(look: SpeakerLook, g: dict[str, np.ndarray], motion: HeadMotion) -> None:
    """Fail loudly if the head pose could carry any mouth pixel outside MOUTH_BOX (a generator bug): the mouth
    spans [-side, side] x [-up, down] about its centre, which is rotated, scaled and shifted."""
    up, down, side = _mouth_extent(look, g)
    top, bottom, left, right = MOUTH_BOX
    cy, cx = _mouth_centre(look)
    s, r = float(motion.scale.max()), float(np.abs(motion.angle).max())
    dx, dy = np.abs(motion.shift).max(0) + 1.0  # + 1: the bilinear warp's support
    above = s * (up * math.cos(r) + side * math.sin(r)) + dy
    below = s * (down * math.cos(r) + side * math.sin(r)) + dy
    across = s * (side * math.cos(r) + max(up, down) * math.sin(r)) + dx
    if cy - above < top or cy + below > bottom - 1 or cx - across < left or cx + across > right - 1:
        raise AssertionError(f"synthetic mouth leaves MOUTH_BOX (extent up {up:.1f} down {down:.1f} side "
                             f"{side:.1f}, scale {s:.3f}): shrink the mouth or the head motion")


def _draw_mouth(face: np.ndarray, look: SpeakerLook, params: np.ndarray) -> np.ndarray:
    """``(T, 32, 64)`` float32: the MOUTH_BOX region of the face with the mouth of each frame drawn on it."""
    top, bottom, left, right = MOUTH_BOX
    cy, cx = _mouth_centre(look)
    g = _mouth_geometry(look, params)
    y = (np.arange(top, bottom, dtype=np.float32) - cy)[None, :, None]
    x = (np.arange(left, right, dtype=np.float32) - cx)[None, None, :]
    outer = _profile(x, g["half"], look.profile)
    inner = _profile(x, g["inner_half"], 0.6)
    bow = look.bow * np.exp(-(x / (0.15 * g["half"])) ** 2) * outer
    inner_top, inner_bottom = -g["up"] * inner, g["down"] * inner
    outer_top = inner_top - g["upper_lip"] * outer + bow
    outer_bottom = inner_bottom + g["lower_lip"] * outer
    img = np.broadcast_to(face[top:bottom, left:right], (len(params), bottom - top, right - left)).copy()
    # Shadow under the lower lip (it follows the jaw), then the lips: upper lip darker, lower lip with a highlight.
    shade = np.clip(1.0 - ((y - outer_bottom - 1.0) / 1.5) ** 2, 0.0, None) ** 2 * _profile(x, g["half"] * 0.8, 1.0)
    img -= 14.0 * shade
    lip = look.skin + look.lip + 7.0 * np.tanh((y - 0.5 * (inner_top + inner_bottom)) / 0.8)
    lip += 10.0 * np.exp(-((y - inner_bottom - 0.5 * g["lower_lip"] * outer) / (0.3 * g["lower_lip"] + 0.3)) ** 2)
    lips = _coverage(y, outer_top, outer_bottom)
    img += lips * (lip - img)
    # The cavity (a thin dark seam when the lips touch unpressed), the tongue, then the teeth over it.
    seam = g["seam"] * inner
    cavity = _coverage(y, inner_top - seam, inner_bottom + seam)
    img += cavity * (look.cavity - img)
    tongue_height = g["tongue"] * 0.6 * (g["up"] + g["down"]) * _profile(x, g["inner_half"] * 0.7, 0.5)
    tongue = np.minimum(cavity, _coverage(y, inner_bottom - tongue_height, inner_bottom + 1.0))
    img += tongue * (look.skin + look.lip + 15.0 - img)
    teeth_row = _profile(x, g["inner_half"] * 0.85, 0.3)
    upper = np.minimum(cavity, _coverage(y, inner_top - 1.0, inner_top + 1.7 * g["teeth"]) * teeth_row)
    img += upper * (look.teeth - img)
    lower_teeth = _coverage(y, inner_bottom - 0.9 * g["teeth"] * g["open"], inner_bottom + 1.0)  # show when open
    lower = np.minimum(cavity, lower_teeth * teeth_row)
    img += lower * (look.teeth - 20.0 - img)
    return img


def render_frames(look: SpeakerLook, params: np.ndarray, motion: HeadMotion) -> np.ndarray:
    """The video of mouth parameters ``params`` (T, 6) as uint8 ``(T, *FRAME_SIZE)`` grey frames."""
    top, bottom, left, right = MOUTH_BOX
    h, w = FRAME_SIZE
    _check_in_box(look, _mouth_geometry(look, params), motion)
    face = _face(look)
    frames = np.broadcast_to(face, (len(params), h, w)).copy()
    frames[:, top:bottom, left:right] = _draw_mouth(face, look, params)
    cy, cx = _mouth_centre(look)
    out = np.empty_like(frames)
    for t, frame in enumerate(frames):  # head pose: rotate and scale about the mouth, then translate
        m = cv2.getRotationMatrix2D((cx, cy), math.degrees(motion.angle[t]), float(motion.scale[t]))
        m[:, 2] += motion.shift[t]
        cv2.warpAffine(frame, m, (w, h), dst=out[t], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    out *= motion.gain[:, None, None].astype(np.float32)
    noise = np.random.default_rng(motion.noise_seed).standard_normal(out.shape, dtype=np.float32)
    out += noise * np.float32(motion.noise_sigma) + np.float32(0.5)  # + 0.5: round to nearest
    return np.clip(out, 0.0, 255.0, out=out).astype(np.uint8)


def video_rng(seed: int, k: int, index: int) -> Rng:
    """The generator of speaker k's video ``index``: a function of these three numbers only."""
    return np.random.default_rng([seed, _VIDEO_STREAM, k, index])


def render_video(seed: int, k: int, index: int, words: list[str] | tuple[str, ...],
                 n_frames: int = 75) -> tuple[np.ndarray, SpokenSentence]:
    """Speaker k saying ``words`` as its video ``index``: uint8 frames ``(n_frames, *FRAME_SIZE)`` and timing.

    The nuisances are drawn before the timing, so two sentences rendered with the same (seed, k, index) share
    head motion, lighting and noise, and look-alike sentences render identically.
    """
    look = speaker_look(seed, k)
    rng = video_rng(seed, k, index)
    motion = sample_motion(rng, n_frames)
    spoken = sample_spoken(words, rng, look, n_frames)
    return render_frames(look, mouth_trajectory(spoken, look), motion), spoken


# --------------------------------------------------------------------------
# Writing the corpus
# --------------------------------------------------------------------------


def _is_intact(root: Path, stamp: dict[str, Any]) -> bool:
    """True if every listed video and alignment is there."""
    files = stamp.get("files")
    return isinstance(files, list) and all((root / f).is_file() for f in files)


def generate_corpus(root: Path, *, speakers: int, sentences_per_speaker: int, seed: int,
                    n_frames: int = 75) -> Path:
    """Publish the corpus of speakers ``s1`` .. ``s<speakers>`` under ``root`` (layout in the module docstring)
    and return ``root``. A corpus stamped with the same parameters and generator version is reused as it is.
    """
    if speakers < 1 or seed < 0 or n_frames < 20:
        raise ValueError(f"need speakers >= 1, seed >= 0, n_frames >= 20; got {speakers}, {seed}, {n_frames}")
    sentences = speaker_sentences(speakers, sentences_per_speaker, seed)
    params = {"speakers": speakers, "sentences_per_speaker": sentences_per_speaker, "seed": seed,
              "n_frames": n_frames, "frame_size": list(FRAME_SIZE)}

    def write(tmp: Path) -> dict[str, Any]:
        files = []
        for k in range(1, speakers + 1):
            name = speaker_name(k)
            (tmp / "alignments" / name).mkdir(parents=True)
            for index, words in enumerate(sentences[name]):
                frames, spoken = render_video(seed, k, index, words, n_frames)
                code = sentence_code(words)
                write_video(tmp / name / f"{code}.mpg", frames, FPS)
                (tmp / "alignments" / name / f"{code}.align").write_text(format_align(spoken.intervals))
                files += [f"{name}/{code}.mpg", f"alignments/{name}/{code}.align"]
        return {"files": files}

    # MPEG-1 of a noisy 64x96 grey clip is ~15 KB for 75 frames; budget 64 KB per video plus its alignment.
    bytes_needed = speakers * sentences_per_speaker * (n_frames * 1024 + 4096) + 65536
    publish_once(Path(root), write, generator=GENERATOR, version=GENERATOR_VERSION, params=params,
                 bytes_needed=bytes_needed, config_key="data.synthetic_dir", intact=_is_intact)
    return Path(root)

