"""The Temporal Shift Module (Lin, Gan and Han, "TSM: Temporal Shift Module for Efficient Video Understanding",
ICCV 2019) and its frame-flexible variant (Zhang et al., "Frame Flexible Network", CVPR 2023, §3.2–3.3).

A 2-D CNN sees a clip as ``N·T`` images. TSM makes it temporal at zero cost: inside every residual branch, before
the block's first convolution, 1/8 of the channels take the values of the next frame and 1/8 those of the previous
frame, with zeros where a clip ends (TSM §3.2, "residual shift", the best placement in its Table 1). FFN keeps every
weight shared between the sub-networks that see 4, 8 or 16 frames and gives each sub-network private batch-norm
layers and a "weight alteration": a depth-wise 1×1 convolution with a residual connection, initialised near zero,
applied after the shift (FFN §3.3, Eq. 4–5; the reference code puts one in every residual block).

All frame-aware layers of a network read one :class:`FrameState`: the frame count of the clips being run (so a
shift never crosses from one clip into the next, whatever the frame count) and the sub-network (branch) that runs.
FFN's reference code builds one shift for 16 frames and reuses it on the 4- and 8-frame streams, which then shift
features across clip boundaries; here the shift always uses the clip's own frame count.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["FrameState", "PrivateBatchNorm2d", "ShiftedBranch", "WeightAlteration", "add_temporal_shift",
           "make_private_batchnorm", "nearest_branch", "temporal_shift"]


class FrameState:
    """The frame count ``frames`` of the clips a network is running and the index ``branch`` of the sub-network
    that runs them; shared (by reference, not as a module) by every frame-aware layer of one network."""

    def __init__(self, n_branches: int = 1) -> None:
        if n_branches < 1:
            raise ValueError(f"a network needs at least one branch, got {n_branches}")
        self.n_branches = n_branches
        self.frames = 1
        self.branch = 0

    def set(self, frames: int, branch: int = 0) -> None:
        if frames < 1 or not 0 <= branch < self.n_branches:
            raise ValueError(f"need frames >= 1 and 0 <= branch < {self.n_branches}, got {frames}, {branch}")
        self.frames, self.branch = frames, branch


def temporal_shift(x: torch.Tensor, frames: int, fold_div: int = 8) -> torch.Tensor:
    """TSM's bidirectional shift (Lin et al. 2019, §3.1–3.2) of ``x`` shaped ``[N·T, C, H, W]``, clip-major.

    Channels ``[0, C/fold_div)`` take the next frame's values, ``[C/fold_div, 2C/fold_div)`` the previous frame's,
    the rest are unchanged; the frames shifted in from outside a clip are zeros.
    """
    nt, c, h, w = x.shape
    if nt % frames:
        raise ValueError(f"{nt} images are not a whole number of {frames}-frame clips")
    fold = c // fold_div
    clips = x.view(nt // frames, frames, c, h, w)
    # Built by concatenation rather than by writing slices into a zeros_like copy (TSM's code): the same values,
    # 2.5x faster forward + backward on a CPU (the backward of a concatenation is a set of views)
    pad = clips.new_zeros(nt // frames, 1, fold, h, w)
    to_past = torch.cat([clips[:, 1:, :fold], pad], dim=1)  # frame t sees frame t+1
    to_future = torch.cat([pad, clips[:, :-1, fold:2 * fold]], dim=1)  # frame t sees frame t-1
    return torch.cat([to_past, to_future, clips[:, :, 2 * fold:]], dim=2).view(nt, c, h, w)


class WeightAlteration(nn.Module):
    """FFN's weight alteration (§3.3, Eq. 5): ``x + dwconv_b(x)`` with one depth-wise 1×1 convolution per branch
    ``b``, weights drawn from N(0, 1e-3) so that each sub-network starts as the shared network.

    A depth-wise 1×1 convolution without bias is a per-channel scale, so the parameters are stored as one
    ``[branches, C]`` matrix and applied as ``x · (1 + w_b)``: the same function and parameter count as the
    reference's ``nn.Conv2d(C, C, 1, groups=C, bias=False)`` per branch, in one multiply.
    """

    def __init__(self, channels: int, state: FrameState, std: float = 1e-3) -> None:
        super().__init__()
        self.state = state
        self.weight = nn.Parameter(torch.randn(state.n_branches, channels) * std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (1 + self.weight[self.state.branch]).view(1, -1, 1, 1)


class ShiftedBranch(nn.Module):
    """A residual block's first convolution preceded by the temporal shift (and, in FFN, the weight alteration)."""

    def __init__(self, conv: nn.Conv2d, state: FrameState, fold_div: int = 8, shift: bool = True,
                 alteration: WeightAlteration | None = None) -> None:
        super().__init__()
        self.state = state
        self.fold_div = fold_div
        self.shift = shift
        self.alteration = alteration
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.shift:
            x = temporal_shift(x, self.state.frames, self.fold_div)
        if self.alteration is not None:
            x = self.alteration(x)
        return self.conv(x)


class PrivateBatchNorm2d(nn.Module):
    """One ``BatchNorm2d`` per branch (FFN §3.3, "specialised normalisation"): the branch that runs normalises with,
    and updates, only its own statistics and affine parameters. Every copy starts as the layer it replaces."""

    def __init__(self, bn: nn.BatchNorm2d, state: FrameState) -> None:
        super().__init__()
        self.state = state
        self.bns = nn.ModuleList(_copy_bn(bn) for _ in range(state.n_branches))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bns[self.state.branch](x)


def _copy_bn(bn: nn.BatchNorm2d) -> nn.BatchNorm2d:
    new = nn.BatchNorm2d(bn.num_features, eps=bn.eps, momentum=bn.momentum, affine=bn.affine,
                         track_running_stats=bn.track_running_stats)
    new.load_state_dict(bn.state_dict())
    return new


def _residual_blocks(trunk: nn.Module) -> list[nn.Module]:
    """The residual blocks (torchvision ``BasicBlock`` / ``Bottleneck``: anything with ``conv1`` and
    ``downsample``) of a ResNet trunk, in order."""
    return [m for m in trunk.modules() if hasattr(m, "conv1") and hasattr(m, "downsample")]


def add_temporal_shift(trunk: nn.Module, state: FrameState, fold_div: int = 8, shift: bool = True,
                       weight_alteration: bool = False) -> nn.Module:
    """Put TSM's residual shift (and FFN's weight alterations) in front of ``conv1`` of every residual block of a
    ResNet trunk, in place. The identity path and ``downsample`` see the unshifted input, as in TSM's
    ``blockres`` placement. ``shift=False`` keeps the per-frame network (TSN, Wang et al., ECCV 2016) with the
    same structure, for the baseline without temporal modelling. Adds no parameters unless
    ``weight_alteration``."""
    blocks = _residual_blocks(trunk)
    if not blocks:
        raise ValueError("the trunk has no residual blocks (modules with conv1 and downsample) to shift")
    for block in blocks:
        alteration = WeightAlteration(block.conv1.in_channels, state) if weight_alteration else None
        block.conv1 = ShiftedBranch(block.conv1, state, fold_div, shift, alteration)
    return trunk


def make_private_batchnorm(module: nn.Module, state: FrameState) -> nn.Module:
    """Replace every ``BatchNorm2d`` inside ``module`` by a :class:`PrivateBatchNorm2d`, in place."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, PrivateBatchNorm2d(child, state))
        else:
            make_private_batchnorm(child, state)
    return module


def nearest_branch(frames: int, trained: Sequence[int]) -> int:
    """Index of the trained frame count nearest to ``frames`` (FFN §3.4: at inference the sub-network of the
    nearest frame count runs); a tie goes to the larger frame count."""
    return min(range(len(trained)), key=lambda i: (abs(trained[i] - frames), -trained[i]))
