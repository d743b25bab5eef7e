"""Helpers shared by tests that drive the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
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


def run_main(capsys, *args) -> tuple[int, str, str]:
    """The CLI entry point in-process: (exit status, stdout, stderr)."""
    from torchrepro.cli import main

    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    """Exit status 2, exactly one ``torchrepro: error:`` line holding every needle, no traceback."""
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.startswith("torchrepro: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


TORCHRUN_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def cli_env() -> dict[str, str]:
    """The environment of a CLI subprocess: one BLAS thread, no Python warnings, no inherited torchrun variables."""
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARS}
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def cli(*args: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run `python -m torchrepro.cli ARGS` in a subprocess (real exit codes, real stderr)."""
    return subprocess.run([sys.executable, "-m", "torchrepro.cli", *map(str, args)], cwd=cwd, env=cli_env(),
                          capture_output=True, text=True, timeout=timeout)


def cli_popen(*args: str, log: Path, cwd: Path | None = None) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "torchrepro.cli", *map(str, args)], cwd=cwd, env=cli_env(),
                                stdout=out, stderr=subprocess.STDOUT)


def wait_for_step(proc: subprocess.Popen, ckpt: Path, min_step: int, timeout: float = 300) -> int:
    """Poll ``ckpt`` until it holds ``min_step`` or later (or ``proc`` ends); its step then (-1: none yet).

    The checkpoint is re-read only when its file was replaced, so polling does not slow the run down."""
    deadline, seen, step = time.time() + timeout, None, -1
    while step < min_step and proc.poll() is None and time.time() < deadline:
        stamp = ckpt.stat().st_mtime_ns if ckpt.is_file() else None
        if stamp != seen:
            seen, step = stamp, ckpt_step(ckpt)
        time.sleep(0.01)
    return step


def ckpt_step(path: Path) -> int:
    """global_step stored in a checkpoint, or -1 while it does not exist / is being replaced."""
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])
    except Exception:  # noqa: BLE001 - absent or mid-rename: not there yet
        return -1
