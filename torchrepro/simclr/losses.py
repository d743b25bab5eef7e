"""NT-Xent, SimCLR's contrastive loss (Chen et al., ICML 2020, §2.1, Eq. 1), with negatives from every DDP rank.

For a batch of N images and their 2N views z_1 … z_2N (projections), the loss of the positive pair (i, j) is

    ℓ(i, j) = −log( exp(sim(z_i, z_j)/τ) / Σ_{k ≠ i} exp(sim(z_i, z_k)/τ) ),   sim(u, v) = uᵀv / (‖u‖‖v‖),

and the loss is the mean of ℓ over all 2N anchors, each view being the anchor once (both (i, j) and (j, i)).
Every anchor has one positive and 2N − 2 negatives; the similarity of a view with itself is masked out of the
denominator. The seed's write-up used raw dot products and τ = 2; the paper's cosine similarity and τ ∈ [0.1, 0.5]
(Table 5) are used here.

Under DDP the negatives are the 2·W·b views of the global batch (the paper's large batches, §2.2, are global
batches): every rank all-gathers the others' projections with :func:`torch.distributed.nn.functional.all_gather`,
whose backward returns each rank the gradients that every other rank's loss sent to its projections (a plain
``all_gather`` would cut them off). Each rank averages over its own 2b anchors and DDP averages the gradients over
the W ranks, so loss and gradients equal those of one process with the whole batch of W·b images.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from torchrepro.core.distributed import is_distributed


def gather_with_grad(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Every rank's ``x`` concatenated in rank order (gradients flow back to the rank that owns each row), and
    the row offset of this rank's own rows. Not distributed: ``(x, 0)``."""
    if not is_distributed():
        return x, 0
    from torch.distributed.nn.functional import all_gather

    parts = all_gather(x.contiguous())
    return torch.cat(parts, dim=0), dist.get_rank() * x.shape[0]


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float, gather: bool = True) -> torch.Tensor:
    """Mean NT-Xent loss of the pairs ``(z1[k], z2[k])`` (``[b, d]`` each, projections before normalisation).

    ``gather``: under DDP, contrast with the views of every rank (see the module docstring); otherwise with this
    rank's views only.
    """
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(f"nt_xent_loss needs two [b, d] projections of the same shape, got {tuple(z1.shape)} and "
                         f"{tuple(z2.shape)}")
    if not temperature > 0:
        raise ValueError(f"nt_xent_loss needs a temperature > 0, got {temperature}")
    b = z1.shape[0]
    local = torch.cat([z1, z2])  # [2b, d]: rows 0..b-1 view 1, b..2b-1 view 2
    local = F.normalize(local if local.dtype == torch.float64 else local.float(), dim=1)  # fp32 under mixed precision
    everyone, offset = gather_with_grad(local) if gather else (local, 0)
    if everyone.shape[0] < 2 * 2:
        raise ValueError(f"nt_xent_loss needs at least two images (one positive and at least two negatives per view), "
                         f"got {everyone.shape[0] // 2}")
    logits = local @ everyone.t() / temperature  # [2b, 2·W·b]
    rows = torch.arange(2 * b, device=local.device)
    logits[rows, offset + rows] = float("-inf")  # a view is not its own negative
    positives = offset + (rows + b) % (2 * b)  # view 1 of image k pairs with view 2 of image k, and back
    return F.cross_entropy(logits, positives)
