"""Figures of the FFN recipe: accuracy against the number of frames (FFN's Figure 1 and 4 style), per run and for
the regime table, and the training curves."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import pytorch_lightning as pl  # noqa: E402

from torchrepro.core.callbacks import RunArtefacts  # noqa: E402
from torchrepro.core.plots import plot_curves  # noqa: E402
from torchrepro.core.rundir import METRICS_NAME  # noqa: E402

__all__ = ["FFNPlots", "accuracy_at_frames", "plot_accuracy_vs_frames"]


def accuracy_at_frames(metrics: Mapping[str, float], prefix: str = "") -> dict[int, float]:
    """``{F: accuracy}`` from metrics named ``<prefix>acc@F``."""
    found = {}
    for key, value in metrics.items():
        if key.startswith(f"{prefix}acc@") and key[len(prefix) + 4:].isdigit():
            found[int(key[len(prefix) + 4:])] = float(value)
    return dict(sorted(found.items()))


def plot_accuracy_vs_frames(curves: Mapping[str, Mapping[int, float]], out: Path, title: str) -> Path:
    """One line per entry of ``curves`` (name → {frame count: accuracy}), frame counts on a log-2 axis."""
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    ticks: set[int] = set()
    for name, points in curves.items():
        frames = sorted(points)
        ticks.update(frames)
        ax.plot(frames, [100 * points[f] for f in frames], marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(ticks), [str(t) for t in sorted(ticks)])
    ax.set_xlabel("frames per clip at test time")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


class FFNPlots(RunArtefacts):
    """``accuracy_vs_frames.png`` (the last validation, every evaluated frame count) and ``curves.png``."""

    def write(self, run_dir: Path, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("acc@")}
        regime = pl_module.cfg.model.regime
        trained = ", ".join(map(str, pl_module.train_frames))
        if metrics:
            plot_accuracy_vs_frames({f"{regime} (trained at {trained})": accuracy_at_frames(metrics)},
                                    run_dir / "accuracy_vs_frames.png", "validation accuracy against frame count")
        keys = ["train_loss", "val_loss", *(f"acc@{f}" for f in pl_module.eval_frames)]
        plot_curves(run_dir / METRICS_NAME, run_dir / "curves.png", keys)
