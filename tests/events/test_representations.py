"""Voxel grid and event histogram: vectorised vs the reference loop, hand-computed cases, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests import conftest
from torchrepro.core.errors import DataError
from torchrepro.events.representations import event_histogram, voxel_grid, voxel_grid_reference

H, W = 7, 9


def random_events(n: int, seed: int, height: int = H, width: int = W, t0: float = 0.0) -> np.ndarray:
    return conftest.random_events(n, seed, height, width, t0)


@pytest.mark.parametrize("compiled", [True, False], ids=["numba", "torch"])
@pytest.mark.parametrize("num_bins", [1, 2, 3, 5, 10])
@pytest.mark.parametrize("n", [0, 1, 2, 17, 500])
def test_vectorised_matches_reference(num_bins, n, compiled):
    ev = random_events(n, seed=1000 * num_bins + n)
    got = voxel_grid(ev, num_bins, H, W, compiled=compiled)
    assert got.shape == (num_bins, H, W) and got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), voxel_grid_reference(ev, num_bins, H, W), atol=1e-5)


def test_matches_reference_with_duplicate_pixels_ties_and_large_t0():
    rng = np.random.default_rng(3)
    n = 400
    # Few pixels → many duplicates; repeated timestamps; epoch-sized t0 (float64 precision matters).
    t = np.sort(1.6e9 + np.round(rng.uniform(0, 0.01, size=n), 4))
    x = rng.integers(0, 2, size=n)
    y = rng.integers(0, 2, size=n)
    p = rng.integers(0, 2, size=n)
    ev = np.stack([t, x, y, p], axis=1).astype(np.float64)
    for b in (2, 5):
        np.testing.assert_allclose(voxel_grid(ev, b, H, W).numpy(), voxel_grid_reference(ev, b, H, W), atol=1e-5)


def test_tensor_and_structured_input_match_array():
    ev = random_events(50, seed=4)
    ref = voxel_grid(ev, 4, H, W)
    torch.testing.assert_close(voxel_grid(torch.from_numpy(ev), 4, H, W), ref)
    torch.testing.assert_close(voxel_grid(torch.from_numpy(ev).float().double(), 4, H, W), ref)
    structured = np.zeros(len(ev), dtype=[("t", "f8"), ("x", "i2"), ("y", "i2"), ("p", "i1")])
    for i, name in enumerate("txyp"):
        structured[name] = ev[:, i]
    torch.testing.assert_close(voxel_grid(structured, 4, H, W), ref)


def test_hand_computed_three_events_three_bins():
    # t = 0, 0.5, 1.0 with B = 3 → tn = 0, 1, 2: each event exactly on a bin boundary, the last in bin B−1.
    ev = np.array([[0.0, 1, 2, 1], [0.5, 1, 2, 0], [1.0, 3, 4, 1]])
    grid = voxel_grid(ev, 3, H, W)
    expected = np.zeros((3, H, W), np.float32)
    expected[0, 2, 1] = 1.0
    expected[1, 2, 1] = -1.0
    expected[2, 4, 3] = 1.0
    np.testing.assert_array_equal(grid.numpy(), expected)


def test_hand_computed_fractional_split():
    # B = 3, t = 0, 0.25, 0.8, 1.0 → tn = 0, 0.5, 1.6, 2.
    ev = np.array([[0.0, 0, 0, 1], [0.25, 1, 0, 1], [0.8, 2, 0, 0], [1.0, 0, 0, 0]])
    grid = voxel_grid(ev, 3, H, W).numpy()
    expected = np.zeros((3, H, W), np.float32)
    expected[0, 0, 0] = 1.0
    expected[2, 0, 0] = -1.0
    expected[0, 0, 1] = 0.5
    expected[1, 0, 1] = 0.5
    expected[1, 0, 2] = -0.4
    expected[2, 0, 2] = -0.6
    np.testing.assert_allclose(grid, expected, atol=1e-6)


# (B, dt) pairs where a precomputed scale, (t - t0) * ((B - 1) / dt), misses B - 1 for the last event: below
# it (3.9999999999999996 for B = 5: the numba path leaked ~4e-16 into bin B - 2) or above it
# (3.0000000000000004 for B = 4: the torch path's clamped upper index put ~4e-16 into the grid's last cell).
_INEXACT_SCALE = [(2, 0.013), (3, 0.013), (4, 0.021), (5, 0.013), (5, 0.021), (10, 0.069)]


@pytest.mark.parametrize("compiled", [True, False], ids=["numba", "torch"])
@pytest.mark.parametrize("num_bins, dt", _INEXACT_SCALE)
def test_last_event_lands_exactly_in_last_bin(num_bins, dt, compiled):
    assert dt * ((num_bins - 1) / dt) != num_bins - 1  # the case is one where a precomputed scale rounds off
    ev = np.array([[0.0, 1, 2, 1], [dt, 5, 4, 0]])
    expected = np.zeros((num_bins, H, W), np.float32)
    expected[0, 2, 1] = 1.0
    expected[num_bins - 1, 4, 5] = -1.0  # and nothing, not even 4e-16, in bin B - 2 or anywhere else
    np.testing.assert_array_equal(voxel_grid(ev, num_bins, H, W, compiled=compiled).numpy(), expected)


@pytest.mark.parametrize("compiled", [True, False], ids=["numba", "torch"])
@pytest.mark.parametrize("num_bins", [3, 4, 5, 6])
def test_nonzero_cells_match_reference_exactly(num_bins, compiled):
    # A 1e-5 tolerance hides a ±4e-16 leak; the set of non-zero cells does not (and normalise_nonzero turns
    # such a cell into a visible value, 0.005 in the case). Random windows with durations spread over
    # two decades: between 1 in 100 and 1 in 8 of them (depending on B) hit an inexact precomputed scale. A
    # large sensor keeps pixels distinct enough that no cell's sum cancels to a float64 residue.
    for seed in range(100):
        ev = random_events(150, seed=1000 * num_bins + seed, height=260, width=346)
        ev[:, 0] = seed * 0.37 + ev[:, 0] * np.random.default_rng(seed).uniform(1.0, 100.0)
        got = voxel_grid(ev, num_bins, 260, 346, compiled=compiled).numpy()
        ref = voxel_grid_reference(ev, num_bins, 260, 346)
        np.testing.assert_array_equal(got != 0, ref != 0, err_msg=f"seed {seed}")


def test_polarity_mapping():
    # p = 0 → −1, p = 1 → +1 (anything > 0 is positive, anything else negative).
    for p, sign in [(0, -1.0), (1, 1.0), (-1, -1.0), (2, 1.0)]:
        ev = np.array([[0.0, 2, 3, p], [1.0, 2, 3, p]])
        grid = voxel_grid(ev, 2, H, W)
        assert grid[0, 3, 2].item() == sign and grid[1, 3, 2].item() == sign
        assert grid.abs().sum().item() == 2.0


def test_zero_duration_window_goes_to_bin_zero():
    ev = np.array([[0.3, 1, 1, 1], [0.3, 2, 1, 0], [0.3, 1, 1, 1]])
    grid = voxel_grid(ev, 4, H, W)
    assert grid[0, 1, 1].item() == 2.0 and grid[0, 1, 2].item() == -1.0
    assert grid[1:].abs().sum().item() == 0.0
    single = voxel_grid(np.array([[5.0, 4, 6, 0]]), 3, H, W)
    assert single[0, 6, 4].item() == -1.0 and single.abs().sum().item() == 1.0
    np.testing.assert_array_equal(grid.numpy(), voxel_grid_reference(ev, 4, H, W))


def test_empty_window_is_zeros():
    for empty in (np.zeros((0, 4)), np.zeros(0), torch.zeros(0, 4, dtype=torch.float64)):
        grid = voxel_grid(empty, 5, H, W)
        assert grid.shape == (5, H, W) and grid.dtype == torch.float32 and not grid.any()
    hist = event_histogram(np.zeros((0, 4)), H, W)
    assert hist.shape == (2, H, W) and not hist.any()


@pytest.mark.parametrize("num_bins", [1, 3, 5])
def test_mass_conservation(num_bins):
    ev = random_events(1000, seed=num_bins, height=260, width=346)
    grid = voxel_grid(ev, num_bins, 260, 346)
    expected = np.where(ev[:, 3] > 0, 1.0, -1.0).sum()
    assert grid.double().sum().item() == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize(
    "row, axis",
    [([0.5, 9, 0, 1], "x"), ([0.5, -1, 0, 1], "x"), ([0.5, 0, 7, 1], "y"), ([0.5, 0, -0.5, 1], "y")],
)
@pytest.mark.parametrize("compiled", [True, False], ids=["numba", "torch"])
def test_out_of_sensor_raises(row, axis, compiled):
    ev = np.array([[0.0, 0, 0, 1], row, [1.0, 1, 1, 0]])
    with pytest.raises(DataError) as err:
        voxel_grid(ev, 3, H, W, source="seq01/events.npy", compiled=compiled)
    msg = str(err.value)
    assert "outside the sensor" in msg and "height=7" in msg and "width=9" in msg
    assert "seq01/events.npy" in msg and f"{axis} spans" in msg
    with pytest.raises(DataError, match="outside the sensor"):
        event_histogram(ev, H, W)


def test_davis346_sensor_size_in_message():
    ev = np.array([[0.0, 346, 10, 1]])  # x == width is off-sensor
    with pytest.raises(DataError, match=r"height=260, width=346.*x spans \[346, 346\]"):
        voxel_grid(ev, 5, 260, 346)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_timestamp_raises(bad):
    ev = np.array([[0.0, 0, 0, 1], [bad, 1, 1, 1], [1.0, 1, 1, 0]])
    with pytest.raises(DataError, match=r"a\.npy.*non-finite timestamp.*row 1"):
        voxel_grid(ev, 3, H, W, source="a.npy")


def test_nan_coordinate_raises():
    ev = np.array([[0.0, np.nan, 0, 1], [1.0, 1, 1, 0]])
    with pytest.raises(DataError, match="outside the sensor"):
        voxel_grid(ev, 3, H, W)


def test_unsorted_timestamps_raise():
    ev = np.array([[0.0, 0, 0, 1], [0.7, 1, 1, 1], [0.2, 1, 1, 0]])
    with pytest.raises(DataError, match="not sorted ascending"):
        voxel_grid(ev, 3, H, W)


def test_bad_shape_raises():
    with pytest.raises(DataError, match=r"\(N, 4\)"):
        voxel_grid(np.zeros((5, 3)), 3, H, W)


def test_event_histogram_counts():
    ev = np.array(
        [[0.0, 1, 2, 1], [0.1, 1, 2, 1], [0.2, 1, 2, 0], [0.3, 8, 6, 0], [0.4, 0, 0, 1], [0.5, 8, 6, 0]]
    )
    hist = event_histogram(ev, H, W)
    assert hist.shape == (2, H, W) and hist.dtype == torch.float32
    expected = np.zeros((2, H, W), np.float32)
    expected[0, 2, 1] = 2
    expected[1, 2, 1] = 1
    expected[1, 6, 8] = 2
    expected[0, 0, 0] = 1
    np.testing.assert_array_equal(hist.numpy(), expected)
    rand = random_events(300, seed=9)
    h = event_histogram(rand, H, W)
    assert h[0].sum().item() == (rand[:, 3] > 0).sum() and h[1].sum().item() == (rand[:, 3] <= 0).sum()
