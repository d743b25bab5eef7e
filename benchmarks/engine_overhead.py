"""Engine overhead: torchrepro's Lightning engine vs a hand-written PyTorch loop, same process, same work.

Both train the same ResNet-18 (same initial weights) on the same in-memory tensors for the same number of
SGD steps. Runs alternate (hand, engine, hand, engine, …) so machine noise hits both alike; the median
time of each is reported with their ratio. The engine run is configured as a user would run it: TensorBoard
logging every 10 steps, the base TaskModule's training step (``loss``, ``train_loss``, ``lr`` logged each step),
RNG/NaN/metrics callbacks, and a checkpoint at the end.

Where the engine's extra time goes is printed as phases of the median engine run (timestamps from a callback):
set-up (``fit()`` until the first batch: strategy, callbacks, logger, loader), the training steps (per step, against
the hand-written loop's per step), and teardown (the final atomic checkpoint with fsync, logger flush).
``--profile`` adds a cProfile of one engine run: the Lightning and torchrepro functions with the most own time.

    python benchmarks/engine_overhead.py [--steps 50] [--repeats 5] [--batch 16] [--size 64] [--profile]
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import pstats
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
import torchvision
from torch.utils.data import TensorDataset

from torchrepro.core.config import CheckpointConfig, Config, OptimConfig, RunConfig, SchedConfig, TrainerConfig
from torchrepro.core.data import ResumableLoader, ResumableSampler
from torchrepro.core.engine import build_trainer
from torchrepro.core.registry import Recipe
from torchrepro.core.task import TaskModule


class Classifier(TaskModule):
    def __init__(self, cfg: Config, net: torch.nn.Module) -> None:
        super().__init__(cfg)
        self.net = net

    def losses(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        images, labels = batch
        return {"ce": F.cross_entropy(self.net(images), labels)}


class PhaseTimer(pl.Callback):
    """Wall-clock timestamps of an engine run: first batch start, last batch end."""

    def __init__(self) -> None:
        self.first_batch: float | None = None
        self.last_batch_end = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        if self.first_batch is None:
            self.first_batch = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self.last_batch_end = time.perf_counter()


def make_cfg(steps: int) -> Config:
    trainer = TrainerConfig(max_epochs=1, max_steps=steps, progress_bar=False, log_every_n_steps=10)
    return Config(recipe="bench", seed=0, run=RunConfig(), trainer=trainer, optim=OptimConfig(lr=0.01),
                  sched=SchedConfig(), checkpoint=CheckpointConfig(), data=None, model=None)


def hand_loop(net: torch.nn.Module, data: TensorDataset, batch: int, steps: int) -> float:
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    loader = torch.utils.data.DataLoader(data, batch_size=batch, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    net.train()
    start = time.perf_counter()
    done = 0
    while done < steps:
        for images, labels in loader:
            loss = F.cross_entropy(net(images), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            if done == steps:
                break
    return time.perf_counter() - start


def engine_loop(net: torch.nn.Module, data: TensorDataset, batch: int, steps: int,
                profile: cProfile.Profile | None = None) -> tuple[float, dict[str, float]]:
    """Seconds of ``trainer.fit`` and its phases (set-up, steps, teardown)."""
    cfg = make_cfg(steps)
    recipe = Recipe("bench", "benchmark", object, object, build=lambda c: None)
    timer = PhaseTimer()
    with tempfile.TemporaryDirectory() as tmp:
        trainer = build_trainer(cfg, recipe, Path(tmp), extra_callbacks=[timer])
        module = Classifier(cfg, net)
        loader = ResumableLoader(data, ResumableSampler(data, seed=0), batch_size=batch)
        start = time.perf_counter()
        if profile is not None:
            profile.enable()
        trainer.fit(module, train_dataloaders=loader)
        if profile is not None:
            profile.disable()
        end = time.perf_counter()
    assert trainer.global_step == steps, trainer.global_step
    phases = {"setup": timer.first_batch - start, "steps": timer.last_batch_end - timer.first_batch,
              "teardown": end - timer.last_batch_end}
    return end - start, phases


def print_profile(profile: cProfile.Profile, top: int = 12) -> None:
    """The Lightning / torchrepro functions with the most own time in one engine run."""
    stats = pstats.Stats(profile)
    rows = [(tt, nc, f"{Path(file).name}:{line} {name}") for (file, line, name), (_, nc, tt, _, _) in stats.stats.items()
            if "pytorch_lightning" in file or "lightning_fabric" in file or "torchrepro" in file]
    print(f"cProfile of one engine run, own time of Lightning/torchrepro functions (top {top}):")
    for tt, nc, where in sorted(rows, reverse=True)[:top]:
        print(f"  {1000 * tt:8.1f} ms  {nc:6d} calls  {where}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of one engine run")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    pl.seed_everything(0, verbose=False)
    n = args.batch * args.steps
    data = TensorDataset(torch.randn(n, 3, args.size, args.size), torch.randint(0, 10, (n,)))
    base = torchvision.models.resnet18(num_classes=10)
    hand_loop(copy.deepcopy(base), data, args.batch, 3)  # warm-up: allocator, oneDNN kernels
    hand_times, engine_times, engine_phases = [], [], []
    for _ in range(args.repeats):
        hand_times.append(hand_loop(copy.deepcopy(base), data, args.batch, args.steps))
        elapsed, phases = engine_loop(copy.deepcopy(base), data, args.batch, args.steps)
        engine_times.append(elapsed)
        engine_phases.append(phases)
    hand, engine = statistics.median(hand_times), statistics.median(engine_times)
    phases = engine_phases[engine_times.index(sorted(engine_times)[len(engine_times) // 2])]
    print(f"ResNet-18, {args.steps} steps, batch {args.batch}, {args.size}x{args.size}, "
          f"{torch.get_num_threads()} threads, {args.repeats} alternating repeats (median)")
    print(f"hand-written loop : {hand:7.2f} s  ({1000 * hand / args.steps:6.1f} ms/step)  runs: "
          + ", ".join(f"{t:.2f}" for t in hand_times))
    print(f"torchrepro engine : {engine:7.2f} s  ({1000 * engine / args.steps:6.1f} ms/step)  runs: "
          + ", ".join(f"{t:.2f}" for t in engine_times))
    print(f"ratio engine/hand : {engine / hand:.3f}x  (target <= 1.05x)")
    hand_step = hand / args.steps
    engine_step = phases["steps"] / max(args.steps - 1, 1)  # first batch start .. last batch end: steps - 1 gaps
    print(f"median engine run : set-up {phases['setup']:.2f} s, {args.steps} steps {phases['steps']:.2f} s "
          f"({1000 * engine_step:.1f} ms/step, hand {1000 * hand_step:.1f}), teardown (final checkpoint) "
          f"{phases['teardown']:.2f} s")
    print(f"engine extra time : set-up {phases['setup'] / hand:+.1%}, steps {(phases['steps'] - hand) / hand:+.1%}, "
          f"teardown {phases['teardown'] / hand:+.1%} of the hand loop's time")
    if args.profile:
        profile = cProfile.Profile()
        engine_loop(copy.deepcopy(base), data, args.batch, args.steps, profile)
        print_profile(profile)


if __name__ == "__main__":
    main()
