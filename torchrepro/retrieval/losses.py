"""Batch-hard triplet loss.

A. Hermans, L. Beyer, B. Leibe, "In Defense of the Triplet Loss for Person Re-Identification", arXiv:1703.07737,
2017. For each anchor ``a`` in a P×K batch: the hardest positive (the farthest item with the same label, other
than ``a`` itself) and the hardest negative (the closest item with a different label), then
``relu(d(a,p) − d(a,n) + margin)`` — or the soft margin ``softplus(d(a,p) − d(a,n))`` when ``margin`` is None —
averaged over the anchors. Anchors with no positive or no negative in the batch have no triplet and are left
out of the mean; a batch with no valid anchor gives a zero loss that still carries a (zero) gradient.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["pairwise_distance", "batch_hard_triplet_loss", "masked_batch_hard_triplet_loss", "multi_similarity_loss",
           "TripletLoss", "tuple_triplet_loss"]

Metric = Literal["euclidean", "cosine"]


def pairwise_distance(features: Tensor, metric: Metric = "euclidean", eps: float = 1e-12) -> Tensor:
    """[N, N] distances. Euclidean: ``sqrt(clamp(|x|² + |y|² − 2x·y, eps))`` — the clamp keeps the gradient
    finite where two features coincide (d/dx sqrt(x) is infinite at 0). Cosine: ``1 − cos``."""
    if metric == "euclidean":
        sq = features.pow(2).sum(dim=1)
        d2 = sq[:, None] + sq[None, :] - 2.0 * (features @ features.t())
        return d2.clamp_min(eps).sqrt()
    if metric == "cosine":
        x = F.normalize(features, dim=1)
        return 1.0 - x @ x.t()
    raise ValueError(f"metric must be 'euclidean' or 'cosine', got {metric!r}")


def batch_hard_triplet_loss(features: Tensor, labels: Tensor, margin: float | None = 0.3,
                            metric: Metric = "euclidean") -> Tensor:
    """Batch-hard triplet loss of ``features`` [N, D] with integer ``labels`` [N] (see module docstring)."""
    if features.dim() != 2:
        raise ValueError(f"features must be [N, D], got shape {tuple(features.shape)}")
    labels = labels.reshape(-1).to(features.device)
    if labels.numel() != features.shape[0]:
        raise ValueError(f"labels has {labels.numel()} entries for {features.shape[0]} features")
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=features.device)
    return masked_batch_hard_triplet_loss(features, same & ~eye, ~same, margin, metric)


def masked_batch_hard_triplet_loss(features: Tensor, pos_mask: Tensor, neg_mask: Tensor, margin: float | None = 0.3,
                                   metric: Metric = "euclidean") -> Tensor:
    """Batch-hard triplet loss (Hermans et al. 2017, Eq. 5) with explicit relations: ``pos_mask[i, j]`` marks
    ``j`` as a positive of anchor ``i``, ``neg_mask[i, j]`` as a negative; pairs in neither are ignored (in
    place recognition, windows between ``pos_m`` and ``neg_m`` apart are neither). Each anchor with at least
    one of both contributes ``relu(max d(i, pos) − min d(i, neg) + margin)`` (softplus when ``margin`` is
    None); the mean is over those anchors."""
    if features.dim() != 2:
        raise ValueError(f"features must be [N, D], got shape {tuple(features.shape)}")
    n = features.shape[0]
    if pos_mask.shape != (n, n) or neg_mask.shape != (n, n):
        raise ValueError(f"pos_mask and neg_mask must be [{n}, {n}], got {tuple(pos_mask.shape)} and "
                         f"{tuple(neg_mask.shape)}")
    if bool((pos_mask & neg_mask).any()):
        raise ValueError("a pair is marked both positive and negative")
    dist = pairwise_distance(features, metric)
    pos_mask, neg_mask = pos_mask.to(features.device), neg_mask.to(features.device)
    valid = pos_mask.any(dim=1) & neg_mask.any(dim=1)
    if not bool(valid.any()):
        return features.sum() * 0.0
    # masked_fill passes no gradient to the filled entries; invalid anchors (±inf) are dropped before use.
    d_ap = dist.masked_fill(~pos_mask, float("-inf")).amax(dim=1)[valid]
    d_an = dist.masked_fill(~neg_mask, float("inf")).amin(dim=1)[valid]
    if margin is None:
        loss = F.softplus(d_ap - d_an)
    else:
        loss = F.relu(d_ap - d_an + margin)
    return loss.mean()


class TripletLoss(nn.Module):
    """Module form of :func:`batch_hard_triplet_loss` (Hermans et al., 2017)."""

    def __init__(self, margin: float | None = 0.3, metric: Metric = "euclidean") -> None:
        super().__init__()
        if metric not in ("euclidean", "cosine"):
            raise ValueError(f"metric must be 'euclidean' or 'cosine', got {metric!r}")
        self.margin = margin
        self.metric = metric

    def forward(self, features: Tensor, labels: Tensor) -> Tensor:
        return batch_hard_triplet_loss(features, labels, self.margin, self.metric)

    def extra_repr(self) -> str:
        return f"margin={self.margin}, metric={self.metric!r}"


def _paired_distance(a: Tensor, b: Tensor, metric: Metric, eps: float = 1e-12) -> Tensor:
    """Distance between matching rows of ``a`` and ``b`` (same leading shape, last dim D)."""
    if metric == "euclidean":
        return (a - b).pow(2).sum(dim=-1).clamp_min(eps).sqrt()
    if metric == "cosine":
        return 1.0 - F.cosine_similarity(a, b, dim=-1)
    raise ValueError(f"metric must be 'euclidean' or 'cosine', got {metric!r}")


def tuple_triplet_loss(anchor: Tensor, positive: Tensor, negatives: Tensor, margin: float = 0.1,
                       metric: Metric = "cosine", reduction: Literal["sum", "hardest"] = "sum") -> Tensor:
    """Triplet margin loss over (anchor, positive, n negatives) tuples, the place-recognition training item.

    ``anchor`` and ``positive`` are [B, D], ``negatives`` [B, n, D]. Each tuple contributes
    ``relu(d(a, p) − d(a, n_j) + margin)`` for its negatives, either summed over j (``"sum"``: the event-VPR seed's
    ``TripletMarginWithDistanceLoss`` summed over negatives, and NetVLAD's Eq. 7 loss, §4) or only for the hardest
    negative (``"hardest"``, the closest one). The result is averaged over the B tuples. Gradients flow into all
    three branches (the seed ran the positive and negatives under ``no_grad``, so only the anchor branch learned: a bug).
    """
    if anchor.dim() != 2 or positive.shape != anchor.shape:
        raise ValueError(f"anchor and positive must both be [B, D], got {tuple(anchor.shape)} and {tuple(positive.shape)}")
    if negatives.dim() != 3 or negatives.shape[0] != anchor.shape[0] or negatives.shape[2] != anchor.shape[1]:
        raise ValueError(f"negatives must be [B, n, D] = [{anchor.shape[0]}, n, {anchor.shape[1]}], "
                         f"got {tuple(negatives.shape)}")
    d_ap = _paired_distance(anchor, positive, metric)  # [B]
    d_an = _paired_distance(anchor.unsqueeze(1), negatives, metric)  # [B, n]
    if reduction == "sum":
        per_tuple = F.relu(d_ap.unsqueeze(1) - d_an + margin).sum(dim=1)
    elif reduction == "hardest":
        per_tuple = F.relu(d_ap - d_an.amin(dim=1) + margin)
    else:
        raise ValueError(f"reduction must be 'sum' or 'hardest', got {reduction!r}")
    return per_tuple.mean()


def multi_similarity_loss(features: Tensor, pos_mask: Tensor, neg_mask: Tensor, alpha: float = 1.0,
                          beta: float = 50.0, base: float = 0.0, mining_margin: float | None = 0.1) -> Tensor:
    """Multi-Similarity loss (Wang et al., CVPR 2019, Eq. 12) with its pair mining (§4.2, Eq. 8-9), over cosine
    similarities ``S`` of ``features`` [N, D] and explicit relations (``pos_mask``/``neg_mask`` [N, N], as in
    :func:`masked_batch_hard_triplet_loss`).

    Mining keeps, for anchor ``i``, the negatives with ``S_ik > min_pos S_ij − ε`` and the positives with
    ``S_ij < max_neg S_ik + ε`` (ε = ``mining_margin``; None keeps every pair). The loss of an anchor is
    ``log(1 + Σ_pos exp(−α(S − base)))/α + log(1 + Σ_neg exp(β(S − base)))/β``, averaged over all anchors
    (one without kept pairs contributes 0). GSV-Cities (Ali-bey et al. 2022, §4.1) trains VPR with
    α = 1, β = 50, base 0 and ε = 0.1, the defaults here.
    """
    n = features.shape[0]
    if features.dim() != 2 or pos_mask.shape != (n, n) or neg_mask.shape != (n, n):
        raise ValueError(f"need features [N, D] and masks [N, N]; got {tuple(features.shape)}, "
                         f"{tuple(pos_mask.shape)}, {tuple(neg_mask.shape)}")
    if bool((pos_mask & neg_mask).any()):
        raise ValueError("a pair is marked both positive and negative")
    x = F.normalize(features.float(), dim=1)
    sim = x @ x.t()
    pos_mask, neg_mask = pos_mask.to(sim.device), neg_mask.to(sim.device)
    if mining_margin is not None:
        with torch.no_grad():
            min_pos = sim.masked_fill(~pos_mask, float("inf")).amin(dim=1, keepdim=True)
            max_neg = sim.masked_fill(~neg_mask, float("-inf")).amax(dim=1, keepdim=True)
        neg_mask = neg_mask & (sim > min_pos - mining_margin)
        pos_mask = pos_mask & (sim < max_neg + mining_margin)
    # log(1 + Σ exp(z)) over masked entries = logsumexp over [0, z_masked…]
    zero = torch.zeros(n, 1, device=sim.device, dtype=sim.dtype)
    pos_term = torch.logsumexp(torch.cat([zero, (-alpha * (sim - base)).masked_fill(~pos_mask, float("-inf"))], 1), 1)
    neg_term = torch.logsumexp(torch.cat([zero, (beta * (sim - base)).masked_fill(~neg_mask, float("-inf"))], 1), 1)
    return (pos_term / alpha + neg_term / beta).mean()
