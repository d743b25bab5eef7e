"""Driving-direction classifier: ResNet34 features → global average pool → Flatten → Linear(512 → 3).

Follows the seed project's classifier: a ResNet34 (He et al., "Deep Residual Learning for Image Recognition",
CVPR 2016, §4.1, Table 1) with its last two children (avgpool, fc) removed, i.e. the registered ``resnet34``
trunk (:func:`torchrepro.nn.backbones.create_backbone`), an adaptive average pool, Flatten and a linear layer
to left/right/straight. The seed also L2-normalises the logits;
that caps the softmax confidence (logits on the unit sphere), so it is an option here, off by default.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from torchrepro.nn.backbones import create_backbone

__all__ = ["DirectionNet"]


class DirectionNet(nn.Module):
    """ResNet backbone + linear head for the 3 driving directions."""

    def __init__(self, num_classes: int = 3, arch: str = "resnet34", pretrained: str | None = None,
                 freeze_backbone: bool = False, l2_normalize: bool = False, zero_init_residual: bool = False) -> None:
        super().__init__()
        # zero_init_residual (Goyal et al. 2017, §5.1): each residual block starts as the identity, which
        # speeds up training from scratch; irrelevant when pretrained weights overwrite it.
        # The trunk is torchvision's ResNet without avgpool and fc (children 0–7, so the state_dict keys stay
        # backbone.0 … backbone.7); it is built from the full model, fc included, so a seed gives the same weights.
        self.backbone = create_backbone(arch, pretrained=pretrained, zero_init_residual=zero_init_residual)
        feat_dim = self.backbone.out_channels
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
