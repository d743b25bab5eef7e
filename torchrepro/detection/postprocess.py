"""Post-processing: per-class score threshold, top-k, NMS and a per-image cap — batched over the images.

Liu et al., SSD, ECCV 2016, §3.7 "Inference time": "By using a confidence threshold of 0.01, we can filter out
most boxes. We then apply nms with jaccard overlap of 0.45 per class and keep the top 200 detections per
image." The Caffe release (and torchvision's ``SSD.postprocess_detections``) also keep at most 400 candidates
per class before NMS. Those are the defaults here; all are arguments.

:func:`detect` does it for the whole batch at once: one ``topk`` over ``[B, C, A]`` scores, NMS whose groups
are (image, class) pairs — boxes of different images or classes never suppress each other — and a
rank-within-image cut. The result equals torchvision's per-image loop (tests/detection/test_boxes.py checks
it against one). Two things make it cheaper than that loop rather than dearer:

* :func:`grouped_nms` — on the CPU, ``batched_nms`` of many groups falls back to one ``torch.where`` over all
  candidates per group (B·C passes over B·C·k boxes), and its coordinate-offset trick is one O(N²) NMS over
  all of them (tens of seconds for a 32-image batch of random logits). Sorting the candidates by group once
  and running ``nms`` on each contiguous slice costs only the NMS itself. On CUDA ``batched_nms`` is used.
* :func:`nms_best_per_image` — only the ``max_detections`` best survivors of an image are returned, and
  greedy NMS decides a box from the higher-scoring boxes of its class alone. So NMS on each image's
  ``4·max_detections`` best candidates gives exactly the full run's decisions for them; when that leaves an
  image fewer than ``max_detections`` survivors while it had more candidates, that image is redone in full.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import batched_nms, clip_boxes_to_image, nms

__all__ = ["MAX_DETECTIONS", "NMS_IOU", "SCORE_THRESH", "TOPK_PER_CLASS", "detect", "grouped_nms",
           "nms_best_per_image"]

SCORE_THRESH = 0.01
TOPK_PER_CLASS = 400
NMS_IOU = 0.45
MAX_DETECTIONS = 200
_PREFIX = 4  # NMS first runs on each image's PREFIX · max_detections best candidates


def grouped_nms(boxes: Tensor, scores: Tensor, groups: Tensor, iou_threshold: float) -> Tensor:
    """``batched_nms``'s result (indices kept, by decreasing score), one ``nms`` per group on the CPU."""
    if boxes.device.type != "cpu":
        return batched_nms(boxes, scores, groups, iou_threshold)
    order = torch.argsort(groups, stable=True)
    counts = torch.unique_consecutive(groups[order], return_counts=True)[1].tolist()
    # gathered once, so that each group is a view; nms' indices are offset by the group's start
    starts = [0]
    for count in counts[:-1]:
        starts.append(starts[-1] + count)
    kept = [nms(bx, sc, iou_threshold) + start
            for bx, sc, start in zip(boxes[order].split(counts), scores[order].split(counts), starts)]
    kept = order[torch.cat(kept)] if kept else order
    return kept[torch.sort(scores[kept], descending=True, stable=True).indices]


def nms_best_per_image(boxes: Tensor, scores: Tensor, images: Tensor, groups: Tensor, num_images: int,
                       iou_threshold: float, max_detections: int) -> Tensor:
    """Indices of the ``max_detections`` best NMS survivors of each image (by image, then decreasing score):
    those of :func:`grouped_nms` on all candidates, computed on a score prefix of each image (module docstring).
    ``images`` [N] is each candidate's image, ``groups`` [N] its NMS group (e.g. image · C + class)."""
    n = scores.numel()
    arange = torch.arange(n, device=scores.device)
    # each image's candidates by decreasing score: rank within the image
    order = torch.sort(scores, descending=True, stable=True).indices
    order = order[torch.sort(images[order], stable=True).indices]
    counts = torch.bincount(images, minlength=num_images)
    starts = counts.cumsum(0) - counts
    rank = torch.empty_like(order)
    rank[order] = arange - starts[images[order]]
    limit = _PREFIX * max_detections
    head = (rank < limit).nonzero().squeeze(1)
    kept = head[grouped_nms(boxes[head], scores[head], groups[head], iou_threshold)]
    short = (torch.bincount(images[kept], minlength=num_images) < max_detections) & (counts > limit)
    if bool(short.any()):  # too much was suppressed in the prefix of these images: redo them in full
        redo = short[images].nonzero().squeeze(1)
        again = redo[grouped_nms(boxes[redo], scores[redo], groups[redo], iou_threshold)]
        kept = torch.cat((kept[~short[images[kept]]], again))
    # by image, decreasing score within it; then each image's first max_detections
    kept = kept[torch.sort(scores[kept], descending=True, stable=True).indices]
    kept = kept[torch.sort(images[kept], stable=True).indices]
    kept_counts = torch.bincount(images[kept], minlength=num_images)
    within = torch.arange(kept.numel(), device=kept.device) - (kept_counts.cumsum(0) - kept_counts)[images[kept]]
    return kept[within < max_detections]


def detect(boxes: Tensor, scores: Tensor, score_thresh: float = SCORE_THRESH, topk: int = TOPK_PER_CLASS,
           nms_iou: float = NMS_IOU, max_detections: int = MAX_DETECTIONS,
           image_size: tuple[int, int] | None = None) -> list[dict[str, Tensor]]:
    """Decoded boxes [B, A, 4] (xyxy) and object-class scores [B, A, C] (background excluded) → per image
    ``{"boxes" [m, 4], "scores" [m], "labels" [m] in 1..C}``, sorted by decreasing score (torchvision's format).

    Per class: scores > ``score_thresh``, then the ``topk`` best; NMS at ``nms_iou`` within each class; then
    the ``max_detections`` best of the image. ``image_size`` (h, w) clips the boxes to the image first.
    """
    b, a, c = scores.shape
    if image_size is not None:
        boxes = clip_boxes_to_image(boxes, image_size)
    k = min(topk, a)
    top_scores, top_anchor = scores.transpose(1, 2).topk(k, dim=2)  # [B, C, k], sorted
    keep = top_scores > score_thresh  # = threshold, then top-k of the survivors
    img, cls, _ = keep.nonzero(as_tuple=True)
    cand_scores = top_scores[keep]
    cand_boxes = boxes[img, top_anchor[keep]]
    kept = nms_best_per_image(cand_boxes, cand_scores, img, img * c + cls, b, nms_iou, max_detections)
    sizes = torch.bincount(img[kept], minlength=b).tolist()
    return [
        {"boxes": bx, "scores": sc, "labels": lb + 1}
        for bx, sc, lb in zip(cand_boxes[kept].split(sizes), cand_scores[kept].split(sizes), cls[kept].split(sizes))
    ]
