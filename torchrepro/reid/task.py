"""Person re-identification recipe ("reid"): BoT baseline, SAN and SAN-PG; the LightningModule and its registration.

* ``method: bot`` — Bag of Tricks (Luo et al. 2019): ID loss with label smoothing on the BNNeck logits +
  batch-hard triplet on the pooled feature; one optimiser, warm-up then multi-step decay.
* ``method: san`` — SAN (Jin et al., AAAI 2020): the same encoder plus the texture decoder, trained with an L1
  reconstruction loss against the aligned texture and triplet ReID constraints on the decoder's block features;
  encoder and decoder have separate optimisers (the seed's set-up), so this mode uses manual optimisation.
* ``method: san_pg`` — SAN-PG: encoder + decoder trained with the reconstruction loss only (paired
  image/texture data); its checkpoint initialises SAN (``model.init_from``) and writes pseudo textures.

Evaluation uses the BNNeck feature ``f_i`` (BoT, Luo et al. 2019, §3.4), the Market-1501 protocol (or CUHK03
single-gallery-shot), optional k-reciprocal re-ranking, and logs ``rank-1/5/10/20``, ``mAP``, ``mINP`` and the
colour-histogram baseline. Every epoch it scores the validation split (training identities held out, see
:mod:`torchrepro.reid.data`), which chooses ``best.ckpt``; the targets' query/gallery is scored once at the end
as ``test/…`` (prefixed by the target name too when there are several targets).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from torchrepro.core.config import Config
from torchrepro.core.errors import ConfigError
from torchrepro.core.task import TaskModule
from torchrepro.reid.config import ReidData, ReidModel, uses_decoder
from torchrepro.reid.data import ReidDataModule, TargetSet, target_ids
from torchrepro.reid.model import ReidEncoder, SANDecoder
from torchrepro.reid.plots import EncoderExport, ReidPlots
from torchrepro.retrieval.losses import batch_hard_triplet_loss
from torchrepro.retrieval.rank import evaluate_market1501

log = logging.getLogger(__name__)

METRIC_KEYS = ("rank-1", "rank-5", "rank-10", "rank-20", "mAP", "mINP")


class ReidTask(TaskModule):
    """BoT / SAN / SAN-PG training (see module docstring)."""

    progress_metric = "rank-1"

    def __init__(self, cfg: Config, num_classes: int) -> None:
        super().__init__(cfg)
        m: ReidModel = cfg.model
        self.encoder = ReidEncoder(num_classes, m.arch, m.last_stride, m.pretrained, m.channels_last)
        self.decoder = None
        if uses_decoder(cfg):
            d: ReidData = cfg.data
            self.decoder = SANDecoder(self.encoder.feat_dim, self.encoder.skip_channels,
                                      (d.texture_height, d.texture_width))
            self.automatic_optimization = False  # separate encoder / decoder optimisers (the seed's set-up)
        if m.init_from:
            self._init_from(Path(m.init_from))
        self.last_eval: dict | None = None

    def _init_from(self, path: Path) -> None:
        """Load encoder (+ decoder) weights of a SAN-PG/SAN checkpoint; the classifier is never loaded (other
        identities)."""
        from torchrepro.core.checkpoint_io import load_checkpoint

        state = load_checkpoint(path)["state_dict"]
        own = self.state_dict()
        keep = {k: v for k, v in state.items()
                if k in own and own[k].shape == v.shape and "neck.classifier" not in k}
        if not any(k.startswith("encoder.") for k in keep):
            raise ConfigError(f"model.init_from '{path}' holds no encoder weights matching model.arch")
        self.load_state_dict(keep, strict=False)
        log.info("initialised %d tensors from %s", len(keep), path)

    # -- optimisation
    def parameter_groups(self) -> dict:
        return {"encoder": self.encoder.parameters()}

    def optimizer_specs(self) -> dict:
        """BoT: one optimiser. SAN / SAN-PG: encoder and decoder optimised by separate optimisers (the seed's
        set-up), the decoder at ``model.decoder_lr`` when set."""
        if self.decoder is None:
            return super().optimizer_specs()
        optim = self.cfg.optim
        decoder_optim = optim if self.cfg.model.decoder_lr is None else replace(optim, lr=self.cfg.model.decoder_lr)
        return {"encoder": ({"encoder": self.encoder.parameters()}, optim),
                "decoder": ({"decoder": self.decoder.parameters()}, decoder_optim)}

    # -- losses
    def losses(self, batch: tuple) -> dict[str, torch.Tensor]:
        m: ReidModel = self.cfg.model
        images, pids = batch[0], batch[1]
        out = self.encoder(images)
        parts: dict[str, torch.Tensor] = {}
        if m.method != "san_pg":
            parts["id"] = m.id_weight * F.cross_entropy(out["logits"], pids, label_smoothing=m.label_smoothing)
            parts["triplet"] = m.triplet_weight * batch_hard_triplet_loss(out["f_t"], pids, m.triplet_margin)
        if self.decoder is not None:
            texture, feats = self.decoder(out["fmap"], out["skips"])
            parts["recon"] = m.recon_weight * F.l1_loss(texture, batch[4])
            if m.method == "san" and m.constraint_weight > 0:
                pooled = [F.adaptive_avg_pool2d(f, 1).flatten(1) for f in feats]
                # SAN's triplet ReID constraints, as a batch-hard triplet over the P×K batch per decoder block
                parts["constraint"] = m.constraint_weight * sum(
                    batch_hard_triplet_loss(p, pids, m.constraint_margin) for p in pooled) / len(pooled)
        return parts

    # -- evaluation
    def evaluation_rows(self, batch: tuple, dataloader_idx: int) -> dict[str, torch.Tensor]:
        return {"feature": self.encoder(batch[0])["f_i"].float()}  # the BNNeck feature (BoT §3.4)

    def evaluation_metrics(self, targets: list[dict[str, torch.Tensor]]) -> dict[str, float]:
        """CMC / mAP / mINP of each set of the split being evaluated (:attr:`eval_split`: the held-out training
        identities for ``val``, the targets for ``test``), against that split's own query/gallery ids and cameras,
        prefixed by the set's name when the split has several; and that split's colour baseline."""
        dm: ReidDataModule = self.trainer.datamodule
        sets = dm.splits[self.eval_split]
        results = {t.name: evaluate_target(rows["feature"].cpu(), t, self.cfg.model) for t, rows in zip(sets, targets)}
        self.last_eval = {"split": self.eval_split, "results": results}
        single = len(results) == 1
        metrics = {key if single else f"{name}/{key}": float(res[key])
                   for name, res in results.items() for key in METRIC_KEYS}
        return {**metrics, **dm.colour_baseline(self.eval_split)}


def feature_distances(q: torch.Tensor, g: torch.Tensor, distance: str) -> np.ndarray:
    """``[Q, G]`` float64 squared Euclidean distances between query and gallery features, rows L2-normalised first
    for ``distance="cosine"`` (``model.distance``)."""
    if distance == "cosine":
        q, g = F.normalize(q, dim=1), F.normalize(g, dim=1)
    return torch.cdist(q, g).pow(2).numpy().astype(np.float64)


def evaluate_target(feats: torch.Tensor, target: TargetSet, m: ReidModel) -> dict:
    """Distances between query and gallery features (Euclidean or cosine; optional k-reciprocal re-ranking)
    → CMC/mAP/mINP under the Market-1501 protocol (or CUHK03 single-gallery-shot)."""
    nq = len(target.query)
    q, g = feats[:nq], feats[nq:]
    dist = feature_distances(q, g, m.distance)
    if m.rerank:
        from torchrepro.retrieval.rerank import re_rank

        dist = re_rank(dist, feature_distances(q, q, m.distance), feature_distances(g, g, m.distance), square=False)
    if m.cuhk03_single_shot:
        from torchrepro.retrieval.rank import evaluate_cuhk03_single_shot

        res = evaluate_cuhk03_single_shot(dist, *target_ids(target))
    else:
        res = evaluate_market1501(dist, *target_ids(target))
    res["distmat"] = dist
    return res


def build(cfg: Config) -> tuple[ReidTask, ReidDataModule]:
    dm = ReidDataModule(cfg)
    dm.prepare_data()
    dm.setup("fit")
    return ReidTask(cfg, dm.num_classes), dm


def callbacks(cfg: Config) -> list:
    """The recipe's artefact callbacks (see :class:`~torchrepro.core.callbacks.RunArtefacts`)."""
    return [ReidPlots(), EncoderExport()]
