"""PCA-whitening of global descriptors, the NetVLAD post-processing step.

Arandjelović et al. (CVPR 2016, §5.1 "Dimensionality reduction"): the K·D NetVLAD vector is reduced by PCA
with whitening (learnt on training descriptors) followed by L2 normalisation; 4,096-d is their standard.
Jégou & Chum (ECCV 2012) show why whitening helps: it down-weights the co-occurring, over-counted directions.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchrepro.core.errors import DataError

__all__ = ["PCAWhitening"]


class PCAWhitening(nn.Module):
    """``x ↦ L2( (x − μ) P )`` with ``P = V_d / sqrt(λ_d + ε)``: the top-``dim`` principal directions, whitened.

    Fit with :meth:`fit` on training descriptors; the parameters are buffers, so they travel in checkpoints.
    ``dim`` may not exceed ``min(n_samples − 1, D)``: with fewer samples the remaining directions have zero
    variance and whitening them would amplify noise.
    """

    def __init__(self, in_dim: int, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        if not 1 <= dim <= in_dim:
            raise ValueError(f"PCA dimension must be in [1, {in_dim}], got {dim}")
        self.in_dim, self.dim, self.eps = int(in_dim), int(dim), float(eps)
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("projection", torch.zeros(in_dim, dim))
        self.register_buffer("fitted", torch.tensor(False))

    @torch.no_grad()
    def fit(self, descriptors: np.ndarray | Tensor) -> "PCAWhitening":
        """Learn μ and P from ``[N, in_dim]`` descriptors (SVD of the centred data; float64 for stability)."""
        x = torch.as_tensor(np.asarray(descriptors), dtype=torch.float64)
        if x.dim() != 2 or x.shape[1] != self.in_dim:
            raise DataError(f"PCA-whitening expects [N, {self.in_dim}] descriptors, got {tuple(x.shape)}")
        if x.shape[0] - 1 < self.dim:
            raise DataError(
                f"PCA-whitening to {self.dim} dimensions needs at least {self.dim + 1} training descriptors, got "
                f"{x.shape[0]}: lower model.pca_dim or use more training windows"
            )
        mean = x.mean(dim=0)
        # Economy SVD: X_c = U S Vᵀ, eigenvalues of the covariance are S² / (N − 1).
        _, s, vh = torch.linalg.svd(x - mean, full_matrices=False)
        eig = s[: self.dim] ** 2 / (x.shape[0] - 1)
        proj = vh[: self.dim].t() / torch.sqrt(eig + self.eps)
        self.mean.copy_(mean.float())
        self.projection.copy_(proj.float())
        self.fitted.fill_(True)
        return self

    def forward(self, x: Tensor) -> Tensor:
        if not bool(self.fitted):
            raise RuntimeError("PCAWhitening used before fit(); fit it on training descriptors first")
        return F.normalize((x - self.mean) @ self.projection, dim=1)
