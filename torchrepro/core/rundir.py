"""Run directories: one new directory per run, never overwriting an earlier run."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import yaml

from torchrepro.core.config import Config
from torchrepro.core.errors import ConfigError

CONFIG_NAME = "config.yaml"
METRICS_NAME = "metrics.json"
CKPT_DIR = "checkpoints"


def new_timestamped_dir(parent: Path, prefix: str = "") -> Path:
    """``parent/<prefix><timestamp>``, made unique with a suffix (not created)."""
    stamp = prefix + dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(parent) / stamp
    path, n = base, 1
    while path.exists():
        path, n = base.with_name(f"{stamp}-{n}"), n + 1
    return path


def choose_run_dir(cfg: Config) -> Path:
    """``run.dir`` if given, else ``<run.root>/<recipe>/<timestamp>`` (made unique with a suffix)."""
    if cfg.run.dir:
        return Path(cfg.run.dir)
    return new_timestamped_dir(Path(cfg.run.root) / cfg.recipe)


def run_dir_of(ckpt_path: Path) -> Path | None:
    """The run directory holding a checkpoint (``RUN_DIR/checkpoints/X.ckpt`` beside ``RUN_DIR/config.yaml``), or
    None for a checkpoint kept elsewhere."""
    ckpt = Path(ckpt_path).resolve()
    run = ckpt.parent.parent
    return run if ckpt.parent.name == CKPT_DIR and (run / CONFIG_NAME).is_file() else None


def choose_eval_dir(cfg: Config, ckpt_path: Path, out: Path | None = None) -> Path:
    """Where ``torchrepro eval`` writes: ``--out``, else ``run.dir``, else ``RUN_DIR/eval/<timestamp>`` when the
    checkpoint lies in a run's ``checkpoints/``, else ``<run.root>/<recipe>/eval-<timestamp>``."""
    if out is not None:
        return Path(out)
    if cfg.run.dir:
        return Path(cfg.run.dir)
    run = run_dir_of(ckpt_path)
    if run is not None:
        return new_timestamped_dir(run / "eval")
    return new_timestamped_dir(Path(cfg.run.root) / cfg.recipe, prefix="eval-")


def check_run_dir_free(path: Path) -> None:
    """Refuse an existing non-empty directory: a run must never overwrite another run's files."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ConfigError(
            f"run directory '{path}' already exists and is not empty: choose another run.dir, "
            f"or continue that run with `torchrepro resume {path}`"
        )


def create_run_dir(cfg: Config, path: Path, checkpoints: bool = True) -> Path:
    """Create the run directory (with ``checkpoints/`` for a training run) and write the resolved config (rank 0
    only calls this)."""
    check_run_dir_free(path)
    try:
        (path / CKPT_DIR if checkpoints else path).mkdir(parents=True, exist_ok=True)
        write_text_atomic(path / CONFIG_NAME, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    except OSError as err:
        raise ConfigError(f"cannot create the run directory '{path}' ({err.strerror or type(err).__name__}): set "
                          f"run.dir (or run.root) to a folder you can write") from None
    return path


def write_text_atomic(path: Path, text: str) -> None:
    """Write a small text file atomically."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def chosen_validation(run_dir: Path, monitor: str, mode: str) -> dict[str, float]:
    """The validation figures of the epoch ``best.ckpt`` holds: the first fit-stage entry of ``metrics.json`` with
    the best ``monitor`` (ModelCheckpoint keeps the first of equal values); empty if none was validated."""
    path = run_dir / METRICS_NAME
    history = json.loads(path.read_text())["history"] if path.is_file() else []
    fit = [h for h in history if h.get("stage") == "fit" and monitor in h]
    if not fit:
        return {}
    best = (max if mode == "max" else min)(h[monitor] for h in fit)
    return next(h for h in fit if h[monitor] == best)
