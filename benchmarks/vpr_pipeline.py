"""Training data pipeline of event place recognition: samples/s of (anchor, positive, 10 negatives) items.

Baseline (the seed's Dataset, as its Event-VPR reproduction wrote it): every item loads 12 ``<timestamp>.npy`` windows (15,000 events
each) and voxelises each one with a float64 ``np.add.at`` voxel grid (5×260×346). Ours: the recipe's
``TupleDataset`` reading the float16 input cache (voxel grid → centre crop → 224×224, computed once per window
by ``cached_inputs``). Both run in this process on the same on-disk windows, one thread, items in the same
random order; the cache's one-off build time is reported too, with the break-even number of items.

    .venv/bin/python benchmarks/vpr_pipeline.py [--windows 300] [--items 60]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from voxel_grid import HEIGHT, WIDTH, make_events, seed_voxel_grid  # sibling benchmark script

from torchrepro.place_recognition.windows import InputSpec, NpyTraversal, TupleDataset, cached_inputs

N_NEG = 10


def write_windows(folder: Path, n: int, events: int) -> Path:
    """``n`` windows of ``events`` random events, named by timestamp, plus a straight-line positions file."""
    folder.mkdir(parents=True)
    for i in range(n):
        ev = make_events(events, seed=i)
        ev[:, 0] += i * 0.05
        np.save(folder / f"{1500000000 + i * 0.05:.6f}.npy", ev)
    t = np.arange(n + 1) * 0.05 + 1500000000 - 0.01
    positions = np.stack([t * 0 + np.arange(n + 1) * 2.0, np.zeros(n + 1), t], axis=1)  # 2 m per window
    path = folder.parent / "positions.txt"
    np.savetxt(path, positions)
    return path


class SeedStyleDataset:
    """The seed's item: reload and re-voxelise 12 npy windows."""

    def __init__(self, files: list[Path], tuples: list[np.ndarray]) -> None:
        self.files, self.tuples = files, tuples

    def __getitem__(self, i: int) -> torch.Tensor:
        grids = [seed_voxel_grid(np.load(self.files[w]), 5, HEIGHT, WIDTH) for w in self.tuples[i]]
        return torch.from_numpy(np.stack(grids)).float()


def rate(fn, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=300)
    parser.add_argument("--events", type=int, default=15_000)
    parser.add_argument("--items", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "windows"
        positions = write_windows(folder, args.windows, args.events)
        source = NpyTraversal(folder, positions, HEIGHT, WIDTH, min_events=1)
        spec = InputSpec("voxel", 5, HEIGHT, WIDTH, 224, True)
        start = time.perf_counter()
        inputs = cached_inputs(source, spec, Path(tmp) / "cache", "inputs")
        build_s = time.perf_counter() - start

        rng = np.random.default_rng(0)
        query = np.sort(rng.choice(args.windows, size=args.windows // 3, replace=False))
        database = np.setdiff1d(np.arange(args.windows), query)
        ours = TupleDataset(inputs, source.positions, query, database, pos_m=10.0, neg_m=25.0, n_negatives=N_NEG,
                            seed=0)
        tuples = [ours.choose(0, i % len(ours)) for i in range(args.items)]
        files = sorted(folder.glob("*.npy"), key=lambda p: float(p.stem))
        seed = SeedStyleDataset(files, tuples)

        seed_rates, our_rates = [], []
        for _ in range(args.repeats):  # alternate so machine noise hits both alike
            seed_rates.append(rate(lambda i: seed[i], args.items))
            our_rates.append(rate(lambda i: ours[(0, i % len(ours))], args.items))
    s, o = statistics.median(seed_rates), statistics.median(our_rates)
    per_window = build_s / args.windows
    print(f"items of 1 anchor + 1 positive + {N_NEG} negatives, {args.events} events per window, 1 thread")
    print(f"seed-style (reload + np.add.at voxelise 12 windows): {s:8.1f} items/s")
    print(f"torchrepro (float16 input cache, 224x224):          {o:8.1f} items/s")
    break_even = build_s / max(1 / s - 1 / o, 1e-12)
    print(f"ratio: {o / s:.1f}x")
    print(f"cache build: {build_s:.2f} s for {args.windows} windows ({per_window * 1e3:.2f} ms/window, paid once); "
          f"it has paid for itself after {break_even:.0f} items")


if __name__ == "__main__":
    main()
