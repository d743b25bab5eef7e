"""Training tuples (real metres, seeded per item, hard mining), the input cache and the query/database split."""

import logging

import numpy as np
import pytest
import torch

from torchrepro.core.errors import DataError
from torchrepro.events.representations import voxel_grid
from torchrepro.place_recognition.windows import (
    ConcatTraversal,
    InputSpec,
    StackedInputs,
    TupleDataset,
    WindowAugment,
    cached_inputs,
    normalise_nonzero,
    random_affine,
    random_cell_drop,
    random_erasing,
    random_side_zoom,
    split_query_database,
    window_input,
    within_radius,
)


class FakeTraversal:
    """In-memory WindowSource: random windows on a 40×30 sensor along a line, one window per metre."""

    def __init__(self, n: int = 30, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.name = f"fake{seed}"
        self._events = []
        for i in range(n):
            t = np.sort(rng.uniform(i, i + 1, 200))
            self._events.append(np.stack([t, rng.integers(0, 40, 200), rng.integers(0, 30, 200),
                                          rng.integers(0, 2, 200)], 1).astype(np.float64))
        self.timestamps = np.arange(n) + 1.0
        self.positions = np.stack([np.arange(n, dtype=float), np.zeros(n)], 1)
        self.loads = 0
        self.seed = seed

    def __len__(self):
        return len(self._events)

    def events(self, i):
        self.loads += 1
        return self._events[i]

    def fingerprint(self):
        return {"fake": self.seed, "n": len(self)}


SPEC = InputSpec("voxel", 3, 30, 40, 16, True)


def test_window_input_is_normalised_cropped_voxel_grid_by_hand():
    # Sensor 4x6, B = 2, window 0..1 s. Voxel grid (bilinear in time, tn = t * (B - 1)):
    #   t 0    (x1, y0, +) -> bin 0 [0, 1] = 1
    #   t 0.25 (x0, y2, +) -> bin 0 [2, 0] = 0.75, bin 1 [2, 0] = 0.25   (column 0: cropped away later)
    #   t 0.5  (x2, y1, -) -> bin 0 [1, 2] = -0.5, bin 1 [1, 2] = -0.5
    #   t 1    (x4, y3, +) -> bin 1 [3, 4] = 1
    # Normalisation over the six non-zero cells (zeros stay zero), with the cropped-away cells included,
    # then the centre 4x4 square: columns 1..4.
    ev = np.array([[0.0, 1, 0, 1], [0.25, 0, 2, 1], [0.5, 2, 1, 0], [1.0, 4, 3, 1]])
    nonzero = np.array([1.0, 0.75, -0.5, 0.25, -0.5, 1.0])
    mean, std = nonzero.mean(), nonzero.std(ddof=1)  # torch's Tensor.std (unbiased), as normalise_nonzero
    norm = lambda v: (v - mean) / std  # noqa: E731
    crop = np.zeros((2, 4, 4))
    crop[0, 0, 0] = norm(1.0)  # sensor (y0, x1)
    crop[0, 1, 1] = crop[1, 1, 1] = norm(-0.5)  # sensor (y1, x2)
    crop[1, 3, 3] = norm(1.0)  # sensor (y3, x4)
    got = window_input(ev, InputSpec("voxel", 2, 4, 6, 4, True), "hand")
    assert got.shape == (2, 4, 4) and got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), crop, rtol=0, atol=1e-6)
    # Halving to 2x2: antialiased bilinear (triangle filter stretched 2x, renormalised at the border), i.e.
    # output pixel 0 = (3 a0 + 3 a1 + a2) / 7 and pixel 1 = (a1 + 3 a2 + 3 a3) / 7 along each axis.
    r = np.array([[3, 3, 1, 0], [0, 1, 3, 3]]) / 7.0
    got = window_input(ev, InputSpec("voxel", 2, 4, 6, 2, True), "hand")
    np.testing.assert_allclose(got.numpy(), r @ crop @ r.T, rtol=0, atol=1e-6)
    # Without normalisation the raw bilinear weights come through the crop unchanged.
    raw = window_input(ev, InputSpec("voxel", 2, 4, 6, 4, False), "hand").numpy()
    assert raw[0, 0, 0] == 1.0 and raw[0, 1, 1] == raw[1, 1, 1] == -0.5 and raw[1, 3, 3] == 1.0
    assert np.count_nonzero(raw) == 4


def test_normalise_nonzero_gives_zero_mean_unit_std_on_the_events():
    src = FakeTraversal(2)
    grid = voxel_grid(src.events(0), 3, 30, 40)
    nz = normalise_nonzero(grid)
    assert torch.equal(nz != 0, grid != 0)
    vals = nz[nz != 0]
    assert abs(float(vals.mean())) < 1e-5 and float(vals.std()) == pytest.approx(1.0, rel=1e-4)


def test_cache_is_built_once_and_keyed_by_spec(tmp_path):
    src = FakeTraversal(5)
    a = cached_inputs(src, SPEC, tmp_path, "inputs")
    loads = src.loads
    b = cached_inputs(src, SPEC, tmp_path, "inputs")
    assert src.loads == loads and np.array_equal(a, b) and a.shape == (5, 3, 16, 16) and a.dtype == np.float16
    other = cached_inputs(src, InputSpec("voxel", 3, 30, 40, 8, True), tmp_path, "inputs")
    assert other.shape == (5, 3, 8, 8) and src.loads == loads + 5
    np.testing.assert_allclose(a[2], window_input(src.events(2), SPEC, "w").numpy(), atol=2e-3, rtol=2e-3)
    assert cached_inputs(src, SPEC, tmp_path, "counts").shape == (5, 8, 10)  # 30x40 sensor / 4
    assert not list(tmp_path.glob("*.tmp*"))


def test_split_is_seeded_and_disjoint():
    q, d = split_query_database(100, 0.3, seed=0)
    assert len(q) == 30 and len(d) == 70 and not set(q) & set(d)
    q2, _ = split_query_database(100, 0.3, seed=0)
    q3, _ = split_query_database(100, 0.3, seed=1)
    assert np.array_equal(q, q2) and not np.array_equal(q, q3)
    with pytest.raises(DataError, match="query_fraction"):
        split_query_database(10, 1.5, seed=0)


def test_within_radius_uses_real_metres():
    # 8 m away: a positive at 10 m (the seed's squared comparison, 64 > 10, would miss it)
    got = within_radius(np.array([[0.0, 0.0]]), np.array([[8.0, 0.0], [0.0, 11.0], [3.0, 4.0]]), 10.0)
    assert got[0].tolist() == [0, 2]


def _dataset(mining="random", n_neg=4, candidates=20):
    src = FakeTraversal(60)
    inputs = np.random.default_rng(0).normal(size=(60, 3, 4, 4)).astype(np.float16)
    q = np.arange(0, 60, 3)
    db = np.setdiff1d(np.arange(60), q)
    return TupleDataset(inputs, src.positions, q, db, pos_m=3.0, neg_m=10.0, n_negatives=n_neg, seed=0,
                        mining=mining, mining_candidates=candidates), src.positions


def test_tuples_respect_radii_and_are_pure_functions_of_the_key():
    ds, pos = _dataset()
    for i in range(len(ds)):
        w = ds.choose(0, i)
        anchor, positive, negatives = w[0], w[1], w[2:]
        assert np.linalg.norm(pos[positive] - pos[anchor]) < 3.0
        assert (np.linalg.norm(pos[negatives] - pos[anchor], axis=1) >= 10.0).all()
        assert len(set(negatives)) == len(negatives)
    assert np.array_equal(ds.choose(2, 5), ds.choose(2, 5))
    assert any(not np.array_equal(ds.choose(0, i), ds.choose(1, i)) for i in range(len(ds)))
    item = ds[(0, 3)]
    assert item.shape == (6, 3, 4, 4) and item.dtype == torch.float32


def test_hard_mining_picks_closest_descriptors():
    # candidates >= the whole negative pool: the negatives must be exactly the 3 closest of the pool
    ds, pos = _dataset(mining="hard", n_neg=3, candidates=1000)
    desc = torch.randn(60, 8, generator=torch.Generator().manual_seed(0)).half().float()
    ds.set_descriptors(desc)
    w = ds.choose(0, 4)
    anchor = w[0]
    positives = ds.db_idx[ds.positives[4]]
    d_pos = (desc[positives] - desc[anchor]).norm(dim=1)
    assert w[1] == positives[int(d_pos.argmin())]
    pool = ds.db_idx[np.linalg.norm(pos[ds.db_idx] - pos[anchor], axis=1) >= 10.0]
    d_pool = (desc[pool] - desc[anchor]).norm(dim=1)
    assert sorted(w[2:].tolist()) == sorted(pool[np.argsort(d_pool.numpy())[:3]].tolist())
    assert (np.linalg.norm(pos[w[2:]] - pos[anchor], axis=1) >= 10.0).all()


def test_queries_without_positive_are_reported(caplog):
    positions = np.array([[0.0, 0], [1.0, 0], [500.0, 0], [30.0, 0], [40.0, 0], [60, 0], [80, 0]])
    inputs = np.zeros((7, 1, 2, 2), np.float16)
    with caplog.at_level(logging.INFO):
        ds = TupleDataset(inputs, positions, np.array([0, 2]), np.array([1, 3, 4, 5, 6]), pos_m=10.0, neg_m=25.0, n_negatives=2, seed=0)
    assert len(ds) == 1 and "1 of 2 queries have no positive" in caplog.text
    with pytest.raises(DataError, match="no training query"):
        TupleDataset(inputs, positions, np.array([2]), np.array([1, 3]), pos_m=10.0, neg_m=25.0, n_negatives=1, seed=0)


def test_stacked_inputs_index_like_the_concatenated_array(tmp_path):
    rng = np.random.default_rng(0)
    parts = [rng.normal(size=(n, 2, 3, 3)).astype(np.float16) for n in (5, 1, 4)]
    np.save(tmp_path / "a.npy", parts[0])
    parts[0] = np.load(tmp_path / "a.npy", mmap_mode="r")  # a memory-mapped cache, as in the recipe
    stacked, full = StackedInputs(parts), np.concatenate(parts)
    assert stacked.shape == full.shape and len(stacked) == 10
    for i in range(10):
        np.testing.assert_array_equal(stacked[i], full[i])
    idx = np.array([9, 0, 5, 5, 3, 6])  # unsorted, repeated, across all three parts
    np.testing.assert_array_equal(stacked[idx], full[idx])
    with pytest.raises(IndexError):
        stacked[np.array([10])]
    with pytest.raises(ValueError, match="one item shape"):
        StackedInputs([parts[0], np.zeros((2, 2, 3, 4))])


def test_concat_traversal_dispatches_windows_and_positions():
    a, b = FakeTraversal(4, seed=0), FakeTraversal(3, seed=1)
    both = ConcatTraversal([a, b])
    assert len(both) == 7 and both.name == "fake0+fake1"
    np.testing.assert_array_equal(both.events(2), a.events(2))
    np.testing.assert_array_equal(both.events(4), b.events(0))
    np.testing.assert_array_equal(both.positions, np.concatenate([a.positions, b.positions]))
    assert both.part(1).tolist() == [4, 5, 6]
    assert both.fingerprint() != ConcatTraversal([b, a]).fingerprint()


def test_cross_traversal_tuples_take_positives_and_negatives_from_the_database():
    """train_protocol=cross: anchors are the second recording's windows, the database the first's."""
    a, b = FakeTraversal(40, seed=0), FakeTraversal(40, seed=1)
    b.positions[:, 1] += 1.5  # another lane
    both = ConcatTraversal([a, b])
    inputs = np.zeros((80, 1, 2, 2), np.float16)
    ds = TupleDataset(inputs, both.positions, both.part(1), both.part(0), pos_m=3.0, neg_m=10.0, n_negatives=4, seed=0)
    assert len(ds) == 40
    for i in range(len(ds)):
        w = ds.choose(0, i)
        assert w[0] >= 40 and (w[1:] < 40).all()
        assert np.linalg.norm(both.positions[w[1]] - both.positions[w[0]]) < 3.0
        assert (np.linalg.norm(both.positions[w[2:]] - both.positions[w[0]], axis=1) >= 10.0).all()


def test_anchors_per_epoch_draws_a_fresh_subset_each_epoch():
    src = FakeTraversal(60)
    inputs = np.zeros((60, 1, 2, 2), np.float16)
    q, db = np.arange(0, 60, 2), np.arange(1, 60, 2)
    full = TupleDataset(inputs, src.positions, q, db, pos_m=3.0, neg_m=10.0, n_negatives=2, seed=0)
    sub = TupleDataset(inputs, src.positions, q, db, pos_m=3.0, neg_m=10.0, n_negatives=2, seed=0, anchors_per_epoch=8)
    assert len(full) == 30 and len(sub) == 8
    assert [full.anchor_of(0, i) for i in range(30)] == list(range(30))
    e0, e1 = [[sub.anchor_of(e, i) for i in range(8)] for e in (0, 1)]
    assert len(set(e0)) == 8 and e0 != e1 and e0 == [sub.anchor_of(0, i) for i in range(8)]
    assert {int(sub.choose(1, i)[0]) for i in range(8)} == {int(q[j]) for j in e1}


def test_mining_cache_covers_the_epoch_and_can_be_partial():
    ds, pos = _dataset(mining="hard", n_neg=3, candidates=1000)
    rows = ds.mining_windows(0)
    assert set(ds.db_idx) <= set(rows) and set(ds.query_idx) <= set(rows)
    desc = torch.randn(60, 8, generator=torch.Generator().manual_seed(1))
    ds.set_descriptors(desc)
    full = ds.choose(0, 4)
    ds.set_descriptors(desc[rows[::-1].copy()], rows[::-1].copy())  # only the epoch's windows, any row order
    np.testing.assert_array_equal(ds.choose(0, 4), full)
    ds.set_descriptors(desc[:10], np.arange(10))  # a cache missing windows the epoch needs
    with pytest.raises(RuntimeError, match="not refreshed"):
        ds.choose(0, 4)


# ----------------------------------------------------------------------------------- training augmentation
def _grids(n: int = 64, c: int = 5, s: int = 32) -> torch.Tensor:
    return torch.randn(n, c, s, s) + 3.0  # no zero cells: erased / dropped cells are exactly the zero ones


def test_random_affine_without_shift_or_zoom_is_the_identity():
    x = _grids(4)
    np.testing.assert_allclose(random_affine(x, 0.0, 0.0, torch.Generator().manual_seed(0)), x, atol=1e-5)


def test_random_side_zoom_stretches_each_half_horizontally_about_the_centre():
    w = 65  # odd: column 32 is the centre, normalised x = (col - 32) / 32
    x = torch.zeros(200, 1, 9, w)
    x[:, :, :, 32 + 16] = 1.0  # a vertical line at x = +0.5 (right half)
    x[:, :, :, 32 - 16] = 1.0  # and one at x = -0.5 (left half)
    assert torch.equal(random_side_zoom(x, 0.0, torch.Generator().manual_seed(0)), x)
    out = random_side_zoom(x, 0.3, torch.Generator().manual_seed(0))
    cols = torch.arange(w, dtype=torch.float32)
    right = (out[:, 0, :, 33:] * cols[33:]).sum(-1) / out[:, 0, :, 33:].sum(-1)  # centroid of the right line
    left = (out[:, 0, :, :32] * cols[:32]).sum(-1) / out[:, 0, :, :32].sum(-1)
    f_right, f_left = (right - 32) / 16, (32 - left) / 16  # the zoom factor each half received
    assert torch.allclose(f_right, f_right[:, :1]) and torch.allclose(f_left, f_left[:, :1])  # same for every row
    for f in (f_right, f_left):
        assert float(f.min()) > 0.68 and float(f.max()) < 1.32 and float(f.max() - f.min()) > 0.4
    assert float((f_right[:, 0] - f_left[:, 0]).abs().mean()) > 0.1  # the halves are zoomed independently
    torch.testing.assert_close(out[:, :, :, 32], x[:, :, :, 32])  # the centre column stays


def test_random_erasing_blanks_one_rectangle_of_bounded_area():
    x = _grids()
    assert torch.equal(random_erasing(x, 0.0, torch.Generator().manual_seed(0)), x)
    before = x.clone()
    out = random_erasing(x, 1.0, torch.Generator().manual_seed(0), area=(0.05, 0.2))
    assert torch.equal(x, before)  # the input is not modified in place
    for k in range(len(x)):
        zero = (out[k] == 0).all(dim=0)
        assert torch.equal((out[k] == 0).any(dim=0), zero)  # all time bins of a pixel together
        rows, cols = torch.nonzero(zero, as_tuple=True)
        assert len(rows) > 0
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert int(box) == len(rows)  # one filled rectangle
        assert 0.05 * 32 * 32 * 0.7 <= len(rows) <= 0.2 * 32 * 32 * 1.3  # area up to rounding of the sides
        torch.testing.assert_close(out[k][:, ~zero], x[k][:, ~zero])
    half = random_erasing(x, 0.5, torch.Generator().manual_seed(1))
    erased = sum(bool((half[k] == 0).any()) for k in range(len(x)))
    assert 16 <= erased <= 48  # Binomial(64, 0.5)


def test_random_cell_drop_removes_whole_pixels_up_to_the_fraction():
    x = _grids(200)
    out = random_cell_drop(x, 0.4, torch.Generator().manual_seed(0))
    zero = (out == 0).all(dim=1)
    assert torch.equal((out == 0).any(dim=1), zero)
    dropped = zero.float().mean(dim=(1, 2))
    assert float(dropped.max()) < 0.45 and float(dropped.min()) < 0.05
    assert 0.15 < float(dropped.mean()) < 0.25  # E[U(0, 0.4)] = 0.2
    torch.testing.assert_close(out[~(out == 0)], x[~(out == 0)])


def test_augmented_tuples_are_pure_functions_of_the_key():
    src = FakeTraversal(60)
    inputs = (np.random.default_rng(0).normal(size=(60, 2, 16, 16)) + 3).astype(np.float32)
    q = np.arange(0, 60, 3)
    db = np.setdiff1d(np.arange(60), q)
    plain = TupleDataset(inputs, src.positions, q, db, pos_m=3.0, neg_m=10.0, n_negatives=2, seed=0)
    aug = TupleDataset(inputs, src.positions, q, db, pos_m=3.0, neg_m=10.0, n_negatives=2, seed=0,
                       augment=WindowAugment(erase=1.0, drop=0.3))
    assert torch.equal(aug[(1, 4)], aug[(1, 4)])
    assert not torch.equal(aug[(1, 4)], aug[(2, 4)])
    item, raw = aug[(1, 4)], plain[(1, 4)]  # same windows; augmented ones only lose cells
    assert (item == 0).any() and torch.equal(item[item != 0], raw[item != 0])
