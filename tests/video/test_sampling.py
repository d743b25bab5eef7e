"""TSN segment sampling (torchrepro.video.sampling) against hand-computed indices."""

from __future__ import annotations

import warnings
from collections import Counter

import pytest
import torch

from torchrepro.video import sampling
from torchrepro.video.sampling import is_short, segment_bounds, segment_indices, warn_short_once


@pytest.fixture(autouse=True)
def _rearm_warning():
    sampling._reset_short_warning()
    yield
    sampling._reset_short_warning()


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(("n_frames", "n_segments", "expected"), [
    (32, 4, [4, 12, 20, 28]),  # tick 8: 4 + 8i
    (10, 4, [1, 3, 6, 8]),     # tick 2.5: int(1.25), int(3.75), int(6.25), int(8.75)
    (8, 3, [1, 4, 6]),         # tick 8/3: int(1.33), int(4.0), int(6.67)
    (7, 7, [0, 1, 2, 3, 4, 5, 6]),
    (5, 1, [2]),
])
def test_test_indices_are_tsm_centre_frames(n_frames, n_segments, expected):
    assert segment_indices(n_frames, n_segments, train=False) == expected


def test_segment_bounds_hand_computed():
    # frame f belongs to the segment holding f + 0.5; boundaries 0, 2.5, 5, 7.5, 10
    assert segment_bounds(10, 4) == [(0, 2), (2, 5), (5, 7), (7, 10)]
    assert segment_bounds(32, 4) == [(0, 8), (8, 16), (16, 24), (24, 32)]


@pytest.mark.parametrize("n_segments", [1, 3, 4, 8, 16])
def test_bounds_partition_the_video_and_hold_the_test_frame(n_segments):
    for n_frames in range(n_segments, 120):
        bounds = segment_bounds(n_frames, n_segments)
        assert bounds[0][0] == 0 and bounds[-1][1] == n_frames
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))  # contiguous, no gap, no overlap
        assert all(hi > lo for lo, hi in bounds)                       # n >= K: no empty segment
        centre = segment_indices(n_frames, n_segments, train=False)
        assert all(lo <= c < hi for c, (lo, hi) in zip(centre, bounds)), (n_frames, centre, bounds)


@pytest.mark.parametrize(("n_frames", "n_segments"), [(10, 4), (33, 8), (8, 8), (100, 3)])
def test_training_draw_stays_in_its_segment_and_is_sorted(n_frames, n_segments):
    bounds = segment_bounds(n_frames, n_segments)
    gen = _gen(0)
    for _ in range(300):
        idx = segment_indices(n_frames, n_segments, train=True, generator=gen)
        assert len(idx) == n_segments
        assert all(lo <= i < hi for i, (lo, hi) in zip(idx, bounds)), idx
        assert idx == sorted(idx)


def test_training_reaches_every_frame_of_each_segment_uniformly():
    # 10 frames / 4 segments: segments {0,1}, {2,3,4}, {5,6}, {7,8,9}
    gen = _gen(1)
    counts = [Counter() for _ in range(4)]
    draws = 3000
    for _ in range(draws):
        for seg, i in enumerate(segment_indices(10, 4, train=True, generator=gen)):
            counts[seg][i] += 1
    assert [sorted(c) for c in counts] == [[0, 1], [2, 3, 4], [5, 6], [7, 8, 9]]
    for c in counts:  # uniform within a segment: 1/2 or 1/3 each, ±0.05 (> 5 standard deviations)
        for n in c.values():
            assert abs(n / draws - 1 / len(c)) < 0.05, c


def test_seeded_generator_is_deterministic():
    g1, g2, g3 = _gen(7), _gen(7), _gen(8)
    seq1 = [segment_indices(50, 8, train=True, generator=g1) for _ in range(5)]
    seq2 = [segment_indices(50, 8, train=True, generator=g2) for _ in range(5)]
    seq3 = [segment_indices(50, 8, train=True, generator=g3) for _ in range(5)]
    assert seq1 == seq2
    assert seq1 != seq3
    assert len({tuple(s) for s in seq1}) > 1  # successive draws differ: the generator advances


def test_training_draws_only_from_the_generator():
    torch.manual_seed(0)
    first = segment_indices(50, 8, train=True, generator=_gen(3))
    torch.manual_seed(123)  # the global RNG must not matter
    assert segment_indices(50, 8, train=True, generator=_gen(3)) == first


def test_training_without_generator_is_refused():
    with pytest.raises(ValueError, match="Generator"):
        segment_indices(32, 4, train=True)


@pytest.mark.parametrize("train", [False, True])
def test_short_video_repeats_every_frame(train):
    # floor(i * 3 / 8) for i = 0..7
    assert segment_indices(3, 8, train=train, generator=_gen(0)) == [0, 0, 0, 1, 1, 1, 2, 2]
    assert segment_indices(1, 4, train=train, generator=_gen(0)) == [0, 0, 0, 0]
    for n in range(1, 16):
        assert sorted(set(segment_indices(n, 16, train=train, generator=_gen(0)))) == list(range(n))


def test_is_short():
    assert is_short(7, 8) and is_short(1, 2)
    assert not is_short(8, 8) and not is_short(9, 8)


@pytest.mark.parametrize(("n_frames", "n_segments", "field"), [(0, 4, "n_frames"), (-1, 4, "n_frames"),
                                                                (10, 0, "n_segments")])
def test_bad_counts_raise(n_frames, n_segments, field):
    with pytest.raises(ValueError, match=field):
        segment_indices(n_frames, n_segments, train=False)


def test_short_warning_is_issued_once_per_process():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # the module flag, not Python's registry, must silence repeats
        warn_short_once("clip_long", 40, 8)    # not short: silent and does not use up the warning
        warn_short_once("clip_a", 5, 8)
        warn_short_once("clip_b", 3, 8)
        warn_short_once("clip_a", 5, 8)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "clip_a" in message and "5 frames" in message and "8 segments" in message and "repeated" in message
    sampling._reset_short_warning()
    with pytest.warns(UserWarning, match="clip_b"):
        warn_short_once("clip_b", 3, 8)
