"""SSD detection recipe ("detection"): the LightningModule, the prior-box baseline and the registration hooks.

Liu et al., "SSD: Single Shot MultiBox Detector" (ECCV 2016), and the seed's reproduction (the driving simulator's
second network, fastai 2018 "multi-label SSD": ResNet34 + ``SSD_MultiHead``, Adam lr 1e-3, betas (0.5, 0.999),
224×224). The detectors are :func:`torchrepro.detection.model.build_detector`'s; in training mode they return their
loss terms (``bbox_regression``, ``classification``: summed by the base class, logged as ``loss_<term>``), in eval
mode their detections after SSD's post-processing (§3.7).

Evaluation, and how its rows cross ranks
-----------------------------------------
The shared evaluation path (:mod:`torchrepro.core.evaluation`) keeps, per batch, tensors whose first dimension is
the batch, and gathers them over ranks in data-set order (contiguous shards, padded ``all_gather``, padding
dropped). Detections have a variable length, so each image's detections are padded to a fixed width
M = ``model.max_detections`` (the post-processing's own cap, so nothing is ever cut) with a count beside them:

* ``index`` int64 [B] — the image's position in the split (checked against 0..N-1 after the gather);
* ``count`` int64 [B] — how many of the M slots hold detections;
* ``boxes`` float32 [B, M, 4] — xyxy in the pixels of the **original** image: the detector answers in S×S input
  pixels, scaled here by (width / S, height / S) of the image's record;
* ``scores`` float32 [B, M], ``labels`` int64 [B, M] (0 in the padding).

M is the same on every rank and batch, so the rows concatenate and gather as any fixed-shape tensor. The ground
truth does not travel: every rank holds the split's records (original boxes, labels, ``difficult``), and
:meth:`DetectionTask.evaluation_metrics` pairs them with the gathered rows by index. It then scores the whole set
at once (:func:`torchrepro.detection.evaluation.evaluate`): VOC2007 11-point ``mAP@0.5`` (difficult objects
ignored, py-faster-rcnn ``voc_eval``; the model's monitor), the all-point AP, ``AP@0.5/<class>``, and COCO's
mAP@[.5:.95] (``coco_*``) when ``model.coco_metrics``.

Baseline (``baseline_prior_*``): an image-blind detector (:class:`PriorBoxBaseline`). For each class, k-means
with the distance 1 − IoU (Redmon & Farhadi, YOLO9000, CVPR 2017, §2 "Dimension Clusters") groups the training
boxes, normalised by their image's size, into ``model.baseline_priors`` prior boxes (position and size); every
evaluated image then gets all classes' priors, scaled to its size, each scored by the fraction of all training
boxes in its cluster. It knows where objects of each class usually are and how large, and nothing of the image:
a trained detector must beat it to show that it looks at the pixels. The untrained model is scored by the engine
before training (``trainer.validate_before_fit``).
"""

from __future__ import annotations

import numpy as np
import torch

from torchrepro.core.config import Config
from torchrepro.core.seeding import derive_seed
from torchrepro.core.task import TaskModule
from torchrepro.detection.config import DetectionData, DetectionModel
from torchrepro.detection.data import DetectionDataModule, class_names
from torchrepro.detection.evaluation import evaluate
from torchrepro.detection.model import Detector, build_detector
from torchrepro.detection.plots import DetectionPlots
from torchrepro.detection.records import DetectionRecord
from torchrepro.detection.transforms import boxes_to_original

Rows = dict[str, torch.Tensor]


# ------------------------------------------------------------------------------------------------- the model
def build_model(m: DetectionModel, num_classes: int) -> Detector:
    """The configured detector (``model.name``) for ``num_classes`` object classes."""
    options: dict = {"score_thresh": m.score_thresh, "topk": m.topk, "nms_iou": m.nms_iou,
                     "max_detections": m.max_detections}
    if m.name == "seed_resnet34":
        options.update(loss=m.loss or "seed", width=m.width, head_channels=m.head_channels, dropout=m.dropout,
                       class_bias=m.class_bias, trunk_grid=m.trunk_grid,
                       anchor_ratios=tuple(tuple(r) for r in m.anchor_ratios))
    return build_detector(m.name, num_classes, m.image_size, m.pretrained, **options)


# ------------------------------------------------------------------------------------------ the baseline
def box_iou_np(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU [n, k] of xyxy boxes ``a`` [n, 4] and ``b`` [k, 4] (continuous coordinates, no "+1")."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0.0, None).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).prod(-1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def kmeans_boxes(boxes: np.ndarray, k: int, seed: int, iterations: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """k-means of xyxy ``boxes`` [n, 4] with the distance 1 − IoU (YOLO9000 §2): (centres [k', 4], members [k']).

    Seeded k-means++ start (each next centre drawn with probability ∝ squared distance to the nearest chosen one),
    then Lloyd's steps (assign to the highest IoU, move each centre to its members' mean) until nothing moves.
    ``k' = min(k, distinct boxes)``; a centre that loses all its members stays where it was.
    """
    if len(boxes) == 0:
        return np.zeros((0, 4)), np.zeros(0, np.int64)
    boxes = np.asarray(boxes, np.float64)
    k = min(k, len(np.unique(boxes, axis=0)))
    rng = np.random.default_rng(seed)
    centres = boxes[[int(rng.integers(len(boxes)))]]
    while len(centres) < k:
        d2 = (1.0 - box_iou_np(boxes, centres).max(1)) ** 2
        p = d2 / d2.sum() if d2.sum() > 0 else np.full(len(boxes), 1.0 / len(boxes))
        centres = np.concatenate([centres, boxes[[int(rng.choice(len(boxes), p=p))]]])
    assign = None
    for _ in range(iterations):
        new = box_iou_np(boxes, centres).argmax(1)
        if assign is not None and np.array_equal(new, assign):
            break
        assign = new
        for j in range(k):
            if (assign == j).any():
                centres[j] = boxes[assign == j].mean(0)
    return centres, np.bincount(assign, minlength=k)


class PriorBoxBaseline:
    """The image-blind detector of the module docstring: per class, k-means prior boxes of the training set."""

    def __init__(self, records: list[DetectionRecord], num_classes: int, priors: int, seed: int) -> None:
        per_class: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
        for r in records:
            scale = np.array([r.width, r.height, r.width, r.height], np.float64)
            for box, label, difficult in zip(r.boxes, r.labels, r.difficult):
                if not difficult:  # the positives of the evaluation; difficult ones are ambiguous by definition
                    per_class[int(label) - 1].append(box / scale)
        total = max(1, sum(len(b) for b in per_class))
        boxes, scores, labels = [], [], []
        for c, class_boxes in enumerate(per_class):
            centres, members = kmeans_boxes(np.array(class_boxes).reshape(-1, 4), priors,
                                            derive_seed(seed, "detection-priors", c))
            boxes.append(centres)
            scores.append(members / total)  # how often a training object is this class at this prior
            labels.append(np.full(len(centres), c + 1, np.int64))
        self.boxes = torch.from_numpy(np.concatenate(boxes)).float()  # [P, 4] in [0, 1] image units
        self.scores = torch.from_numpy(np.concatenate(scores)).float()
        self.labels = torch.from_numpy(np.concatenate(labels))

    def detections(self, records: list[DetectionRecord]) -> list[dict[str, torch.Tensor]]:
        """The same priors for every image, scaled to its size."""
        out = []
        for r in records:
            scale = torch.tensor([r.width, r.height, r.width, r.height], dtype=torch.float32)
            out.append({"boxes": self.boxes * scale, "scores": self.scores, "labels": self.labels})
        return out


# --------------------------------------------------------------------------------------------- the task
def ground_truth(record: DetectionRecord) -> dict[str, torch.Tensor]:
    """A record's boxes, labels and difficult flags as the evaluation takes them (original image pixels)."""
    return {"boxes": torch.from_numpy(record.boxes.copy()), "labels": torch.from_numpy(record.labels.copy()),
            "difficult": torch.from_numpy(record.difficult.copy())}


def unpad_detections(rows: Rows) -> list[dict[str, torch.Tensor]]:
    """Gathered fixed-width rows → per image ``{"boxes", "scores", "labels"}`` of its ``count`` detections."""
    boxes, scores, labels = rows["boxes"].cpu(), rows["scores"].cpu(), rows["labels"].cpu()
    return [{"boxes": boxes[i, :n], "scores": scores[i, :n], "labels": labels[i, :n]}
            for i, n in enumerate(rows["count"].cpu().tolist())]


class DetectionTask(TaskModule):
    """A detector trained on its own loss terms, scored by VOC07 mAP@0.5 (and COCO mAP) beside the baseline."""

    logged_lr_group = "head"
    progress_metric = "mAP@0.5"

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        d: DetectionData = cfg.data
        m: DetectionModel = cfg.model
        self.classes = class_names(d)
        # The same initial weights on every rank and in every command (train, resume, eval): the untrained score
        # is this very initialisation.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(cfg.seed, "detection-init") % 2**63)
            self.detector = build_model(m, len(self.classes))
        self._baselines: dict[str, dict[str, float]] = {}
        self._prior_baseline: PriorBoxBaseline | None = None
        #: what the figures need of the last evaluation (split, VOCResult, detections, ground truths)
        self.last_eval: dict | None = None

    @property
    def dm(self) -> DetectionDataModule:
        return self.trainer.datamodule

    def parameter_groups(self) -> dict:
        """``backbone`` (the ResNet trunk, or torchvision's backbone) and ``head`` (everything else), for
        ``optim.group_lr`` (e.g. a smaller rate for a pretrained trunk)."""
        det = self.detector
        trunk = det.trunk if hasattr(det, "trunk") else det.net.backbone
        ids = {id(p) for p in trunk.parameters()}
        return {"backbone": list(trunk.parameters()), "head": [p for p in det.parameters() if id(p) not in ids]}

    def forward(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """Detections (in S×S input pixels) of float [0, 1] images ``[B, 3, S, S]``."""
        return self.detector(images)

    # -- training
    def losses(self, batch: tuple[torch.Tensor, list[dict[str, torch.Tensor]]]) -> dict[str, torch.Tensor]:
        images, targets = batch
        return self.detector(images, targets)

    # -- evaluation
    def evaluation_rows(self, batch: tuple[torch.Tensor, torch.Tensor], dataloader_idx: int) -> Rows:
        """The detections of a batch padded to ``max_detections`` per image, in original-image pixels (module
        docstring)."""
        images, meta = batch
        detections = self.detector(images)
        width = self.cfg.model.max_detections
        b, s = len(images), self.cfg.model.image_size
        boxes = images.new_zeros(b, width, 4)
        scores = images.new_zeros(b, width)
        labels = torch.zeros(b, width, dtype=torch.int64, device=images.device)
        count = torch.zeros(b, dtype=torch.int64, device=images.device)
        for i, det in enumerate(detections):
            n = min(len(det["scores"]), width)
            boxes[i, :n] = boxes_to_original(det["boxes"][:n], float(meta[i, 1]), float(meta[i, 2]), s)
            scores[i, :n] = det["scores"][:n].float()
            labels[i, :n] = det["labels"][:n]
            count[i] = n
        return {"index": meta[:, 0], "count": count, "boxes": boxes, "scores": scores, "labels": labels}

    def evaluation_metrics(self, targets: list[Rows]) -> dict[str, float]:
        """VOC07 ``mAP@0.5`` (+ all-point, per class, COCO) of the whole split, and the prior-box baseline."""
        rows = targets[0]
        records = self.dm.records[self.eval_split]
        index = rows["index"].cpu()
        if not torch.equal(index, torch.arange(len(records))):
            raise RuntimeError(f"evaluation rows of the {self.eval_split} split arrived out of order or incomplete "
                               f"({len(index)} rows for {len(records)} images)")
        detections = unpad_detections(rows)
        truths = [ground_truth(r) for r in records]
        metrics, voc = evaluate(detections, truths, self.classes, coco=self.cfg.model.coco_metrics)
        metrics.update(self.baseline(self.eval_split))
        self.last_eval = {"split": self.eval_split, "voc": voc, "detections": detections, "ground_truths": truths}
        return metrics

    def baseline(self, split: str) -> dict[str, float]:
        """``baseline_prior_mAP@0.5`` (and all-point) of ``split``: computed once per split and kept."""
        if split not in self._baselines:
            if self._prior_baseline is None:
                self._prior_baseline = PriorBoxBaseline(self.dm.records["train"], len(self.classes),
                                                        self.cfg.model.baseline_priors, self.cfg.seed)
            records = self.dm.records[split]
            scores, _ = evaluate(self._prior_baseline.detections(records), [ground_truth(r) for r in records],
                                 self.classes, coco=False)
            self._baselines[split] = {f"baseline_prior_{k}": scores[k] for k in ("mAP@0.5", "mAP@0.5_all_point")}
        return self._baselines[split]


def build(cfg: Config) -> tuple[DetectionTask, DetectionDataModule]:
    return DetectionTask(cfg), DetectionDataModule(cfg)


def callbacks(cfg: Config) -> list:
    """The recipe's artefact callbacks (see :class:`~torchrepro.core.callbacks.RunArtefacts`)."""
    return [DetectionPlots()]
