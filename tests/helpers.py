"""Helpers shared by tests that drive the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def tiny_config(tmp_path: Path, data_root: Path, **extra: str) -> Path:
    """A fast CSV-format driving config (ResNet18, 32×32) writing under tmp_path."""
    lines = [
        f"base: {REPO / 'configs' / 'driving_csv.yaml'}",
        "trainer: {max_epochs: 3, progress_bar: false, log_every_n_steps: 1}",
        "optim: {lr: 0.01}",
        "checkpoint: {every_n_steps: 1}",
        f"data: {{root: {data_root}, image_size: 32, batch_size: 8, val_batch_size: 16}}",
        "model: {arch: resnet18}",
    ]
    path = tmp_path / "tiny.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def cli(*args: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run `python -m torchrepro.cli ARGS` in a subprocess (real exit codes, real stderr)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "torchrepro.cli", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def cli_popen(*args: str, log: Path) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return subprocess.Popen([sys.executable, "-m", "torchrepro.cli", *map(str, args)], env=env,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)


def ckpt_step(path: Path) -> int:
    """global_step stored in a checkpoint, or -1 while it does not exist / is being replaced."""
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])
    except Exception:  # noqa: BLE001 - absent or mid-rename: not there yet
        return -1
