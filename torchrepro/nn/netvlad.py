"""NetVLAD pooling layer (Arandjelović et al., "NetVLAD: CNN architecture for weakly supervised place
recognition", CVPR 2016, §3).

Given a dense map of D-dimensional local descriptors ``x_i`` (i over the H·W positions) and K cluster
centres ``c_k``, NetVLAD computes (Eq. 4)::

    V(k, :) = sum_i  a_k(x_i) * (x_i - c_k),      a_k(x_i) = softmax_k(w_k^T x_i + b_k)

followed by intra-normalisation (L2 over D for each cluster), flattening to a K·D vector and a final L2
normalisation (§3, "Normalization"). The soft assignment ``a_k`` is a 1×1 convolution followed by a softmax
over the K clusters; ``w``, ``b`` and ``c`` are all learnable and decoupled (§3).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchrepro.core.errors import DataError

__all__ = ["NetVLAD"]


class TooFewFeaturesError(DataError):
    """k-means initialisation was given fewer local features than clusters (callers rephrase it in config keys)."""

    def __init__(self, features: int, clusters: int) -> None:
        self.features, self.clusters = features, clusters
        super().__init__(f"NetVLAD.init_from_features: got {features} local features, fewer than num_clusters="
                         f"{clusters}; sample at least {clusters} (ideally many more)")


class NetVLAD(nn.Module):
    """NetVLAD layer: ``[N, D, H, W]`` local descriptors → ``[N, K·D]`` L2-normalised global descriptor.

    Args:
        num_clusters: K, the number of visual words / centroids.
        dim: D, the local descriptor dimension (channels of the input map).
        alpha: sharpness of the soft assignment used by :meth:`init_from_features` (§3: as α → ∞ the soft
            assignment tends to the hard one of the original VLAD).
        normalize_input: L2-normalise each local descriptor along D before assignment/aggregation (as in
            the paper's models, where conv5 descriptors are L2-normalised).
    """

    def __init__(
        self, num_clusters: int = 32, dim: int = 512, alpha: float = 100.0, normalize_input: bool = True
    ) -> None:
        super().__init__()
        if num_clusters < 1 or dim < 1:
            raise ValueError(f"NetVLAD needs num_clusters >= 1 and dim >= 1, got K={num_clusters}, D={dim}")
        self.num_clusters = int(num_clusters)
        self.dim = int(dim)
        self.alpha = float(alpha)
        self.normalize_input = bool(normalize_input)
        # Soft assignment: 1×1 conv D → K with bias (w_k, b_k of Eq. 3/4).
        self.conv = nn.Conv2d(self.dim, self.num_clusters, kernel_size=1, bias=True)
        # Centroids c_k (K × D), decoupled from (w_k, b_k) as in §3.
        self.centroids = nn.Parameter(torch.rand(self.num_clusters, self.dim))

    def extra_repr(self) -> str:
        return (
            f"num_clusters={self.num_clusters}, dim={self.dim}, alpha={self.alpha}, "
            f"normalize_input={self.normalize_input}"
        )

    # ------------------------------------------------------------------ forward
    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 4:
            raise ValueError(f"NetVLAD expects input of shape [N, D, H, W], got {tuple(x.shape)}")
        if x.shape[1] != self.dim:
            raise ValueError(f"NetVLAD was built for D={self.dim} channels, got input {tuple(x.shape)}")

    def soft_assign(self, x: Tensor) -> Tensor:
        """Soft-assignment ``a_k(x_i)`` (Eq. 3): ``[N, D, H, W]`` → ``[N, K, H·W]``, summing to 1 over K.

        Applies the input L2 normalisation first when ``normalize_input`` is set.
        """
        self._check_input(x)
        if self.normalize_input:
            x = F.normalize(x, p=2, dim=1)
        logits = self.conv(x).flatten(2)  # [N, K, HW]
        return F.softmax(logits, dim=1)

    def forward(self, x: Tensor) -> Tensor:
        """NetVLAD descriptor (Eq. 4 + intra-normalisation + L2): ``[N, D, H, W]`` → ``[N, K·D]``."""
        self._check_input(x)
        if self.normalize_input:
            x = F.normalize(x, p=2, dim=1)
        n = x.shape[0]
        a = F.softmax(self.conv(x).flatten(2), dim=1)  # [N, K, HW]
        feats = x.flatten(2)  # [N, D, HW]
        # sum_i a_ik (x_i - c_k) = sum_i a_ik x_i - c_k * sum_i a_ik; never builds an N×K×D×HW tensor.
        vlad = torch.bmm(a, feats.transpose(1, 2))  # [N, K, D]
        vlad = vlad - self.centroids.unsqueeze(0) * a.sum(dim=2, keepdim=True)
        vlad = F.normalize(vlad, p=2, dim=2)  # intra-normalisation (per cluster, over D)
        vlad = vlad.reshape(n, self.num_clusters * self.dim)
        return F.normalize(vlad, p=2, dim=1)

    # ------------------------------------------------------------------ initialisation
    @torch.no_grad()
    def init_from_features(self, features: np.ndarray | Tensor, seed: int = 0, niter: int = 100) -> np.ndarray:
        """Initialise centroids and the assignment conv from sampled local descriptors ``[M, D]``.

        Centroids are FAISS k-means centres of the L2-normalised descriptors. The conv is set so that the
        soft assignment reproduces the paper's ``a_k(x) ∝ exp(-α ||x - c_k||²)`` (§3, Eq. 2→3): for unit
        ``x``, ``-α||x - c_k||² = 2α c_kᵀx - α||c_k||² - α``, and the last term is common to all k so it
        cancels in the softmax. Hence ``w_k = 2α c_k`` and ``b_k = -α ||c_k||²``.

        Returns the centroids (``[K, D]`` float32 numpy array).

        Raises:
            DataError: if the features are not a finite ``[M, D]`` array with ``D == self.dim`` and
                ``M >= num_clusters``.
        """
        import faiss  # local import: only needed for initialisation

        if isinstance(features, Tensor):
            feats = features.detach().cpu().float().numpy()
        else:
            try:
                feats = np.asarray(features, dtype=np.float32)
            except (TypeError, ValueError) as err:
                raise DataError(f"NetVLAD.init_from_features: features are not a numeric array ({err})") from err
        if feats.ndim != 2:
            raise DataError(
                f"NetVLAD.init_from_features expects local features of shape [M, D={self.dim}], "
                f"got shape {tuple(feats.shape)}"
            )
        m, d = feats.shape
        if d != self.dim:
            raise DataError(
                f"NetVLAD.init_from_features: features have dimension {d} but the layer was built with "
                f"dim={self.dim}; sample local features from the same backbone layer that feeds NetVLAD"
            )
        if m < self.num_clusters:
            raise TooFewFeaturesError(m, self.num_clusters)
        if not np.isfinite(feats).all():
            raise DataError("NetVLAD.init_from_features: features contain NaN or Inf values")

        norms = np.linalg.norm(feats, axis=1, keepdims=True)
        feats = np.ascontiguousarray(feats / np.maximum(norms, 1e-12), dtype=np.float32)
        kmeans = faiss.Kmeans(d, self.num_clusters, niter=int(niter), seed=int(seed), verbose=False)
        kmeans.train(feats)
        centroids = np.ascontiguousarray(kmeans.centroids, dtype=np.float32).reshape(self.num_clusters, d)

        c = torch.from_numpy(centroids).to(device=self.centroids.device, dtype=self.centroids.dtype)
        self.centroids.copy_(c)
        self.conv.weight.copy_((2.0 * self.alpha * c).view(self.num_clusters, d, 1, 1).to(self.conv.weight))
        self.conv.bias.copy_((-self.alpha * c.pow(2).sum(dim=1)).to(self.conv.bias))
        return centroids
