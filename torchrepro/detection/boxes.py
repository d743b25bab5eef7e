"""Ground-truth matching and box encoding / decoding, vectorised over a batch.

Targets arrive per image (``{"boxes": [n, 4] xyxy, "labels": [n] in 1..C}``, n may be 0). :func:`pad_targets`
stacks them into ``[B, G, 4]`` with a ``valid`` mask (G = the largest n, at least 1), so that matching is one
IoU tensor ``[B, G, A]`` and a few reductions — no per-image Python loop.

Matching (:func:`match_anchors`), the same rule for the seed and for SSD, with the seed's threshold 0.4 or the
paper's 0.5:

1. every anchor takes the ground-truth box (GT) of highest IoU and is positive when that IoU exceeds the
   threshold (Liu et al., SSD, ECCV 2016, §2.2 "Matching strategy": "match default boxes to any ground truth
   with jaccard overlap higher than a threshold (0.5)"; the seed: ``gt_overlap > 0.4``);
2. every GT takes its best anchor, whatever the IoU (§2.2: "match each ground truth box to the default box with
   the best jaccard overlap"; the seed's ``map_to_ground_truth`` sets that anchor's overlap to 1.99). This
   overrides step 1. When two GTs have the same best anchor, the later GT (higher index) keeps it: the seed's
   ``for i, o in enumerate(prior_idx): gt_idx[o] = i`` loop, made deterministic here by a scatter-``amax``
   (a plain scatter with repeated indices has no defined winner). The losing GT then has only its step-1
   anchors, as in the seed.

IoU ties resolve to the lowest index (``torch.max``/``argmax`` return the first maximum), as in the seed.
The threshold is strict (``>``) as in the seed and the paper's wording; torchvision's ``SSDMatcher`` accepts
``>=``, which differs only on exact ties.

Encodings:

* the seed (:func:`decode_seed`): ``a = tanh(raw)``; centre = anchor centre + ``a[:2] / 2 · grid_size``;
  size = ``(a[2:] / 2 + 1) · anchor size`` (the seed's ``actn_to_bb``), in [0, 1] units. The activations are
  ``(cx, cy, w, h)`` here; the seed's were row-first ``(cy, cx, h, w)`` — a relabelling the network learns.
* SSD (:func:`encode_ssd`, :func:`decode_ssd`): §2.2 Eq. 2 offsets with the Caffe release's variances
  (0.1, 0.2): ``((cx − cx_a) / (w_a·0.1), (cy − cy_a) / (h_a·0.1), log(w / w_a) / 0.2, log(h / h_a) / 0.2)``,
  i.e. torchvision's ``BoxCoder(weights=(10, 10, 5, 5))``; decoding clamps the log-size at log(1000/16) as
  torchvision does, so that ``exp`` cannot overflow on a wild prediction.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence
from torchvision.ops import box_convert, box_iou

__all__ = [
    "PaddedTargets", "SSD_VARIANCES", "decode_seed", "decode_ssd", "encode_ssd", "gather_matched",
    "match_anchors", "pad_targets",
]

SSD_VARIANCES: tuple[float, float] = (0.1, 0.2)  # (centre, size): Caffe SSD's prior variances
_LOG_SIZE_CLIP = math.log(1000.0 / 16)  # torchvision BoxCoder's bbox_xform_clip


class PaddedTargets(NamedTuple):
    """A batch of targets padded to G boxes: ``boxes`` [B, G, 4], ``labels`` [B, G] (0 where padded),
    ``valid`` [B, G] bool."""

    boxes: Tensor
    labels: Tensor
    valid: Tensor


def pad_targets(targets: Sequence[dict[str, Tensor]], device: torch.device | str | None = None,
                scale: float = 1.0) -> PaddedTargets:
    """Stack per-image targets into padded tensors; ``boxes`` are multiplied by ``scale`` (e.g. ``1/S`` for
    [0, 1] units). G is the largest box count, at least 1, so that a batch without any GT still has a shape."""
    if len(targets) == 0:
        raise ValueError("pad_targets needs at least one image's targets")
    device = torch.device(device) if device is not None else targets[0]["boxes"].device
    # pad_sequence does the B copies in C++; the per-anchor work that follows is batched
    boxes = pad_sequence([t["boxes"].to(device=device, dtype=torch.float32).reshape(-1, 4) for t in targets],
                         batch_first=True)
    labels = pad_sequence([t["labels"].to(device=device, dtype=torch.int64).reshape(-1) for t in targets],
                          batch_first=True)
    counts = torch.tensor([t["boxes"].shape[0] for t in targets], device=device)
    if boxes.shape[1] == 0:  # no GT anywhere: keep one padded column so that reductions over G have a shape
        boxes, labels = boxes.new_zeros(len(targets), 1, 4), labels.new_zeros(len(targets), 1)
    if scale != 1.0:
        boxes = boxes * scale
    valid = torch.arange(boxes.shape[1], device=device) < counts[:, None]
    return PaddedTargets(boxes, labels, valid)


def match_anchors(anchors_xyxy: Tensor, gt_boxes: Tensor, gt_valid: Tensor, iou_threshold: float) -> Tensor:
    """Index of the GT matched to each anchor, ``[B, A]`` int64, or −1 for background (see module docstring).

    ``anchors_xyxy`` [A, 4] and ``gt_boxes`` [B, G, 4] in the same units; ``gt_valid`` [B, G] marks real boxes.
    """
    b, g, _ = gt_boxes.shape
    a = anchors_xyxy.shape[0]
    iou = box_iou(gt_boxes.reshape(-1, 4), anchors_xyxy).view(b, g, a)
    # padded rows can never win: a real box has IoU >= 0 with every anchor
    iou = iou.masked_fill(~gt_valid[:, :, None], -1.0)
    best_iou, best_gt = iou.max(dim=1)  # per anchor [B, A]
    matched = torch.where(best_iou > iou_threshold, best_gt, torch.full_like(best_gt, -1))
    # forced matches: each real GT claims its best anchor; the highest GT index wins a shared anchor
    best_anchor = iou.argmax(dim=2)  # [B, G]
    claim = (torch.arange(1, g + 1, device=gt_boxes.device).expand(b, g) * gt_valid).to(torch.int64)
    owner = torch.zeros(b, a, dtype=torch.int64, device=gt_boxes.device)
    owner.scatter_reduce_(1, best_anchor, claim, reduce="amax")  # 0 = unclaimed (padded rows claim 0)
    return torch.where(owner > 0, owner - 1, matched)


def gather_matched(matched: Tensor, gt_boxes: Tensor, gt_labels: Tensor) -> tuple[Tensor, Tensor]:
    """Per-anchor targets from :func:`match_anchors`' ``matched`` [B, A]: boxes [B, A, 4] (the matched GT; GT 0
    of the image for background anchors, whose boxes no loss reads) and labels [B, A] (0 for background)."""
    idx = matched.clamp(min=0)
    boxes = torch.gather(gt_boxes, 1, idx[..., None].expand(-1, -1, 4))
    labels = torch.gather(gt_labels, 1, idx).masked_fill(matched < 0, 0)
    return boxes, labels


def decode_seed(activations: Tensor, anchors_cxcywh: Tensor, grid_size: Tensor) -> Tensor:
    """The seed's ``actn_to_bb``: raw activations [..., A, 4] → boxes xyxy [..., A, 4] in [0, 1] units.

    ``anchors_cxcywh`` [A, 4], ``grid_size`` [A, 1]. ``tanh`` bounds the centre to ±half a cell and the size
    to 0.5–1.5× the anchor's.
    """
    a = torch.tanh(activations)
    centre = anchors_cxcywh[:, :2] + a[..., :2] / 2 * grid_size
    size = (a[..., 2:] / 2 + 1) * anchors_cxcywh[:, 2:]
    return box_convert(torch.cat((centre, size), dim=-1), "cxcywh", "xyxy")


def encode_ssd(boxes_xyxy: Tensor, anchors_xyxy: Tensor, variances: tuple[float, float] = SSD_VARIANCES) -> Tensor:
    """SSD offsets (§2.2 Eq. 2 with variances) of boxes [..., A, 4] relative to anchors [A, 4] (same units)."""
    box = box_convert(boxes_xyxy, "xyxy", "cxcywh")
    anc = box_convert(anchors_xyxy, "xyxy", "cxcywh")
    centre = (box[..., :2] - anc[:, :2]) / (anc[:, 2:] * variances[0])
    size = torch.log(box[..., 2:] / anc[:, 2:]) / variances[1]
    return torch.cat((centre, size), dim=-1)


def decode_ssd(offsets: Tensor, anchors_xyxy: Tensor, variances: tuple[float, float] = SSD_VARIANCES) -> Tensor:
    """Inverse of :func:`encode_ssd`: offsets [..., A, 4] → boxes xyxy [..., A, 4] in the anchors' units."""
    anc = box_convert(anchors_xyxy, "xyxy", "cxcywh")
    centre = anc[:, :2] + offsets[..., :2] * variances[0] * anc[:, 2:]
    size = torch.exp((offsets[..., 2:] * variances[1]).clamp(max=_LOG_SIZE_CLIP)) * anc[:, 2:]
    return box_convert(torch.cat((centre, size), dim=-1), "cxcywh", "xyxy")
