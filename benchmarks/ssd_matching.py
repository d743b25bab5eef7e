"""SSD matching + seed loss, and post-processing: torchrepro's batched functions vs per-image Python loops.

Problem: a batch of 32 images (224x224, the seed's 189 anchors on its 4x4 / 2x2 / 1x1 grids), 20 classes,
1-10 random ground-truth boxes per image, random head outputs (class logits [32, 189, 21], box
activations [32, 189, 4]).

Part 1, matching + seed loss. Baseline (:func:`seed_loss_loop`): the seed's fastai lesson ``ssd_loss``
written out in current PyTorch — the targets arrive as the seed's collated, zero-padded tensors; for each
image in turn ``get_y`` strips the padding and scales to [0, 1], ``jaccard`` computes the IoU matrix,
``map_to_ground_truth`` takes the best GT per anchor and forces each GT's best anchor with the seed's Python
loop ``for i, o in enumerate(prior_idx): gt_idx[o] = i``, positives are IoU > 0.4, the L1 term is the mean
over the positives' decoded coordinates (``actn_to_bb``) and the class term the summed BCE over the one-hot
targets without the background column divided by the number of classes; the per-image losses are summed.
The only changes: background is column 0 (torchvision's convention) instead of the seed's last column, and
boolean masks replace ``1 - pos``. Ours: :func:`torchrepro.detection.boxes.pad_targets` on the list of target
dicts + :func:`torchrepro.detection.losses.seed_loss` (one batched IoU tensor, a scatter for the forced
matches). Timed forward only and forward + backward (what a training step pays); both results are checked
equal (allclose) before timing.

Part 2, post-processing. Baseline (:func:`postprocess_loop`): torchvision's ``SSD.postprocess_detections``
scheme — for each image, decode its boxes (the seed's ``actn_to_bb``), then for each class the score
threshold and top-k, then ``batched_nms`` over the image's classes and the per-image cap. Ours:
:func:`torchrepro.detection.boxes.decode_seed` for the batch + :func:`torchrepro.detection.postprocess.detect`
(one top-k; NMS grouped by (image, class)). Sigmoid scores, threshold 0.01, 400 per class,
NMS IoU 0.45, 200 per image; outputs are checked identical before timing. Random logits put most
anchors over the threshold (about 121,000 candidates for the batch), so NMS itself is a large share of both
times; ours runs it per (image, class) group on each image's 800 best candidates only (exact: see
:mod:`torchrepro.detection.postprocess`), and avoids the loop's per-image, per-class tensor calls.

Calls alternate (baseline, ours, ...) so machine noise hits both alike; medians are reported.

    .venv/bin/python benchmarks/ssd_matching.py [--batch 32] [--classes 20] [--repeats 30] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torchvision.ops import batched_nms

from torchrepro.detection.anchors import seed_anchors
from torchrepro.detection.boxes import decode_seed, pad_targets
from torchrepro.detection.losses import seed_loss
from torchrepro.detection.postprocess import detect

SIZE = 224


# ------------------------------------------------------------------------- the seed's code, per image
def hw2corners(ctr, hw):
    return torch.cat([ctr - hw / 2, ctr + hw / 2], dim=1)


def intersect(box_a, box_b):
    max_xy = torch.min(box_a[:, None, 2:], box_b[None, :, 2:])
    min_xy = torch.max(box_a[:, None, :2], box_b[None, :, :2])
    inter = torch.clamp((max_xy - min_xy), min=0)
    return inter[:, :, 0] * inter[:, :, 1]


def box_sz(b):
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def jaccard(box_a, box_b):
    inter = intersect(box_a, box_b)
    union = box_sz(box_a).unsqueeze(1) + box_sz(box_b).unsqueeze(0) - inter
    return inter / union


def get_y(bbox, clas):
    bbox = bbox.view(-1, 4) / SIZE
    bb_keep = ((bbox[:, 2] - bbox[:, 0]) > 0).nonzero()[:, 0]
    return bbox[bb_keep], clas[bb_keep]


def actn_to_bb(actn, anchors, grid_sizes):
    actn_bbs = torch.tanh(actn)
    actn_centers = (actn_bbs[:, :2] / 2 * grid_sizes) + anchors[:, :2]
    actn_hw = (actn_bbs[:, 2:] / 2 + 1) * anchors[:, 2:]
    return hw2corners(actn_centers, actn_hw)


def map_to_ground_truth(overlaps):
    prior_overlap, prior_idx = overlaps.max(1)
    gt_overlap, gt_idx = overlaps.max(0)
    gt_overlap[prior_idx] = 1.99
    for i, o in enumerate(prior_idx):
        gt_idx[o] = i
    return gt_overlap, gt_idx


def bce_loss(pred, targ, num_classes):
    t = F.one_hot(targ, num_classes + 1).float()[:, 1:]  # background column dropped (column 0 here)
    x = pred[:, 1:]
    return F.binary_cross_entropy_with_logits(x, t, reduction="sum") / num_classes


def ssd_1_loss(b_c, b_bb, bbox, clas, anchors, anchor_cnr, grid_sizes, num_classes):
    bbox, clas = get_y(bbox, clas)
    a_ic = actn_to_bb(b_bb, anchors, grid_sizes)
    overlaps = jaccard(bbox.data, anchor_cnr.data)
    gt_overlap, gt_idx = map_to_ground_truth(overlaps)
    gt_clas = clas[gt_idx]
    pos = gt_overlap > 0.4
    pos_idx = torch.nonzero(pos)[:, 0]
    gt_clas[~pos] = 0
    gt_bbox = bbox[gt_idx]
    loc_loss = ((a_ic[pos_idx] - gt_bbox[pos_idx]).abs()).mean()
    clas_loss = bce_loss(b_c, gt_clas, num_classes)
    return loc_loss, clas_loss


def seed_loss_loop(pred, targ, anchors, anchor_cnr, grid_sizes, num_classes):
    """The seed's ``ssd_loss``: the per-image losses, summed (see module docstring)."""
    lcs, lls = 0.0, 0.0
    for b_c, b_bb, bbox, clas in zip(*pred, *targ):
        loc_loss, clas_loss = ssd_1_loss(b_c, b_bb, bbox, clas, anchors, anchor_cnr, grid_sizes, num_classes)
        lls += loc_loss
        lcs += clas_loss
    return lls + lcs


def postprocess_loop(box_act, cls_logits, anchors, grid_sizes, thresh=0.01, topk=400, nms_iou=0.45, max_det=200):
    """torchvision's SSD post-processing scheme, one image and one class at a time."""
    out = []
    for act, logits in zip(box_act, cls_logits):
        boxes = actn_to_bb(act, anchors, grid_sizes).clamp(0, 1) * SIZE
        scores = torch.sigmoid(logits[:, 1:])
        kb, ks, kl = [], [], []
        for c in range(scores.shape[1]):
            s = scores[:, c]
            keep = s > thresh
            s, b = s[keep], boxes[keep]
            s, idx = s.topk(min(topk, s.numel()))
            kb.append(b[idx]), ks.append(s), kl.append(torch.full_like(idx, c + 1))
        kb, ks, kl = torch.cat(kb), torch.cat(ks), torch.cat(kl)
        keep = batched_nms(kb, ks, kl, nms_iou)[:max_det]
        out.append({"boxes": kb[keep], "scores": ks[keep], "labels": kl[keep]})
    return out


# ------------------------------------------------------------------------------------------- problem
def make_problem(batch: int, classes: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    targets = []
    for _ in range(batch):
        n = int(torch.randint(1, 11, (1,), generator=gen))
        ctr = torch.rand(n, 2, generator=gen) * SIZE
        wh = (0.05 + 0.6 * torch.rand(n, 2, generator=gen)) * SIZE
        boxes = torch.cat((ctr - wh / 2, ctr + wh / 2), 1).clamp(0, SIZE)
        targets.append({"boxes": boxes, "labels": torch.randint(1, classes + 1, (n,), generator=gen)})
    # the seed's collated form: zero-padded boxes [B, G*4] and labels [B, G]
    g = max(len(t["boxes"]) for t in targets)
    padded_boxes = torch.zeros(batch, g * 4)
    padded_labels = torch.zeros(batch, g, dtype=torch.int64)
    for i, t in enumerate(targets):
        padded_boxes[i, : 4 * len(t["boxes"])] = t["boxes"].flatten()
        padded_labels[i, : len(t["labels"])] = t["labels"]
    cls_logits = torch.randn(batch, 189, classes + 1, generator=gen)
    box_act = torch.randn(batch, 189, 4, generator=gen)
    return targets, (padded_boxes, padded_labels), cls_logits, box_act


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def compare(label: str, runs: dict, repeats: int, warmup: int) -> dict[str, float]:
    for fn in runs.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            times[name].append(timed(fn))
    med = {name: statistics.median(ts) * 1e3 for name, ts in times.items()}
    names = list(runs)
    print(f"{label}:")
    for name in names:
        print(f"  {name:<44} {med[name]:9.3f} ms/batch")
    print(f"  speed-up: {med[names[0]] / med[names[1]]:.1f}x")
    return med


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    anchors = seed_anchors()
    anc, grid, cnr = anchors.cxcywh, anchors.grid_size, anchors.xyxy
    targets, seed_targ, cls0, box0 = make_problem(args.batch, args.classes, args.seed)
    n_gt = sum(len(t["boxes"]) for t in targets)
    print(f"SSD matching benchmark: {args.batch} images, 189 anchors, {args.classes} classes, {n_gt} GT boxes "
          f"(1-10 per image), torch threads = {torch.get_num_threads()}, median of {args.repeats} "
          f"(torch {torch.__version__})")
    print("baseline: the seed's fastai ssd_loss / torchvision's postprocess_detections, one image at a time")

    def ours_loss(cls, box):
        out = seed_loss(cls, box, pad_targets(targets, scale=1.0 / SIZE), anchors)
        return out["bbox_regression"] + out["classification"]

    def loop_loss(cls, box):
        return seed_loss_loop((cls, box), seed_targ, anc, cnr, grid, args.classes)

    ref, mine = loop_loss(cls0, box0), ours_loss(cls0, box0)
    if not torch.allclose(ref, mine, rtol=1e-5):
        raise SystemExit(f"losses disagree: seed loop {ref.item():.6f}, ours {mine.item():.6f}")
    print(f"losses agree: {ref.item():.5f} (seed loop) vs {mine.item():.5f} (ours)")

    def backward(fn):
        cls, box = cls0.clone().requires_grad_(), box0.clone().requires_grad_()
        fn(cls, box).backward()

    compare("matching + seed loss, forward", {
        "seed loop (get_y, jaccard, map_to_gt, L1+BCE)": lambda: loop_loss(cls0, box0),
        "torchrepro pad_targets + seed_loss": lambda: ours_loss(cls0, box0),
    }, args.repeats, args.warmup)
    compare("matching + seed loss, forward + backward", {
        "seed loop (get_y, jaccard, map_to_gt, L1+BCE)": lambda: backward(loop_loss),
        "torchrepro pad_targets + seed_loss": lambda: backward(ours_loss),
    }, args.repeats, args.warmup)

    def ours_post():
        boxes = decode_seed(box0, anc, grid) * SIZE
        return detect(boxes, torch.sigmoid(cls0[..., 1:]), image_size=(SIZE, SIZE))

    ref_det, our_det = postprocess_loop(box0, cls0, anc, grid), ours_post()
    for r, o in zip(ref_det, our_det):
        if not all(torch.allclose(r[k].float(), o[k].float(), atol=1e-4) and r[k].shape == o[k].shape for k in r):
            raise SystemExit("post-processing outputs disagree")
    n_det = sum(len(d["scores"]) for d in our_det)
    n_cand = int((torch.sigmoid(cls0[..., 1:]) > 0.01).sum())
    print(f"post-processing outputs agree: {n_det} detections from {n_cand} candidates over threshold")
    compare("post-processing (decode, threshold, top-k, NMS, cap)", {
        "per-image, per-class loop (torchvision scheme)": lambda: postprocess_loop(box0, cls0, anc, grid),
        "torchrepro decode_seed + detect (batched)": ours_post,
    }, args.repeats, args.warmup)


if __name__ == "__main__":
    main()
