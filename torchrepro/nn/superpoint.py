"""SuperPointNet (DeTone, Malisiewicz, Rabinovich, "SuperPoint", CVPRW 2018, §3 and Fig. 3).

A VGG-style shared encoder takes a grey H×W image to a 128-channel map at H/8 × W/8: eight 3×3 convolutions
(64, 64 | 64, 64 | 128, 128 | 128, 128 channels) with a 2×2 max-pool after the 2nd, 4th and 6th (§3.1). Two
heads read it:

* the **interest point decoder** (§3.2): 3×3 conv 128→256, then 1×1 conv 256→65 — per 8×8 cell, 64 logits for
  the cell's pixels plus a "no interest point" dustbin. A softmax over the 65 channels, dropping the dustbin and
  a depth-to-space reshape give the full-resolution heatmap (:mod:`torchrepro.superpoint.keypoints`);
* the **descriptor decoder** (§3.3): 3×3 conv 128→256, then 1×1 conv 256→D (D = 256), L2-normalised per cell;
  descriptors at key points are interpolated from this semi-dense map.

Every convolution but the two final 1×1 ones is followed by a ReLU. Without BatchNorm this is Magic Leap's
released network, 1,300,865 parameters (tests/nn/test_superpoint.py counts them). ``batchnorm=True`` adds a
BatchNorm after every convolution, as the seed's ``SuperPointNet_gauss2`` (eric-yyjau/pytorch-superpoint),
which trains from scratch more readily.

``descriptor=False`` builds MagicPoint (§4): the same encoder and detector head without the descriptor head.
``dustbin_prior`` optionally starts the detector predicting "no point" with that probability (see ``_init_dustbin``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["CELL", "ENCODER_CHANNELS", "SuperPointNet", "superpoint_encoder"]

#: Side of the square cell a detector logit vector covers (§3.1: three 2×2 poolings, 2³ = 8).
CELL = 8
#: The encoder's conv widths, two 3×3 convolutions per stage (§3.1, Fig. 3).
ENCODER_CHANNELS: tuple[int, ...] = (64, 64, 128, 128)


def _conv(c_in: int, c_out: int, kernel: int, batchnorm: bool, relu: bool = True) -> list[nn.Module]:
    """A convolution ("same" padding) with its optional BatchNorm and ReLU."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2)]
    if batchnorm:
        layers.append(nn.BatchNorm2d(c_out))
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return layers


def superpoint_encoder(in_channels: int = 1, batchnorm: bool = False) -> nn.Sequential:
    """SuperPoint's shared encoder (§3.1): H×W → 128 × H/8 × W/8."""
    layers: list[nn.Module] = []
    c_in = in_channels
    for stage, width in enumerate(ENCODER_CHANNELS):
        layers += _conv(c_in, width, 3, batchnorm) + _conv(width, width, 3, batchnorm)
        if stage < len(ENCODER_CHANNELS) - 1:
            layers.append(nn.MaxPool2d(2, 2))
        c_in = width
    encoder = nn.Sequential(*layers)
    encoder.out_channels = c_in
    return encoder


class SuperPointNet(nn.Module):
    """Encoder + interest point decoder (+ descriptor decoder): ``forward(x) -> {"semi", "desc"}``.

    ``x`` [B, 1, H, W] grey images in [0, 1] with H and W multiples of 8; ``semi`` [B, 65, H/8, W/8] detector logits;
    ``desc`` [B, D, H/8, W/8] unit-length descriptors (absent for MagicPoint).
    """

    def __init__(self, descriptor: bool = True, descriptor_dim: int = 256, batchnorm: bool = False,
                 head_channels: int = 256, dustbin_prior: float | None = None) -> None:
        super().__init__()
        self.encoder = superpoint_encoder(1, batchnorm)
        c = self.encoder.out_channels
        self.detector = nn.Sequential(*_conv(c, head_channels, 3, batchnorm),
                                      *_conv(head_channels, CELL * CELL + 1, 1, batchnorm, relu=False))
        if dustbin_prior is not None:
            self._init_dustbin(dustbin_prior)
        self.descriptor = None
        if descriptor:
            self.descriptor = nn.Sequential(*_conv(c, head_channels, 3, batchnorm),
                                            *_conv(head_channels, descriptor_dim, 1, batchnorm, relu=False))

    @torch.no_grad()
    def _init_dustbin(self, prior: float) -> None:
        """Start the detector at P(dustbin) = ``prior`` in every cell, the 64 positions sharing the rest: the prior
        initialisation of RetinaNet (Lin et al., ICCV 2017, §3.3 "Initialization"). With PyTorch's default
        initialisation every bin starts near 1/65, so the first hundreds of steps only learn that most cells hold
        no point (about 97 % of Synthetic Shapes' cells); a CPU budget cannot spare them."""
        if not 0.0 < prior < 1.0:
            raise ValueError(f"dustbin_prior must be in (0, 1), got {prior}")
        last = self.detector[-1]  # the 1×1 convolution, or the BatchNorm after it (whose shift then sets the logits)
        last.bias.zero_()
        last.bias[-1] = math.log(prior * CELL * CELL / (1.0 - prior))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        if x.dim() != 4 or x.shape[1] != 1 or x.shape[-2] % CELL or x.shape[-1] % CELL:
            raise ValueError(f"SuperPointNet takes [B, 1, H, W] grey images with H and W multiples of {CELL}, "
                             f"got {tuple(x.shape)}")
        features = self.encoder(x)
        out = {"semi": self.detector(features)}
        if self.descriptor is not None:
            out["desc"] = F.normalize(self.descriptor(features), p=2, dim=1)
        return out

    @torch.no_grad()
    def count_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
