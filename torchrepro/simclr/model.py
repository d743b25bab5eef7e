"""SimCLR's network (Chen et al., ICML 2020, §2.1): a ResNet encoder f(·) giving the representation h (what the
evaluations use) and a projection head g(·), the MLP z = W₂σ(W₁h) the contrastive loss is computed on.

The seed's encoder is a torchvision ResNet-18 without its fc (512-d h) and a 512→512→256 head. The encoder comes
from :func:`torchrepro.nn.backbones.create_backbone`: any channel count, the small-image stem (3×3/1 conv, no
max-pool; the paper's CIFAR-10 variant, Appendix B.9) and a width option for CPU budgets. The head has batch
normalisation after its hidden layer, as in the authors' implementation.
"""

from __future__ import annotations

import torch
from torch import nn

from torchrepro.nn.backbones import create_backbone


class Encoder(nn.Module):
    """ResNet trunk → global average pool → h ``[N, out_features]``."""

    def __init__(self, arch: str, in_channels: int, small_stem: bool, width: int, channels_last: bool = False,
                 stem_stride: int = 1) -> None:
        """``channels_last`` stores the trunk's weights NHWC, the layout of oneDNN's fast CPU convolutions: a width-8
        ResNet-18 trains about 1.5× faster on 28×28 images on this project's machine (the figures change only by
        float rounding; checkpoints load either way)."""
        super().__init__()
        self.trunk = create_backbone(arch, in_channels=in_channels, small_stem=small_stem, width=width,
                                     stem_stride=stem_stride)
        if channels_last:
            self.trunk.to(memory_format=torch.channels_last)
        self.out_features = int(self.trunk.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.trunk(x), 1), 1)


def projection_head(in_features: int, hidden: int, out: int, batch_norm: bool = True) -> nn.Sequential:
    """g(h) = W₂ ReLU(BN(W₁ h)) (§2.1; the non-linear head of §4.2, Fig. 8)."""
    layers: list[nn.Module] = [nn.Linear(in_features, hidden, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm1d(hidden))
    layers += [nn.ReLU(inplace=True), nn.Linear(hidden, out)]
    return nn.Sequential(*layers)


class SimCLRNet(nn.Module):
    """Encoder f and projection head g; ``forward`` returns the representation h."""

    def __init__(self, arch: str, in_channels: int, small_stem: bool, width: int, proj_hidden: int, proj_dim: int,
                 proj_bn: bool = True, channels_last: bool = False, stem_stride: int = 1) -> None:
        super().__init__()
        self.encoder = Encoder(arch, in_channels, small_stem, width, channels_last, stem_stride)
        self.head = projection_head(self.encoder.out_features, proj_hidden, proj_dim, proj_bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """z = g(f(x)), what NT-Xent contrasts."""
        return self.head(self.encoder(x))
