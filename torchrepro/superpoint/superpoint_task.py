"""SuperPoint recipe ("superpoint"): joint detector + descriptor training (SuperPoint §3.4, §6), HPatches scoring (§7).

Training (Eq. 1): L = L_p(X, Y) + L_p(X', Y') + λ L_d(D, D', S) on pairs of a photograph X with its pseudo ground
truth Y (Homographic Adaptation of MagicPoint, §5) and its random warp X'. The descriptor loss's positive and
negative parts are logged apart (``descriptor_positive``, ``descriptor_negative``); L_d is the paper's dense hinge or
pytorch-superpoint's sparse sampled version (``model.descriptor_loss``): users of both reference
implementations report descriptor losses that do not converge, and the two parts show which side fails.

Every evaluation runs the HPatches protocol (§7.1, §7.3; :func:`torchrepro.superpoint.hpatches_metrics.evaluate_pair`)
on the ``(1, k)`` pairs of an HPatches-layout folder for SuperPoint and, on the same pairs, for OpenCV's SIFT and
ORB: homography correctness at ε = 1 / 3 / 5 px (``hcorr@ε``), repeatability and localisation error over the best
300 shared points detected with NMS 4, nearest-neighbour mAP and matching score over the best 1,000 shared points
detected with NMS 8 (Table 4's setting). Metrics are averaged over all pairs (``hcorr@3``…) and per kind
(``viewpoint/hcorr@3``, ``illumination/hcorr@3``…); the baselines' carry ``baseline_sift_`` / ``baseline_orb_``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from torchrepro.core.callbacks import RunArtefacts
from torchrepro.core.checkpoint_io import load_checkpoint
from torchrepro.core.config import Config
from torchrepro.core.errors import CheckpointError, ConfigError
from torchrepro.core.task import TaskModule
from torchrepro.nn.superpoint import SuperPointNet
from torchrepro.superpoint.baselines import ClassicalDetector
from torchrepro.superpoint.config import SuperPointModel
from torchrepro.superpoint.hpatches_metrics import (METRICS, evaluate_pair, evaluate_pairs, markdown_table,
                                                    repeatability_and_mle)
from torchrepro.superpoint.keypoints import extract_keypoints, heatmap_from_logits, sample_descriptors
from torchrepro.superpoint.losses import descriptor_hinge_loss, descriptor_sparse_loss, detector_loss
from torchrepro.superpoint.pairs_data import SuperPointDataModule

KINDS = ("viewpoint", "illumination")


class SuperPointTask(TaskModule):
    """SuperPointNet trained on labelled photo pairs; scored on HPatches pairs against SIFT and ORB."""

    progress_metric = "hcorr@3"

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        self.m: SuperPointModel = cfg.model
        self.net = SuperPointNet(descriptor=True, batchnorm=self.m.batchnorm, dustbin_prior=self.m.dustbin_prior)
        init = cfg.data.labeler if self.m.init == "labeler" else self.m.init
        if init is not None:
            if not str(init).endswith(".ckpt"):
                raise ConfigError(f"model.init=labeler needs a checkpoint in data.labeler, got '{init}': give a "
                                  f"MagicPoint checkpoint there, or set model.init=null")
            load_magicpoint(self.net, Path(init))
        self._baselines: dict[tuple[bool, int], dict[str, dict]] = {}

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.net(images)

    def batch_size(self, batch: dict) -> int:
        return batch["image"].shape[0]

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        m = self.m
        both = self.net(torch.cat((batch["image"], batch["warped"])))  # one forward for X and X'
        semi, semi_w = both["semi"].chunk(2)
        desc, desc_w = both["desc"].chunk(2)
        if m.descriptor_loss == "sparse":  # draws from the global RNG, which checkpoints save and restore
            parts = descriptor_sparse_loss(desc, desc_w, batch["homography"], batch["warped_valid"], None,
                                           m.sparse_matches, m.sparse_non_matches, m.positive_margin,
                                           m.negative_margin, m.lambda_d)
        else:
            parts = descriptor_hinge_loss(desc, desc_w, batch["homography"], batch["warped_valid"], m.positive_margin,
                                          m.negative_margin, m.lambda_d)
        n = batch["image"].shape[0]
        for name in ("positive", "negative"):
            self.log(f"descriptor_{name}", parts[name], batch_size=n)
        self.log("descriptor_positive_pairs", parts["positive_pairs"], batch_size=n)
        return {"detector": detector_loss(semi, batch["labels"]),
                "detector_warped": detector_loss(semi_w, batch["warped_labels"], batch["warped_valid"]),
                "descriptor": m.lambda_loss * parts["loss"]}

    # ------------------------------------------------------------------------------------------ evaluation
    def _detect(self, image: torch.Tensor, shape: tuple[int, int]) -> dict[str, np.ndarray]:
        """Key points with NMS 4 (detector metrics) and NMS 8 with descriptors (descriptor metrics) of one image,
        both from one forward and one heatmap."""
        out = self.net(image[None])
        heat = heatmap_from_logits(out["semi"])[0, : shape[0], : shape[1]].float()  # drop the padding
        m = self.m
        xy, scores = extract_keypoints(heat, m.detection_threshold, m.nms_radius, None, m.border)
        xy_d, scores_d = extract_keypoints(heat, m.detection_threshold, m.descriptor_nms_radius, m.top_k_descriptors,
                                           m.border)
        desc = sample_descriptors(out["desc"][0].float(), xy_d)
        return {"xy": xy.cpu().numpy(), "scores": scores.cpu().numpy(), "xy_d": xy_d.cpu().numpy(),
                "scores_d": scores_d.cpu().numpy(), "desc": desc.cpu().numpy()}

    def _score_pair(self, a: dict, b: dict, homography: np.ndarray, shape1: tuple, shape2: tuple, kind: str,
                    metric: str) -> dict:
        """Descriptor metrics on the NMS-8 points (:func:`evaluate_pair`), repeatability and MLE on the NMS-4 ones."""
        m = self.m
        scored = evaluate_pair(a["xy_d"], a["scores_d"], a["desc"], b["xy_d"], b["scores_d"], b["desc"], homography,
                               shape1, shape2, kind=kind, metric=metric, distance=m.correct_distance,
                               keep_k_rep=m.top_k, keep_k_desc=m.top_k_descriptors)
        scored["repeatability"], scored["mle"] = repeatability_and_mle(
            a["xy"], b["xy"], homography, shape1, shape2, m.correct_distance, a["scores"], b["scores"], m.top_k)
        return scored

    def _classical(self, batch: dict, key: tuple[bool, int], shapes: tuple[tuple, tuple], kind: str) -> dict:
        if key not in self._baselines:
            images = [(batch[f"image{i}"][0, 0, : s[0], : s[1]].cpu().numpy() * 255).round().astype(np.uint8)
                      for i, s in zip((1, 2), shapes)]
            homography = batch["homography"][0].cpu().numpy()
            scored = {}
            for name in self.m.baselines:
                detector = ClassicalDetector(name, max_keypoints=self.m.top_k_descriptors)
                (k1, s1, d1), (k2, s2, d2) = detector(images[0]), detector(images[1])
                scored[name] = evaluate_pair(k1, s1, d1, k2, s2, d2, homography, *shapes, kind=kind,
                                             metric=detector.metric, distance=self.m.correct_distance,
                                             keep_k_rep=self.m.top_k, keep_k_desc=self.m.top_k_descriptors)
            self._baselines[key] = scored
        return self._baselines[key]

    def evaluation_rows(self, batch: dict, dataloader_idx: int) -> dict[str, torch.Tensor]:
        shapes = tuple(tuple(int(v) for v in batch[f"shape{i}"][0]) for i in (1, 2))
        homography = batch["homography"][0].cpu().numpy()
        kind = "viewpoint" if bool(batch["viewpoint"][0]) else "illumination"
        a, b = self._detect(batch["image1"][0], shapes[0]), self._detect(batch["image2"][0], shapes[1])
        rows = {"viewpoint": float(kind == "viewpoint")}
        rows.update(_row(self._score_pair(a, b, homography, *shapes, kind, "l2"), ""))
        key = (bool(self.trainer.testing), int(batch["index"][0]))
        for name, scored in self._classical(batch, key, shapes, kind).items():
            rows.update(_row(scored, f"baseline_{name}_"))
        device = batch["image1"].device
        return {k: torch.tensor([v], dtype=torch.float64, device=device) for k, v in rows.items()}

    def evaluation_metrics(self, targets: list[dict[str, torch.Tensor]]) -> dict[str, float]:
        rows = {k: v.cpu().numpy() for k, v in targets[0].items()}
        metrics = _summary(rows, "")
        for name in self.m.baselines:
            metrics.update(_summary(rows, f"baseline_{name}_"))
        return metrics


def load_magicpoint(net: SuperPointNet, path: Path) -> None:
    """Start ``net``'s encoder and detector head from a MagicPoint run's checkpoint (its ``net.`` weights); the
    descriptor head keeps its initialisation. A checkpoint of another network is refused in one line."""
    state = load_checkpoint(path).get("state_dict", {})
    weights = {k[len("net."):]: v for k, v in state.items() if k.startswith("net.")}
    missing, unexpected = net.load_state_dict(weights, strict=False)
    missing = [k for k in missing if not k.startswith("descriptor.")]
    if missing or unexpected or not weights:
        raise CheckpointError(f"model.init '{path}' is not a MagicPoint checkpoint of this network ({len(missing)} "
                              f"missing weights, e.g. {missing[:1]}; {len(unexpected)} unexpected, e.g. "
                              f"{unexpected[:1]}): give runs/<magicpoint run>/checkpoints/best.ckpt")


def _row(scored: dict, prefix: str) -> dict[str, float]:
    """The per-pair metrics of one method as floats (hcorr booleans as 0/1)."""
    return {f"{prefix}{k}": float(scored[k]) for k in METRICS}


def _summary(rows: dict[str, np.ndarray], prefix: str) -> dict[str, float]:
    """Means over all pairs and per kind, with :func:`evaluate_pairs`' rule (undefined pairs skipped)."""
    kinds = np.where(rows["viewpoint"] > 0.5, "viewpoint", "illumination")
    pairs = [{"kind": kinds[i], **{k: rows[f"{prefix}{k}"][i] for k in METRICS}} for i in range(len(kinds))]
    out: dict[str, float] = {}
    for kind, agg in evaluate_pairs(pairs).items():
        for k in METRICS:
            if k in agg:
                out[f"{prefix}{k}" if kind == "all" else f"{kind}/{prefix}{k}"] = agg[k]
    return out


def hpatches_tables(metrics: dict[str, float], baselines: list[str], prefix: str = "") -> str:
    """SuperPoint §7's Table 4 layout (rows: methods; columns: ε = 1/3/5, Rep., MLE, NN mAP, M. Score) per kind."""
    methods = {"SuperPoint (ours)": ""} | {name.upper(): f"baseline_{name}_" for name in baselines}
    rows = {}
    for title, p in methods.items():
        rows[title] = {kind: {k: metrics.get(f"{prefix}{kind}/{p}{k}", math.nan) for k in METRICS}
                       for kind in KINDS}
        rows[title]["all"] = {k: metrics.get(f"{prefix}{p}{k}", math.nan) for k in METRICS}
    return markdown_table(rows, list(KINDS) + ["all"])


def draw_first_viewpoint_pair(module: SuperPointTask, dataset, out: Path) -> Path | None:  # noqa: ANN001
    """``matches.png``: SuperPoint's mutual matches on the first viewpoint pair of ``dataset`` (an
    :class:`HPatchesEvalSet`), RANSAC inliers green and outliers red, as ``superpoint-match`` draws them."""
    from torchrepro.superpoint.baselines import draw_matches
    from torchrepro.superpoint.match_tool import match_pictures

    pairs = getattr(dataset, "pairs", None)
    chosen = getattr(dataset, "chosen", [])
    index = next((i for i in chosen if pairs[i].kind == "viewpoint"), None) if pairs else None
    if index is None:
        return None
    pair, m = pairs[index], module.m
    was_training = module.net.training
    module.net.eval()
    found = match_pictures(module.net, pair.image1, pair.image2, m.top_k_descriptors,
                           m.detection_threshold, m.descriptor_nms_radius)
    module.net.train(was_training)
    return draw_matches(pair.image1, pair.image2, found["kp1"], found["kp2"], found["matches"], found["inliers"], out)


class HPatchesTable(RunArtefacts):
    """Writes ``hpatches.md``, the HPatches table of the last evaluation (test when scored, else validation), and
    ``matches.png``, the matches of the first viewpoint pair of that split."""

    def on_test_end(self, trainer, pl_module) -> None:  # noqa: ANN001 - the held-out figures replace validation's
        self._write(trainer, pl_module)

    def write(self, run_dir: Path, trainer, module: SuperPointTask) -> None:  # noqa: ANN001 - Lightning objects
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        prefix = "test/" if any(k.startswith("test/") for k in metrics) else ""
        if f"{prefix}hcorr@3" not in metrics:
            return
        title = "held-out test split" if prefix else "validation split"
        text = f"# HPatches protocol on the {title}\n\n" + hpatches_tables(metrics, module.m.baselines, prefix)
        (run_dir / "hpatches.md").write_text(text + "\n")
        data = trainer.datamodule
        draw_first_viewpoint_pair(module, data.test_set if prefix else data.val_set, run_dir / "matches.png")


def build(cfg: Config) -> tuple[SuperPointTask, SuperPointDataModule]:
    return SuperPointTask(cfg), SuperPointDataModule(cfg)


def callbacks(cfg: Config) -> list:
    return [HPatchesTable()]
