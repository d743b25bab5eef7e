"""TSM's shift, FFN's private batch norms and weight alterations (torchrepro.nn.temporal_shift), checked against
direct re-implementations written from the papers."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from torchrepro.nn.backbones import resnet_trunk
from torchrepro.nn.temporal_shift import (FrameState, PrivateBatchNorm2d, WeightAlteration, add_temporal_shift,
                                          make_private_batchnorm, nearest_branch, temporal_shift)


def shift_by_indexing(x: torch.Tensor, frames: int, fold_div: int) -> torch.Tensor:
    """TSM §3.1 element by element: channel c of frame t reads frame t+1 (c < C/8), frame t-1 (C/8 <= c < 2C/8) or
    itself, zero where that frame lies outside the clip."""
    nt, c = x.shape[:2]
    fold = c // fold_div
    out = torch.zeros_like(x)
    for i in range(nt):
        clip, t = divmod(i, frames)
        for ch in range(c):
            source = t + 1 if ch < fold else t - 1 if ch < 2 * fold else t
            if 0 <= source < frames:
                out[i, ch] = x[clip * frames + source, ch]
    return out


@pytest.mark.parametrize("frames,channels,fold_div", [(4, 16, 8), (8, 24, 8), (3, 9, 3), (1, 8, 8)])
def test_shift_equals_direct_indexing(frames: int, channels: int, fold_div: int) -> None:
    x = torch.randn(2 * frames, channels, 3, 2)
    assert torch.equal(temporal_shift(x, frames, fold_div), shift_by_indexing(x, frames, fold_div))


def test_shift_rejects_a_partial_clip() -> None:
    with pytest.raises(ValueError, match="whole number"):
        temporal_shift(torch.randn(10, 8, 2, 2), 4)


@pytest.mark.parametrize("frames", [4, 8, 16])
def test_no_shift_crosses_a_clip_anywhere_in_the_network(frames: int) -> None:
    """Changing the second clip of a batch leaves the first clip's features untouched, at every frame count the
    network runs (FFN's reference shifts 4- and 8-frame streams with a 16-frame shift, which mixes clips)."""
    torch.manual_seed(0)
    state = FrameState(3)
    trunk = make_private_batchnorm(add_temporal_shift(resnet_trunk("resnet18", width=8), state,
                                                      weight_alteration=True), state).eval()
    state.set(frames, branch=1)
    clips = torch.randn(2 * frames, 3, 32, 32)
    changed = clips.clone()
    changed[frames:] = torch.randn(frames, 3, 32, 32)
    with torch.no_grad():
        a, b = trunk(clips), trunk(changed)
    assert torch.equal(a[:frames], b[:frames])
    assert not torch.allclose(a[frames:], b[frames:])


def test_the_shift_reaches_neighbouring_frames() -> None:
    """The converse: changing one frame changes its neighbours' features (the network is temporal)."""
    torch.manual_seed(0)
    state = FrameState()
    trunk = add_temporal_shift(resnet_trunk("resnet18", width=8), state).eval()
    state.set(4)
    clip = torch.randn(4, 3, 32, 32)
    changed = clip.clone()
    changed[2] = torch.randn(3, 32, 32)
    with torch.no_grad():
        a, b = trunk(clip), trunk(changed)
    assert not torch.allclose(a[1], b[1]) and not torch.allclose(a[3], b[3])
    unshifted = add_temporal_shift(resnet_trunk("resnet18", width=8), FrameState(), shift=False).eval()
    with torch.no_grad():
        assert torch.equal(unshifted(clip)[1], unshifted(changed)[1])  # TSN: frames stay independent


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_tsm_adds_no_parameters(arch: str) -> None:
    """TSM §3: the shift is free; a TSM ResNet has exactly torchvision's parameters (and the same ones)."""
    tv = getattr(torchvision.models, arch)(weights=None)
    trunk = add_temporal_shift(resnet_trunk(arch), FrameState())
    tv_count = sum(p.numel() for name, p in tv.named_parameters() if not name.startswith("fc."))
    assert sum(p.numel() for p in trunk.parameters()) == tv_count


def test_ffn_parameters_are_private_norms_and_alterations_only() -> None:
    """FFN's extra parameters: two more copies of every BN's affine pair and one alteration vector per branch per
    block (the reference's depth-wise 1×1 conv on the block's input channels)."""
    tv = torchvision.models.resnet50(weights=None)
    bn_params = sum(p.numel() for m in tv.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters())
    block_inputs = sum(b.conv1.in_channels for layer in (tv.layer1, tv.layer2, tv.layer3, tv.layer4) for b in layer)
    state = FrameState(3)
    ffn = make_private_batchnorm(add_temporal_shift(resnet_trunk("resnet50"), state, weight_alteration=True), state)
    plain = sum(p.numel() for name, p in tv.named_parameters() if not name.startswith("fc."))
    assert sum(p.numel() for p in ffn.parameters()) == plain + 2 * bn_params + 3 * block_inputs


def test_private_batchnorm_uses_and_updates_only_its_branch() -> None:
    torch.manual_seed(0)
    state = FrameState(3)
    bn = PrivateBatchNorm2d(nn.BatchNorm2d(4), state)
    for i, m in enumerate(bn.bns):  # distinct running statistics and affine parameters per branch
        m.running_mean.fill_(float(i))
        m.running_var.fill_(1.0 + i)
        m.weight.data.fill_(2.0 + i)
    before = [(m.running_mean.clone(), m.running_var.clone()) for m in bn.bns]
    state.set(8, branch=1)
    x = torch.randn(6, 4, 3, 3) * 3 + 5
    bn.train()(x)
    for i, m in enumerate(bn.bns):
        changed = not torch.equal(m.running_mean, before[i][0]) and not torch.equal(m.running_var, before[i][1])
        assert changed == (i == 1)
    bn.eval()
    for branch in range(3):
        state.set(8, branch=branch)
        m = bn.bns[branch]
        expected = (x - m.running_mean.view(1, -1, 1, 1)) / torch.sqrt(m.running_var.view(1, -1, 1, 1) + m.eps)
        expected = expected * m.weight.view(1, -1, 1, 1) + m.bias.view(1, -1, 1, 1)
        assert torch.allclose(bn(x), expected, atol=1e-5)


def test_weight_alteration_equals_a_residual_depthwise_conv() -> None:
    """FFN Eq. 5 as the reference writes it: x + Conv2d(C, C, 1, groups=C, bias=False)(x), one conv per branch."""
    torch.manual_seed(0)
    state = FrameState(3)
    alteration = WeightAlteration(6, state)
    assert alteration.weight.abs().max() < 0.01  # N(0, 1e-3): each sub-network starts as the shared network
    x = torch.randn(4, 6, 5, 5)
    for branch in range(3):
        conv = nn.Conv2d(6, 6, 1, groups=6, bias=False)
        conv.weight.data = alteration.weight.data[branch].view(6, 1, 1, 1).clone()
        state.set(2, branch=branch)
        assert torch.allclose(alteration(x), x + conv(x), atol=1e-6)


def test_frame_state_rejects_bad_values() -> None:
    with pytest.raises(ValueError):
        FrameState(0)
    with pytest.raises(ValueError):
        FrameState(2).set(4, branch=2)


@pytest.mark.parametrize("frames,expected", [(4, 0), (8, 1), (16, 2), (2, 0), (6, 1), (12, 2), (32, 2), (5, 0)])
def test_nearest_branch(frames: int, expected: int) -> None:
    """FFN §3.4: the nearest trained frame count runs; 6 (between 4 and 8) and 12 (between 8 and 16) go up."""
    assert nearest_branch(frames, (4, 8, 16)) == expected
