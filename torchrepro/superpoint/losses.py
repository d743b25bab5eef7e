"""SuperPoint's losses (DeTone et al., CVPRW 2018, §3.4, Eq. 1–6).

* **Interest point loss** L_p (Eq. 2): a softmax cross-entropy over the 65 bins of every 8×8 cell. A cell's label is
  the bin of its ground-truth point, the dustbin (64) when it has none; when a cell holds several points one is
  picked at random (rpautrat/SuperPoint breaks the tie with random noise; pytorch-superpoint takes the first).
  Cells that a homographic warp left partly outside the image are excluded (the reference codes' valid mask:
  a cell counts only when all its 64 pixels are valid); the loss is the mean over the counted cells.
* **Descriptor loss** L_d (Eq. 4–6): for every pair of cells (hw) in the image and (h'w') in its warp,
  s = 1 when the warped centre of hw lies within 8 pixels of the centre of h'w' (Eq. 4: "≤ 8"; but neighbouring
  cell centres are exactly 8 pixels apart, so under the identity "≤ 8" would make each cell's four neighbours
  positives too; rpautrat/SuperPoint uses 8 − ½, and so do we), and
  l_d = λ_d · s · max(0, m_p − dᵀd') + (1 − s) · max(0, dᵀd' − m_n) with m_p = 1, m_n = 0.2, λ_d = 250 (Eq. 6),
  averaged over the pairs whose second cell is valid. Its positive and negative parts are returned apart:
  users of both reference implementations report descriptor losses that do not converge, and the two parts
  show which side fails.
* **Sparse descriptor loss** (pytorch-superpoint's ``sparse_loss``, after the pixelwise contrastive loss of Schmidt
  et al., RA-L 2017, §III): instead of all (Hc·Wc)² cell pairs, ``matches`` cells of the image are drawn, each with
  its correspondence (the cell of the warp nearest to its warped centre) and ``non_matches`` random cells of the warp
  that do not correspond; matches pay λ_d · max(0, m_p − dᵀd') (mean over matches), non-matches
  max(0, dᵀd' − m_n) summed and divided by the number of them that pay (the "hard negatives") plus one. Memory and
  time grow with the number of drawn pairs, not with the square of the image area; the reference trains with it at
  1,000 matches, 100 non-matches each, λ_d 1 and λ 1.
* The total (Eq. 1): L_p(X, Y) + L_p(X', Y') + λ L_d with λ = 1e-4 (the task sums the terms).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from torchrepro.nn.superpoint import CELL
from torchrepro.superpoint.homography import warp_points_torch

__all__ = ["cell_centres", "cell_labels", "cell_valid", "descriptor_hinge_loss", "descriptor_sparse_loss",
           "detector_loss"]

DUSTBIN = CELL * CELL


def cell_labels(points: list[Tensor], height: int, width: int, generator: torch.Generator | None = None) -> Tensor:
    """The 65-bin label of each cell: [B, H/8, W/8] long from per-image points [N_b, 2] in (x, y) pixels.

    Points are rounded to their pixel; several points in one cell: one chosen uniformly at random with
    ``generator`` (deterministic given its state), the first in the given order without one.
    """
    hc, wc = height // CELL, width // CELL
    labels = torch.full((len(points), hc * wc), DUSTBIN, dtype=torch.long)
    for b, xy in enumerate(points):
        if xy.shape[0] == 0:
            continue
        px = xy.round().long()
        keep = (px[:, 0] >= 0) & (px[:, 0] < wc * CELL) & (px[:, 1] >= 0) & (px[:, 1] < hc * CELL)
        px = px[keep]
        cell = (px[:, 1] // CELL) * wc + px[:, 0] // CELL
        bin_ = (px[:, 1] % CELL) * CELL + px[:, 0] % CELL  # the order of pixel_shuffle (keypoints.py)
        # a random priority per point; scatter_reduce "amax" keeps the highest priority's bin per cell
        if generator is not None:
            priority = torch.rand(px.shape[0], generator=generator)
        else:
            priority = -torch.arange(px.shape[0], dtype=torch.float32)
        best = torch.full((hc * wc,), -float("inf")).scatter_reduce(0, cell, priority, "amax")
        winner = priority == best[cell]
        labels[b, cell[winner]] = bin_[winner]
    return labels.view(len(points), hc, wc)


def cell_valid(valid: Tensor) -> Tensor:
    """[B, H, W] bool pixel mask → [B, H/8, W/8] bool: a cell is valid when all its 64 pixels are."""
    return F.max_pool2d((~valid).float()[:, None], CELL)[:, 0] == 0


def detector_loss(semi: Tensor, labels: Tensor, valid_cells: Tensor | None = None) -> Tensor:
    """L_p (Eq. 2): cross-entropy of ``semi`` [B, 65, Hc, Wc] against ``labels`` [B, Hc, Wc], mean over valid cells."""
    per_cell = F.cross_entropy(semi, labels, reduction="none")
    if valid_cells is None:
        return per_cell.mean()
    weight = valid_cells.to(per_cell.dtype)
    return (per_cell * weight).sum() / weight.sum().clamp_min(1.0)


def cell_centres(hc: int, wc: int, device: torch.device | None = None) -> Tensor:
    """Pixel centres [Hc·Wc, 2] (x, y) of the cells, row-major: cell (i, j) covers pixels 8j … 8j + 7, centre 8j + 3.5."""
    ys, xs = torch.meshgrid(torch.arange(hc, device=device), torch.arange(wc, device=device), indexing="ij")
    return torch.stack((xs, ys), dim=-1).reshape(-1, 2).float() * CELL + (CELL - 1) / 2.0


def descriptor_hinge_loss(desc: Tensor, desc_warped: Tensor, homography: Tensor, valid_cells_warped: Tensor,
                          pos_margin: float = 1.0, neg_margin: float = 0.2, lambda_d: float = 250.0,
                          distance: float = CELL - 0.5) -> dict[str, Tensor]:
    """L_d (Eq. 4–6) between ``desc`` [B, D, Hc, Wc] of images and ``desc_warped`` of their warps.

    ``homography`` [B, 3, 3] maps pixels of the image to pixels of its warp; ``valid_cells_warped`` [B, Hc, Wc]
    marks the warp's cells that show the image. Returns ``{"loss", "positive", "negative"}``: the weighted total
    and its two parts (each already divided by the number of counted pairs), plus ``"positive_pairs"``, the
    mean number of correspondences per cell (a warp that leaves none makes the loss all negatives).
    """
    b, d, hc, wc = desc.shape
    centres = cell_centres(hc, wc, desc.device)
    warped = warp_points_torch(centres.expand(b, -1, -1), homography)  # [B, Hc·Wc, 2]
    s = (torch.cdist(warped, centres.expand(b, -1, -1)) <= distance).to(desc.dtype)  # [B, cells, cells'] Eq. 4
    dot = desc.flatten(2).transpose(1, 2) @ desc_warped.flatten(2)  # [B, cells, cells']
    weight = valid_cells_warped.flatten(1)[:, None, :].to(desc.dtype).expand_as(dot)
    count = weight.sum().clamp_min(1.0)
    positive = (lambda_d * s * F.relu(pos_margin - dot) * weight).sum() / count
    negative = ((1.0 - s) * F.relu(dot - neg_margin) * weight).sum() / count
    return {"loss": positive + negative, "positive": positive, "negative": negative,
            "positive_pairs": (s * weight).sum() / weight[:, 0, :].sum().clamp_min(1.0)}


def descriptor_sparse_loss(desc: Tensor, desc_warped: Tensor, homography: Tensor, valid_cells_warped: Tensor,
                           generator: torch.Generator | None = None, matches: int = 1000, non_matches: int = 100,
                           pos_margin: float = 1.0, neg_margin: float = 0.2, lambda_d: float = 1.0,
                           distance: float = CELL - 0.5) -> dict[str, Tensor]:
    """The sparse descriptor loss (module docstring) between ``desc`` [B, D, Hc, Wc] and ``desc_warped``.

    Arguments as :func:`descriptor_hinge_loss`; ``generator`` draws the matches and non-matches. A cell corresponds
    to the warp's cell nearest to its warped centre when that cell is valid and within ``distance`` pixels of it;
    a non-match is any cell of the warp farther than ``distance`` from the warped centre. Matches are drawn with
    replacement when an image has fewer than ``matches`` (the reference pads the same way). Returns the dict of
    :func:`descriptor_hinge_loss`, averaged over the images that have a correspondence, ``"positive_pairs"`` being
    the fraction of the image's cells that have one.
    """
    b, d, hc, wc = desc.shape
    centres = cell_centres(hc, wc, desc.device)
    warped = warp_points_torch(centres.expand(b, -1, -1), homography)  # [B, cells, 2]
    near = ((warped - (CELL - 1) / 2.0) / CELL).round()
    inside = (near[..., 0] >= 0) & (near[..., 0] < wc) & (near[..., 1] >= 0) & (near[..., 1] < hc)
    target = (near[..., 1].clamp(0, hc - 1) * wc + near[..., 0].clamp(0, wc - 1)).long()  # [B, cells]
    valid_w = valid_cells_warped.flatten(1)
    close = (warped - centres[target]).norm(dim=-1) <= distance
    has_match = inside & close & valid_w.gather(1, target)
    a, w = desc.flatten(2).transpose(1, 2), desc_warped.flatten(2).transpose(1, 2)  # [B, cells, D]
    parts: dict[str, list[Tensor]] = {"positive": [], "negative": []}
    for i in range(b):
        cells = has_match[i].nonzero()[:, 0]
        if cells.numel() == 0:
            continue
        drawn = cells[torch.randint(cells.numel(), (matches,), generator=generator).to(cells.device)] \
            if cells.numel() < matches else cells[torch.randperm(cells.numel(), generator=generator)[:matches]]
        dot_match = (a[i, drawn] * w[i, target[i, drawn]]).sum(-1)
        parts["positive"].append(lambda_d * F.relu(pos_margin - dot_match).mean())
        others = torch.randint(hc * wc, (drawn.numel(), non_matches), generator=generator).to(desc.device)
        far = (warped[i, drawn][:, None] - centres[others]).norm(dim=-1) > distance
        penalty = F.relu((a[i, drawn][:, None] * w[i, others]).sum(-1) - neg_margin) * far
        parts["negative"].append(penalty.sum() / ((penalty > 0).sum() + 1))
    if not parts["positive"]:  # no image has a correspondence: nothing to learn from this batch
        zero = desc.sum() * 0.0
        return {"loss": zero, "positive": zero, "negative": zero, "positive_pairs": zero.detach()}
    positive, negative = torch.stack(parts["positive"]).mean(), torch.stack(parts["negative"]).mean()
    return {"loss": positive + negative, "positive": positive, "negative": negative,
            "positive_pairs": has_match.float().mean()}
