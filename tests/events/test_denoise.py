"""Background-activity filter: hand-built cases, a brute-force re-implementation, noise vs. a moving edge."""

from __future__ import annotations

import numpy as np
import pytest

from torchrepro.events.denoise import background_activity_filter

H, W = 20, 30


def _ev(rows: list[tuple[float, int, int, int]]) -> np.ndarray:
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


def test_hand_built_cases():
    events = _ev([
        (0.000, 5, 5, 1), (0.004, 6, 6, 0),  # diagonal neighbours 4 ms apart: both kept
        (0.010, 15, 10, 1), (0.012, 15, 10, 1),  # the same pixel twice (hot pixel): no support, dropped
        (0.020, 25, 3, 0), (0.040, 26, 3, 1),  # neighbours 20 ms apart: outside ±5 ms, dropped
        (0.050, 0, 0, 1), (0.051, 1, 0, 1),  # corner of the sensor: kept
        (0.060, 10, 15, 1), (0.061, 12, 15, 1),  # two pixels apart: not neighbours, dropped
    ])
    keep = background_activity_filter(events, H, W, 0.005)
    assert keep.tolist() == [True, True, False, False, False, False, True, True, False, False]
    # support looks forward as well: the first event of a pair is kept by the later one
    assert background_activity_filter(events[[1, 0]], H, W, 0.005).all()
    assert background_activity_filter(events[:0], H, W, 0.005).shape == (0,)
    with pytest.raises(ValueError, match="positive"):
        background_activity_filter(events, H, W, 0.0)


def _brute_force(events: np.ndarray, support: float) -> np.ndarray:
    t, x, y = events[:, 0], events[:, 1].astype(int), events[:, 2].astype(int)
    dx, dy, dt = np.abs(x[:, None] - x[None]), np.abs(y[:, None] - y[None]), np.abs(t[:, None] - t[None])
    neighbour = (np.maximum(dx, dy) == 1) & (dt <= support)
    return neighbour.any(axis=1)


def test_equals_a_brute_force_implementation_on_random_events():
    rng = np.random.default_rng(0)
    n = 1500
    events = np.stack([np.sort(rng.uniform(10.0, 10.2, n)), rng.integers(0, W, n), rng.integers(0, H, n),
                       rng.integers(0, 2, n)], axis=1)
    for support in (0.0005, 0.002, 0.006):
        got = background_activity_filter(events, H, W, support)
        expected = _brute_force(events, support)
        assert 0.05 < expected.mean() < 0.95  # a case where the filter really decides
        np.testing.assert_array_equal(got, expected)


def test_keeps_a_moving_edge_and_drops_uniform_noise():
    rng = np.random.default_rng(1)
    h, w = 100, 120
    # a vertical edge sweeping right at 1,000 px/s fires every pixel of its column as it passes
    cols = np.arange(10, 110)
    edge = np.array([(c / 1000.0 + rng.uniform(0, 1e-4), c, r, 1) for c in cols for r in range(h)])
    noise = np.stack([rng.uniform(0, 0.11, 2000), rng.integers(0, w, 2000), rng.integers(0, h, 2000),
                      rng.integers(0, 2, 2000)], axis=1)  # ~1.5 Hz per pixel
    events = np.concatenate([edge, noise])
    keep = background_activity_filter(events, h, w, 0.003)
    assert keep[: len(edge)].mean() > 0.99
    assert keep[len(edge):].mean() < 0.2  # only noise that happens to land next to the edge or other noise
