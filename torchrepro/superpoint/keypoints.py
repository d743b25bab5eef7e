"""From SuperPointNet's outputs to key points and their descriptors (SuperPoint, CVPRW 2018, §3.2–3.3).

* :func:`heatmap_from_logits`: softmax over the 65 channels of each 8×8 cell, drop the dustbin, depth-to-space
  ("reshape", §3.2) to a full-resolution probability map.
* :func:`nms_points`: greedy non-maximum suppression as Magic Leap's ``nms_fast`` (the released demo, which
  pytorch-superpoint uses): points by decreasing score, each kept point suppresses every weaker one within a
  Chebyshev distance of ``radius`` pixels (a (2r+1)×(2r+1) box). Like ``nms_fast`` it marks suppressed pixels
  on a grid, in one pass (numba): linear in the number of candidates, where box NMS is quadratic: an untrained
  network's flat heatmap puts every pixel above the threshold (19,200 candidates at 120×160).
* :func:`extract_keypoints`: threshold → border removal → NMS → top-k, in (x, y) pixel coordinates.
* :func:`sample_descriptors`: bilinear interpolation of the H/8 × W/8 descriptor map at key points (§3.3), then
  L2 normalisation.

Pixel convention: integer coordinates are pixel centres (OpenCV's); pixel (x, y) of the heatmap is row y,
column x.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from numba import njit
from torch import Tensor

from torchrepro.nn.superpoint import CELL

__all__ = ["extract_keypoints", "heatmap_from_logits", "keypoints_and_descriptors", "nms_points", "sample_descriptors"]


def heatmap_from_logits(semi: Tensor) -> Tensor:
    """``semi`` [B, 65, Hc, Wc] logits → [B, 8·Hc, 8·Wc] interest point probabilities (§3.2).

    Channel ``c < 64`` of cell (i, j) is pixel (8i + c // 8, 8j + c % 8), the order of ``pixel_shuffle``
    (Magic Leap's demo reshapes the same way); channel 64 is the dustbin.
    """
    prob = torch.softmax(semi, dim=1)[:, :-1]
    return F.pixel_shuffle(prob, CELL).squeeze(1)


@njit(cache=True)
def _grid_nms(xs: np.ndarray, ys: np.ndarray, order: np.ndarray, radius: int, height: int, width: int) -> np.ndarray:
    """Indices kept by greedy suppression, visiting ``order`` (decreasing score) on an occupancy grid."""
    suppressed = np.zeros((height + 2 * radius, width + 2 * radius), dtype=np.bool_)
    keep = np.empty(order.shape[0], dtype=np.int64)
    n = 0
    for i in order:
        x, y = xs[i] + radius, ys[i] + radius  # the grid is padded by the radius: no bounds checks
        if suppressed[y, x]:
            continue
        keep[n] = i
        n += 1
        suppressed[y - radius: y + radius + 1, x - radius: x + radius + 1] = True
    return keep[:n]


def nms_points(xy: Tensor, scores: Tensor, radius: int) -> Tensor:
    """Indices of the points kept by greedy NMS within a Chebyshev ``radius`` (Magic Leap's ``nms_fast``).

    ``xy`` [N, 2] integer-valued pixel positions (x, y ≥ 0), ``scores`` [N]; returns the kept indices by
    decreasing score (ties: the earlier point first). ``radius`` 0 keeps everything.
    """
    order = torch.argsort(scores, descending=True, stable=True)
    if radius <= 0 or xy.shape[0] == 0:
        return order
    pixels = xy.round().long().cpu().numpy()
    xs, ys = pixels[:, 0], pixels[:, 1]
    keep = _grid_nms(xs, ys, order.cpu().numpy(), int(radius), int(ys.max()) + 1, int(xs.max()) + 1)
    return torch.from_numpy(keep).to(xy.device)


def extract_keypoints(heatmap: Tensor, threshold: float, nms_radius: int, top_k: int | None = None,
                      border: int = 4) -> tuple[Tensor, Tensor]:
    """Key points of one heatmap [H, W]: (xy [N, 2] float, scores [N]) by decreasing score.

    Pixels above ``threshold`` (the seed: 0.001 for MagicPoint's evaluation, 0.015 in Magic Leap's demo), at
    least ``border`` pixels from the image edge (the demo's ``border_remove`` 4), after NMS; the ``top_k`` best
    when given (the HPatches protocol: 300 or 1,000).
    """
    height, width = heatmap.shape
    ys, xs = torch.nonzero(heatmap > threshold, as_tuple=True)
    inside = (xs >= border) & (xs < width - border) & (ys >= border) & (ys < height - border)
    xy = torch.stack((xs[inside], ys[inside]), dim=1)
    scores = heatmap[ys[inside], xs[inside]]
    keep = nms_points(xy, scores, nms_radius)
    if top_k is not None:
        keep = keep[:top_k]
    return xy[keep].to(heatmap.dtype), scores[keep]


def sample_descriptors(desc: Tensor, xy: Tensor, cell: int = CELL) -> Tensor:
    """Descriptors [N, D] at pixel positions ``xy`` [N, 2] from one semi-dense map ``desc`` [D, Hc, Wc] (§3.3).

    Cell (i, j) covers pixels 8j … 8j + 7 across, so its centre is pixel 8j + 3.5: the map coordinate of pixel x is
    (x − 3.5) / 8, which ``grid_sample`` with ``align_corners=False`` gives for g = 2 (x + ½) / W − 1, W = 8·Wc.
    Interpolated descriptors are L2-normalised again.
    """
    d, hc, wc = desc.shape
    if xy.shape[0] == 0:
        return desc.new_zeros((0, d))
    size = torch.tensor([wc * cell, hc * cell], dtype=desc.dtype, device=desc.device)
    grid = (2.0 * (xy.to(desc.dtype) + 0.5) / size - 1.0).view(1, 1, -1, 2)
    sampled = F.grid_sample(desc[None], grid, mode="bilinear", align_corners=False)  # [1, D, 1, N]
    return F.normalize(sampled[0, :, 0].t(), p=2, dim=1)


def keypoints_and_descriptors(semi: Tensor, desc: Tensor, shape: tuple[int, int], threshold: float, nms_radius: int,
                              top_k: int | None, border: int = 4) -> tuple[Tensor, Tensor, Tensor]:
    """One image's key points (xy [N, 2], scores [N]) and their descriptors [N, D] from SuperPointNet's outputs
    ``semi`` [65, Hc, Wc] and ``desc`` [D, Hc, Wc]; ``shape`` (rows, cols) is the image's true size, any
    padding beyond it (to whole cells) is ignored."""
    heat = heatmap_from_logits(semi[None])[0, : shape[0], : shape[1]].float()
    xy, scores = extract_keypoints(heat, threshold, nms_radius, top_k, border)
    return xy, scores, sample_descriptors(desc.float(), xy)
