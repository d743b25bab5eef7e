"""Event-camera place-recognition recipe ("vpr_event"): the LightningModule and its registration.

The seed (Kong et al., Event-VPR, arXiv 2011.03290, §III, as reproduced on MVSEC): event windows → 5-bin voxel
grid → ResNet34 (5-channel conv1) + NetVLAD (K=32), triplet loss with GPS positives within 10 m and negatives
beyond 25 m, evaluated by recall@N (25 m). Fixed here: real (not squared) metres, gradients through all branches
of the triplet, the learnable EST representation selectable, hard-negative mining as in NetVLAD, place batches
with the Multi-Similarity loss (GSV-Cities), and a non-learned reference number.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch.utils.data import Subset

from torchrepro.core.config import Config
from torchrepro.core.distributed import compute_ordered
from torchrepro.core.errors import ConfigError
from torchrepro.core.task import TaskModule
from torchrepro.nn.netvlad import TooFewFeaturesError
from torchrepro.place_recognition.config import VPRData, VPRModel
from torchrepro.place_recognition.data import VPRDataModule
from torchrepro.place_recognition.model import EventFrontEnd, PlaceNet
from torchrepro.place_recognition.plots import VPRPlots
from torchrepro.place_recognition.windows import collate_event_windows
from torchrepro.retrieval.losses import masked_batch_hard_triplet_loss, multi_similarity_loss, tuple_triplet_loss
from torchrepro.retrieval.pca import PCAWhitening
from torchrepro.retrieval.recall import DEFAULT_NS, recall_at_n

log = logging.getLogger(__name__)


class VPRTask(TaskModule):
    """Metric training of :class:`PlaceNet` (triplet loss on NetVLAD tuples, or Multi-Similarity / batch-hard triplet
    on place batches); logs ``loss``, ``lr``, ``recall@{1,5,10,20}`` per validation."""

    progress_metric = "recall@1"

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        m: VPRModel = cfg.model
        d: VPRData = cfg.data
        spec = d.input_spec()
        self.front = (EventFrontEnd(d.num_bins, d.sensor_height, d.sensor_width, d.input_size, seed=cfg.seed)
                      if d.representation == "est" else None)
        self.net = PlaceNet(spec.channels, m.arch, num_clusters=m.num_clusters, pretrained=m.pretrained,
                            zero_init_residual=m.zero_init_residual, last_stride=m.last_stride,
                            trunk_layers=m.trunk_layers, channels_last=m.channels_last)
        self.pca = PCAWhitening(self.net.descriptor_dim, m.pca_dim) if m.pca_dim else None
        self.last_eval: dict | None = None
        self.mining_epoch = -1

    @property
    def dm(self) -> VPRDataModule:
        return self.trainer.datamodule

    def parameter_groups(self) -> dict:
        groups = {"backbone": self.net.trunk.parameters(), "head": self.net.netvlad.parameters()}
        if self.front is not None:
            groups["representation"] = self.front.parameters()
        return groups

    def network_input(self, batch: torch.Tensor | tuple) -> torch.Tensor:
        """A cached-input batch as is, or an ``(events, n)`` batch quantised by the EST front end."""
        if self.front is None:
            return batch
        events, n = batch[0], batch[1]
        return self.front(events.to(self.device), int(n))

    def forward(self, batch: torch.Tensor | tuple) -> torch.Tensor:
        return self.net(self.network_input(batch))

    # -- initialisation and mining
    def setup(self, stage: str) -> None:
        """NetVLAD centroids from k-means on local features of training windows (skipped when resuming)."""
        if bool(self.net.netvlad_initialised) or self.trainer.ckpt_path:
            return
        windows = self.dm.train_windows
        n = min(self.cfg.model.netvlad_init_windows, len(windows))
        pick = np.sort(np.random.default_rng(self.cfg.seed).choice(len(windows), size=n, replace=False))
        if self.front is None:
            inputs = torch.stack([windows[int(i)] for i in pick])
        else:
            with torch.no_grad():
                inputs = self.front(*collate_event_windows([windows[int(i)] for i in pick]))
        try:
            used = self.net.init_netvlad(inputs, seed=self.cfg.seed)
        except TooFewFeaturesError as err:
            raise ConfigError(
                f"NetVLAD's k-means got {err.features} local features from {n} training windows for "
                f"model.num_clusters={err.clusters}: lower model.num_clusters, or raise model.netvlad_init_windows "
                f"(now {self.cfg.model.netvlad_init_windows}; {len(windows)} windows exist) or data.input_size"
            ) from None
        log.info("NetVLAD: %d centroids from k-means on %d local features of %d windows",
                 self.net.netvlad.num_clusters, used, n)

    def _descriptors(self, dataset: torch.utils.data.Dataset) -> torch.Tensor:
        was_training = self.training
        self.eval()
        out = compute_ordered(dataset, lambda b: self(b if isinstance(b, tuple) else b.to(self.device)).float(),
                              self.cfg.data.eval_batch_size, collate_fn=self.dm.eval_collate)
        self.train(was_training)
        return out

    def on_train_epoch_start(self) -> None:
        d: VPRData = self.cfg.data
        epoch = self.current_epoch
        if d.mining != "hard" or self.mining_epoch == epoch or epoch % d.mining_refresh_epochs:
            return
        # NetVLAD §4: hard negatives come from a periodically refreshed cache of descriptors, computed only for
        # the windows this epoch's tuples can use (its anchors and the database)
        train_set = self.dm.train_set
        rows = train_set.mining_windows(epoch)
        train_set.set_descriptors(self._descriptors(Subset(self.dm.train_windows, rows.tolist())), rows)
        self.mining_epoch = epoch

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # the mining cache decides the remaining tuples of the epoch: exact resume needs it
        train_set = self.dm.train_set if self.trainer.datamodule else None
        desc = train_set.descriptors if train_set is not None else None
        rows = torch.from_numpy(train_set.descriptor_rows) if desc is not None else None
        checkpoint["vpr_mining"] = {"epoch": self.mining_epoch, "descriptors": desc, "rows": rows}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("vpr_mining")
        if state is not None:
            self.mining_epoch = int(state["epoch"])
            self._restored_descriptors = (state["descriptors"], state.get("rows"))

    def on_fit_start(self) -> None:
        desc, rows = getattr(self, "_restored_descriptors", None) or (None, None)
        if desc is not None:
            self.dm.train_set.set_descriptors(desc, None if rows is None else rows.numpy())

    # -- steps
    def losses(self, batch: torch.Tensor | tuple | dict) -> dict[str, torch.Tensor]:
        if isinstance(batch, dict):
            name = "triplet" if self.cfg.model.place_loss == "triplet" else "multi_similarity"
            return {name: self._place_loss(batch)}
        return {"triplet": self._tuple_loss(batch)}

    def batch_size(self, batch: torch.Tensor | tuple | dict) -> int:
        if isinstance(batch, dict):
            return batch["x"].shape[0]
        return batch[1] if isinstance(batch, tuple) else batch.shape[0]  # (events, B, T) or [B, T, …]

    def _tuple_loss(self, batch: torch.Tensor | tuple) -> torch.Tensor:
        """NetVLAD tuples ``[B, 2 + n, …]``: the triplet loss of each anchor with its positive and negatives."""
        if self.front is None:
            b, t = batch.shape[:2]
            desc = self.net(batch.flatten(0, 1)).view(b, t, -1)
        else:  # (events, B, T): one EST pass over all B·T windows
            events, b, t = batch
            desc = self.net(self.front(events, b * t)).view(b, t, -1)
        m: VPRModel = self.cfg.model
        return tuple_triplet_loss(desc[:, 0], desc[:, 1], desc[:, 2:], m.margin, m.distance, m.negatives)

    def _place_loss(self, batch: dict) -> torch.Tensor:
        """Place batches ``{"x": [B, 2K, …], "pos": [B, 2K, 2]}``: every window is an anchor; its positives are
        the batch's windows within ``pos_m`` metres, its negatives those beyond ``neg_m`` (from the positions, so
        two items showing nearby places are never pushed apart)."""
        m: VPRModel = self.cfg.model
        d: VPRData = self.cfg.data
        desc = self.net(batch["x"].flatten(0, 1))
        pos = batch["pos"].flatten(0, 1).double()
        metres = torch.cdist(pos, pos)
        positive = (metres < d.pos_m) & ~torch.eye(len(pos), dtype=torch.bool, device=pos.device)
        negative = metres > d.neg_m
        if m.place_loss == "triplet":
            return masked_batch_hard_triplet_loss(desc, positive, negative, m.margin, m.distance)
        return multi_similarity_loss(desc, positive, negative, m.ms_alpha, m.ms_beta, m.ms_base, m.ms_epsilon)

    # -- evaluation (the shared path of core.evaluation: descriptors of queries then database, gathered in order)
    def evaluation_rows(self, batch: torch.Tensor | tuple, dataloader_idx: int) -> dict[str, torch.Tensor]:
        return {"descriptor": self(batch).float()}

    def evaluation_metrics(self, targets: list[dict[str, torch.Tensor]]) -> dict[str, float]:
        """recall@{1,5,10,20} at ``data.eval_m`` on the split being evaluated (validation drive or test drive;
        queries without any database window in range left out), the event-count baseline on the same queries and
        the number of such queries."""
        split = self.dm.splits[self.eval_split]
        desc = targets[0]["descriptor"]
        if self.pca is not None:
            self.pca.fit(self._descriptors(self.dm.train_windows).cpu().numpy())
            desc = self.pca(desc)
        desc = desc.cpu().numpy()
        n_q = len(split.queries)
        metrics, topk = recall_at_n(desc[:n_q], desc[n_q:], split.query_pos, split.db_pos, DEFAULT_NS,
                                    self.cfg.data.eval_m)
        self.last_eval = {"split": self.eval_split, "metrics": metrics, "topk": topk}
        logged = {k: v for k, v in metrics.items() if k.startswith("recall@")}
        return {**logged, **split.baseline, "queries_without_positive": metrics["queries_without_positive"]}


def build(cfg: Config) -> tuple[VPRTask, VPRDataModule]:
    return VPRTask(cfg), VPRDataModule(cfg)


def callbacks(cfg: Config) -> list:
    """The recipe's artefact callbacks (see :class:`~torchrepro.core.callbacks.RunArtefacts`)."""
    return [VPRPlots()]
