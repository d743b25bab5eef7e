"""Driving-direction classifier: ResNet34 features → global average pool → Flatten → Linear(512 → 3).

Follows the seed (SEEDS.md §4): a ResNet34 with its last two children (avgpool, fc) removed, an adaptive
average pool, Flatten and a linear layer to left/right/straight. The seed also L2-normalises the logits;
that caps the softmax confidence (logits on the unit sphere), so it is an option here, off by default.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from torchrepro.nn.backbones import ARCHS, load_local_weights

__all__ = ["ARCHS", "DirectionNet", "load_local_weights"]


class DirectionNet(nn.Module):
    """ResNet backbone + linear head for the 3 driving directions."""

    def __init__(self, num_classes: int = 3, arch: str = "resnet34", pretrained: str | None = None,
                 freeze_backbone: bool = False, l2_normalize: bool = False, zero_init_residual: bool = False) -> None:
        super().__init__()
        # zero_init_residual (Goyal et al. 2017, §5.1): each residual block starts as the identity, which
        # speeds up training from scratch; irrelevant when pretrained weights overwrite it.
        resnet = ARCHS[arch](weights=None, zero_init_residual=zero_init_residual)
        if pretrained:
            load_local_weights(resnet, pretrained)
        feat_dim = resnet.fc.in_features
        self.backbone = nn.Sequential(*list(resnet.children())[:-2])  # drop avgpool and fc
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(feat_dim, num_classes))
        self.l2_normalize = l2_normalize
        self.freeze_backbone = freeze_backbone
        if freeze_backbone:
            self.backbone.requires_grad_(False)

    def train(self, mode: bool = True) -> "DirectionNet":
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()  # a frozen backbone also keeps its BatchNorm statistics fixed
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.pool(self.backbone(images)))
        return F.normalize(logits, dim=1) if self.l2_normalize else logits
