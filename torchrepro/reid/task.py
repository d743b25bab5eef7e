"""Person re-identification recipe ("reid"): BoT baseline, SAN and SAN-PG; schemas, DataModule, LightningModule.

* ``method: bot`` — Bag of Tricks (Luo et al. 2019): ID loss with label smoothing on the BNNeck logits +
  batch-hard triplet on the pooled feature; one optimiser, warm-up then multi-step decay.
* ``method: san`` — SAN (Jin et al., AAAI 2020): the same encoder plus the texture decoder, trained with an L1
  reconstruction loss against the aligned texture and triplet ReID constraints on the decoder's block features;
  encoder and decoder have separate optimisers (the seed's set-up), so this mode uses manual optimisation.
* ``method: san_pg`` — SAN-PG: encoder + decoder trained with the reconstruction loss only (paired
  image/texture data); its checkpoint initialises SAN (``model.init_from``) and writes pseudo textures.

Evaluation uses the BNNeck feature ``f_i``, the Market-1501 protocol (or CUHK03 single-gallery-shot), optional
k-reciprocal re-ranking, and logs ``rank-1/5/10/20``, ``mAP``, ``mINP`` (prefixed by the target name when
several targets are evaluated).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from torchrepro.core.config import Config
from torchrepro.core.data import ResumableLoader
from torchrepro.core.distributed import gather_ordered, rank_zero_first, shard_bounds
from torchrepro.core.errors import ConfigError, DataError
from torchrepro.core.optim import build_optimizer, build_scheduler
from torchrepro.core.registry import Recipe, register
from torchrepro.core.task import TaskModule
from torchrepro.nn.backbones import ARCHS
from torchrepro.reid.data import DATASETS, ReidImageDataset, TargetSet, build_transforms, load_sources, load_target
from torchrepro.reid.model import ReidEncoder, SANDecoder
from torchrepro.retrieval.losses import batch_hard_triplet_loss
from torchrepro.retrieval.rank import evaluate_market1501
from torchrepro.retrieval.sampler import RandomIdentitySampler

log = logging.getLogger(__name__)

METRIC_KEYS = ("rank-1", "rank-5", "rank-10", "rank-20", "mAP", "mINP")


@dataclass
class ReidData:
    """Sources (training, pids offset per data set) and targets (evaluation), each a name from
    ``market1501 | dukemtmc | cuhk03_labeled | cuhk03_detected | synthetic`` with its folder in ``roots``
    (``synthetic`` defaults to a generated set under ``synthetic_dir``)."""

    sources: list[str] = field(default_factory=lambda: ["synthetic"])
    targets: list[str] = field(default_factory=lambda: ["synthetic"])
    roots: dict[str, str] = field(default_factory=dict)
    synthetic_dir: str = "data/synthetic/persons"
    synthetic_train_ids: int = 200
    synthetic_test_ids: int = 100
    height: int = 256
    width: int = 128
    batch_size: int = 32
    num_instances: int = 4
    test_batch_size: int = 100
    num_workers: int = 0
    flip: float = 0.5
    pad: int = 10
    erasing: float = 0.5
    texture_height: int = 256
    texture_width: int = 256

    def check(self, where: str) -> None:
        for name in [*self.sources, *self.targets]:
            if name not in DATASETS:
                raise ConfigError(f"{where}: unknown data set '{name}'; choose from {', '.join(sorted(DATASETS))}")
            if name != "synthetic":
                root = self.roots.get(name)
                if not root:
                    raise ConfigError(f"config key '{where}.roots.{name}' is required: the folder of the {name} data")
                if not Path(root).is_dir():
                    raise ConfigError(f"'{root}' ({where}.roots.{name}) does not exist: point it at the {name} folder")
        if not self.sources or not self.targets:
            raise ConfigError(f"{where}.sources and {where}.targets need at least one data set each")
        if self.batch_size % self.num_instances:
            raise ConfigError(f"{where}.batch_size ({self.batch_size}) must be a multiple of "
                              f"{where}.num_instances ({self.num_instances})")


@dataclass
class ReidModel:
    """Network, losses and evaluation options (defaults: Bag of Tricks / the SAN seed)."""

    method: Literal["bot", "san", "san_pg"] = "bot"
    arch: str = "resnet50"
    last_stride: int = 1
    pretrained: str | None = None
    init_from: str | None = None  # a SAN-PG (or SAN) checkpoint: encoder + decoder weights
    label_smoothing: float = 0.1
    id_weight: float = 1.0
    triplet_weight: float = 1.0
    triplet_margin: float | None = 0.3  # null: soft margin
    recon_weight: float = 1.0
    constraint_weight: float = 1.0
    constraint_margin: float | None = 0.3
    decoder_lr: float | None = None  # default: optim.lr
    distance: Literal["euclidean", "cosine"] = "euclidean"
    rerank: bool = False
    cuhk03_single_shot: bool = False

    def check(self, where: str) -> None:
        if self.arch not in ARCHS:
            raise ConfigError(f"config key '{where}.arch' must be one of {sorted(ARCHS)}, got '{self.arch}'")
        for key in ("pretrained", "init_from"):
            value = getattr(self, key)
            if value and not Path(value).is_file():
                raise ConfigError(f"'{value}' ({where}.{key}) does not exist: give a local checkpoint path")
        if self.last_stride not in (1, 2):
            raise ConfigError(f"{where}.last_stride must be 1 or 2, got {self.last_stride}")


def uses_decoder(cfg: Config) -> bool:
    return cfg.model.method in ("san", "san_pg")


# ------------------------------------------------------------------------------------------- data module
class ReidDataModule(pl.LightningDataModule):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.d: ReidData = cfg.data
        self.train_set: ReidImageDataset | None = None
        self.targets: list[TargetSet] = []
        self.eval_sets: list[ReidImageDataset] = []
        self.baseline: dict[str, float] = {}

    def _roots(self) -> dict[str, str]:
        roots = dict(self.d.roots)
        if "synthetic" in [*self.d.sources, *self.d.targets]:
            roots["synthetic"] = str(self._synthetic_root())
        return roots

    def _synthetic_root(self) -> Path:
        from torchrepro.reid.synthetic import generate_persons

        d = self.d
        root = Path(d.synthetic_dir) / f"seed{self.cfg.seed}-ids{d.synthetic_train_ids}-{d.synthetic_test_ids}"
        generate_persons(root, seed=self.cfg.seed, num_train_ids=d.synthetic_train_ids, num_test_ids=d.synthetic_test_ids)
        return root

    def prepare_data(self) -> None:
        if "synthetic" in [*self.d.sources, *self.d.targets]:
            self._synthetic_root()

    @property
    def num_classes(self) -> int:
        return len({it.pid for it in self.train_set.items})

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        d = self.d
        with rank_zero_first():
            roots = self._roots()
        items, item_roots = load_sources(d.sources, roots)
        tex_size = (d.texture_height, d.texture_width)
        train_tf = build_transforms(d.height, d.width, True, d.flip, d.pad, d.erasing)
        self.train_set = ReidImageDataset(items, train_tf, self.cfg.seed,
                                          item_roots if uses_decoder(self.cfg) else None, tex_size)
        if uses_decoder(self.cfg):
            check_textures(items, item_roots)
        test_tf = build_transforms(d.height, d.width, False)
        self.targets = [load_target(name, roots[name]) for name in d.targets]
        self.eval_sets = [ReidImageDataset(t.query + t.gallery, test_tf) for t in self.targets]
        if "synthetic" in d.targets:
            self.baseline = self._colour_baseline(self.targets[d.targets.index("synthetic")])
        log.info("re-ID: %d training images of %d identities; targets: %s", len(items), self.num_classes,
                 ", ".join(f"{t.name} ({len(t.query)} query / {len(t.gallery)} gallery)" for t in self.targets))

    def _colour_baseline(self, target: TargetSet) -> dict[str, float]:
        """The non-learned reference: stripe colour histograms compared by cosine, Market-1501 protocol."""
        from PIL import Image

        from torchrepro.reid.baselines import colour_histogram_features

        def feats(items):
            imgs = np.stack([np.asarray(Image.open(it.path).convert("RGB").resize((self.d.width, self.d.height)))
                             for it in items])
            return colour_histogram_features(imgs)

        q, g = feats(target.query), feats(target.gallery)
        res = evaluate_market1501(1.0 - q @ g.T, *_ids(target))
        return {f"baseline_colour_{k}": float(res[k]) for k in ("rank-1", "mAP")}

    def train_dataloader(self) -> DataLoader:
        d = self.d
        pids = [it.pid for it in self.train_set.items]
        sampler = RandomIdentitySampler(pids, d.batch_size, d.num_instances, seed=self.cfg.seed, keyed=True)
        return ResumableLoader(self.train_set, sampler, batch_size=d.batch_size, drop_last=False,
                               num_workers=d.num_workers, persistent_workers=False)

    def val_dataloader(self) -> list[DataLoader]:
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        loaders = []
        for ds in self.eval_sets:
            start, stop = shard_bounds(len(ds), rank, world)
            loaders.append(DataLoader(Subset(ds, range(start, stop)), batch_size=self.d.test_batch_size,
                                      shuffle=False, num_workers=self.d.num_workers))
        return loaders


def check_textures(items: list, roots: list[Path]) -> None:
    """Fail before training when an image lacks its aligned texture (the reconstruction loss needs every one)."""
    from torchrepro.reid.synthetic import texture_path

    missing = [(it.path, texture_path(root, it.path)) for it, root in zip(items, roots)
               if not texture_path(root, it.path).is_file()]
    if missing:
        image, texture = missing[0]
        raise DataError(
            f"texture {texture} for image {image} is missing ({len(missing)} of {len(items)} training images have "
            f"none); write pseudo textures with `torchrepro tool reid-textures` or use model.method=bot"
        )


def _ids(target: TargetSet) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    q, g = target.query, target.gallery
    return (np.array([i.pid for i in q]), np.array([i.pid for i in g]),
            np.array([i.camid for i in q]), np.array([i.camid for i in g]))


# ------------------------------------------------------------------------------------------- task
class ReidTask(TaskModule):
    """BoT / SAN / SAN-PG training (see module docstring)."""

    def __init__(self, cfg: Config, num_classes: int) -> None:
        super().__init__(cfg)
        m: ReidModel = cfg.model
        self.encoder = ReidEncoder(num_classes, m.arch, m.last_stride, m.pretrained)
        self.decoder = None
        if uses_decoder(cfg):
            d: ReidData = cfg.data
            self.decoder = SANDecoder(self.encoder.feat_dim, self.encoder.skip_channels,
                                      (d.texture_height, d.texture_width))
            self.automatic_optimization = False  # separate encoder / decoder optimisers (the seed's set-up)
        if m.init_from:
            self._init_from(Path(m.init_from))
        self._val_outputs: list[list[torch.Tensor]] = []
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

    def configure_optimizers(self):  # noqa: ANN201
        if self.decoder is None:
            return super().configure_optimizers()
        cfg = self.cfg
        total = self.total_steps() if cfg.sched.interval == "step" else int(self.trainer.max_epochs or 1)
        enc = build_optimizer({"encoder": self.encoder.parameters()}, cfg.optim)
        dec_cfg = cfg.optim if cfg.model.decoder_lr is None else type(cfg.optim)(**{**cfg.optim.__dict__, "lr": cfg.model.decoder_lr})
        dec = build_optimizer({"decoder": self.decoder.parameters()}, dec_cfg)
        scheds = [s for s in (build_scheduler(enc, cfg.sched, total), build_scheduler(dec, cfg.sched, total)) if s]
        return [enc, dec], scheds

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

    def training_step(self, batch: tuple, batch_idx: int) -> torch.Tensor:
        parts = self.losses(batch)
        loss = sum(parts.values())
        n = len(batch[1])
        if not self.automatic_optimization:
            opt_enc, opt_dec = self.optimizers()
            opt_enc.zero_grad()
            opt_dec.zero_grad()
            self.manual_backward(loss)
            opt_enc.step()
            opt_dec.step()
            if self.cfg.sched.interval == "step":
                for s in self._schedulers():
                    s.step()
        self.log("loss", loss, prog_bar=True, batch_size=n)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=n)
        for key, value in parts.items():
            self.log(f"loss_{key}", value, batch_size=n)
        opt = self.optimizers()
        first = opt[0] if isinstance(opt, list) else opt
        self.log("lr", first.param_groups[0]["lr"])
        return loss

    def _schedulers(self) -> list:
        s = self.lr_schedulers()
        return [] if s is None else (s if isinstance(s, list) else [s])

    def on_train_epoch_end(self) -> None:
        if not self.automatic_optimization and self.cfg.sched.interval == "epoch":
            for s in self._schedulers():
                s.step()

    # -- evaluation
    def on_validation_epoch_start(self) -> None:
        self._val_outputs = [[] for _ in self.trainer.datamodule.eval_sets]

    def validation_step(self, batch: tuple, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._val_outputs[dataloader_idx].append(self.encoder(batch[0])["f_i"].float())

    def on_validation_epoch_end(self) -> None:
        dm: ReidDataModule = self.trainer.datamodule
        results = {}
        for target, ds, outs in zip(dm.targets, dm.eval_sets, self._val_outputs):
            local = torch.cat(outs) if outs else torch.empty(0, self.encoder.feat_dim, device=self.device)
            feats = gather_ordered(local, len(ds)).cpu()
            results[target.name] = evaluate_target(feats, target, self.cfg.model)
        self._val_outputs = []
        self.last_eval = results
        single = len(results) == 1
        for name, res in results.items():
            for key in METRIC_KEYS:
                self.log(key if single else f"{name}/{key}", float(res[key]), prog_bar=key == "rank-1", sync_dist=False)
        for key, value in dm.baseline.items():
            self.log(key, value, sync_dist=False)

    def on_run_end(self, run_dir: Path, datamodule: ReidDataModule) -> None:
        from torchrepro.core.checkpoint_io import atomic_torch_save
        from torchrepro.reid.plots import write_run_plots

        write_run_plots(run_dir, self, datamodule)
        # The deployable model: the encoder alone (SAN's decoder only shapes training), BNNeck feature f_i.
        atomic_torch_save({k: v.detach().cpu() for k, v in self.encoder.state_dict().items()}, run_dir / "encoder.pth")


def evaluate_target(feats: torch.Tensor, target: TargetSet, m: ReidModel) -> dict:
    """Distances between query and gallery features (Euclidean or cosine; optional k-reciprocal re-ranking)
    → CMC/mAP/mINP under the Market-1501 protocol (or CUHK03 single-gallery-shot)."""
    nq = len(target.query)
    q, g = feats[:nq], feats[nq:]
    if m.distance == "cosine":
        q, g = F.normalize(q, dim=1), F.normalize(g, dim=1)
    dist = torch.cdist(q, g).pow(2).numpy().astype(np.float64)
    if m.rerank:
        from torchrepro.retrieval.rerank import re_rank

        dist = re_rank(dist, torch.cdist(q, q).pow(2).numpy(), torch.cdist(g, g).pow(2).numpy(), square=False)
    if m.cuhk03_single_shot:
        from torchrepro.retrieval.rank import evaluate_cuhk03_single_shot

        res = evaluate_cuhk03_single_shot(dist, *_ids(target))
    else:
        res = evaluate_market1501(dist, *_ids(target))
    res["distmat"] = dist
    return res


def build(cfg: Config) -> tuple[ReidTask, ReidDataModule]:
    dm = ReidDataModule(cfg)
    dm.prepare_data()
    dm.setup("fit")
    return ReidTask(cfg, dm.num_classes), dm


RECIPE = register(Recipe(
    name="reid",
    description="person re-identification: BoT baseline, SAN texture decoder and SAN-PG; Market-1501/DukeMTMC/"
                "CUHK03 formats or synthetic persons with textures; CMC/mAP/mINP",
    data_schema=ReidData,
    model_schema=ReidModel,
    build=build,
    default_monitor="rank-1",
    default_mode="max",
))
