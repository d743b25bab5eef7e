"""Matching (seed / SSD §2.2), SSD box coding, and the batched post-processing, against hand cases and
per-image reference loops written here."""

import math

import pytest
import torch
from torchvision.models.detection import _utils as det_utils
from torchvision.ops import batched_nms, box_iou

from torchrepro.detection.anchors import seed_anchors
from torchrepro.detection.boxes import (
    decode_ssd, encode_ssd, gather_matched, match_anchors, pad_targets,
)
from torchrepro.detection.postprocess import detect, grouped_nms, nms_best_per_image


def _targets(boxes, labels=None):
    boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    labels = torch.tensor(labels if labels is not None else [1] * len(boxes), dtype=torch.int64)
    return {"boxes": boxes, "labels": labels}


def _match(anchors, targets, thr):
    gt = pad_targets(targets)
    return match_anchors(torch.tensor(anchors, dtype=torch.float32), gt.boxes, gt.valid, thr)


# ------------------------------------------------------------------------------------------ hand cases
def test_threshold_and_forced_best_anchor_by_hand():
    anchors = [[0, 0, 4, 4], [2, 0, 6, 4], [6, 6, 10, 10], [0, 6, 2, 8]]
    # GT0 [0,0,4,2] (area 8): with A0 8/16 = 0.5; with A1 overlap [2,0,4,2] = 4 → 4/(16+8-4) = 0.2
    # GT1 [7,7,8,8] (area 1): only A2, 1/16 = 0.0625 — below 0.4 but its best anchor, so forced positive
    targets = [_targets([[0, 0, 4, 2], [7, 7, 8, 8]])]
    iou = box_iou(targets[0]["boxes"], torch.tensor(anchors, dtype=torch.float32))
    torch.testing.assert_close(iou, torch.tensor([[0.5, 0.2, 0, 0], [0, 0, 0.0625, 0]]))
    assert _match(anchors, targets, 0.4).tolist() == [[0, -1, 1, -1]]
    assert _match(anchors, targets, 0.5).tolist() == [[0, -1, 1, -1]]  # 0.5 is GT0's best anchor anyway
    # A1 (0.2) only becomes positive under a threshold below 0.2
    assert _match(anchors, targets, 0.1).tolist() == [[0, 0, 1, -1]]


def test_two_gts_competing_for_one_anchor_the_higher_iou_wins():
    anchors = [[0, 0, 4, 4], [4, 0, 8, 4], [2, 0, 6, 4]]
    # A2 [2,0,6,4]: with GT0 [0,0,4,4] overlap 8 → 8/24 = 1/3; with GT1 [3,0,8,4] (area 20) overlap 12 →
    # 12/(16+20-12) = 0.5 → GT1. A0: GT0 (1.0, vs 4/32 for GT1); A1: GT1 (16/20 = 0.8)
    targets = [_targets([[0, 0, 4, 4], [3, 0, 8, 4]])]
    iou = box_iou(targets[0]["boxes"], torch.tensor(anchors, dtype=torch.float32))
    torch.testing.assert_close(iou, torch.tensor([[1.0, 0.0, 1 / 3], [0.125, 0.8, 0.5]]))
    assert _match(anchors, targets, 0.4).tolist() == [[0, 1, 1]]


def test_two_gts_sharing_a_best_anchor_the_later_keeps_it_as_in_the_seed():
    anchors = [[0, 0, 4, 4], [10, 10, 14, 14]]
    # both GTs' best anchor is A0 (0.75 and 0.5); the seed's loop `gt_idx[o] = i` leaves the later GT there,
    # although the earlier one overlaps more; the earlier GT is left without any anchor
    targets = [_targets([[0, 0, 4, 3], [0, 0, 4, 2]])]
    assert _match(anchors, targets, 0.4).tolist() == [[1, -1]]


def test_an_image_without_gt_is_all_background():
    anchors = seed_anchors().xyxy
    targets = [_targets([[0.1, 0.1, 0.5, 0.5]]), _targets([]), _targets([])]
    gt = pad_targets(targets)
    assert gt.boxes.shape == (3, 1, 4) and gt.valid.tolist() == [[True], [False], [False]]
    matched = match_anchors(anchors, gt.boxes, gt.valid, 0.4)
    assert (matched[1:] == -1).all() and (matched[0] >= 0).any()
    boxes, labels = gather_matched(matched, gt.boxes, gt.labels)
    assert (labels[1:] == 0).all() and boxes.shape == (3, 189, 4)
    # a batch with no GT at all still has a shape
    gt = pad_targets([_targets([]), _targets([])])
    assert (match_anchors(anchors, gt.boxes, gt.valid, 0.5) == -1).all()


# -------------------------------------------------------------------------- batched == per-image loop
def seed_style_match(anchors_xyxy, boxes, thr):
    """The seed's ``map_to_ground_truth`` + ``pos = gt_overlap > thr``, one image at a time (reference)."""
    if boxes.shape[0] == 0:
        return torch.full((anchors_xyxy.shape[0],), -1, dtype=torch.int64)
    overlaps = box_iou(boxes, anchors_xyxy)
    _, prior_idx = overlaps.max(1)
    gt_overlap, gt_idx = overlaps.max(0)
    gt_overlap[prior_idx] = 1.99
    for i, o in enumerate(prior_idx.tolist()):
        gt_idx[o] = i
    return torch.where(gt_overlap > thr, gt_idx, torch.full_like(gt_idx, -1))


def random_targets(gen, n_images, max_boxes, size=1.0, num_classes=5):
    targets = []
    for _ in range(n_images):
        n = int(torch.randint(0, max_boxes + 1, (1,), generator=gen))
        ctr = torch.rand(n, 2, generator=gen)
        wh = 0.02 + 0.6 * torch.rand(n, 2, generator=gen)
        if n >= 2:  # a near-duplicate pair: two GTs that want the same best anchor
            ctr[1], wh[1] = ctr[0] + 0.01, wh[0] * 0.95
        boxes = torch.cat((ctr - wh / 2, ctr + wh / 2), 1).clamp(0, 1) * size
        targets.append({"boxes": boxes, "labels": torch.randint(1, num_classes + 1, (n,), generator=gen)})
    return targets


@pytest.mark.parametrize("thr", [0.4, 0.5])
def test_batched_matching_equals_the_per_image_loop(thr):
    gen = torch.Generator().manual_seed(0)
    anchors = seed_anchors().xyxy
    targets = random_targets(gen, 200, 10)
    assert any(len(t["boxes"]) == 0 for t in targets) and any(len(t["boxes"]) == 10 for t in targets)
    gt = pad_targets(targets)
    matched = match_anchors(anchors, gt.boxes, gt.valid, thr)
    for i, t in enumerate(targets):
        assert torch.equal(matched[i], seed_style_match(anchors, t["boxes"], thr)), f"image {i}"
    boxes, labels = gather_matched(matched, gt.boxes, gt.labels)
    for i, t in enumerate(targets):
        pos = matched[i] >= 0
        assert torch.equal(labels[i][pos], t["labels"][matched[i][pos]])
        assert torch.equal(boxes[i][pos], t["boxes"][matched[i][pos]])
        assert (labels[i][~pos] == 0).all()


def test_matching_equals_torchvisions_ssd_matcher():
    gen = torch.Generator().manual_seed(1)
    anchors = seed_anchors().xyxy * 300
    matcher = det_utils.SSDMatcher(0.5)
    targets = [t for t in random_targets(gen, 100, 6, size=300.0) if len(t["boxes"])]
    gt = pad_targets(targets)
    matched = match_anchors(anchors, gt.boxes, gt.valid, 0.5)
    for i, t in enumerate(targets):
        ref = matcher(box_iou(t["boxes"], anchors)).clamp(min=-1)  # −2 (between thresholds) cannot occur at 0.5/0.5
        assert torch.equal(matched[i], ref)


# ------------------------------------------------------------------------------------------ SSD coding
def test_ssd_encode_decode_round_trip_and_torchvision_boxcoder():
    gen = torch.Generator().manual_seed(2)
    anchors = seed_anchors().xyxy * 224
    ctr, wh = torch.rand(3, 189, 2, generator=gen) * 224, 5 + torch.rand(3, 189, 2, generator=gen) * 150
    boxes = torch.cat((ctr - wh / 2, ctr + wh / 2), -1)
    offsets = encode_ssd(boxes, anchors)
    torch.testing.assert_close(decode_ssd(offsets, anchors), boxes, atol=1e-3, rtol=1e-5)
    coder = det_utils.BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))
    for i in range(3):
        torch.testing.assert_close(offsets[i], coder.encode_single(boxes[i], anchors), atol=1e-4, rtol=1e-4)
        codes = torch.randn(189, 4, generator=gen) * 3
        torch.testing.assert_close(decode_ssd(codes, anchors), coder.decode_single(codes, anchors),
                                   atol=1e-3, rtol=1e-5)
    # by hand: a box twice the anchor's width, shifted by a tenth of it → (1, 0, log 2 / 0.2, 0)
    anchor, box = torch.tensor([[0.0, 0.0, 10.0, 10.0]]), torch.tensor([[-4.0, 0.0, 16.0, 10.0]])
    torch.testing.assert_close(encode_ssd(box, anchor), torch.tensor([[1.0, 0.0, math.log(2) / 0.2, 0.0]]))
    # exp is clamped (torchvision's log(1000/16)): a huge size code stays finite
    assert torch.isfinite(decode_ssd(torch.tensor([[0.0, 0.0, 1e4, 1e4]]), anchor)).all()


# --------------------------------------------------------------------------------------- post-processing
def per_image_reference(boxes, scores, score_thresh, topk, nms_iou, max_det):
    """torchvision's SSD.postprocess_detections, one image and one class at a time."""
    out = []
    for bx, sc in zip(boxes, scores):
        kb, ks, kl = [], [], []
        for c in range(sc.shape[1]):
            s = sc[:, c]
            keep = s > score_thresh
            s, b = s[keep], bx[keep]
            s, idx = s.topk(min(topk, s.numel()))
            kb.append(b[idx]), ks.append(s), kl.append(torch.full_like(idx, c + 1))
        kb, ks, kl = torch.cat(kb), torch.cat(ks), torch.cat(kl)
        keep = batched_nms(kb, ks, kl, nms_iou)[:max_det]
        out.append({"boxes": kb[keep], "scores": ks[keep], "labels": kl[keep]})
    return out


@pytest.mark.parametrize("topk,max_det,thresh", [(400, 200, 0.01), (20, 15, 0.3), (50, 1000, 0.9)])
def test_batched_postprocess_equals_the_per_image_loop(topk, max_det, thresh):
    gen = torch.Generator().manual_seed(3)
    b, a, c = 6, 189, 5
    ctr, wh = torch.rand(b, a, 2, generator=gen) * 100, 2 + torch.rand(b, a, 2, generator=gen) * 40
    boxes = torch.cat((ctr - wh / 2, ctr + wh / 2), -1)
    scores = torch.rand(b, a, c, generator=gen) ** 2
    scores[2] = 0.0  # an image without any candidate
    ours = detect(boxes, scores, thresh, topk, 0.45, max_det)
    ref = per_image_reference(boxes, scores, thresh, topk, 0.45, max_det)
    assert len(ours) == b and ours[2]["boxes"].shape == (0, 4)
    for o, r in zip(ours, ref):
        assert torch.equal(o["labels"], r["labels"]) and torch.equal(o["scores"], r["scores"])
        assert torch.equal(o["boxes"], r["boxes"])
        assert o["labels"].dtype == torch.int64 and len(o["scores"]) <= max_det
        assert (o["scores"][:-1] >= o["scores"][1:]).all()


def test_nms_removes_a_duplicate_and_the_threshold_applies():
    boxes = torch.tensor([[[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 10]]], dtype=torch.float32)
    # class 1: box 1 overlaps box 0 (IoU 90/110 = 0.82 > 0.45) with a lower score → removed;
    # box 2 scores 0.005 < 0.01 → filtered; box 3 (same place) scores as class 2 → kept (NMS is per class)
    scores = torch.tensor([[[0.9, 0.0], [0.8, 0.0], [0.005, 0.0], [0.0, 0.7]]])
    (out,) = detect(boxes, scores)
    assert out["labels"].tolist() == [1, 2]
    torch.testing.assert_close(out["scores"], torch.tensor([0.9, 0.7]))
    torch.testing.assert_close(out["boxes"], boxes[0, [0, 3]])
    # clipping to the image
    (out,) = detect(boxes + 5, scores, image_size=(12, 12))
    assert out["boxes"].max() <= 12


def test_grouped_nms_equals_batched_nms():
    gen = torch.Generator().manual_seed(4)
    n = 3000
    ctr, wh = torch.rand(n, 2, generator=gen) * 100, 2 + torch.rand(n, 2, generator=gen) * 40
    boxes = torch.cat((ctr - wh / 2, ctr + wh / 2), -1)
    scores = (torch.randperm(n, generator=gen) + 1).float() / n  # no ties: their order is arbitrary
    groups = torch.randint(0, 60, (n,), generator=gen)
    assert torch.equal(grouped_nms(boxes, scores, groups, 0.45), batched_nms(boxes, scores, groups, 0.45))
    assert grouped_nms(boxes[:0], scores[:0], groups[:0], 0.45).numel() == 0


@pytest.mark.parametrize("spread", [100.0, 3.0])
def test_nms_on_each_images_best_prefix_equals_nms_on_everything(spread):
    # spread 3: boxes nearly on top of each other, so NMS in the prefix keeps too few and the image is redone
    gen = torch.Generator().manual_seed(5)
    n, images, max_det = 4000, 4, 50
    ctr, wh = torch.rand(n, 2, generator=gen) * spread, 20 + torch.rand(n, 2, generator=gen) * 10
    boxes = torch.cat((ctr - wh / 2, ctr + wh / 2), -1)
    scores = (torch.randperm(n, generator=gen) + 1).float() / n  # no ties: their order is arbitrary
    img = torch.randint(0, images, (n,), generator=gen)
    img[img == 3] = 2  # an image without candidates
    groups = img * 3 + torch.randint(0, 3, (n,), generator=gen)
    ours = nms_best_per_image(boxes, scores, img, groups, images, 0.45, max_det)
    full = batched_nms(boxes, scores, groups, 0.45)
    for i in range(images):
        ref = full[img[full] == i][:max_det]
        assert torch.equal(ours[img[ours] == i], ref)
    counts = torch.bincount(img[full], minlength=images)
    # spread 100: every image keeps more than max_det; spread 3: fewer, so the prefix pass had to be redone
    assert (counts[:3] > max_det).all() if spread > 10 else (counts[:3] < max_det).all()
