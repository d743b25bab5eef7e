"""LipNet's shapes and size against the paper's architecture, and padding-independent outputs."""

from __future__ import annotations

import pytest
import torch

from torchrepro.lipreading.model import LipNet


def _gru_params(inputs: int, hidden: int) -> int:
    """A bidirectional one-layer GRU: per direction 3 gates × (input + recurrent weights + two biases)."""
    return 2 * 3 * (hidden * inputs + hidden * hidden + 2 * hidden)


def test_paper_network_size_and_shape():
    net = LipNet(input_size=(50, 100))
    # LipNet Table 4: 50x100 → conv stride 2 → 25x50 → pool 12x25 → pool 6x12 → pool 3x6, 96 channels
    assert net.feature_dim == 96 * 3 * 6
    convs = (1 * 32 * 3 * 5 * 5 + 32) + (32 * 64 * 3 * 5 * 5 + 64) + (64 * 96 * 3 * 3 * 3 + 96)
    expected = convs + _gru_params(96 * 3 * 6, 256) + _gru_params(512, 256) + (512 * 28 + 28)
    assert sum(p.numel() for p in net.parameters()) == expected
    out = net.eval()(torch.randn(2, 1, 75, 50, 100))
    assert out.shape == (2, 75, 28)
    assert torch.allclose(out.exp().sum(-1), torch.ones(2, 75), atol=1e-5)  # log-probabilities


def test_seed_variant_keeps_full_resolution_after_the_first_convolution():
    # the seed's 46x100 crop, no stride: 23x50 → 11x25 → 5x12
    assert LipNet(input_size=(46, 100), variant="seed").feature_dim == 96 * 5 * 12


def test_too_small_input_is_refused():
    with pytest.raises(ValueError, match="too small"):
        LipNet(input_size=(8, 8))


def test_outputs_do_not_depend_on_padding():
    """A clip alone and the same clip padded inside a batch with a longer one give the same outputs on its frames:
    the GRUs run on packed sequences, so the backward direction starts at the clip's own last frame."""
    torch.manual_seed(0)
    net = LipNet(input_size=(16, 32), channels=(4, 8, 8), hidden=8).eval()
    short, long = torch.randn(1, 1, 9, 16, 32), torch.randn(1, 1, 12, 16, 32)
    padded = torch.cat([torch.nn.functional.pad(short, (0, 0, 0, 0, 0, 3)), long])
    batched = net(padded, torch.tensor([9, 12]))
    alone = net(short, torch.tensor([9]))
    assert torch.allclose(batched[0, :9], alone[0], atol=1e-5)
    assert torch.allclose(batched[1], net(long)[0], atol=1e-5)
