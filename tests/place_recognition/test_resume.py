"""Exact resume of the VPR recipe with NetVLAD tuples, hard-negative mining, anchor subsets and every augmentation:
the mining cache decides the rest of the epoch's items, so it travels in the checkpoint; a run killed mid-epoch and
resumed must end bit-identical to an uninterrupted one. The shipped set-up (place batches) is covered by the recipe
contract (tests/test_contract.py)."""

from __future__ import annotations

import signal

import pytest
import torch

from tests.helpers import REPO, ckpt_step, cli, cli_popen, scratch_dir, wait_for_step

STEPS_PER_EPOCH = 4
TOTAL_STEPS = 2 * STEPS_PER_EPOCH


@pytest.fixture(scope="module", params=["tuples"])
def setup(request, tmp_path_factory):
    """An uninterrupted reference run."""
    with scratch_dir(request, tmp_path_factory, f"vpr_resume_{request.param}") as tmp:
        yield _reference_run(tmp, request.param)


def _reference_run(tmp, batching: str):
    """Train the tiny config for two epochs without interruption: (folder, config, its last checkpoint)."""
    lines = [
        f"base: {REPO / 'configs' / 'vpr_event_sim.yaml'}",
        "trainer: {max_epochs: 2, limit_train_batches: 4, progress_bar: false, log_every_n_steps: 1,"
        " validate_before_fit: false}",
        "checkpoint: {every_n_steps: 1}",
        f"data: {{synthetic_dir: {tmp / 'drive'}, cache_dir: {tmp / 'cache'}, synthetic_route_m: 60,"
        " sensor_height: 48, sensor_width: 64, events_per_window: 400, min_events: 400, input_size: 32,"
        " n_negatives: 2, batch_size: 2, eval_batch_size: 16, mining: hard, mining_candidates: 8,"
        f" train_protocol: cross, synthetic_train_drives: 1, batching: {batching},"
        " anchors_per_epoch: 8, places_per_epoch: 8,"  # a fresh subset of anchors / places per epoch
        " augment_lateral: 0.2, augment_erase: 0.5, augment_drop: 0.2}",  # every augmentation draw keyed by item
        "model: {arch: resnet18, num_clusters: 4, netvlad_init_windows: 8}",
    ]
    config = tmp / "tiny_vpr.yaml"
    config.write_text("\n".join(lines) + "\n")
    full = cli("train", config, f"run.dir={tmp / 'full'}", timeout=600)
    assert full.returncode == 0, full.stderr[-3000:]
    return tmp, config, torch.load(tmp / "full" / "checkpoints" / "last.ckpt", weights_only=True)


def test_killed_in_second_epoch_then_resumed_is_bit_identical(setup):
    tmp, config, reference = setup
    run_dir = tmp / "killed"
    proc = cli_popen("train", config, f"run.dir={run_dir}", log=tmp / "killed.log")
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    wait_for_step(proc, ckpt, STEPS_PER_EPOCH + 1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = ckpt_step(ckpt)
    assert STEPS_PER_EPOCH < saved < TOTAL_STEPS, f"the kill must land inside epoch 1 (checkpoint step {saved})"
    assert torch.load(ckpt, weights_only=True)["vpr_mining"]["epoch"] == 1
    resumed = cli("resume", run_dir, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final = torch.load(ckpt, weights_only=True)
    assert final["global_step"] == reference["global_step"] == TOTAL_STEPS
    differing = [k for k, v in reference["state_dict"].items() if not torch.equal(v, final["state_dict"][k])]
    assert not differing, f"resumed from step {saved}: {len(differing)} tensors differ, e.g. {differing[:3]}"
