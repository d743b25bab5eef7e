"""Tests for the contrast-threshold event simulator (torchrepro.events.simulator)."""

from __future__ import annotations

import numpy as np
import pytest

from torchrepro.core.errors import ConfigError, DataError
from torchrepro.events.simulator import EventSimulator

H, W = 6, 8
C = 0.2
EPS = 1e-3


def _sim(**kw) -> EventSimulator:
    args = dict(contrast_threshold=C, threshold_sigma=0.0, refractory_s=0.0, noise_rate_hz=0.0, log_eps=EPS, seed=0)
    args.update(kw)
    return EventSimulator(H, W, **args)


def _scaled(frame: np.ndarray, y: int, x: int, log_change: float) -> np.ndarray:
    """Copy of ``frame`` whose pixel (y, x) changed by exactly ``log_change`` in log(I + eps)."""
    out = frame.copy()
    out[y, x] = (frame[y, x] + EPS) * np.exp(log_change) - EPS
    return out


def _refractory_reference(pix, t, refractory):
    """Plain-Python refractory filter (the numba loop's reference)."""
    last: dict[int, float] = {}
    keep = []
    for p, ti in sorted(zip(pix, t)):
        if ti - last.get(p, -np.inf) >= refractory:
            keep.append((p, ti))
            last[p] = ti
    return sorted(keep, key=lambda e: e[1])


def test_constant_frames_give_no_events_without_noise():
    sim = _sim()
    frame = np.full((H, W), 0.4)
    sim.reset(frame, 0.0)
    for k in range(1, 5):
        assert sim.step(frame, 0.1 * k).shape == (0, 4)


def test_constant_frames_give_only_noise_events():
    sim = _sim(noise_rate_hz=50.0, seed=3)
    frame = np.full((H, W), 0.4)
    sim.reset(frame, 0.0)
    ev = np.concatenate([sim.step(frame, 0.1 * k) for k in range(1, 21)])
    # Expected count: rate * pixels * duration = 50 * 48 * 2 = 4800 (Poisson, sd ~ 69).
    assert 4400 < len(ev) < 5200
    assert set(np.unique(ev[:, 3])) == {0.0, 1.0}
    assert abs(ev[:, 3].mean() - 0.5) < 0.05
    assert ev[:, 0].min() > 0.0 and ev[:, 0].max() <= 2.0
    np.testing.assert_array_equal(sim.reference, np.log(frame + EPS))  # noise does not move the reference


@pytest.mark.parametrize("k", [1, 3])
def test_step_of_k_thresholds_gives_k_interpolated_events(k):
    sim = _sim()
    f0 = np.full((H, W), 0.5)
    sim.reset(f0, 1.0)
    ev = sim.step(_scaled(f0, 2, 5, k * C), 1.3)
    assert ev.shape == (k, 4)
    np.testing.assert_array_equal(ev[:, 1:3], np.tile([5.0, 2.0], (k, 1)))
    np.testing.assert_array_equal(ev[:, 3], np.ones(k))
    # Level j*C of a linear ramp from 0 to k*C over (1.0, 1.3] is crossed at 1.0 + 0.3 * j / k.
    expected = {1: [1.3], 3: [1.1, 1.2, 1.3]}[k]
    np.testing.assert_allclose(ev[:, 0], expected, atol=1e-9)
    assert np.all(ev[:, 0] > 1.0) and np.all(ev[:, 0] <= 1.3 + 1e-12)


def test_residual_below_threshold_carries_over():
    """2.5 C then +0.5 C more: 2 events, then the pending half threshold completes a third."""
    sim = _sim()
    f0 = np.full((H, W), 0.5)
    sim.reset(f0, 0.0)
    f1 = _scaled(f0, 0, 0, 2.5 * C)
    assert len(sim.step(f1, 1.0)) == 2
    ev = sim.step(_scaled(f1, 0, 0, 0.5 * C), 2.0)
    assert len(ev) == 1
    # Log goes from 2.5C (t=1) to 3C (t=2); the level 3C is reached at the end: t = 2.0.
    np.testing.assert_allclose(ev[0, 0], 2.0, atol=1e-9)


def test_decreasing_intensity_gives_negative_polarity():
    sim = _sim()
    f0 = np.full((H, W), 0.5)
    sim.reset(f0, 0.0)
    ev = sim.step(_scaled(f0, 1, 1, -2 * C), 0.5)
    assert ev.shape == (2, 4)
    np.testing.assert_array_equal(ev[:, 3], [0.0, 0.0])
    np.testing.assert_allclose(ev[:, 0], [0.25, 0.5], atol=1e-9)


def test_refractory_drops_events_but_reference_tracks():
    sim = _sim(refractory_s=0.5e-3)
    f0 = np.full((H, W), 0.5)
    sim.reset(f0, 0.0)
    f1 = _scaled(f0, 3, 4, 3 * C)
    ev = sim.step(f1, 1e-3)
    # Crossings at 1/3, 2/3 and 1 ms: the second is 1/3 ms after the first and is dropped; the third comes
    # 2/3 ms after the last emitted event and is kept.
    np.testing.assert_allclose(ev[:, 0], [1e-3 / 3, 1e-3], atol=1e-12)
    np.testing.assert_allclose(sim.reference[3, 4], np.log(f1[3, 4] + EPS), atol=1e-9)


def test_refractory_matches_plain_reference():
    rng = np.random.default_rng(0)
    sim = _sim(refractory_s=2e-3, threshold_sigma=0.03, noise_rate_hz=20.0, seed=5)
    free = _sim(refractory_s=0.0, threshold_sigma=0.03, noise_rate_hz=20.0, seed=5)  # same thresholds & noise
    frame = rng.uniform(0.1, 0.9, (H, W))
    sim.reset(frame, 0.0)
    free.reset(frame, 0.0)
    kept, raw = [], []
    for k in range(1, 30):
        frame = np.clip(frame * np.exp(rng.normal(0, 0.4, (H, W))), 0.01, 1.0)
        kept.append(sim.step(frame, 1e-3 * k))
        raw.append(free.step(frame, 1e-3 * k))
    kept, raw = np.concatenate(kept), np.concatenate(raw)
    assert len(kept) < len(raw)
    ref = _refractory_reference((raw[:, 2] * W + raw[:, 1]).astype(int).tolist(), raw[:, 0].tolist(), 2e-3)
    got = sorted(zip((kept[:, 2] * W + kept[:, 1]).astype(int).tolist(), kept[:, 0].tolist()), key=lambda e: e[1])
    assert len(got) == len(ref)
    np.testing.assert_allclose(np.array(got), np.array(ref))


def _random_run(seed: int, n_steps: int = 10) -> np.ndarray:
    rng = np.random.default_rng(123)  # same frames for every simulator seed
    sim = EventSimulator(H, W, contrast_threshold=0.15, threshold_sigma=0.03, refractory_s=1e-4,
                         noise_rate_hz=5.0, seed=seed)
    frame = rng.uniform(0.05, 1.0, (H, W))
    sim.reset(frame, 0.0)
    out = []
    for k in range(1, n_steps + 1):
        frame = np.roll(frame, 1, axis=1) * rng.uniform(0.9, 1.1, (H, W))
        out.append(sim.step(frame, 0.01 * k))
    return np.concatenate(out)


def test_deterministic_sorted_and_inside_sensor():
    a, b, c = _random_run(0), _random_run(0), _random_run(1)
    np.testing.assert_array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)
    assert a.dtype == np.float64 and a.shape[1] == 4 and len(a) > 100
    assert np.all(np.diff(a[:, 0]) >= 0)
    assert np.all((a[:, 1] >= 0) & (a[:, 1] < W) & (a[:, 1] == np.round(a[:, 1])))
    assert np.all((a[:, 2] >= 0) & (a[:, 2] < H) & (a[:, 2] == np.round(a[:, 2])))
    assert set(np.unique(a[:, 3])) <= {0.0, 1.0}


def test_threshold_mismatch_is_clipped_and_seeded():
    sim = EventSimulator(50, 50, contrast_threshold=0.02, threshold_sigma=0.05, seed=0)
    assert sim.c_pos.min() >= 0.01 and sim.c_neg.min() >= 0.01
    assert not np.array_equal(sim.c_pos, sim.c_neg)
    np.testing.assert_array_equal(sim.c_pos, EventSimulator(50, 50, 0.02, 0.05, seed=0).c_pos)


def test_bad_parameters_and_inputs_raise_one_line_errors():
    with pytest.raises(ConfigError, match="contrast_threshold"):
        EventSimulator(4, 4, contrast_threshold=0.0)
    with pytest.raises(ConfigError, match="noise_rate_hz"):
        EventSimulator(4, 4, noise_rate_hz=-1.0)
    with pytest.raises(ConfigError, match="sensor size"):
        EventSimulator(0, 4)
    sim = _sim()
    with pytest.raises(RuntimeError):
        sim.step(np.zeros((H, W)), 1.0)
    sim.reset(np.zeros((H, W)), 1.0)
    with pytest.raises(DataError, match="shape"):
        sim.step(np.zeros((H + 1, W)), 2.0)
    with pytest.raises(DataError, match="increase"):
        sim.step(np.zeros((H, W)), 1.0)
