"""The seed's anchor grids (fastai 2018 "multi-label SSD" lesson): count, order, hand-checked centres and sizes."""

import torch

from torchrepro.detection.anchors import seed_anchors
from torchrepro.detection.boxes import decode_seed


def test_seed_anchor_count_is_189():
    anchors = seed_anchors()
    assert len(anchors) == (16 + 4 + 1) * 9 == 189
    assert anchors.k == 9 and anchors.grids == (4, 2, 1)
    assert anchors.cxcywh.shape == (189, 4) and anchors.grid_size.shape == (189, 1)
    assert anchors.cxcywh.dtype == torch.float32


# (w, h) multipliers of 1/g in the seed's order: zooms 0.7, 1, 1.3 outer; ratios (h, w) = (1,1), (1,.5), (.5,1) inner
SIZES = [(0.7, 0.7), (0.35, 0.7), (0.7, 0.35), (1.0, 1.0), (0.5, 1.0), (1.0, 0.5), (1.3, 1.3), (0.65, 1.3), (1.3, 0.65)]


def test_one_by_one_grid_by_hand():
    anchors = seed_anchors()
    last = anchors.cxcywh[180:]  # 144 (4×4) + 36 (2×2) anchors come first
    expected = torch.tensor([(0.5, 0.5, w, h) for w, h in SIZES])
    torch.testing.assert_close(last, expected)
    assert torch.all(anchors.grid_size[180:] == 1.0)
    # the zoom-1.3 square overhangs the image by 0.15 on every side (corners are not clipped)
    torch.testing.assert_close(anchors.xyxy[186], torch.tensor([-0.15, -0.15, 1.15, 1.15]))


def test_two_by_two_grid_by_hand():
    anchors = seed_anchors()
    block = anchors.cxcywh[144:180].view(4, 9, 4)
    # cells row-major (y slowest), as the head's permute(0, 2, 3, 1) flattening orders them
    centres = [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)]
    for cell, (cx, cy) in enumerate(centres):
        expected = torch.tensor([(cx, cy, w / 2, h / 2) for w, h in SIZES])
        torch.testing.assert_close(block[cell], expected)
    assert torch.all(anchors.grid_size[144:180] == 0.5)
    # first 4×4 cell: centre (1/8, 1/8), zoom-1 square of side 1/4
    torch.testing.assert_close(anchors.cxcywh[3], torch.tensor([0.125, 0.125, 0.25, 0.25]))
    torch.testing.assert_close(anchors.cxcywh[9, :2], torch.tensor([0.375, 0.125]))  # next cell: x moves first


def test_decoding_a_zero_activation_gives_the_anchor_box():
    anchors = seed_anchors()
    boxes = decode_seed(torch.zeros(2, 189, 4), anchors.cxcywh, anchors.grid_size)
    torch.testing.assert_close(boxes, anchors.xyxy.expand(2, -1, -1))


def test_seed_decoding_bounds_by_hand():
    anchors = seed_anchors(grids=(2,))
    act = torch.full((1, 36, 4), 100.0)  # tanh → 1: centre + half a cell, size × 1.5
    boxes = decode_seed(act, anchors.cxcywh, anchors.grid_size)[0, 0]  # cell (0, 0), zoom 0.7 square
    cx = cy = 0.25 + 0.5 * 0.5
    half = 1.5 * 0.35 / 2
    torch.testing.assert_close(boxes, torch.tensor([cx - half, cy - half, cx + half, cy + half]))
