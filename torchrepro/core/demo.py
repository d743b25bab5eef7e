"""What every page of ``torchrepro serve`` needs, without Streamlit: the runs under a folder, their headline figures,
a run's model restored from one of its checkpoints, and an uploaded picture decoded.

A run directory is a folder holding ``config.yaml`` (``torchrepro train``); the folders inside it (its evaluations
under ``eval/``) are reached through its report, not listed as runs of their own. The model is restored the way
``torchrepro eval`` restores it (:func:`torchrepro.core.engine.restore`), so the page and the command fail with the
same one-line :class:`~torchrepro.core.errors.UserError` on a corrupt checkpoint or on one of another recipe.

torch is imported only by :func:`load_model`: the runs page lists runs and reports without it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from torchrepro.core import registry
from torchrepro.core.errors import CheckpointError, ConfigError, DataError, UserError
from torchrepro.core.report import NOT_SHOWN, REPORT_NAME, Run, load_run
from torchrepro.core.report_compare import headline
from torchrepro.core.rundir import CKPT_DIR, CONFIG_NAME

if TYPE_CHECKING:
    import pytorch_lightning as pl
    from PIL import Image

    from torchrepro.core.config import Config

#: the checkpoints a page offers, in this order: chosen on validation, then the newest
CHECKPOINTS = ("best.ckpt", "last.ckpt")
#: how many folders below the runs folder a run directory may lie (``runs/<recipe>/<timestamp>`` is 2)
MAX_DEPTH = 4
#: the columns of the runs page's table (:func:`summary`)
SUMMARY_COLUMNS = ("run", "recipe", "monitor", "validation: best (epoch)", "held-out test (scored once)", "epochs",
                   "wall time", "checkpoints", "report.html")


@dataclass
class RunEntry:
    """A run directory found under the runs folder: its files read (``run``), or why they could not be (``error``)."""

    path: Path
    label: str
    run: Run | None
    error: str | None = None

    @property
    def recipe(self) -> str | None:
        return None if self.run is None else str(self.run.config.get("recipe"))

    def checkpoints(self) -> list[str]:
        """The names of :data:`CHECKPOINTS` present in the run's ``checkpoints/`` folder."""
        return [name for name in CHECKPOINTS if (self.path / CKPT_DIR / name).is_file()]

    @property
    def report(self) -> Path:
        return self.path / REPORT_NAME


def find_runs(runs_dir: Path, max_depth: int = MAX_DEPTH) -> list[RunEntry]:
    """Every run directory under ``runs_dir`` (itself included, at most ``max_depth`` folders down, hidden folders
    skipped), sorted by path; one whose files cannot be read is listed with its error. Folders inside a run
    directory are not searched."""
    runs_dir = Path(runs_dir)
    found: list[RunEntry] = []
    for folder, subfolders, files in os.walk(runs_dir, followlinks=True):
        path = Path(folder)
        if CONFIG_NAME not in files:
            deep = len(path.relative_to(runs_dir).parts) >= max_depth
            subfolders[:] = [] if deep else sorted(s for s in subfolders if not s.startswith((".", "__")))
            continue
        subfolders.clear()
        label = str(path.relative_to(runs_dir)) if path != runs_dir else path.name
        try:
            found.append(RunEntry(path, label, load_run(path)))
        except UserError as err:
            found.append(RunEntry(path, label, None, str(err)))
    return sorted(found, key=lambda e: e.label)


def summary(entry: RunEntry) -> dict[str, str]:
    """A run's row on the runs page (the same columns for every recipe): recipe, monitor, its best validation value
    and epoch, the held-out test figure of that metric (scored once), epochs, wall time, the checkpoints present and
    whether report.html exists. Built from the comparison page's :func:`~torchrepro.core.report_compare.headline`."""
    row = dict.fromkeys(SUMMARY_COLUMNS, NOT_SHOWN)
    row.update({"run": entry.label, "recipe": entry.recipe or "?", "checkpoints": ", ".join(entry.checkpoints()) or
                "none", "report.html": "yes" if entry.report.is_file() else "not written"})
    if entry.run is None:
        row["monitor"] = f"unreadable: {entry.error}"
        return row
    figures = headline(entry.run)
    monitor = entry.run.monitor()[0]
    row.update({"epochs": figures["epochs trained"], "wall time": figures["wall time"]})
    if monitor:
        row["monitor"] = figures["monitor"]
        row["validation: best (epoch)"] = (f"{figures[f'best validation {monitor}']} "
                                           f"(epoch {figures[f'epoch of best {monitor}']})")
        tests = {k: v for k, v in figures.items() if k.startswith("test/") and k.endswith("/" + monitor)}
        row["held-out test (scored once)"] = ", ".join(
            v if len(tests) == 1 else f"{k}: {v}" for k, v in tests.items()) or NOT_SHOWN
    return row


@dataclass
class LoadedModel:
    """A run's model with the weights of one checkpoint, in eval mode on the CPU, and the recipe's data module
    (not set up: a page sets up what it shows)."""

    run_dir: Path
    checkpoint: Path
    cfg: "Config"
    module: "pl.LightningModule"
    datamodule: "pl.LightningDataModule"

    @property
    def key(self) -> str:
        """Names this model in caches: the checkpoint's path, size and modification time."""
        return checkpoint_key(self.checkpoint)


def checkpoint_key(path: Path) -> str:
    """``path:size:mtime``: changes when the file is replaced (a resumed run writes a new last.ckpt)."""
    stat = Path(path).stat()
    return f"{Path(path).resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def checkpoint_path(run_dir: Path, name: str) -> Path:
    """``RUN_DIR/checkpoints/<name>``, or a CheckpointError saying which checkpoints the run has and what to do."""
    run_dir = Path(run_dir)
    path = run_dir / CKPT_DIR / name
    if path.is_file():
        return path
    present = [n for n in CHECKPOINTS if (run_dir / CKPT_DIR / n).is_file()]
    if present:
        raise CheckpointError(f"run '{run_dir}' has no {name}: pick {' or '.join(present)}")
    raise CheckpointError(f"run '{run_dir}' has no checkpoint ({run_dir / CKPT_DIR} holds neither "
                          f"{' nor '.join(CHECKPOINTS)}): finish it with `torchrepro resume {run_dir}`, or pick "
                          f"another run")


def load_model(run_dir: Path, checkpoint: str, recipe: str | None = None) -> LoadedModel:
    """Restore a run's model from ``checkpoint`` (a name of :data:`CHECKPOINTS`), as ``torchrepro eval`` does.

    ``recipe``: the recipe the page shows; a run of another recipe is refused in one line. Every problem (an
    unreadable config, a missing, corrupt or foreign checkpoint, missing data) is a UserError naming the file and
    the fix."""
    from torchrepro.core.engine import restore

    run_dir = Path(run_dir)
    cfg = registry.resolve_config(run_dir / CONFIG_NAME, [])
    if recipe is not None and cfg.recipe != recipe:
        raise ConfigError(f"run '{run_dir}' is a '{cfg.recipe}' run, not a '{recipe}' one: open it on the "
                          f"'{cfg.recipe}' page, or pick a '{recipe}' run")
    path = checkpoint_path(run_dir, checkpoint)
    module, datamodule = restore(cfg, path)
    module.eval()
    return LoadedModel(run_dir, path, cfg, module.cpu(), datamodule)



def open_image(data: bytes, name: str) -> "Image.Image":
    """An uploaded file as an RGB picture (decoded by :func:`torchrepro.core.images.load_rgb`, as the data readers
    do), or a DataError naming the file and the fix."""
    import io

    from torchrepro.core.images import load_rgb

    try:
        return load_rgb(io.BytesIO(data))
    except DataError:
        raise DataError(f"the uploaded file '{name}' is not a readable image: upload a PNG or JPEG picture") from None
