"""Run artefacts of the place-recognition recipe: recall@N curve, retrieval examples, a polarity picture.

:class:`VPRPlots` is the recipe's artefact callback; it reads what the task and the DataModule hold after the
last evaluation (``last_eval``, positions, evaluation windows) and imports neither.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.ticker  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402

from torchrepro.core.callbacks import RunArtefacts  # noqa: E402
from torchrepro.core.plots import plot_curves  # noqa: E402
from torchrepro.core.rundir import METRICS_NAME  # noqa: E402
from torchrepro.retrieval.recall import recall_curve  # noqa: E402

__all__ = ["VPRPlots", "polarity_rgb", "save_recall_curve", "window_picture"]


def save_recall_curve(curves: dict[str, np.ndarray], out: Path, threshold_m: float) -> Path:
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for label, values in curves.items():
        ax.plot(np.arange(1, len(values) + 1), values, marker="o", ms=3, label=label)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("N (number of retrieved database windows)")
    ax.set_ylabel(f"recall@N ({threshold_m:g} m)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def polarity_rgb(grid: torch.Tensor | np.ndarray, representation: str) -> np.ndarray:
    """A cached network input ``[C, S, S]`` as an RGB picture: net positive events red, negative blue, on white.

    Voxel grids carry signed polarity in every bin (summed); histograms hold (positive, negative) counts.
    """
    g = np.asarray(grid, dtype=np.float32)
    signed = g[0] - g[1] if representation == "histogram" else g.sum(axis=0)
    scale = np.percentile(np.abs(signed[signed != 0]), 98) if (signed != 0).any() else 1.0
    v = np.clip(signed / max(float(scale), 1e-6), -1, 1)
    rgb = np.ones((*v.shape, 3), dtype=np.float32)
    pos, neg = np.clip(v, 0, 1), np.clip(-v, 0, 1)
    rgb[..., 1] -= pos + neg  # white → red (pos) or blue (neg)
    rgb[..., 2] -= pos
    rgb[..., 0] -= neg
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def window_picture(item: torch.Tensor | np.ndarray, data: Any) -> np.ndarray:
    """An evaluation window as the figures show it: the polarity picture of its cached network input, or (the EST
    representation reads raw events) of its events at the sensor's resolution. ``data``: the recipe's ``data:``
    block (:class:`~torchrepro.place_recognition.config.VPRData`)."""
    if data.representation != "est":
        return polarity_rgb(item, data.representation)
    from torchrepro.events.plots import polarity_image

    return polarity_image(item, data.sensor_height, data.sensor_width)


def _retrieval_examples(task: pl.LightningModule, split: Any, out: Path, n_queries: int = 8,
                        k: int = 5) -> Path | None:
    """The first ``k`` retrieved database windows of ``n_queries`` queries of the split ``task`` evaluated last
    (``split``: its :class:`~torchrepro.place_recognition.data.EvalSplit`), green where within ``eval_m``."""
    from torchrepro.retrieval.plots import save_ranked_results

    topk = task.last_eval["topk"][:, :k]
    d = task.cfg.data
    picks = np.linspace(0, len(topk) - 1, num=min(n_queries, len(topk))).round().astype(int)
    dist = np.linalg.norm(split.query_pos[picks, None, :] - split.db_pos[topk[picks]], axis=2)
    queries = [window_picture(split.queries[i], d) for i in picks]
    retrieved = [[window_picture(split.database[j], d) for j in topk[i]] for i in picks]
    titles = [f"query {i}" for i in picks]
    return save_ranked_results(queries, retrieved, dist <= task.cfg.data.eval_m, out, query_titles=titles)


class VPRPlots(RunArtefacts):
    """recall_curve.png (trained model vs the event-count baseline), retrievals.png, window_polarity.png,
    curves.png (loss and recall@1 per epoch)."""

    def write(self, run_dir: Path, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        d = pl_module.cfg.data
        plot_curves(run_dir / METRICS_NAME, run_dir / "curves.png", ["train_loss", "recall@1", "recall@5"])
        if pl_module.last_eval is None:
            return
        split = trainer.datamodule.splits[pl_module.last_eval["split"]]
        name = f"{split.source.name} ({pl_module.last_eval['split']})"
        curves = {f"trained model, {name}": recall_curve(pl_module.last_eval["topk"], split.query_pos, split.db_pos,
                                                         d.eval_m),
                  "event-count image, cosine": recall_curve(split.baseline_topk, split.query_pos, split.db_pos,
                                                            d.eval_m)}
        save_recall_curve(curves, run_dir / "recall_curve.png", d.eval_m)
        _retrieval_examples(pl_module, split, run_dir / "retrievals.png")
        from torchrepro.events.plots import save_polarity_image

        middle = len(split.source) // 2
        save_polarity_image(split.source.events(middle), d.sensor_height, d.sensor_width,
                            run_dir / "window_polarity.png", title=f"{split.source.name}, window {middle}")
