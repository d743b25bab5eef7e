"""MagicPoint recipe ("magicpoint"): the detector of SuperPoint trained on Synthetic Shapes (SuperPoint §4).

Training minimises the interest point loss L_p (§3.4, Eq. 2) over the cells a homographic warp left inside the
image. Every evaluation scores, on held-out shapes:

* ``mAP``, ``precision`` and ``recall`` of the detections against the ground-truth junctions (a detection within
  2 px of a not-yet-taken junction is correct; rpautrat/SuperPoint's protocol,
  :mod:`torchrepro.superpoint.detection_metrics`), detections above ``model.detection_threshold`` after NMS;
* ``repeatability`` and ``mle`` between each image and its copy warped by a fixed random homography (the best
  ``model.top_k`` points in the shared view, correct within 3 px; §7.1);
* the same for the classical corner detectors of the paper's table (Harris, Shi-Tomasi, FAST:
  ``baseline_<name>_mAP`` …), through the very same NMS and thresholds (:mod:`torchrepro.superpoint.corners`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from torchrepro.core.config import Config
from torchrepro.core.task import TaskModule
from torchrepro.nn.superpoint import SuperPointNet
from torchrepro.superpoint.config import MagicPointModel
from torchrepro.superpoint.corners import corner_heatmap
from torchrepro.superpoint.shapes_data import ShapesDataModule
from torchrepro.superpoint.detection_metrics import DetectionCounts, average_precision, match_detections
from torchrepro.superpoint.hpatches_metrics import repeatability_and_mle
from torchrepro.superpoint.keypoints import extract_keypoints, heatmap_from_logits
from torchrepro.superpoint.losses import detector_loss

#: Detections kept per image in the evaluation rows (NMS 4 leaves at most one point per 5×5 px).
MAX_DETECTIONS = 2000


class MagicPointTask(TaskModule):
    """MagicPoint (detector only) trained on Synthetic Shapes; logs ``loss`` and the metrics above."""

    progress_metric = "mAP"

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        m: MagicPointModel = cfg.model
        self.m = m
        self.net = SuperPointNet(descriptor=False, batchnorm=m.batchnorm, dustbin_prior=m.dustbin_prior)
        self._baselines: dict[tuple[int, int], dict[str, float | np.ndarray]] = {}

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.net(images)

    def batch_size(self, batch: dict) -> int:
        return batch["image"].shape[0]

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        semi = self.net(batch["image"])["semi"]
        return {"detector": detector_loss(semi, batch["labels"], batch["valid"])}

    # ------------------------------------------------------------------------------------------ evaluation
    def _keypoints(self, heat: torch.Tensor, top_k: int | None) -> tuple[np.ndarray, np.ndarray]:
        xy, scores = extract_keypoints(heat, self.m.detection_threshold, self.m.nms_radius, top_k, self.m.border)
        return xy.cpu().numpy(), scores.cpu().numpy()

    def _score_image(self, heat: np.ndarray | torch.Tensor, heat_warped: np.ndarray | torch.Tensor,
                     gt: np.ndarray, homography: np.ndarray) -> dict[str, float | np.ndarray]:
        """One image's detections (scores, true-positive flags padded to MAX_DETECTIONS) and repeatability."""
        heat, heat_warped = torch.as_tensor(heat), torch.as_tensor(heat_warped)
        xy, scores = self._keypoints(heat, None)
        order = np.argsort(-scores, kind="stable")[:MAX_DETECTIONS]
        tp = match_detections(xy[order], scores[order], gt, self.m.match_distance)
        padded = np.full((2, MAX_DETECTIONS), np.nan, dtype=np.float32)
        padded[0, : len(order)], padded[1, : len(order)] = scores[order], tp
        xy2, s2 = self._keypoints(heat_warped, None)
        shape = tuple(heat.shape)
        rep, mle = repeatability_and_mle(xy, xy2, homography, shape, shape, self.m.repeatability_distance,
                                         scores, s2, keep_k=self.m.top_k)
        return {"detections": padded, "n_gt": float(len(gt)), "repeatability": rep, "mle": mle}

    def _baseline_rows(self, batch: dict, dataloader_idx: int) -> dict[str, list]:
        """The classical detectors' rows for this batch, computed once per (split, image) and cached."""
        rows: dict[str, list] = {}
        for b, index in enumerate(batch["index"].tolist()):
            key = (dataloader_idx if not self.trainer.testing else -1, index)
            if key not in self._baselines:
                image = (batch["image"][b, 0].cpu().numpy() * 255.0).round().astype(np.uint8)
                warped = (batch["warped"][b, 0].cpu().numpy() * 255.0).round().astype(np.uint8)
                gt = valid_points(batch["points"][b])
                homography = batch["homography"][b].cpu().numpy()
                self._baselines[key] = {
                    f"{name}_{k}": v for name in self.m.baselines
                    for k, v in self._score_image(corner_heatmap(image, name), corner_heatmap(warped, name), gt,
                                                  homography).items()}
            for k, v in self._baselines[key].items():
                rows.setdefault(f"baseline_{k}", []).append(v)
        return rows

    def evaluation_rows(self, batch: dict, dataloader_idx: int) -> dict[str, torch.Tensor]:
        heat = heatmap_from_logits(self.net(batch["image"])["semi"]).float()
        heat_warped = heatmap_from_logits(self.net(batch["warped"])["semi"]).float()
        rows: dict[str, list] = {}
        for b in range(heat.shape[0]):
            scored = self._score_image(heat[b], heat_warped[b], valid_points(batch["points"][b]),
                                       batch["homography"][b].cpu().numpy())
            for k, v in scored.items():
                rows.setdefault(k, []).append(v)
        rows.update(self._baseline_rows(batch, dataloader_idx))
        return {k: torch.as_tensor(np.stack([np.asarray(x, dtype=np.float32) for x in v]), device=heat.device)
                for k, v in rows.items()}

    def evaluation_metrics(self, targets: list[dict[str, torch.Tensor]]) -> dict[str, float]:
        rows = {k: v.cpu().numpy() for k, v in targets[0].items()}
        metrics = _summary(rows, "")
        for name in self.m.baselines:
            metrics.update({f"baseline_{name}_{k}": v for k, v in _summary(rows, f"baseline_{name}_").items()})
        return metrics


def valid_points(padded: torch.Tensor) -> np.ndarray:
    """Ground-truth points (x, y) [N, 2] of one image without the NaN padding (``points`` of a
    :class:`~torchrepro.superpoint.shapes_data.ShapesEvalSet` sample)."""
    points = padded.cpu().numpy()
    return points[~np.isnan(points[:, 0])]


def _nanmean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else math.nan


def _summary(rows: dict[str, np.ndarray], prefix: str) -> dict[str, float]:
    """mAP / precision / recall over the pooled detections and the mean repeatability / MLE of one detector."""
    counts = DetectionCounts()
    detections = rows[f"{prefix}detections"]  # [N, 2, K]: scores, true-positive flags
    for scores, tp in detections:
        keep = ~np.isnan(scores)
        counts.scores.append(scores[keep])
        counts.tp.append(tp[keep].astype(bool))
    counts.n_gt = int(rows[f"{prefix}n_gt"].sum())
    precision, recall, _ = counts.curve()
    n_det = sum(len(s) for s in counts.scores)
    n_tp = int(sum(t.sum() for t in counts.tp))
    return {"mAP": average_precision(precision, recall), "precision": n_tp / max(n_det, 1),
            "recall": n_tp / max(counts.n_gt, 1), "repeatability": _nanmean(rows[f"{prefix}repeatability"]),
            "mle": _nanmean(rows[f"{prefix}mle"])}


def build(cfg: Config) -> tuple[MagicPointTask, ShapesDataModule]:
    return MagicPointTask(cfg), ShapesDataModule(cfg)


def callbacks(cfg: Config) -> list:
    """The recipe's artefact callbacks (none yet)."""
    return []
