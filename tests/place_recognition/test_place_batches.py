"""Tests for place-grouped training batches (torchrepro.place_recognition.place_batches; GSV-Cities-style)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torchrepro.core.errors import DataError
from torchrepro.place_recognition.windows import WindowAugment
from torchrepro.place_recognition.place_batches import PlacePairDataset


def three_recordings(n: int = 60, spacing=(1.0, 1.3, 0.8)):
    """Three drives along one 60 m line, with their own window spacing and lane; recording 0 is the map."""
    pos, rec = [], []
    for r, step in enumerate(spacing):
        s = np.arange(0, n, step)
        pos.append(np.stack([s, np.full_like(s, -1.0 * r)], 1))
        rec.append(np.full(len(s), r))
    pos, rec = np.concatenate(pos), np.concatenate(rec)
    inputs = np.random.default_rng(0).normal(size=(len(pos), 2, 8, 8)).astype(np.float16)
    return inputs, pos, rec


def test_items_hold_one_window_of_every_recording_per_place_and_a_far_second_place():
    inputs, pos, rec = three_recordings()
    ds = PlacePairDataset(inputs, pos, rec, reference=0, member_m=2.5, neg_m=25.0, seed=0)
    assert ds.k == 3 and len(ds) == len(ds.centres)
    for i in range(len(ds)):
        w = ds.choose(0, i)
        assert len(w) == 6
        a, b = w[:3], w[3:]
        for place in (a, b):
            assert rec[place].tolist() == [0, 1, 2]  # the centre (map window), then one per other recording
            assert (np.linalg.norm(pos[place] - pos[place[0]], axis=1) < 2.5).all()
        assert np.linalg.norm(pos[b[0]] - pos[a[0]]) > 25.0
    centres = [ds.place_of(0, i) for i in range(len(ds))]
    assert sorted(centres) == list(range(len(ds)))  # an epoch visits every place once


def test_items_are_pure_functions_of_the_key_and_carry_positions():
    inputs, pos, rec = three_recordings()
    ds = PlacePairDataset(inputs, pos, rec, reference=0, member_m=2.5, neg_m=25.0, seed=0, augment=WindowAugment(shift=0.1))
    item = ds[(1, 5)]
    assert item["x"].shape == (6, 2, 8, 8) and item["pos"].shape == (6, 2)
    assert torch.equal(item["x"], ds[(1, 5)]["x"]) and not torch.equal(item["x"], ds[(2, 5)]["x"])
    np.testing.assert_allclose(item["pos"].numpy(), pos[ds.choose(1, 5)], rtol=1e-6)


def test_places_per_epoch_beyond_the_place_count_repeats_fresh_permutations():
    inputs, pos, rec = three_recordings()
    ds = PlacePairDataset(inputs, pos, rec, reference=0, member_m=2.5, neg_m=25.0, seed=0, places_per_epoch=130)
    n = len(ds.centres)
    assert len(ds) == 130 and n < 130
    first, second = [ds.place_of(0, i) for i in range(n)], [ds.place_of(0, n + i) for i in range(n)]
    assert sorted(first) == sorted(second) == list(range(n)) and first != second


def test_hard_mining_picks_the_far_place_closest_in_descriptor_space():
    inputs, pos, rec = three_recordings()
    ds = PlacePairDataset(inputs, pos, rec, reference=0, member_m=2.5, neg_m=25.0, seed=0, mining="hard", mining_candidates=1000)
    rows = ds.mining_windows(0)
    assert set(rows.tolist()) == set(ds.centres.tolist())
    # descriptor of a map window = its position along the route, except that place 50 m looks like place 5 m
    s = pos[rows, 0].copy()
    lookalike = int(np.argmin(np.abs(s - 50.0)))
    s[lookalike] = 5.2
    ds.set_descriptors(torch.tensor(np.stack([s, np.zeros_like(s)], 1), dtype=torch.float32), rows)
    item = next(i for i in range(len(ds)) if pos[ds.centres[ds.place_of(0, i)], 0] == 5.0)
    assert ds.choose(0, item)[3] == rows[lookalike]


def test_missing_recording_at_a_place_is_skipped_with_a_count_and_no_overlap_is_an_error(caplog):
    inputs, pos, rec = three_recordings()
    keep = ~((rec == 2) & (pos[:, 0] > 50))  # drive 2 stops recording at 50 m
    with caplog.at_level("INFO"):
        ds = PlacePairDataset(inputs[keep], pos[keep], rec[keep], reference=0, member_m=2.5, neg_m=25.0, seed=0)
    assert (pos[keep][ds.centres, 0] < 53).all() and "lack a window of every recording" in caplog.text
    far = pos.copy()
    far[rec == 1, 1] += 100.0  # another street
    with pytest.raises(DataError, match="same route"):
        PlacePairDataset(inputs, far, rec, reference=0, member_m=2.5, neg_m=25.0, seed=0)
    with pytest.raises(DataError, match="besides the reference"):
        PlacePairDataset(inputs, pos, np.zeros(len(pos), int), reference=0, member_m=2.5, neg_m=25.0, seed=0)


def test_recordings_per_place_draws_a_subset_of_the_other_recordings_per_place():
    inputs, pos, rec = three_recordings()
    ds = PlacePairDataset(inputs, pos, rec, reference=0, member_m=2.5, neg_m=25.0, seed=0, recordings_per_place=2)
    seen = set()
    for i in range(len(ds)):
        w = ds.choose(0, i)
        assert len(w) == 4 and rec[w[0]] == rec[w[2]] == 0 and rec[w[1]] != 0 and rec[w[3]] != 0
        seen.update(rec[w[[1, 3]]].tolist())
    assert seen == {1, 2}  # both other recordings take turns
    with pytest.raises(ValueError, match="recordings_per_place"):
        PlacePairDataset(inputs, pos, rec, reference=0, member_m=2.5, neg_m=25.0, seed=0, recordings_per_place=4)
