"""Run artefacts of the re-ID recipe: ranked results (top-10 with green/red borders), texture reconstructions,
training curves, and the deployable encoder. The callbacks read what the task and the DataModule hold after the
last evaluation and import neither."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from PIL import Image

from torchrepro.core.callbacks import RunArtefacts
from torchrepro.core.checkpoint_io import atomic_torch_save
from torchrepro.core.plots import plot_curves
from torchrepro.core.rundir import METRICS_NAME

__all__ = ["EncoderExport", "ReidPlots", "texture_to_uint8"]


def texture_to_uint8(texture: torch.Tensor) -> np.ndarray:
    """A decoder texture ``[3, H, W]`` normalised with mean 0.5 / std 0.5 → ``[H, W, 3]`` uint8.

    De-normalise, clip to [0, 1], then scale and round. The seed computed ``(out / 2 + 0.5) * 255`` and cast
    without clipping: values beyond [−1, 1] wrapped around in uint8 and corrupted its pictures (the seed's SAN reproduction).
    """
    img = (texture.detach().float().cpu() * 0.5 + 0.5).clamp(0.0, 1.0)
    return (img.permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)


def _load(path: Path, height: int = 128) -> np.ndarray:
    with Image.open(path) as img:
        img = img.convert("RGB")
        return np.asarray(img.resize((max(1, round(img.width * height / img.height)), height)))


def save_ranked(task: pl.LightningModule, dm: pl.LightningDataModule, out: Path, n_queries: int = 8, k: int = 10) -> Path | None:
    """Queries (evenly spread over the query list) of the last evaluated split (validation, at the end of
    training) beside their top-``k`` gallery items after the protocol's same-pid-same-camera removal; green = same
    identity."""
    from torchrepro.retrieval.plots import save_ranked_results
    from torchrepro.retrieval.rank import ranked_gallery

    if not task.last_eval:
        return None
    target = dm.splits[task.last_eval["split"]][0]
    dist = task.last_eval["results"][target.name]["distmat"]
    g_pids, g_camids = np.array([g.pid for g in target.gallery]), np.array([g.camid for g in target.gallery])
    picks = np.linspace(0, len(target.query) - 1, num=min(n_queries, len(target.query))).round().astype(int)
    queries, retrieved, correct = [], [], []
    for i in picks:
        q = target.query[i]
        valid = ranked_gallery(dist[i], g_pids, g_camids, q.pid, q.camid, k)
        queries.append(_load(q.path))
        retrieved.append([_load(target.gallery[j].path) for j in valid])
        correct.append([target.gallery[j].pid == q.pid for j in valid])
    width = min(len(c) for c in correct)
    return save_ranked_results(queries, [r[:width] for r in retrieved], np.array([c[:width] for c in correct]),
                               out, query_titles=[f"{target.name} pid {target.query[i].pid}" for i in picks])


@torch.no_grad()
def save_textures(task: pl.LightningModule, dm: pl.LightningDataModule, out: Path, n: int = 6) -> Path | None:
    """Rows of (input image, predicted texture, target texture) for a few training images."""
    if task.decoder is None or dm.train_set.texture_roots is None:
        return None
    from torchrepro.reid.data import ReidImageDataset, build_transforms

    d = task.cfg.data
    plain = ReidImageDataset(dm.train_set.items, build_transforms(d.height, d.width, train=False),
                             texture_roots=dm.train_set.texture_roots, texture_size=dm.train_set.texture_size)
    was_training = task.training
    task.eval()
    rows = []
    for index in np.linspace(0, len(plain) - 1, num=min(n, len(plain))).round().astype(int):
        image, _, _, _, target = plain[int(index)]
        enc = task.encoder(image[None].to(task.device))
        pred, _ = task.decoder(enc["fmap"], enc["skips"])
        size = target.shape[-2:]
        person = np.asarray(Image.open(dm.train_set.items[int(index)].path).convert("RGB").resize((size[1] // 2, size[0])))
        rows.append(np.concatenate([person, texture_to_uint8(pred[0]), texture_to_uint8(target)], axis=1))
    task.train(was_training)
    Image.fromarray(np.concatenate(rows, axis=0)).save(out)
    return out


class ReidPlots(RunArtefacts):
    """ranked_results.png, textures.png (SAN / SAN-PG) and curves.png."""

    def write(self, run_dir: Path, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        save_ranked(pl_module, trainer.datamodule, run_dir / "ranked_results.png")
        save_textures(pl_module, trainer.datamodule, run_dir / "textures.png")
        plot_curves(run_dir / METRICS_NAME, run_dir / "curves.png", ["train_loss", "rank-1", "mAP"])


class EncoderExport(RunArtefacts):
    """``encoder.pth``: the deployable model, the encoder alone (SAN's decoder only shapes training; features are
    the BNNeck's ``f_i``). Written by training runs only: an evaluation copies no weights."""

    on_eval = False
    needs_validation = False

    def write(self, run_dir: Path, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        state = {k: v.detach().cpu() for k, v in pl_module.encoder.state_dict().items()}
        atomic_torch_save(state, run_dir / "encoder.pth")
