"""Distributed helpers and the engine's DDP behaviour, checked with REAL 2-process runs.

One ``torchrun --standalone --nproc_per_node=2`` launch (gloo on CPU) of ``tests/core/ddp_worker.py`` runs all
scenarios and saves each rank's results; every test compares them with a single-process computation done
here, in the test process, through the same engine path:

(a) DDP, per-rank batch b, k steps == one process with batch 2b (parameters within 1e-6);
(b) ``trainer.sync_batchnorm``: BN running stats after one step == BatchNorm over the full 2b batch, and
    without it they differ;
(c) ``compute_ordered`` / ``gather_ordered(_objects)`` on n=13 items == the single-process result exactly;
    ``rank_zero_first`` lets rank 1 see what rank 0 prepared;
(d) ``accumulate_grad_batches=K``: gradients are all-reduced once per K micro-batches (counted with a DDP
    communication hook), and the parameters equal one process with batch 2bK.
"""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import default_collate

from tests.core import ddp_worker as worker
from torchrepro.core.distributed import (
    GlooSyncBatchNorm,
    SyncBatchNormPlugin,
    compute_ordered,
    gather_ordered,
    gather_ordered_objects,
    rank_zero_first,
    shard_bounds,
)
from torchrepro.core.seeding import capture_rng_state, restore_rng_state

REPO = Path(__file__).resolve().parents[2]
WORLD = 2
B = worker.PER_RANK_BATCH
TOL = 1e-6
LAUNCH_TIMEOUT_S = 300


# ------------------------------------------------------------------------------- single-process units
def test_shard_bounds_hand_computed():
    assert [shard_bounds(13, r, 2) for r in range(2)] == [(0, 7), (7, 13)]
    assert [shard_bounds(2, r, 4) for r in range(4)] == [(0, 1), (1, 2), (2, 2), (2, 2)]
    assert [shard_bounds(10, r, 3) for r in range(3)] == [(0, 4), (4, 8), (8, 10)]
    assert [shard_bounds(5, r, 4) for r in range(4)] == [(0, 2), (2, 4), (4, 5), (5, 5)]
    assert [shard_bounds(0, r, 3) for r in range(3)] == [(0, 0)] * 3
    assert shard_bounds(7, 0, 1) == (0, 7)
    for bad in [(5, 2, 2), (5, -1, 2), (5, 0, 0), (-1, 0, 1)]:
        with pytest.raises(ValueError):
            shard_bounds(*bad)


@pytest.mark.parametrize("n,world", [(13, 2), (100, 8), (3, 5), (64, 4), (1, 1)])
def test_shard_bounds_partition_in_order(n, world):
    bounds = [shard_bounds(n, r, world) for r in range(world)]
    flat = [i for start, stop in bounds for i in range(start, stop)]
    assert flat == list(range(n))  # contiguous, ordered, disjoint, complete
    size = -(-n // world)
    assert all(stop - start <= size for start, stop in bounds)


def test_not_distributed_helpers_run_everything_locally():
    ds = worker.GatherData(worker.GATHER_N)
    # Reference: fn on one item at a time, in order.
    expected = torch.cat([worker.gather_fn(default_collate([ds[i]])) for i in range(len(ds))])
    got = compute_ordered(ds, worker.gather_fn, batch_size=worker.GATHER_BATCH)
    assert got.shape == (13, 5) and torch.equal(got, expected)
    assert torch.equal(got[:, 0], torch.arange(13, dtype=got.dtype))  # rows in dataset order

    t = torch.arange(12).reshape(4, 3)
    assert gather_ordered(t, 4) is t
    with pytest.raises(ValueError, match="holds 4 items"):
        gather_ordered(t, 5)
    objects = worker.gather_objects_for(range(4))
    assert gather_ordered_objects(objects, 4) == objects
    with pytest.raises(ValueError, match="holds 4 items"):
        gather_ordered_objects(objects, 3)

    ran = []
    with rank_zero_first():
        ran.append(1)
    assert ran == [1]


def test_sync_batchnorm_plugin_converts_and_reverts_single_process():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU())
    plain = copy.deepcopy(model)
    plugin = SyncBatchNormPlugin()
    synced = plugin.apply(model)
    assert isinstance(synced[1], GlooSyncBatchNorm)
    x = torch.randn(6, 3, 8, 8) * 3 + 1
    # Not distributed: exactly BatchNorm (batch statistics, running-stat update).
    assert torch.equal(synced(x), plain(x))
    assert torch.equal(synced[1].running_mean, plain[1].running_mean)
    assert torch.equal(synced[1].running_var, plain[1].running_var)
    reverted = plugin.revert(synced)
    assert not isinstance(reverted[1], GlooSyncBatchNorm)
    assert isinstance(reverted[1], torch.nn.modules.batchnorm._BatchNorm)
    assert torch.equal(reverted[1].running_mean, plain[1].running_mean)
    # Lightning accepts it together with sync_batchnorm=True (the proposed engine fix relies on that).
    trainer = pl.Trainer(accelerator="cpu", devices=1, sync_batchnorm=True, plugins=[plugin], logger=False,
                         enable_checkpointing=False, enable_progress_bar=False)
    assert trainer._accelerator_connector._layer_sync is plugin


# ------------------------------------------------------------------------------------ the 2-rank launch
@dataclass
class Launch:
    out: Path
    returncode: int | None
    stdout: str
    stderr: str

    def load(self, scenario: str, rank: int) -> Any:
        """One rank's result of one scenario; fails with the workers' stderr if torchrun did not succeed."""
        tail = self.stderr[-8000:]
        assert self.returncode == 0, f"torchrun failed (returncode {self.returncode}); stderr tail:\n{tail}"
        path = self.out / f"{scenario}_rank{rank}.pt"
        assert path.is_file(), f"worker wrote no {path.name}; stderr tail:\n{tail}"
        return torch.load(path, weights_only=True)["result"]


@pytest.fixture(scope="module")
def launch(tmp_path_factory: pytest.TempPathFactory) -> Launch:
    """Run every scenario in ONE torchrun launch (each launch costs seconds of interpreter start-up)."""
    out = tmp_path_factory.mktemp("ddp")
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}",
           str(REPO / "tests" / "core" / "ddp_worker.py"), "all", str(out)]
    # Own session, so a hang can be killed with all of torchrun's workers (and nothing else).
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=LAUNCH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        stderr += f"\n[test] torchrun killed after {LAUNCH_TIMEOUT_S} s (deadlock?)"
        return Launch(out, None, stdout, stderr)
    return Launch(out, proc.returncode, stdout, stderr)


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Run the recipe in this (non-distributed) process through the same engine path; restores global state."""
    root = tmp_path_factory.mktemp("single")
    rng = capture_rng_state()
    det, det_warn = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    env = dict(os.environ)
    runs = iter(range(1_000))

    def run(batch_size: int, **kwargs: Any) -> dict[str, Any]:
        return worker.train(worker.raw_config(root / f"run{next(runs)}", batch_size, **kwargs))

    with worker.recipe_registered():
        yield run
    restore_rng_state(rng)
    torch.use_deterministic_algorithms(det, warn_only=det_warn)
    for key in set(os.environ) - set(env):  # e.g. PL_GLOBAL_SEED set by seed_everything
        del os.environ[key]
    os.environ.update(env)


def max_state_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


# ------------------------------------------------------------------------------------------------- (a)
def test_ddp_per_rank_batch_b_equals_single_process_batch_2b(launch, single):
    ranks = [launch.load("engine", r) for r in range(WORLD)]
    ref = single(WORLD * B, max_steps=worker.ENGINE_STEPS, max_epochs=2)
    assert ref["global_step"] == worker.ENGINE_STEPS
    for res in ranks:
        assert res["global_step"] == worker.ENGINE_STEPS
        assert max_state_diff(res["init"], ref["init"]) == 0.0
    # DDP keeps replicas identical bit for bit.
    assert max_state_diff(ranks[0]["state"], ranks[1]["state"]) == 0.0
    # Training really moved the weights, so the comparison below is not vacuous.
    assert max_state_diff(ref["state"], ref["init"]) > 1e-2
    diff = max_state_diff(ranks[0]["state"], ref["state"])
    assert diff <= TOL, f"DDP (2 x batch {B}) vs single process (batch {2 * B}): max |Δparam| = {diff:.3g}"
    # The logged epoch loss is the mean over every rank's items, as one process logs it (each rank's own mean
    # of its half of the batches differs from it).
    assert ranks[0]["train_loss"] == ranks[1]["train_loss"]
    assert abs(ranks[0]["train_loss"] - ref["train_loss"]) < 1e-5, (ranks[0]["train_loss"], ref["train_loss"])


# ------------------------------------------------------------------------------------------------- (b)
def test_sync_batchnorm_running_stats_equal_full_batch(launch, single):
    ranks = [launch.load("syncbn", r) for r in range(WORLD)]
    ref = single(WORLD * B, kind="bn", max_steps=1)  # plain BatchNorm over the full 2b batch
    assert ref["bn_types_in_training"] == ["BatchNorm1d"]
    assert ref["bn_running_mean"].abs().max() > 1e-2  # stats really moved from their (0, 1) start

    for res in (r[True] for r in ranks):
        assert res["global_step"] == 1
        assert res["bn_types_in_training"] == ["GlooSyncBatchNorm"], "sync_batchnorm did not convert the layer"
        d_mean = (res["bn_running_mean"] - ref["bn_running_mean"]).abs().max().item()
        d_var = (res["bn_running_var"] - ref["bn_running_var"]).abs().max().item()
        assert d_mean <= TOL and d_var <= TOL, f"synced BN stats vs full batch: Δmean {d_mean:.3g}, Δvar {d_var:.3g}"
        # The backward through the synced statistics is right too: the step equals the full-batch step.
        assert max_state_diff(res["state"], ref["state"]) <= TOL

    unsynced = [r[False] for r in ranks]
    for res in unsynced:
        assert res["bn_types_in_training"] == ["BatchNorm1d"]
        d_mean = (res["bn_running_mean"] - ref["bn_running_mean"]).abs().max().item()
        d_var = (res["bn_running_var"] - ref["bn_running_var"]).abs().max().item()
        assert max(d_mean, d_var) > 1e-3, "without sync_batchnorm each rank should only see its half batch"
    assert (unsynced[0]["bn_running_mean"] - unsynced[1]["bn_running_mean"]).abs().max() > 1e-3


# ------------------------------------------------------------------------------------------------- (c)
def test_ordered_gather_equals_single_process(launch):
    ds = worker.GatherData(worker.GATHER_N)
    expected = compute_ordered(ds, worker.gather_fn, worker.GATHER_BATCH)  # not distributed here
    expected_n1 = compute_ordered(worker.GatherData(1), worker.gather_fn, worker.GATHER_BATCH)
    objects = worker.gather_objects_for(range(worker.GATHER_N))
    for rank in range(WORLD):
        res = launch.load("gather", rank)
        assert (res["rank"], res["world"]) == (rank, WORLD)
        assert res["shard"] == [(0, 7), (7, 13)][rank]
        assert res["compute_ordered"].shape == (13, 5)
        assert torch.equal(res["compute_ordered"], expected), f"rank {rank}: gathered != single-process"
        assert torch.equal(res["compute_ordered_n1"], expected_n1)  # one item: rank 1's shard is empty
        assert torch.equal(res["gather_int"], torch.arange(13) * 10)
        assert torch.equal(res["gather_bool"], torch.arange(13) % 3 == 0)
        assert res["gather_objects"] == objects
    # rank_zero_first: rank 0 prepared (slowly), rank 1 ran afterwards and found the finished result.
    assert launch.load("gather", 0)["marker_found"] is None
    assert launch.load("gather", 1)["marker_found"] == "prepared by rank 0"
    assert (launch.out / "prepared.txt").read_text() == "prepared by rank 0"


# ------------------------------------------------------------------------------------------------- (d)
@pytest.mark.parametrize("k", worker.ACCUM_KS)
def test_accumulation_all_reduces_once_per_k_micro_batches(launch, single, k):
    micro = worker.N_TRAIN // (WORLD * B)  # 6 micro-batches per rank
    for rank in range(WORLD):
        res = launch.load("accum", rank)[k]
        assert res["global_step"] == micro // k
        calls = res["comm_calls"]
        buckets = sorted({bucket for _, bucket in calls})
        assert buckets, "the communication hook never ran"
        per_bucket = {b: [i for i, bb in calls if bb == b] for b in buckets}
        for bucket, batches in per_bucket.items():
            # Exactly once per optimiser step, on the K-th micro-batch: the others ran under no_sync.
            assert len(batches) == micro // k, f"K={k}, bucket {bucket}: {len(batches)} all-reduces for {micro} micro-batches"
            assert batches == list(range(k - 1, micro, k))
    # Accumulating K micro-batches of b on 2 ranks == one process with batch 2bK.
    ref = single(WORLD * B * k)
    assert ref["global_step"] == micro // k
    diff = max_state_diff(launch.load("accum", 0)[k]["state"], ref["state"])
    assert diff <= TOL, f"K={k}: DDP+accumulation vs single process batch {WORLD * B * k}: max |Δparam| = {diff:.3g}"
