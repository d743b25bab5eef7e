"""Run artefacts of the SimCLR recipe: training curves, a 2-D PCA of the evaluated features coloured by class, and
a nearest-neighbour gallery (queries beside their 8 nearest training images, green frame = same class)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np
import pytorch_lightning as pl
import torch

from torchrepro.core.callbacks import RunArtefacts
from torchrepro.core.plots import plot_curves
from torchrepro.core.rundir import METRICS_NAME
from torchrepro.retrieval.plots import save_ranked_results


def plot_embedding_pca(features: torch.Tensor, labels: torch.Tensor, classes: list[str], out: Path,
                       title: str, max_points: int = 5000) -> Path:
    """The L2-normalised features projected on their first two principal components, one colour per class."""
    x = torch.nn.functional.normalize(features.double(), dim=1)
    if len(x) > max_points:  # an even subsample keeps the picture readable and the file small
        keep = torch.linspace(0, len(x) - 1, max_points).long()
        x, labels = x[keep], labels[keep]
    x = x - x.mean(dim=0)
    _, _, v = torch.linalg.svd(x, full_matrices=False)
    xy = (x @ v[:2].t()).numpy()
    fig, ax = plt.subplots(figsize=(7, 5.6))
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for c, name in enumerate(classes):
        sel = (labels == c).numpy()
        if sel.any():
            ax.scatter(xy[sel, 0], xy[sel, 1], s=4, alpha=0.6, color=cmap(c % cmap.N), label=name)
    ax.set_xlabel("principal component 1")
    ax.set_ylabel("principal component 2")
    ax.set_title(title)
    ax.legend(markerscale=3, fontsize=8, loc="best", frameon=False)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _rgb(image: torch.Tensor) -> np.ndarray:
    return image.permute(1, 2, 0).numpy() if image.shape[0] == 3 else image[0].numpy()


class SimCLRPlots(RunArtefacts):
    """``curves.png``, ``embedding_pca.png`` and ``neighbours.png`` of the last evaluation."""

    def write(self, run_dir: Path, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        plot_curves(run_dir / METRICS_NAME, run_dir / "curves.png", ["train_loss", "knn_top1", "linear_top1"])
        last = getattr(pl_module, "last_eval", None)
        if last is None:
            return
        dm = trainer.datamodule
        split = "validation" if last["split"] == "val" else "test"
        plot_embedding_pca(last["features"], last["labels"], dm.classes, run_dir / "embedding_pca.png",
                           f"encoder features of the {split} split (PCA)")
        bank_set, eval_set = dm.eval_sets(last["split"])
        queries, neighbours = last["queries"], last["neighbours"]
        correct = last["bank_labels"][neighbours] == last["labels"][queries][:, None]
        save_ranked_results([_rgb(eval_set.images[int(q)]) for q in queries],
                            [[_rgb(bank_set.images[int(j)]) for j in row] for row in neighbours],
                            correct.numpy(), run_dir / "neighbours.png",
                            [f"{split} image {int(q)}: {dm.classes[int(last['labels'][q])]}" for q in queries],
                            height=64, border=3)
