"""NeRF's radiance field: an MLP from an encoded point and view direction to density and colour (Mildenhall et al.,
ECCV 2020, §3 and Appendix A, Fig. 7).

A **field** is any module called as ``field(points [N, 3], view_dirs [N, 3] unit) → (σ [N] ≥ 0, rgb [N, 3] in
[0, 1])`` (:class:`Field`); the renderer (``rendering.py``) only relies on that, so the hash-grid field plugs in too.

:class:`NeRFMLP` is the architecture of Appendix A: ``n_layers`` ReLU layers of width ``d_filter`` on γ(x) (63 numbers
with 10 frequencies), the input concatenated again to the activation of the layer after index ``skips`` (the paper's
"skip connection that concatenates this input to the fifth layer's activation", official ``skips=[4]``); a linear head
gives σ from the trunk, another a ``d_filter``-wide feature (no activation, as the official ``feature_linear``) that,
concatenated with γ(d) (27 numbers), goes through one ReLU layer of ``d_filter // 2`` to the RGB head. Without view
directions one linear head gives (rgb, σ) from the trunk (the paper's ablation, official ``use_viewdirs=False``).

Activations: σ = ReLU(raw) as the paper; ``density_activation="softplus"`` uses softplus(raw − 1) instead (the shifted
softplus of mip-NeRF, Barron et al., ICCV 2021, §4 "we use a softplus … with a shift"), whose gradient never
vanishes: with ReLU, once the density head's output is negative at every sample (an unlucky start, a high learning
rate, a batch of background rays) nothing brings it back and the run renders the background colour forever. Colour
is sigmoid(raw), as the paper.

Initialisation: PyTorch's default ``nn.Linear`` init everywhere (the official code uses Keras' Glorot uniform; both
train), except the density head's bias, set to :data:`DENSITY_BIAS_INIT` (0.1). At init the head's raw output
is a near-zero value of spread ~0.01–0.1 (measured on the presets), so with a zero bias a quarter to a half of the
samples start dead under ReLU; the positive bias makes 80–100 % of them start with a small positive σ (an optical
depth of a few tenths over a Blender ray, nothing opaque yet), so nearly every sample gets a density gradient from the
first step.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchrepro.nerf.encoding import PositionalEncoding

__all__ = ["DENSITY_ACTIVATIONS", "DENSITY_BIAS_INIT", "Field", "NeRFMLP", "activate_density", "paper_nerf_mlps",
           "tiny_nerf_mlps"]

DENSITY_BIAS_INIT = 0.1
SOFTPLUS_SHIFT = -1.0  # mip-NeRF's density shift: a fresh field starts semi-transparent, not opaque
DENSITY_ACTIVATIONS = ("relu", "softplus")


class Field(Protocol):
    """What the renderer calls: points [N, 3] and unit view directions [N, 3] → (σ [N] ≥ 0, rgb [N, 3] in [0, 1])."""

    def __call__(self, points: Tensor, view_dirs: Tensor) -> tuple[Tensor, Tensor]: ...


def activate_density(raw: Tensor, activation: str) -> Tensor:
    """σ ≥ 0 from the density head's raw output: ReLU (paper) or softplus(raw − 1) (module docstring)."""
    if activation == "relu":
        return F.relu(raw)
    if activation == "softplus":
        return F.softplus(raw + SOFTPLUS_SHIFT)
    raise ValueError(f"density_activation must be one of {DENSITY_ACTIVATIONS}, got {activation!r}")


class NeRFMLP(nn.Module):
    """The NeRF MLP of Appendix A / Fig. 7 (module docstring); defaults are the paper's 8 × 256 with a skip at 4."""

    def __init__(self, n_layers: int = 8, d_filter: int = 256, skips: tuple[int, ...] = (4,), pos_freqs: int = 10,
                 dir_freqs: int = 4, use_view_dirs: bool = True, d_viewdirs_hidden: int | None = None,
                 density_activation: str = "relu") -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be ≥ 1, got {n_layers}")
        if density_activation not in DENSITY_ACTIVATIONS:
            raise ValueError(f"density_activation must be one of {DENSITY_ACTIVATIONS}, got {density_activation!r}")
        self.skips = tuple(skips)
        self.use_view_dirs = use_view_dirs
        self.density_activation = density_activation
        self.pos_encoding = PositionalEncoding(pos_freqs)
        d_pos = self.pos_encoding.out_dim(3)
        # layer i + 1 takes the input again when i is a skip (official: `Linear(W + input_ch, W) if i in skips`)
        self.trunk = nn.ModuleList([nn.Linear(d_pos, d_filter)] + [
            nn.Linear(d_filter + (d_pos if i in self.skips else 0), d_filter) for i in range(n_layers - 1)])
        if use_view_dirs:
            self.dir_encoding = PositionalEncoding(dir_freqs)
            d_hidden = d_filter // 2 if d_viewdirs_hidden is None else d_viewdirs_hidden
            self.density_head = nn.Linear(d_filter, 1)
            self.feature = nn.Linear(d_filter, d_filter)
            self.view_layer = nn.Linear(d_filter + self.dir_encoding.out_dim(3), d_hidden)
            self.rgb_head = nn.Linear(d_hidden, 3)
        else:
            self.head = nn.Linear(d_filter, 4)  # (r, g, b, σ) as the official output_linear
        self._init_density_bias()

    def _init_density_bias(self) -> None:
        """Start with a small positive σ almost everywhere, so no sample begins dead (module docstring)."""
        with torch.no_grad():
            if self.use_view_dirs:
                self.density_head.bias.fill_(DENSITY_BIAS_INIT)
            else:
                self.head.bias[3] = DENSITY_BIAS_INIT

    def trunk_features(self, points: Tensor) -> Tensor:
        """The trunk's last activation [N, d_filter] at ``points`` [N, 3]."""
        encoded = self.pos_encoding(points)
        h = encoded
        for i, layer in enumerate(self.trunk):
            h = F.relu(layer(h))
            if i in self.skips and i + 1 < len(self.trunk):  # a skip after the last layer would feed nothing
                h = torch.cat((encoded, h), dim=-1)
        return h

    def forward(self, points: Tensor, view_dirs: Tensor) -> tuple[Tensor, Tensor]:
        """σ [N] ≥ 0 and rgb [N, 3] in [0, 1] at ``points`` [N, 3] seen along unit ``view_dirs`` [N, 3]."""
        h = self.trunk_features(points)
        if not self.use_view_dirs:
            raw = self.head(h)
            return activate_density(raw[..., 3], self.density_activation), torch.sigmoid(raw[..., :3])
        sigma = activate_density(self.density_head(h)[..., 0], self.density_activation)
        h = torch.cat((self.feature(h), self.dir_encoding(view_dirs)), dim=-1)
        rgb = torch.sigmoid(self.rgb_head(F.relu(self.view_layer(h))))
        return sigma, rgb


def tiny_nerf_mlps(density_activation: str = "relu") -> tuple[NeRFMLP, NeRFMLP]:
    """The seed's (tiny-NeRF tutorial's) coarse and fine MLPs: width 128, 2 and 6 layers, skip at 4, 10/4 freqs."""
    common = dict(d_filter=128, skips=(4,), pos_freqs=10, dir_freqs=4, use_view_dirs=True,
                  density_activation=density_activation)
    return NeRFMLP(n_layers=2, **common), NeRFMLP(n_layers=6, **common)


def paper_nerf_mlps(density_activation: str = "relu") -> tuple[NeRFMLP, NeRFMLP]:
    """The paper's coarse and fine MLPs (Appendix A): both 8 × 256 with the skip at 4, 10/4 freqs, view dirs."""
    return (NeRFMLP(density_activation=density_activation), NeRFMLP(density_activation=density_activation))
