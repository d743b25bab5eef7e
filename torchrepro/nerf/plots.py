"""Pictures of the NeRF recipe: held-out views side by side (ground truth, render, depth, error)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["plot_views"]


def plot_views(views: list[dict[str, np.ndarray]], out: Path) -> Path:
    """One row per view (``truth`` and ``render`` [H, W, 3] in [0, 1], ``depth`` [H, W], ``view`` index): the
    ground truth, the render with its PSNR, the expected depth and the absolute error (mean over channels)."""
    fig, axes = plt.subplots(len(views), 4, figsize=(10, 2.6 * len(views)), squeeze=False)
    for row, v in zip(axes, views):
        error = np.abs(v["render"] - v["truth"]).mean(-1)
        mse = float(((v["render"] - v["truth"]) ** 2).mean())
        panels = [(v["truth"], f"view {v['view']}: ground truth", None),
                  (v["render"], f"render, {-10 * np.log10(max(mse, 1e-10)):.2f} dB", None),
                  (v["depth"], "expected depth", "viridis"), (error, "|error|", "magma")]
        for ax, (image, title, cmap) in zip(row, panels):
            shown = ax.imshow(np.clip(image, 0, 1) if cmap is None else image, cmap=cmap)
            if cmap is not None:
                fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
