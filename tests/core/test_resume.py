"""Exact resume: a run killed with SIGKILL and resumed ends bit-identical to an uninterrupted run."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import write_csv_split
from tests.helpers import ckpt_step, cli, cli_popen, tiny_config

STEPS_PER_EPOCH = 4  # 30 images, batch 8
TOTAL_STEPS = 3 * STEPS_PER_EPOCH


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    data = tmp / "data"
    write_csv_split(data / "train", 30, seed=1)
    write_csv_split(data / "val", 9, seed=2)
    config = tiny_config(tmp, data)
    full = cli("train", config, f"run.dir={tmp / 'full'}")
    assert full.returncode == 0, full.stderr[-3000:]
    return tmp, config, torch.load(tmp / "full" / "checkpoints" / "last.ckpt", weights_only=True)


def _kill_at(config: Path, run_dir: Path, min_step: int) -> int:
    """Start a run, SIGKILL it as soon as its last.ckpt reaches ``min_step``; return the saved step."""
    proc = cli_popen("train", config, f"run.dir={run_dir}", log=run_dir.with_suffix(".log"))
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    while ckpt_step(ckpt) < min_step and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return ckpt_step(ckpt)


@pytest.mark.parametrize("min_step", [3, 6])  # killed in epoch 0 and in epoch 1 (4 steps per epoch)
def test_sigkill_then_resume_is_bit_identical(setup, min_step):
    tmp, config, reference = setup
    run_dir = tmp / f"killed{min_step}"
    saved = _kill_at(config, run_dir, min_step)
    assert 0 < saved < TOTAL_STEPS, f"the kill must interrupt training (checkpoint step {saved})"
    resumed = cli("resume", run_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert final["global_step"] == reference["global_step"] == TOTAL_STEPS
    differing = [k for k, v in reference["state_dict"].items() if not torch.equal(v, final["state_dict"][k])]
    assert not differing, f"resumed from step {saved}: {len(differing)} tensors differ, e.g. {differing[:3]}"
    # the optimiser's momentum buffers must match too, or the next step would diverge
    for a, b in zip(reference["optimizer_states"][0]["state"].values(), final["optimizer_states"][0]["state"].values()):
        assert torch.equal(a["momentum_buffer"], b["momentum_buffer"])


def test_a_different_seed_gives_different_parameters(setup):
    """Control: the bit-identity above is not vacuous — another seed ends elsewhere."""
    tmp, config, reference = setup
    other = cli("train", config, f"run.dir={tmp / 'seed1'}", "seed=1")
    assert other.returncode == 0, other.stderr[-3000:]
    final = torch.load(tmp / "seed1" / "checkpoints" / "last.ckpt", weights_only=True)
    assert not torch.equal(final["state_dict"]["net.head.1.weight"], reference["state_dict"]["net.head.1.weight"])
