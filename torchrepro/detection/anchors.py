"""Anchor (default box) grids for the seed's multi-box head (fastai 2018, "multi-label SSD" lesson).

The seed puts ``k = len(zooms) * len(ratios)`` anchors in every cell of square grids (4×4, 2×2 and 1×1 for
a 224-pixel input: 21 cells × 9 = 189 anchors). An anchor of a ``g×g`` grid is centred in its cell,
``((j + 0.5) / g, (i + 0.5) / g)`` for row ``i`` and column ``j``, and measures ``zoom · ratio / g`` — all in
[0, 1] image units. Liu et al. (SSD, ECCV 2016, §2.2 "Choosing scales and aspect ratios for default boxes")
tile default boxes the same way; the seed chose its own scales and ratios.

Order, which must equal the head's flattening (``[B, k·F, g, g] → permute(0, 2, 3, 1) → [B, g·g·k, F]``):
grids in the given order, then rows (y, slowest), then columns (x), then zooms, then ratios (fastest) — the
seed's ``anchor_scales = [(z·a, z·b) for z in zooms for (a, b) in ratios]``.

Ratios are ``(height, width)`` pairs, as in the seed, whose boxes were row-first (top, left, bottom, right):
``(1, 0.5)`` is a tall box, ``(0.5, 1)`` a wide one. Here boxes are ``xyxy`` (torchvision's convention).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torchvision.ops import box_convert

__all__ = ["AnchorSet", "SEED_GRIDS", "SEED_RATIOS", "SEED_ZOOMS", "seed_anchors"]

SEED_GRIDS: tuple[int, ...] = (4, 2, 1)
SEED_ZOOMS: tuple[float, ...] = (0.7, 1.0, 1.3)
SEED_RATIOS: tuple[tuple[float, float], ...] = ((1.0, 1.0), (1.0, 0.5), (0.5, 1.0))  # (height, width)


@dataclass(frozen=True)
class AnchorSet:
    """Anchors in [0, 1] image units.

    ``cxcywh`` [A, 4] centres and sizes; ``grid_size`` [A, 1] is ``1 / g`` of the anchor's grid (the seed's
    decoding moves a centre by at most half a cell, :func:`torchrepro.detection.boxes.decode_seed`);
    ``k`` anchors per cell; ``grids`` the grid sides.
    """

    cxcywh: Tensor
    grid_size: Tensor
    k: int
    grids: tuple[int, ...]

    @property
    def xyxy(self) -> Tensor:
        """Corners [A, 4] (the seed's ``hw2corners``; not clipped: zoom 1.3 anchors leave the image)."""
        return box_convert(self.cxcywh, "cxcywh", "xyxy")

    def __len__(self) -> int:
        return self.cxcywh.shape[0]

    def to(self, device: torch.device | str) -> AnchorSet:
        return AnchorSet(self.cxcywh.to(device), self.grid_size.to(device), self.k, self.grids)


def seed_anchors(grids: tuple[int, ...] = SEED_GRIDS, zooms: tuple[float, ...] = SEED_ZOOMS,
                 ratios: tuple[tuple[float, float], ...] = SEED_RATIOS) -> AnchorSet:
    """The seed's anchors: for each ``g`` of ``grids``, ``k = len(zooms)·len(ratios)`` boxes per cell.

    The default (4, 2, 1) grids give 21 cells × 9 = 189 anchors.
    """
    if not grids or any(g < 1 for g in grids):
        raise ValueError(f"grids must be positive integers, got {grids}")
    # [k, 2] (w, h) multipliers of 1/g: zoom outer, ratio inner (the seed's anchor_scales order)
    scales = torch.tensor([(z * rw, z * rh) for z in zooms for (rh, rw) in ratios], dtype=torch.float64)
    k = scales.shape[0]
    boxes, sizes = [], []
    for g in grids:
        centres = (torch.arange(g, dtype=torch.float64) + 0.5) / g
        cy, cx = torch.meshgrid(centres, centres, indexing="ij")  # rows (y) slowest, columns (x) next
        ctr = torch.stack((cx, cy), dim=-1).reshape(-1, 1, 2).expand(-1, k, 2)  # [g·g, k, 2]
        wh = (scales / g).expand(g * g, k, 2)
        boxes.append(torch.cat((ctr, wh), dim=-1).reshape(-1, 4))
        sizes.append(torch.full((g * g * k, 1), 1.0 / g, dtype=torch.float64))
    # built in float64 so that e.g. 0.7 · 1 / 4 rounds once, on the final float32 cast
    return AnchorSet(torch.cat(boxes).float(), torch.cat(sizes).float(), k, tuple(int(g) for g in grids))
