"""The three detection losses: the seed's L1 + BCE by hand, SSD's hard-negative mining (§2.2) and MultiBox
loss against torchvision's SSD.compute_loss, and the focal loss against its formula (Lin et al. 2017)."""

import math
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.ssd import SSD
from torchvision.ops import box_iou

from torchrepro.detection.anchors import seed_anchors
from torchrepro.detection.boxes import encode_ssd, gather_matched, match_anchors, pad_targets
from torchrepro.detection.losses import detection_loss, focal_loss, hard_negative_mask, seed_loss, ssd_loss


def _sig(x):
    return 1 / (1 + math.exp(-x))


def _bce(x, t):
    return -(t * math.log(_sig(x)) + (1 - t) * math.log(1 - _sig(x)))


def test_seed_loss_by_hand_on_a_one_cell_grid():
    anchors = seed_anchors(grids=(1,))  # 9 anchors centred at (0.5, 0.5)
    gt = pad_targets([{"boxes": torch.tensor([[0.15, 0.15, 0.85, 0.85]]), "labels": torch.tensor([2])}])
    # IoU of the 0.7×0.7 GT with each anchor (w, h): 0.7² → 1; 0.35×0.7 → 0.245/0.49 = 0.5; 1×1 → 0.49;
    # 0.5×1 → 0.35/(0.5+0.49−0.35) = 0.547; 1.3² → 0.49/1.69 = 0.29; 0.65×1.3 → 0.455/(0.845+0.49−0.455) = 0.517
    ious = [1.0, 0.5, 0.5, 0.49, 0.35 / 0.64, 0.35 / 0.64, 0.49 / 1.69, 0.455 / 0.88, 0.455 / 0.88]
    torch.testing.assert_close(box_iou(gt.boxes[0], anchors.xyxy)[0], torch.tensor(ious))
    positive = [iou > 0.4 for iou in ious]
    assert positive == [True] * 6 + [False, True, True]
    gen = torch.Generator().manual_seed(0)
    cls_logits = torch.randn(1, 9, 3, generator=gen)  # C = 2 (+ background column 0)
    box_act = torch.randn(1, 9, 4, generator=gen)
    # the seed's actn_to_bb, one anchor at a time
    l1, n_pos = 0.0, 0
    for i in range(9):
        cx, cy, w, h = anchors.cxcywh[0 + i].tolist()
        a = [math.tanh(v) for v in box_act[0, i].tolist()]
        pcx, pcy = cx + a[0] / 2 * 1.0, cy + a[1] / 2 * 1.0
        pw, ph = (a[2] / 2 + 1) * w, (a[3] / 2 + 1) * h
        pred = [pcx - pw / 2, pcy - ph / 2, pcx + pw / 2, pcy + ph / 2]
        if positive[i]:
            l1 += sum(abs(p - g) for p, g in zip(pred, [0.15, 0.15, 0.85, 0.85]))
            n_pos += 1
    loc = l1 / (4 * n_pos)  # the seed's .mean() over positives × 4 coordinates
    # BCE over classes 1..2 (background column dropped): a positive's target (0, 1), a negative's (0, 0)
    bce = sum(_bce(cls_logits[0, i, c].item(), float(positive[i] and c == 2)) for i in range(9) for c in (1, 2))
    out = seed_loss(cls_logits, box_act, gt, anchors)
    assert math.isclose(out["bbox_regression"].item(), loc, rel_tol=1e-5)
    assert math.isclose(out["classification"].item(), bce / 2, rel_tol=1e-5)  # / num_classes, as the seed
    # the background logit is not part of the loss
    cls2 = cls_logits.clone()
    cls2[..., 0] += 100
    assert torch.equal(seed_loss(cls2, box_act, gt, anchors)["classification"], out["classification"])


def test_seed_loss_sums_over_images_and_an_empty_image_has_only_bce():
    anchors = seed_anchors()
    gen = torch.Generator().manual_seed(1)
    cls, box = torch.randn(2, 189, 4, generator=gen), torch.randn(2, 189, 4, generator=gen)
    t0 = {"boxes": torch.tensor([[0.1, 0.2, 0.5, 0.6], [0.5, 0.5, 0.9, 1.0]]), "labels": torch.tensor([1, 3])}
    t1 = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    both = seed_loss(cls, box, pad_targets([t0, t1]), anchors)
    first = seed_loss(cls[:1], box[:1], pad_targets([t0]), anchors)
    second = seed_loss(cls[1:], box[1:], pad_targets([t1]), anchors)
    assert second["bbox_regression"] == 0  # no positive: 0 where the seed's empty mean was NaN
    torch.testing.assert_close(second["classification"], F.softplus(cls[1, :, 1:]).sum() / 3)
    for key in both:
        torch.testing.assert_close(both[key], first[key] + second[key])


def test_hard_negative_mining_picks_the_three_highest_loss_negatives():
    loss = torch.tensor([[5.0, 0.1, 0.9, 0.3, 0.7, 0.2, 0.8, 0.05]])
    positive = torch.tensor([[True, False, False, False, False, False, False, False]])
    mask = hard_negative_mask(loss, positive, 3.0)
    assert mask.nonzero()[:, 1].tolist() == [2, 4, 6]  # 0.9, 0.7, 0.8 — never the positive (5.0)
    # 3 positives want 9 negatives; only 5 are available: all of them
    positive = torch.tensor([[True, True, False, False, False, True, False, False]])
    assert hard_negative_mask(loss, positive, 3.0).tolist() == [(~positive).tolist()[0]]
    # no positive → no negative (the paper's ratio, as torchvision)
    assert not hard_negative_mask(loss, torch.zeros_like(positive), 3.0).any()


def test_hard_negative_count_is_three_per_positive_on_random_images():
    gen = torch.Generator().manual_seed(2)
    loss = torch.rand(50, 300, generator=gen)
    positive = torch.rand(50, 300, generator=gen) < torch.rand(50, 1, generator=gen) * 0.4
    mask = hard_negative_mask(loss, positive, 3.0)
    p = positive.sum(1)
    assert torch.equal(mask.sum(1), torch.minimum(3 * p, 300 - p))
    assert not (mask & positive).any()
    # every selected negative has at least the loss of every unselected negative
    for i in range(50):
        sel, rest = loss[i][mask[i]], loss[i][~mask[i] & ~positive[i]]
        if sel.numel() and rest.numel():
            assert sel.min() >= rest.max()


def _random_batch(gen, b, a, c, size):
    targets = []
    for i in range(b):
        n = [3, 0, 1, 5][i % 4]
        ctr, wh = torch.rand(n, 2, generator=gen) * size, (0.1 + 0.4 * torch.rand(n, 2, generator=gen)) * size
        targets.append({"boxes": torch.cat((ctr - wh / 2, ctr + wh / 2), 1).clamp(0, size),
                        "labels": torch.randint(1, c + 1, (n,), generator=gen)})
    return (torch.randn(b, a, c + 1, generator=gen, requires_grad=True),
            torch.randn(b, a, 4, generator=gen, requires_grad=True), targets)


def test_ssd_loss_equals_torchvisions_compute_loss():
    gen = torch.Generator().manual_seed(3)
    anchors = seed_anchors().xyxy * 300  # pixel units: the offsets do not depend on the unit
    cls, box, targets = _random_batch(gen, 8, 189, 4, 300.0)
    gt = pad_targets(targets)
    ours = ssd_loss(cls, box, gt, anchors)
    matched = match_anchors(anchors, gt.boxes, gt.valid, 0.5)
    assert (matched >= 0).sum(1).max() * 4 < 189  # enough negatives: torchvision then selects the same ones
    fake = SimpleNamespace(box_coder=det_utils.BoxCoder(weights=(10.0, 10.0, 5.0, 5.0)), neg_to_pos_ratio=3.0)
    ref = SSD.compute_loss(fake, targets, {"bbox_regression": box, "cls_logits": cls}, [anchors] * 8,
                           list(matched.unbind(0)))
    for key in ("bbox_regression", "classification"):
        torch.testing.assert_close(ours[key], ref[key], rtol=1e-4, atol=1e-5)
    sum(ours.values()).backward()
    assert torch.isfinite(box.grad).all() and box.grad.abs().sum() > 0
    # same offsets whatever the unit
    unit = ssd_loss(cls, box, pad_targets(targets, scale=1 / 300), anchors / 300)
    torch.testing.assert_close(unit["bbox_regression"], ours["bbox_regression"], rtol=1e-4, atol=1e-5)


def test_focal_loss_equals_its_formula():
    gen = torch.Generator().manual_seed(4)
    anchors = seed_anchors().xyxy
    cls, box, targets = _random_batch(gen, 4, 189, 3, 1.0)
    gt = pad_targets(targets)
    out = focal_loss(cls, box, gt, anchors)
    matched = match_anchors(anchors, gt.boxes, gt.valid, 0.5)
    gt_boxes, labels = gather_matched(matched, gt.boxes, gt.labels)
    pos = matched >= 0
    n = pos.sum()
    t = F.one_hot(labels, 4)[..., 1:].float()
    p = torch.sigmoid(cls[..., 1:])
    ce = -(t * torch.log(p) + (1 - t) * torch.log(1 - p))
    p_t = p * t + (1 - p) * (1 - t)
    alpha_t = 0.25 * t + 0.75 * (1 - t)
    torch.testing.assert_close(out["classification"], (alpha_t * (1 - p_t) ** 2 * ce).sum() / n)
    target = encode_ssd(gt_boxes[pos], anchors[pos.nonzero()[:, 1]])
    torch.testing.assert_close(out["bbox_regression"],
                               F.smooth_l1_loss(box[pos], target, reduction="sum") / n)


def test_losses_by_name_and_a_batch_without_any_box():
    anchors = seed_anchors()
    cls, box = torch.randn(2, 189, 3), torch.randn(2, 189, 4)
    empty = pad_targets([{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}] * 2)
    for name in ("seed", "ssd", "focal"):
        out = detection_loss(name, cls, box, empty, anchors)
        assert set(out) == {"bbox_regression", "classification"}
        assert out["bbox_regression"] == 0 and torch.isfinite(out["classification"])
    assert detection_loss("ssd", cls, box, empty, anchors)["classification"] == 0  # no positive → no negative
    try:
        detection_loss("yolo", cls, box, empty, anchors)
    except ValueError as err:
        assert "seed, ssd, focal" in str(err)
    else:
        raise AssertionError("unknown loss name accepted")
