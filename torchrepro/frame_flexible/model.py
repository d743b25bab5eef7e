"""The video classifier of the FFN recipe: a TSM ResNet (Lin et al., ICCV 2019) with, optionally, FFN's
sub-networks per frame count (Zhang et al., CVPR 2023, §3.3).

A clip ``[N, T, 3, H, W]`` runs through the 2-D trunk as ``N·T`` images whose residual branches shift channels
along time; the classifier scores every frame and the clip's logits are the average over its frames (TSN's
average consensus, as in TSM's code). With ``private=True`` the network holds one sub-network per trained frame
count (private batch norms, and weight alterations when asked), every other weight shared; a clip runs through
the sub-network whose frame count is nearest to its own (FFN §3.4).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from torchrepro.nn.backbones import resnet_trunk
from torchrepro.nn.temporal_shift import FrameState, add_temporal_shift, make_private_batchnorm, nearest_branch

if TYPE_CHECKING:
    from torchrepro.frame_flexible.config import FFNModel

__all__ = ["FrameFlexibleNet", "network_for"]


class FrameFlexibleNet(nn.Module):
    """TSM-ResNet clip classifier; see the module docstring.

    ``frame_counts``: the frame counts the network is trained at (one sub-network each when ``private``).
    ``shift=False`` gives TSN (a per-frame network with average consensus), the baseline without temporal modelling.
    """

    def __init__(self, num_classes: int, frame_counts: Sequence[int], *, arch: str = "resnet18", width: int = 64,
                 pretrained: str | None = None, private: bool = False, weight_alteration: bool = False,
                 shift: bool = True, shift_div: int = 8, dropout: float = 0.5) -> None:
        super().__init__()
        if weight_alteration and not private:
            raise ValueError("weight alteration is per sub-network: it needs private=True")
        self.frame_counts = tuple(sorted(frame_counts))
        self.private = private
        self.state = FrameState(len(self.frame_counts) if private else 1)
        trunk = resnet_trunk(arch, width=width, pretrained=pretrained)
        add_temporal_shift(trunk, self.state, fold_div=shift_div, shift=shift, weight_alteration=weight_alteration)
        if private:
            make_private_batchnorm(trunk, self.state)
        self.trunk = trunk
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(trunk.out_channels, num_classes)
        self._warned: set[int] = set()

    def branch_for(self, frames: int) -> int:
        """The sub-network that runs ``frames``-frame clips (always 0 without private sub-networks); warns once per
        frame count that no sub-network was trained for."""
        if not self.private:
            return 0
        if frames not in self.frame_counts and frames not in self._warned:
            self._warned.add(frames)
            nearest = self.frame_counts[nearest_branch(frames, self.frame_counts)]
            warnings.warn(f"no sub-network was trained for {frames}-frame clips (trained: "
                          f"{', '.join(map(str, self.frame_counts))}); running the {nearest}-frame one, the nearest",
                          stacklevel=2)
        return nearest_branch(frames, self.frame_counts)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """``[N, T, 3, H, W]`` → class logits ``[N, classes]``."""
        if clips.dim() != 5:
            raise ValueError(f"expected clips shaped [N, T, 3, H, W], got {tuple(clips.shape)}")
        n, t = clips.shape[:2]
        self.state.set(t, self.branch_for(t))
        features = self.trunk(clips.flatten(0, 1)).mean(dim=(2, 3))
        return self.fc(self.dropout(features)).view(n, t, -1).mean(dim=1)


def network_for(m: FFNModel, num_classes: int) -> FrameFlexibleNet:
    """The network a ``model:`` block describes: private sub-networks (and weight alterations, if asked) in the
    ``ffn`` regime only; ``single`` and ``mixed`` share every layer."""
    return FrameFlexibleNet(num_classes, m.train_frames, arch=m.arch, width=m.width, pretrained=m.pretrained,
                            private=m.regime == "ffn", weight_alteration=m.regime == "ffn" and m.weight_alteration,
                            shift=m.shift, shift_div=m.shift_div, dropout=m.dropout)
