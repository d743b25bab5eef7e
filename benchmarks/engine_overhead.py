"""Engine overhead: torchrepro's Lightning engine vs a hand-written PyTorch loop, same process, same work.

Both train the same ResNet-18 (same initial weights) on the same in-memory tensors for the same number of
SGD steps. Runs alternate (hand, engine, hand, engine, …) so machine noise hits both alike; the median
time of each is reported with their ratio. The engine run is configured as a user would run it: TensorBoard
logging every 10 steps, `loss`/`lr` logged each step, RNG/NaN/metrics callbacks, and a checkpoint at the end.

    python benchmarks/engine_overhead.py [--steps 50] [--repeats 3] [--batch 16] [--size 64]
"""

from __future__ import annotations

import argparse
import copy
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

    def training_step(self, batch, batch_idx):
        images, labels = batch
        loss = F.cross_entropy(self.net(images), labels)
        self.log("loss", loss)
        return loss


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


def engine_loop(net: torch.nn.Module, data: TensorDataset, batch: int, steps: int) -> float:
    cfg = make_cfg(steps)
    recipe = Recipe("bench", "benchmark", object, object, build=lambda c: None)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = build_trainer(cfg, recipe, Path(tmp))
        module = Classifier(cfg, net)
        loader = ResumableLoader(data, ResumableSampler(data, seed=0), batch_size=batch)
        start = time.perf_counter()
        trainer.fit(module, train_dataloaders=loader)
        elapsed = time.perf_counter() - start
    assert trainer.global_step == steps, trainer.global_step
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    pl.seed_everything(0, verbose=False)
    n = args.batch * args.steps
    data = TensorDataset(torch.randn(n, 3, args.size, args.size), torch.randint(0, 10, (n,)))
    base = torchvision.models.resnet18(num_classes=10)
    hand_loop(copy.deepcopy(base), data, args.batch, 3)  # warm-up: allocator, oneDNN kernels
    hand_times, engine_times = [], []
    for _ in range(args.repeats):
        hand_times.append(hand_loop(copy.deepcopy(base), data, args.batch, args.steps))
        engine_times.append(engine_loop(copy.deepcopy(base), data, args.batch, args.steps))
    hand, engine = statistics.median(hand_times), statistics.median(engine_times)
    print(f"ResNet-18, {args.steps} steps, batch {args.batch}, {args.size}x{args.size}, "
          f"{torch.get_num_threads()} threads, {args.repeats} alternating repeats (median)")
    print(f"hand-written loop : {hand:7.2f} s  ({1000 * hand / args.steps:6.1f} ms/step)  runs: "
          + ", ".join(f"{t:.2f}" for t in hand_times))
    print(f"torchrepro engine : {engine:7.2f} s  ({1000 * engine / args.steps:6.1f} ms/step)  runs: "
          + ", ".join(f"{t:.2f}" for t in engine_times))
    print(f"ratio engine/hand : {engine / hand:.3f}x  (target <= 1.05x)")


if __name__ == "__main__":
    main()
