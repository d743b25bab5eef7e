"""Heatmap decoding, NMS, key point extraction and descriptor sampling (SuperPoint §3.2–3.3)."""

from __future__ import annotations

import numpy as np
import torch

from torchrepro.superpoint.keypoints import extract_keypoints, heatmap_from_logits, nms_points, sample_descriptors


def test_heatmap_puts_each_bin_at_its_pixel() -> None:
    semi = torch.full((1, 65, 2, 3), -20.0)
    semi[0, 64] = 20.0  # every cell: dustbin
    semi[0, 64, 1, 2] = -20.0
    semi[0, 8 * 5 + 3, 1, 2] = 20.0  # cell row 1, col 2, bin (row 5, col 3) → pixel (x 19, y 13)
    heat = heatmap_from_logits(semi)[0]
    assert heat.shape == (16, 24)
    assert torch.nonzero(heat > 0.5).tolist() == [[13, 19]]


def _nms_fast_reference(xy: np.ndarray, scores: np.ndarray, radius: int) -> list[int]:
    """Magic Leap's nms_fast, written plainly: visit by decreasing score, keep a point unless a kept one lies within
    a (2r+1)×(2r+1) box around it."""
    kept: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if all(max(abs(xy[i] - xy[j])) > radius for j in kept):
            kept.append(int(i))
    return kept


def test_nms_equals_magic_leaps_greedy_box_suppression() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        xy = rng.integers(0, 40, (60, 2))
        xy = np.unique(xy, axis=0)
        scores = rng.permutation(len(xy)).astype(np.float32) + 1.0  # distinct scores: one greedy order
        kept = nms_points(torch.from_numpy(xy).float(), torch.from_numpy(scores), radius=4).tolist()
        assert kept == _nms_fast_reference(xy, scores, 4)


def test_extract_keypoints_thresholds_removes_border_and_keeps_top_k() -> None:
    heat = torch.zeros(32, 32)
    heat[10, 10], heat[10, 12], heat[20, 25], heat[1, 16], heat[16, 16] = 0.9, 0.8, 0.7, 0.95, 0.0005
    xy, scores = extract_keypoints(heat, threshold=0.001, nms_radius=4, border=4)
    assert xy.tolist() == [[10.0, 10.0], [25.0, 20.0]]  # (12, 10) suppressed, (16, 1) in the border, 0.0005 too weak
    assert scores.tolist() == [heat[10, 10].item(), heat[20, 25].item()]
    xy, _ = extract_keypoints(heat, threshold=0.001, nms_radius=4, top_k=1)
    assert xy.tolist() == [[10.0, 10.0]]


def test_descriptors_at_cell_centres_are_the_cells_and_interpolate_between() -> None:
    desc = torch.nn.functional.normalize(torch.randn(8, 3, 4), dim=0)
    centres = torch.tensor([[3.5, 3.5], [8 * 2 + 3.5, 8 * 1 + 3.5]])
    torch.testing.assert_close(sample_descriptors(desc, centres), torch.stack((desc[:, 0, 0], desc[:, 1, 2])))
    halfway = sample_descriptors(desc, torch.tensor([[7.5, 3.5]]))[0]  # between cells (0, 0) and (0, 1)
    torch.testing.assert_close(halfway, torch.nn.functional.normalize(desc[:, 0, 0] + desc[:, 0, 1], dim=0))
    assert sample_descriptors(desc, torch.zeros(0, 2)).shape == (0, 8)
