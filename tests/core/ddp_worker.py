"""Worker for the real multi-process tests of tests/core/test_distributed.py.

Run under ``torchrun --standalone --nproc_per_node=2 tests/core/ddp_worker.py SCENARIOS OUT_DIR`` (gloo on
CPU). ``SCENARIOS`` is a comma-separated list of ``engine``, ``syncbn``, ``gather``, ``accum`` (or ``all``);
every rank writes ``OUT_DIR/<scenario>_rank<r>.pt`` (torch.save) for the test process to compare with a
single-process computation. The test process imports this module too, for the same recipe, data and ``fn``:
the tiny ``ddp_check`` recipe (registered by :func:`main`, or by :func:`recipe_registered` in the test
process) goes through the real engine (:func:`torchrepro.core.engine.train`: config validation, process
group, run directory, build_trainer, callbacks, checkpoints).
"""

from __future__ import annotations

import argparse
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from pytorch_lightning.plugins.layer_sync import TorchSyncBatchNorm
from torch import nn
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset

from torchrepro.core import engine
from torchrepro.core.data import ResumableLoader, ResumableSampler
from torchrepro.core.distributed import (
    SyncBatchNormPlugin,
    compute_ordered,
    gather_ordered,
    gather_ordered_objects,
    rank_world,
    rank_zero_first,
    shard_bounds,
)
from torchrepro.core import registry
from torchrepro.core.registry import Recipe, recipes, register, resolve_config
from torchrepro.core.seeding import derive_seed
from torchrepro.core.task import TaskModule

RECIPE = "ddp_check"
SEED = 7
PER_RANK_BATCH = 4  # b
N_TRAIN = 48  # 2b * 6: six micro-batches per rank per epoch
ENGINE_STEPS = 8  # crosses into the second epoch (6 steps per epoch), so set_epoch is exercised too
ACCUM_KS = (1, 2, 3)
GATHER_N = 13  # odd: the last shard is shorter, padding is exercised
GATHER_BATCH = 3  # does not divide the shard lengths 7 and 6


# ------------------------------------------------------------------------------------------ the recipe
@dataclass
class DataCfg:
    n: int = N_TRAIN
    batch_size: int = PER_RANK_BATCH
    dim: int = 6


@dataclass
class ModelCfg:
    kind: str = "mlp"  # "mlp" (no BatchNorm) or "bn" (Linear → BatchNorm1d → Tanh → Linear)
    hidden: int = 5
    count_comm: bool = False  # register a counting DDP communication hook


class RegressionData(Dataset):
    """n samples of a noisy linear target, a pure function of the seed."""

    def __init__(self, n: int, dim: int, seed: int) -> None:
        gen = torch.Generator().manual_seed(derive_seed(seed, "data"))
        self.x = torch.randn(n, dim, generator=gen) * 2 + 0.5  # BN input far from N(0, 1)
        w = torch.randn(dim, 1, generator=gen)
        self.y = self.x @ w + 0.1 * torch.randn(n, 1, generator=gen)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]


class DataModule(pl.LightningDataModule):
    def __init__(self, cfg: Any) -> None:
        super().__init__()
        self.cfg = cfg

    def train_dataloader(self) -> ResumableLoader:
        d = self.cfg.data
        ds = RegressionData(d.n, d.dim, self.cfg.seed)
        return ResumableLoader(ds, ResumableSampler(ds, seed=self.cfg.seed, shuffle=True), batch_size=d.batch_size)


class CommRecorder:
    """State of the counting DDP communication hook: (micro-batch index, bucket index) per all-reduce."""

    def __init__(self) -> None:
        self.batch_idx = -1
        self.calls: list[tuple[int, int]] = []


def counting_allreduce_hook(state, bucket):  # noqa: ANN001, ANN201 - DDP rejects string annotations (PEP 563)
    """Record the call, then delegate to the default all-reduce hook (mean over ranks)."""
    state.calls.append((state.batch_idx, bucket.index()))
    return default_hooks.allreduce_hook(None, bucket)  # type: ignore[arg-type]  # None: the default group


class Module(TaskModule):
    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)
        m, dim = cfg.model, cfg.data.dim
        # Initialisation independent of the (per-rank) global RNG: every rank and the reference agree.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(cfg.seed, "init"))
            if m.kind == "bn":
                self.net = nn.Sequential(nn.Linear(dim, m.hidden), nn.BatchNorm1d(m.hidden), nn.Tanh(),
                                         nn.Linear(m.hidden, 1))
            else:
                self.net = nn.Sequential(nn.Linear(dim, m.hidden), nn.Tanh(), nn.Linear(m.hidden, 1))
        self.init_state = {k: v.clone() for k, v in self.net.state_dict().items()}
        self.recorder = CommRecorder()
        self.bn_types_in_training: list[str] = []
        self.layer_sync_swapped = False

    def setup(self, stage: str) -> None:
        # Runs before Lightning's strategy.setup converts BatchNorm layers. torch.nn.SyncBatchNorm refuses CPU
        # tensors, so until build_trainer passes SyncBatchNormPlugin itself (see the report), apply that fix here.
        layer_sync = getattr(self.trainer.strategy, "_layer_sync", None)
        if isinstance(layer_sync, TorchSyncBatchNorm) and not isinstance(layer_sync, SyncBatchNormPlugin):
            self.trainer.strategy._layer_sync = SyncBatchNormPlugin()
            self.layer_sync_swapped = True

    def on_fit_start(self) -> None:
        # Lightning's DDPStrategy(ddp_comm_hook=...) only registers hooks on CUDA, so register with DDP directly.
        ddp = self.trainer.strategy.model
        if self.cfg.model.count_comm and isinstance(ddp, DistributedDataParallel):
            ddp.register_comm_hook(self.recorder, counting_allreduce_hook)

    def on_train_start(self) -> None:
        self.bn_types_in_training = [type(mod).__name__ for mod in self.modules()
                                     if isinstance(mod, nn.modules.batchnorm._BatchNorm)]

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self.recorder.batch_idx = batch_idx

    def losses(self, batch: Any) -> dict[str, torch.Tensor]:
        x, y = batch
        return {"mse": nn.functional.mse_loss(self.net(x), y)}

    def result(self) -> dict[str, Any]:
        bn = [mod for mod in self.net.modules() if isinstance(mod, nn.modules.batchnorm._BatchNorm)]
        return {
            "init": self.init_state,
            "state": {k: v.detach().clone() for k, v in self.net.state_dict().items()},
            "global_step": self.trainer.global_step,
            "comm_calls": list(self.recorder.calls),
            "bn_types_in_training": self.bn_types_in_training,
            "bn_running_mean": bn[0].running_mean.clone() if bn else None,
            "bn_running_var": bn[0].running_var.clone() if bn else None,
            "layer_sync_swapped": self.layer_sync_swapped,
            "train_loss": float(self.trainer.callback_metrics["train_loss"]),
        }


BUILT: list[Module] = []


def build(cfg: Any) -> tuple[Module, DataModule]:
    module = Module(cfg)
    BUILT.append(module)
    return module, DataModule(cfg)


RECIPE_ENTRY = Recipe(name=RECIPE, description="tiny regression for the DDP tests", data_schema=DataCfg,
                      model_schema=ModelCfg, builder=build)


@contextlib.contextmanager
def recipe_registered() -> Iterator[None]:
    """Register the test recipe for the duration of a block, then remove it again.

    The test process must not leave ``ddp_check`` in the global registry, where other tests (``torchrepro
    list``) would see it; the registry has no public removal, so this pops the private table.
    """
    added = RECIPE not in recipes()
    if added:
        register(RECIPE_ENTRY)
    try:
        yield
    finally:
        if added:
            registry._RECIPES.pop(RECIPE, None)


def raw_config(run_dir: Path, batch_size: int, *, kind: str = "mlp", max_steps: int = -1, max_epochs: int = 1,
               accumulate: int = 1, sync_batchnorm: bool = False, count_comm: bool = False) -> dict[str, Any]:
    """The raw config of one run (before validation by the engine)."""
    return {
        "recipe": RECIPE,
        "seed": SEED,
        "run": {"dir": str(run_dir)},
        "trainer": {"max_epochs": max_epochs, "max_steps": max_steps, "accelerator": "cpu",
                    "accumulate_grad_batches": accumulate, "sync_batchnorm": sync_batchnorm,
                    "progress_bar": False, "log_every_n_steps": 1},
        "optim": {"name": "sgd", "lr": 0.02, "momentum": 0.9},
        "data": {"batch_size": batch_size},
        "model": {"kind": kind, "count_comm": count_comm},
    }


def train(raw: dict[str, Any]) -> dict[str, Any]:
    """One real engine run (torchrepro.core.engine.train); returns the trained module's results."""
    engine.train(None, [], raw=raw)
    return BUILT[-1].result()


# ------------------------------------------------------------------------------------------- gather fn
class GatherData(Dataset):
    """Item i: (i, features of i) — a pure function of i."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor]:
        gen = torch.Generator().manual_seed(1000 + i)
        return i, torch.randn(4, generator=gen)


def gather_fn(batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Row-wise deterministic: [index, sin(x) * x^2 + index] per item."""
    index, x = batch
    return torch.cat([index.to(x.dtype)[:, None], torch.sin(x) * x * x + index[:, None]], dim=1)


def gather_objects_for(indices: range) -> list:
    return [(i, f"item-{i}", {"square": i * i}) for i in indices]


# ------------------------------------------------------------------------------------------- scenarios
def scenario_engine(out: Path) -> dict[str, Any]:
    """(a) per-rank batch b for ENGINE_STEPS steps, through engine.train."""
    return train(raw_config(out / "runs" / "engine", PER_RANK_BATCH, max_steps=ENGINE_STEPS, max_epochs=2))


def scenario_syncbn(out: Path) -> dict[str, Any]:
    """(b) one step of a BatchNorm model, with and without trainer.sync_batchnorm."""
    return {
        sync: train(raw_config(out / "runs" / f"syncbn_{sync}", PER_RANK_BATCH, kind="bn", max_steps=1,
                               sync_batchnorm=sync))
        for sync in (True, False)
    }


def scenario_accum(out: Path) -> dict[str, Any]:
    """(d) one epoch of 6 micro-batches per rank with accumulate_grad_batches K, counting all-reduces."""
    return {
        k: train(raw_config(out / "runs" / f"accum_{k}", PER_RANK_BATCH, accumulate=k, count_comm=True))
        for k in ACCUM_KS
    }


def scenario_gather(out: Path) -> dict[str, Any]:
    """(c) compute_ordered / gather_ordered / gather_ordered_objects / rank_zero_first."""
    rank, world = rank_world()
    res: dict[str, Any] = {"rank": rank, "world": world}
    res["compute_ordered"] = compute_ordered(GatherData(GATHER_N), gather_fn, GATHER_BATCH)
    res["compute_ordered_n1"] = compute_ordered(GatherData(1), gather_fn, GATHER_BATCH)  # rank 1's shard is empty
    start, stop = shard_bounds(GATHER_N, rank, world)
    res["shard"] = (start, stop)
    res["gather_int"] = gather_ordered(torch.arange(start, stop, dtype=torch.int64) * 10, GATHER_N)
    res["gather_bool"] = gather_ordered(torch.arange(start, stop) % 3 == 0, GATHER_N)
    res["gather_objects"] = gather_ordered_objects(gather_objects_for(range(start, stop)), GATHER_N)
    # rank_zero_first: rank 0 creates the marker slowly; the others must find it complete when they run.
    marker = out / "prepared.txt"
    with rank_zero_first():
        found = marker.read_text() if marker.exists() else None
        if found is None:
            time.sleep(1.0)  # without the barrier, rank 1 would look while rank 0 is still "preparing"
            marker.write_text(f"prepared by rank {rank}")
    res["marker_found"] = found
    return res


SCENARIOS = {"engine": scenario_engine, "syncbn": scenario_syncbn, "gather": scenario_gather, "accum": scenario_accum}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", help=f"comma-separated subset of {', '.join(SCENARIOS)}, or 'all'")
    parser.add_argument("out", type=Path, help="output directory")
    args = parser.parse_args()
    names = list(SCENARIOS) if args.scenarios == "all" else args.scenarios.split(",")
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}: choose from {', '.join(SCENARIOS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    register(RECIPE_ENTRY)
    # The engine initialises the process group from torchrun's environment (gloo on CPU); the gather
    # scenario needs it even when it runs first.
    engine.init_distributed(resolve_config(None, [], raw=raw_config(args.out / "unused", 1)))
    rank, world = rank_world()
    assert world > 1, "run under torchrun with --nproc_per_node >= 2"
    for name in names:
        start = time.perf_counter()
        result = SCENARIOS[name](args.out)
        result = {"result": result, "seconds": time.perf_counter() - start}
        torch.save(result, args.out / f"{name}_rank{rank}.pt")
    dist.barrier()


if __name__ == "__main__":
    main()
