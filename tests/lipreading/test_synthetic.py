"""The synthetic GRID-layout talking-mouth corpus: layout, alignments, determinism, visemes and rendered motion."""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from pathlib import Path

import numpy as np
import pytest

from torchrepro.lipreading import synthetic
from torchrepro.lipreading.align import UNITS_PER_FRAME, read_align
from torchrepro.lipreading.synthetic import (
    FRAME_SIZE,
    MOUTH_BOX,
    PRONUNCIATIONS,
    VISEME_OF,
    HeadMotion,
    SpokenSentence,
    generate_corpus,
    mouth_trajectory,
    render_frames,
    render_video,
    sample_motion,
    sample_spoken,
    sentence_code,
    speaker_look,
    speaker_sentences,
    video_rng,
)
from torchrepro.lipreading.vocabulary import GRID_SLOTS, GRID_WORDS, is_grid_sentence
from torchrepro.video.frames import num_frames, read_frames

SEED = 3
SENTENCE = ["bin", "blue", "at", "b", "two", "now"]


def _with_letter(letter: str) -> list[str]:
    return [*SENTENCE[:3], letter, *SENTENCE[4:]]


def _box(frames: np.ndarray) -> np.ndarray:
    top, bottom, left, right = MOUTH_BOX
    return frames[:, top:bottom, left:right].astype(np.float64)


def _motion_energy(frames: np.ndarray) -> np.ndarray:
    """Mean squared frame difference inside MOUTH_BOX, per frame transition."""
    return (np.diff(_box(frames), axis=0) ** 2).mean(axis=(1, 2))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_corpus(tmp_path_factory.mktemp("grid") / "corpus", speakers=2, sentences_per_speaker=3,
                           seed=SEED)


# ---------------------------------------------------------------- grammar and names


def test_every_grid_word_has_a_pronunciation_of_known_visemes() -> None:
    assert set(PRONUNCIATIONS) == GRID_WORDS
    assert all(phone in VISEME_OF for phones in PRONUNCIATIONS.values() for phone in phones)
    assert all(v in synthetic.VISEMES for visemes in VISEME_OF.values() for v in visemes)


def test_sentence_codes_are_grid_names_and_unique() -> None:
    assert sentence_code(["bin", "blue", "at", "f", "two", "now"]) == "bbaf2n"
    assert sentence_code(["set", "white", "with", "z", "zero", "soon"]) == "swwz0s"
    codes = {sentence_code(words) for words in itertools.product(*GRID_SLOTS)}
    assert len(codes) == synthetic.N_SENTENCES == 64000


def test_speaker_sentences_are_distinct_and_a_prefix_of_larger_corpora() -> None:
    small = speaker_sentences(2, 3, SEED)
    big = speaker_sentences(3, 300, SEED)
    assert list(small) == ["s1", "s2"] and list(big) == ["s1", "s2", "s3"]
    for name, sentences in small.items():
        assert sentences == big[name][:3]
    for sentences in big.values():
        assert all(is_grid_sentence(s) for s in sentences)
        assert len({tuple(s) for s in sentences}) == 300  # drawn without replacement
    assert big["s1"] != big["s2"]
    assert speaker_sentences(1, 5, SEED + 1)["s1"] != big["s1"][:5]


# ---------------------------------------------------------------- the corpus on disk


def test_corpus_layout_alignments_and_videos(corpus: Path) -> None:
    sentences = speaker_sentences(2, 3, SEED)
    assert sorted(p.name for p in corpus.iterdir()) == ["alignments", "generated.json", "s1", "s2"]
    for name, spoken in sentences.items():
        videos = sorted(p.stem for p in (corpus / name).glob("*.mpg"))
        aligns = sorted(p.stem for p in (corpus / "alignments" / name).glob("*.align"))
        assert videos == aligns == sorted(sentence_code(s) for s in spoken)
        for words in spoken:
            code = sentence_code(words)
            alignment = read_align(corpus / "alignments" / name / f"{code}.align")
            assert alignment.words == words and is_grid_sentence(alignment.words)
            intervals = alignment.intervals
            assert intervals[0][:1] == (0,) and intervals[0][2] == "sil" and intervals[-1][2] == "sil"
            assert intervals[-1][1] == 75 * UNITS_PER_FRAME
            assert all(a[1] == b[0] for a, b in zip(intervals, intervals[1:]))  # contiguous
            assert {w for _, _, w in intervals} <= GRID_WORDS | {"sil", "sp"}
            start, end = intervals[1][0] / UNITS_PER_FRAME, intervals[-1][0] / UNITS_PER_FRAME
            assert 9 <= start <= 26.25 and end <= 69 and end - start >= 25  # silence at both ends, as in GRID
    video = corpus / "s1" / f"{sentence_code(sentences['s1'][0])}.mpg"
    assert num_frames(video) == 75
    frames = read_frames(video, range(75))
    assert frames.shape == (75, *FRAME_SIZE, 3)
    rendered, _ = render_video(SEED, 1, 0, sentences["s1"][0])
    decoded = frames[..., 1].astype(np.float64)
    assert np.sqrt(((decoded - rendered) ** 2).mean()) < 6.0  # MPEG-1 kept the content (noise aside)


def test_published_corpus_is_reused(corpus: Path) -> None:
    stamp = json.loads((corpus / "generated.json").read_text())
    assert stamp["version"] == synthetic.GENERATOR_VERSION and len(stamp["files"]) == 12
    video = next((corpus / "s2").glob("*.mpg"))
    before = video.stat().st_mtime_ns
    assert generate_corpus(corpus, speakers=2, sentences_per_speaker=3, seed=SEED) == corpus
    assert video.stat().st_mtime_ns == before


def test_a_video_does_not_depend_on_corpus_size(corpus: Path, tmp_path: Path) -> None:
    bigger = generate_corpus(tmp_path / "bigger", speakers=3, sentences_per_speaker=4, seed=SEED)
    for name in ("s1", "s2"):
        for path in sorted((corpus / name).glob("*.mpg")):
            other = bigger / name / path.name
            assert np.array_equal(read_frames(path, range(75)), read_frames(other, range(75)))
            align = Path("alignments") / name / f"{path.stem}.align"
            assert (corpus / align).read_text() == (bigger / align).read_text()


# ---------------------------------------------------------------- rendering


def test_render_is_deterministic_and_seeded() -> None:
    a, ua = render_video(SEED, 2, 7, SENTENCE)
    b, ub = render_video(SEED, 2, 7, SENTENCE)
    assert a.dtype == np.uint8 and a.shape == (75, *FRAME_SIZE)
    assert np.array_equal(a, b) and ua.intervals == ub.intervals
    c, uc = render_video(SEED + 1, 2, 7, SENTENCE)
    d, _ = render_video(SEED, 2, 8, SENTENCE)
    assert np.abs(a.astype(int) - c).mean() > 1.0 and np.abs(a.astype(int) - d).mean() > 1.0
    assert uc.intervals != ua.intervals


@pytest.mark.parametrize("letters", [("b", "p"), ("d", "t"), ("l", "n")])
def test_look_alike_words_render_identically(letters: tuple[str, str]) -> None:
    """b/p (bilabials), d/t and l/n (alveolars) differ only in sounds the lips do not show."""
    first, second = (render_video(SEED, 1, 4, _with_letter(x)) for x in letters)
    assert np.array_equal(first[0], second[0])
    look = speaker_look(SEED, 1)
    assert np.array_equal(mouth_trajectory(first[1], look), mouth_trajectory(second[1], look))
    assert [i[:2] for i in first[1].intervals] == [i[:2] for i in second[1].intervals]
    assert first[1].words != second[1].words


@pytest.mark.parametrize("letters", [("b", "v"), ("c", "d"), ("b", "j")])
def test_distinct_visemes_render_differently(letters: tuple[str, str]) -> None:
    (fa, ua), (fb, ub) = (render_video(SEED, 1, 4, _with_letter(x)) for x in letters)
    look = speaker_look(SEED, 1)
    ta, tb = mouth_trajectory(ua, look), mouth_trajectory(ub, look)
    letter = next(i for i in ua.intervals if i[2] == letters[0])
    during = slice(letter[0] // UNITS_PER_FRAME, -(-letter[1] // UNITS_PER_FRAME))
    assert np.abs(ta[during] - tb[during]).max() > 0.2  # a parameter moved by a fifth of its range
    assert np.abs(_box(fa)[during] - _box(fb)[during]).mean() > 0.7


def test_coarticulation_anticipates_lip_rounding() -> None:
    """The B of "blue" (before L UW) is rounder and less spread than the B of "bin" (before IH), while both keep
    the lips pressed shut: anticipatory lip rounding (Benguerel and Cowan 1974), from the dominance model."""
    for k in (1, 2):
        look = speaker_look(SEED, k)
        spoken = sample_spoken(SENTENCE, np.random.default_rng(k), look, 75)
        trajectory = mouth_trajectory(spoken, look)
        bin_b, blue_b = (trajectory[int((spoken.bounds[i] + spoken.bounds[i + 1]) / 2 / UNITS_PER_FRAME)]
                         for i in [i for i, v in enumerate(spoken.visemes) if v == "bilabial"][:2])
        for b in (bin_b, blue_b):
            assert b[0] < 0.1 and b[5] > 0.7  # closed and pressed
        assert blue_b[2] > bin_b[2] + 0.1 and blue_b[1] < bin_b[1] - 0.05


def test_mouth_moves_during_words_and_rests_during_silence() -> None:
    """Frame-difference energy in MOUTH_BOX: large while speaking, tiny in the silences at both ends (head motion
    only: brightness flicker and sensor noise left out), and well above the nose region's while speaking."""
    top = MOUTH_BOX[0]
    for k in (1, 2, 3):
        words = speaker_sentences(k, 1, SEED)[f"s{k}"][0]
        look = speaker_look(SEED, k)
        rng = video_rng(SEED, k, 0)
        motion = dataclasses.replace(sample_motion(rng, 75), gain=np.ones(75), noise_sigma=0.0)
        spoken = sample_spoken(words, rng, look, 75)
        frames = render_frames(look, mouth_trajectory(spoken, look), motion)
        energy = _motion_energy(frames)
        start = spoken.intervals[1][0] / UNITS_PER_FRAME
        end = spoken.intervals[-1][0] / UNITS_PER_FRAME
        silent = np.r_[0:int(start) - 3, int(end) + 4:74]
        speaking = np.r_[int(start) + 1:int(end) - 1]
        assert energy[speaking].mean() > 20 * energy[silent].mean(), (k, energy[speaking].mean(), energy[silent])
        nose = (np.diff(frames[:, :top].astype(np.float64), axis=0) ** 2).mean(axis=(1, 2))
        assert energy[speaking].mean() > 20 * nose[speaking].mean()
    # With the noise, speech still stands out clearly.
    frames, spoken = render_video(SEED, 1, 0, speaker_sentences(1, 1, SEED)["s1"][0])
    energy = _motion_energy(frames)
    start, end = spoken.intervals[1][0] // UNITS_PER_FRAME, spoken.intervals[-1][0] // UNITS_PER_FRAME
    assert energy[start + 1:end - 1].mean() > 2 * np.r_[energy[:start - 3], energy[end + 4:]].mean()


def test_the_mouth_stays_inside_mouth_box() -> None:
    """The same video with the mouth held at rest differs from the spoken one only inside MOUTH_BOX."""
    top, bottom, left, right = MOUTH_BOX
    assert (bottom - top, right - left) == (32, 64) and bottom <= FRAME_SIZE[0] and right <= FRAME_SIZE[1]
    for k in range(1, 7):
        look = speaker_look(SEED, k)
        rng = video_rng(SEED, k, 0)
        motion = sample_motion(rng, 75)
        spoken = mouth_trajectory(sample_spoken(["lay", "white", "by", "a", "eight", "again"], rng, look, 75), look)
        rest = np.tile(spoken[0], (75, 1))
        difference = np.abs(render_frames(look, spoken, motion).astype(int) - render_frames(look, rest, motion))
        assert difference[:, top:bottom, left:right].max() > 50
        difference[:, top:bottom, left:right] = 0
        assert difference.max() == 0


def test_speakers_look_different() -> None:
    """Every pair of speakers' resting mouth regions differ, even with the overall grey level taken out."""
    still = HeadMotion(np.zeros((1, 2)), np.zeros(1), np.ones(1), np.ones(1), 0.0, 0)
    boxes = {}
    for k in range(1, 9):
        look = speaker_look(SEED, k)
        assert look == speaker_look(SEED, k)
        boxes[k] = _box(render_frames(look, mouth_trajectory(_silence(), look), still))[0]
        boxes[k] -= boxes[k].mean()
    for a, b in itertools.combinations(boxes, 2):
        assert np.abs(boxes[a] - boxes[b]).mean() > 2.0, (a, b)


def _silence() -> SpokenSentence:
    """One frame of silence: the mouth at rest."""
    return SpokenSentence((), ("sil",), np.array([0, UNITS_PER_FRAME]), ((0, UNITS_PER_FRAME, "sil"),))


def test_generation_is_fast() -> None:
    start = time.perf_counter()
    for index in range(5):
        render_video(SEED, 1, index, SENTENCE)
    assert (time.perf_counter() - start) / 5 < 0.1  # ~15 ms on one core; generous for loaded machines
