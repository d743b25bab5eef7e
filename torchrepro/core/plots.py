"""PNG plots every classification-style recipe can use: training curves and a confusion matrix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # headless: never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_curves(metrics_json: Path, out: Path, keys: Sequence[str]) -> Path | None:
    """One panel per metric in ``keys`` against epoch, from ``metrics.json``'s history."""
    if not Path(metrics_json).is_file():
        return None
    history = [h for h in json.loads(Path(metrics_json).read_text())["history"] if h.get("stage") == "fit"]
    present = [k for k in keys if any(k in h for h in history)]
    if not present:
        return None
    fig, axes = plt.subplots(1, len(present), figsize=(4.2 * len(present), 3.4), squeeze=False)
    for ax, key in zip(axes[0], present):
        pts = [(h["epoch"] + 1, h[key]) for h in history if key in h]
        ax.plot(*zip(*pts), marker="o")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_confusion(matrix: np.ndarray, classes: Sequence[str], out: Path, title: str = "confusion matrix") -> Path:
    """Counts with row-normalised colours (rows = true class, columns = predicted)."""
    matrix = np.asarray(matrix)
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.3 * len(classes) + 2, 1.3 * len(classes) + 1.5))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{int(matrix[i, j])}\n{rates[i, j]:.0%}", ha="center", va="center",
                    color="white" if rates[i, j] > 0.5 else "black", fontsize=9)
    ax.set_xticks(range(len(classes)), classes)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
