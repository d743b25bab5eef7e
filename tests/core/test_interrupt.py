"""Ctrl-C during training: the step finishes, last.ckpt is written, one line says how to continue, and the resumed
run ends bit-identical to one that was never interrupted."""

from __future__ import annotations

import signal

import torch

from tests.conftest import write_csv_dataset
from tests.helpers import ckpt_step, cli, cli_popen, tiny_config, wait_for_step


def test_sigint_mid_epoch_saves_says_how_to_continue_and_resumes_exactly(tmp_path):
    data = tmp_path / "data"
    write_csv_dataset(data, 62, 6)  # 8 steps an epoch (batch 8), 3 epochs
    config = tiny_config(tmp_path, data)
    reference = cli("train", config, f"run.dir={tmp_path / 'full'}")
    assert reference.returncode == 0, reference.stderr[-2000:]
    expected = torch.load(tmp_path / "full" / "checkpoints" / "last.ckpt", weights_only=True)

    # No periodic checkpoints in this run: last.ckpt is written at epoch ends (steps 8, 16, 24) and by the interrupt.
    run = tmp_path / "interrupted"
    proc = cli_popen("train", config, f"run.dir={run}", "checkpoint.every_n_steps=0", log=tmp_path / "interrupted.log")
    wait_for_step(proc, run / "checkpoints" / "last.ckpt", 8)
    proc.send_signal(signal.SIGINT)  # after the first epoch: the run stops after a step of the second
    assert proc.wait(timeout=120) == 130
    out = (tmp_path / "interrupted.log").read_text()
    lines = [line for line in out.splitlines() if line.startswith("interrupted after step")]
    assert len(lines) == 1, out[-2000:]
    assert f"continue with: torchrepro resume {run}" in lines[0] and str(run / "checkpoints" / "last.ckpt") in lines[0]
    saved = int(lines[0].split()[3])
    assert saved == ckpt_step(run / "checkpoints" / "last.ckpt")
    assert 9 <= saved < 16, f"the interrupt must save a step inside the second epoch, saved {saved}"
    assert "Traceback" not in out

    resumed = cli("resume", run)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    final = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert final["global_step"] == expected["global_step"]
    differing = [k for k, v in expected["state_dict"].items() if not torch.equal(v, final["state_dict"][k])]
    assert not differing, f"resumed from step {saved}: {len(differing)} tensors differ"
