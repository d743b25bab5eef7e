"""NeRF's positional encoding γ (Mildenhall et al., ECCV 2020, §5.1, Eq. 4).

γ(p) = (p, sin(2⁰ p), cos(2⁰ p), …, sin(2^{L−1} p), cos(2^{L−1} p)), applied to each coordinate of p; the paper uses
L = 10 for the point and L = 4 for the view direction, and the official code keeps p itself in front
(``include_input``), so a 3-vector becomes 3 · (1 + 2L) numbers: 63 for points, 27 for directions.

**No π.** Eq. 4 writes sin(2^k π p); the official code (``get_embedder`` in bmild/nerf ``run_nerf_helpers.py``) and the
tiny-NeRF tutorial multiply by 2^k only, and every released NeRF number was trained that way. We follow the code: with
scenes scaled into roughly [−4, 4] (Blender: near 2, far 6), π would put the highest frequency far beyond what 64–192
samples per ray can resolve. The output layout is the code's too: for each frequency, the sines of all coordinates then
their cosines, so weights trained with the reference layout line up.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["PositionalEncoding"]


class PositionalEncoding(nn.Module):
    """γ of Eq. 4 (without π, module docstring): [..., D] → [..., D · (include_input + 2 · n_freqs)].

    Frequencies are 2^k for k = 0 … n_freqs − 1 (``log_space``) or, as the tiny-NeRF option, ``n_freqs`` evenly spaced
    values from 2⁰ to 2^{n_freqs−1}.
    """

    def __init__(self, n_freqs: int, include_input: bool = True, log_space: bool = True) -> None:
        super().__init__()
        if n_freqs < 0:
            raise ValueError(f"n_freqs must be ≥ 0, got {n_freqs}")
        if n_freqs == 0 and not include_input:
            raise ValueError("PositionalEncoding with n_freqs=0 and include_input=False would output nothing")
        self.n_freqs = n_freqs
        self.include_input = include_input
        self.log_space = log_space
        if log_space:
            freqs = 2.0 ** torch.arange(n_freqs, dtype=torch.float32)
        else:
            freqs = torch.linspace(1.0, 2.0 ** max(n_freqs - 1, 0), n_freqs)
        # not persistent: derived from the constructor arguments, so checkpoints need not carry it
        self.register_buffer("freqs", freqs, persistent=False)

    def out_dim(self, in_dim: int) -> int:
        """The width of the encoding of an ``in_dim``-vector."""
        return in_dim * (int(self.include_input) + 2 * self.n_freqs)

    def forward(self, x: Tensor) -> Tensor:
        """Encode ``x`` [..., D]; the result has ``x``'s dtype and device."""
        parts = [x] if self.include_input else []
        if self.n_freqs:
            scaled = x[..., None, :] * self.freqs.to(x.dtype)[:, None]  # [..., F, D]
            # [..., F, 2, D] flattens to (sin f0, cos f0, sin f1, …), each over all D coordinates: the code's order
            parts.append(torch.stack((scaled.sin(), scaled.cos()), dim=-2).flatten(-3))
        return torch.cat(parts, dim=-1)

    def extra_repr(self) -> str:
        return f"n_freqs={self.n_freqs}, include_input={self.include_input}, log_space={self.log_space}"
