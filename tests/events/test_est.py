"""Event Spike Tensor: shape, gradients, the exact-kernel layer vs a per-event loop, the MLP's trilinear
initialisation, edge cases (zero duration, empty sample), errors and batch separation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import random_events
from torchrepro.core.errors import ConfigError, DataError
from torchrepro.events.est import (
    EventSpikeTensor,
    TrilinearKernel,
    ValueLayer,
    collate_events,
    trilinear_kernel,
)

H, W, B = 6, 8, 5


def random_window(n: int, seed: int, t0: float = 1.5e9) -> np.ndarray:
    return random_events(n, seed, H, W, t0)


def est_reference_loop(windows: list[np.ndarray], num_bins: int, height: int, width: int) -> np.ndarray:
    """Per-event loop written straight from the paper / reference: tn * k(tn - i/(B-1)), k = trilinear,
    per-sample min/max time normalisation, channel p*B + i."""
    out = np.zeros((len(windows), 2 * num_bins, height, width))
    for s, ev in enumerate(windows):
        if len(ev) == 0:
            continue
        t_min, t_max = ev[:, 0].min(), ev[:, 0].max()
        for t, x, y, p in ev:
            tn = (t - t_min) / (t_max - t_min) if t_max > t_min else 0.0
            for i in range(num_bins):
                k = max(0.0, 1.0 - abs(tn - i / (num_bins - 1)) * (num_bins - 1))
                out[s, int(p > 0) * num_bins + i, int(y), int(x)] += tn * k
    return out


@pytest.fixture(scope="module")
def est() -> EventSpikeTensor:
    return EventSpikeTensor(B, H, W)


def test_output_shape_and_dtype(est):
    windows = [random_window(30, 1), random_window(12, 2), random_window(7, 3)]
    out = est(collate_events(windows), batch_size=3)
    assert out.shape == (3, 2 * B, H, W) and out.dtype == torch.float32
    assert torch.isfinite(out).all() and out.abs().sum() > 0


def test_gradients_reach_every_mlp_parameter():
    est = EventSpikeTensor(B, H, W)
    out = est(collate_events([random_window(200, 4), random_window(150, 5)]), batch_size=2)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    params = list(est.value_layer.parameters())
    assert len(params) == 6  # 1-30-30-1: three Linear layers
    for name, param in est.value_layer.named_parameters():
        assert param.grad is not None, name
        assert param.grad.abs().sum() > 0, name


@pytest.mark.parametrize("num_bins", [2, 3, 5, 9])
def test_exact_kernel_matches_per_event_loop(num_bins):
    windows = [random_window(60, 10 + num_bins), random_window(1, 20), random_window(0, 21), random_window(90, 22)]
    # Duplicate pixels and tied timestamps on purpose: the scatter must accumulate.
    windows[3][:, 1:3] = windows[3][:, 1:3] % 2
    windows[3][::3, 0] = windows[3][0, 0]
    windows[3] = windows[3][np.argsort(windows[3][:, 0], kind="stable")]
    layer = EventSpikeTensor(num_bins, H, W, value_layer=TrilinearKernel(num_bins))
    got = layer(collate_events(windows), batch_size=len(windows))
    np.testing.assert_allclose(got.numpy(), est_reference_loop(windows, num_bins, H, W), atol=1e-5)


@pytest.mark.parametrize("num_bins", [2, 5, 9, 16])
def test_initialised_mlp_approximates_trilinear_kernel(num_bins):
    layer = ValueLayer(num_bins)
    grid = torch.linspace(-1.0, 1.0, 20001)  # the whole range of tn - i/(B-1)
    with torch.no_grad():
        err = (layer(grid) - trilinear_kernel(grid, num_bins)).abs().max().item()
    # Measured: 0.005 (B=2), 0.010 (B=5), 0.011 (B=9), 0.015 (B=16).
    assert err < 0.03, err


def test_initialisation_is_deterministic_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = ValueLayer(7, seed=5)
    assert torch.equal(torch.rand(3), expected)
    b = ValueLayer(7, seed=5)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_zero_duration_window_gives_zeros_without_nan(est):
    ev = np.array([[2.0, 1, 1, 1], [2.0, 3, 4, 0], [2.0, 3, 4, 1]])
    out = est(collate_events([ev]), batch_size=1)
    assert torch.isfinite(out).all()
    # tn = 0 for every event and the value is tn * k(.), so the grid is zero (as the reference).
    assert out.abs().max() == 0


def test_empty_samples_are_zero(est):
    windows = [np.zeros((0, 4)), random_window(40, 6), np.zeros((0, 4))]
    out = est(collate_events(windows), batch_size=3)
    assert out[0].abs().max() == 0 and out[2].abs().max() == 0
    assert out[1].abs().sum() > 0
    assert est(collate_events([]), batch_size=2).shape == (2, 2 * B, H, W)
    # A trailing empty sample not present in the events at all.
    assert est(collate_events(windows[:2]), batch_size=4)[2:].abs().max() == 0


def test_batch_separation(est):
    w0 = random_window(50, 7, t0=10.0)
    w1 = random_window(80, 8, t0=5000.0)  # very different times: normalisation must be per sample
    w1[:, 1] = W - 1  # sample 1 only on the last column, sample 0 avoids it
    w0[:, 1] = w0[:, 1] % (W - 1)
    with torch.no_grad():
        both = est(collate_events([w0, w1]), batch_size=2)
        alone0 = est(collate_events([w0]), batch_size=1)
        alone1 = est(collate_events([w1]), batch_size=1)
    assert both[0, :, :, W - 1].abs().max() == 0
    torch.testing.assert_close(both[0], alone0[0])
    torch.testing.assert_close(both[1], alone1[0])


def test_polarity_channels_follow_reference_order():
    layer = EventSpikeTensor(3, H, W, value_layer=TrilinearKernel(3))
    ev = np.array([[0.0, 0, 0, 0], [1.0, 2, 1, 1], [1.0, 4, 3, 0]])
    out = layer(collate_events([ev]), batch_size=1)
    # tn = 1 for the last two events: value 1 in the last bin (i = 2); OFF -> channel 2, ON -> channel 3 + 2.
    assert out[0, 5, 1, 2] == 1.0 and out[0, 2, 3, 4] == 1.0
    assert out.sum() == 2.0


def test_collate_events_layout():
    a, b = random_window(3, 9), random_window(2, 10)
    batch = collate_events([a, torch.from_numpy(b)])
    assert batch.dtype == torch.float64 and batch.shape == (5, 5)
    assert batch[:, 0].tolist() == [0, 0, 0, 1, 1]
    np.testing.assert_array_equal(batch[3:, 1:].numpy(), b)  # epoch-sized t kept exactly
    with pytest.raises(DataError, match="window 1 of the batch"):
        collate_events([a, np.zeros((3, 3))])


def test_event_outside_sensor_raises(est):
    ev = random_window(5, 11)
    ev[2, 1] = W  # x == width is off the sensor
    with pytest.raises(DataError, match=r"outside the sensor of height=6, width=8"):
        est(collate_events([ev]), batch_size=1)
    ev = random_window(5, 11)
    ev[0, 2] = -1
    with pytest.raises(DataError, match="outside the sensor"):
        est(collate_events([ev]), batch_size=1)


def test_bad_batch_index_and_shape_raise(est):
    batch = collate_events([random_window(5, 12), random_window(5, 13)])
    with pytest.raises(DataError, match="batch index"):
        est(batch, batch_size=1)
    with pytest.raises(DataError, match=r"\(N, 5\)"):
        est(batch[:, 1:], batch_size=2)
    nan_t = batch.clone()
    nan_t[3, 1] = float("nan")
    with pytest.raises(DataError, match="non-finite timestamp"):
        est(nan_t, batch_size=2)


def test_one_bin_is_a_config_error():
    with pytest.raises(ConfigError, match="num_bins"):
        EventSpikeTensor(1, H, W)
