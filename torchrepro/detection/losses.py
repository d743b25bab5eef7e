"""Detection losses on the multi-box head's outputs, by name: ``seed``, ``ssd``, ``focal``.

All take class logits ``[B, A, C+1]`` (column 0 = background, torchvision's convention), box outputs
``[B, A, 4]``, padded targets (:func:`torchrepro.detection.boxes.pad_targets`) in the anchors' units, and
return torchvision's loss dict ``{"bbox_regression": …, "classification": …}`` (the total is their sum).

* ``seed`` — the fastai lesson's ``ssd_loss`` (matching at IoU > 0.4). Per image *i* with ``P_i`` positive
  anchors: ``loc_i = Σ_pos Σ_4 |decode_seed(act) − gt| / (4·P_i)`` (the seed's ``.mean()`` over the positives'
  coordinates, [0, 1] units; 0 when ``P_i = 0``, where the seed's empty mean was NaN), and
  ``cls_i = Σ_anchors Σ_{c=1..C} BCE(logit, one-hot) / C`` — the background column is dropped (a negative
  anchor's target is all zeros) and the summed BCE is divided by the number of classes C (the seed's
  ``BCE_Loss``: ``binary_cross_entropy_with_logits(..., size_average=False) / num_classes``). The batch loss
  is the **sum** over images of ``loc_i + cls_i`` (the seed's loop ``lls += loc; lcs += clas``), so it grows
  with the batch size, as the seed's did.
* ``ssd`` — Liu et al., SSD, ECCV 2016, §2.2 Eq. 1: ``L = (L_conf + L_loc) / N`` with N the positives of the
  batch (``max(1, N)``; an empty batch gives 0 as the paper sets): smooth L1 (β = 1) on the encoded offsets of
  the positives (:func:`torchrepro.detection.boxes.encode_ssd`, variances 0.1/0.2) and softmax cross-entropy
  over the positives plus the hard negatives: per image, the ``3·P_i`` background anchors of highest
  cross-entropy (§2.2 "Hard negative mining"). Matching at IoU > 0.5.
* ``focal`` — Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017, §3.2/§4:
  ``torchvision.ops.sigmoid_focal_loss`` (α = 0.25, γ = 2) summed over every anchor and the C object columns
  (background dropped, as RetinaNet's sigmoid classifier has no background class), plus the smooth-L1 offsets
  above, both divided by the batch's positives. Matching as ``ssd`` (IoU > 0.5); RetinaNet's ignored band of
  IoU in [0.4, 0.5) is not used.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import sigmoid_focal_loss

from torchrepro.detection.anchors import AnchorSet
from torchrepro.detection.boxes import (
    SSD_VARIANCES, PaddedTargets, decode_seed, encode_ssd, gather_matched, match_anchors,
)

__all__ = ["LOSSES", "MATCH_IOU", "detection_loss", "focal_loss", "hard_negative_mask", "seed_loss", "ssd_loss"]

LOSSES = ("seed", "ssd", "focal")
#: matching threshold of each loss: the seed's 0.4, the SSD paper's 0.5 (§2.2)
MATCH_IOU = {"seed": 0.4, "ssd": 0.5, "focal": 0.5}


def seed_loss(cls_logits: Tensor, box_act: Tensor, gt: PaddedTargets, anchors: AnchorSet,
              iou_threshold: float = MATCH_IOU["seed"]) -> dict[str, Tensor]:
    """The seed's L1 + BCE loss (module docstring); ``gt`` boxes in [0, 1] units, like the anchors."""
    matched = match_anchors(anchors.xyxy, gt.boxes, gt.valid, iou_threshold)
    gt_boxes, gt_labels = gather_matched(matched, gt.boxes, gt.labels)
    positive = matched >= 0
    pred = decode_seed(box_act, anchors.cxcywh, anchors.grid_size)
    l1 = ((pred - gt_boxes).abs().sum(-1) * positive).sum(1)  # [B]
    loc = (l1 / (4 * positive.sum(1)).clamp(min=1)).sum()
    num_classes = cls_logits.shape[-1] - 1
    onehot = F.one_hot(gt_labels, num_classes + 1)[..., 1:].to(cls_logits.dtype)  # background column dropped
    cls = F.binary_cross_entropy_with_logits(cls_logits[..., 1:], onehot, reduction="sum") / num_classes
    return {"bbox_regression": loc, "classification": cls}


def hard_negative_mask(cls_loss: Tensor, positive: Tensor, neg_pos_ratio: float = 3.0) -> Tensor:
    """The hard negatives of SSD §2.2: per image, the ``⌊ratio·P⌋`` background anchors of highest loss (all of
    them when fewer are available). ``cls_loss``, ``positive`` [B, A]; returns a bool mask [B, A]."""
    loss = cls_loss.detach().masked_fill(positive, -float("inf"))
    order = torch.sort(loss, dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    quota = (neg_pos_ratio * positive.sum(1, keepdim=True)).floor()
    return (rank < quota) & ~positive


def _matched_offsets(gt: PaddedTargets, anchors_xyxy: Tensor, iou_threshold: float,
                     variances: tuple[float, float]) -> tuple[Tensor, Tensor, Tensor]:
    matched = match_anchors(anchors_xyxy, gt.boxes, gt.valid, iou_threshold)
    gt_boxes, gt_labels = gather_matched(matched, gt.boxes, gt.labels)
    positive = matched >= 0
    # encode only where positive: a background anchor's placeholder box may be degenerate (log 0)
    safe = torch.where(positive[..., None], gt_boxes, anchors_xyxy.expand_as(gt_boxes))
    return encode_ssd(safe, anchors_xyxy, variances), gt_labels, positive


def ssd_loss(cls_logits: Tensor, box_offsets: Tensor, gt: PaddedTargets, anchors_xyxy: Tensor,
             iou_threshold: float = MATCH_IOU["ssd"], neg_pos_ratio: float = 3.0,
             variances: tuple[float, float] = SSD_VARIANCES) -> dict[str, Tensor]:
    """SSD's MultiBox loss (§2.2 Eq. 1) with 3:1 hard-negative mining; ``anchors_xyxy`` [A, 4] in ``gt``'s units."""
    target, labels, positive = _matched_offsets(gt, anchors_xyxy, iou_threshold, variances)
    n = positive.sum().clamp(min=1)
    loc = F.smooth_l1_loss(box_offsets[positive], target[positive], reduction="sum", beta=1.0)
    ce = F.cross_entropy(cls_logits.flatten(0, 1), labels.flatten(), reduction="none").view_as(labels)
    negative = hard_negative_mask(ce, positive, neg_pos_ratio)
    cls = (ce * (positive | negative)).sum()
    return {"bbox_regression": loc / n, "classification": cls / n}


def focal_loss(cls_logits: Tensor, box_offsets: Tensor, gt: PaddedTargets, anchors_xyxy: Tensor,
               iou_threshold: float = MATCH_IOU["focal"], alpha: float = 0.25, gamma: float = 2.0,
               variances: tuple[float, float] = SSD_VARIANCES) -> dict[str, Tensor]:
    """Sigmoid focal loss (Lin et al. 2017) over every anchor + smooth-L1 offsets, both over the positives."""
    target, labels, positive = _matched_offsets(gt, anchors_xyxy, iou_threshold, variances)
    n = positive.sum().clamp(min=1)
    loc = F.smooth_l1_loss(box_offsets[positive], target[positive], reduction="sum", beta=1.0)
    onehot = F.one_hot(labels, cls_logits.shape[-1])[..., 1:].to(cls_logits.dtype)
    cls = sigmoid_focal_loss(cls_logits[..., 1:], onehot, alpha=alpha, gamma=gamma, reduction="sum")
    return {"bbox_regression": loc / n, "classification": cls / n}


def detection_loss(name: str, cls_logits: Tensor, box_out: Tensor, gt: PaddedTargets,
                   anchors: AnchorSet) -> dict[str, Tensor]:
    """The loss called ``name`` (``seed``, ``ssd`` or ``focal``) with its default settings."""
    if name == "seed":
        return seed_loss(cls_logits, box_out, gt, anchors)
    if name == "ssd":
        return ssd_loss(cls_logits, box_out, gt, anchors.xyxy)
    if name == "focal":
        return focal_loss(cls_logits, box_out, gt, anchors.xyxy)
    raise ValueError(f"unknown detection loss {name!r}: choose one of {', '.join(LOSSES)}")
