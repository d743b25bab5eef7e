"""NeRF on the CPU: the fast field (Instant-NGP hash grid + occupancy grid) against the seed's tiny NeRF.

Both train on the embedded scene (100×100, views 0–99; :mod:`torchrepro.nerf.scene`) through the recipe's own
task (:class:`torchrepro.nerf.task.NeRFTask`: the same ray batches, renderer and loss), from the shipped configs:

* **baseline**: the seed's tiny NeRF (``configs/nerf_embedded_tiny.yaml``: its two MLPs of 128 units, 2 layers
  coarse and 6 fine, positional encoding 10 / 4 frequencies, 64 stratified + 64 inverse-CDF samples per ray, Adam);
* **ours**: the hash-grid field of ``configs/nerf_embedded.yaml`` (one field, occupancy grid, Adam ε 1e-15 fused).

Reported, in one process: (a) training rays/s (steps of the config's ray batch, after a warm-up that also lets
the occupancy grid learn the empty space); (b) the time to render one 100×100 held-out view; (c) the PSNR of the
held-out validation views after the same wall-clock budget of training for each (``--budget`` seconds, 60 by
default), both from their configs' learning rates without schedules. The issue's target: ≥ 1.5× the baseline's
rays/s at equal PSNR.

    .venv/bin/python benchmarks/nerf_fields.py [--budget 60] [--threads 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import torchrepro.recipes  # noqa: F401  (fills the registry)
from torchrepro.core.optim import build_optimizer
from torchrepro.core.registry import resolve_config
from torchrepro.nerf.data import HeldOutViews, RayBatches, load_scene
from torchrepro.nerf.task import NeRFTask

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {"tiny NeRF (seed, baseline)": "nerf_embedded_tiny.yaml", "hash grid + occupancy (ours)": "nerf_embedded.yaml"}


def _setup(config: str, data_dir: Path):  # noqa: ANN202
    cfg = resolve_config(REPO / "configs" / config, [f"data.synthetic_dir={data_dir}"])
    scene = load_scene(cfg.data, cfg.seed)
    torch.manual_seed(cfg.seed)
    task = NeRFTask(cfg)
    opt = build_optimizer(task.parameter_groups(), cfg.optim)
    return cfg, scene, task, opt


def _step(task: NeRFTask, opt: torch.optim.Optimizer, batch: dict, step: int) -> None:
    if task.occupancy is not None:
        task.occupancy.update(task.coarse, step)
    loss = sum(task_loss for task_loss in _losses(task, batch).values())
    opt.zero_grad()
    loss.backward()
    opt.step()


def _losses(task: NeRFTask, batch: dict) -> dict:
    out = task.render(batch["origins"], batch["directions"], perturb=True)
    return {k: F.mse_loss(v["rgb"], batch["rgb"]) for k, v in out.items()}


def _val_psnr(task: NeRFTask, views: HeldOutViews) -> float:
    task.eval()
    errors = []
    for i in range(len(views)):
        view = views[i]
        out = task.render_view(view["origins"], view["directions"])
        errors.append(float(-10 * torch.log10(F.mse_loss(out["rgb"].clamp(0, 1), view["rgb"]))))
    task.train()
    return sum(errors) / len(errors)


def measure(name: str, config: str, data_dir: Path, budget: float, warmup_steps: int) -> dict:
    cfg, scene, task, opt = _setup(config, data_dir)
    rays = RayBatches(scene, cfg.data, cfg.seed, steps_per_epoch=10 ** 6)
    step, started = 0, time.perf_counter()
    timed_steps, timed_from = 0, None
    while time.perf_counter() - started < budget:
        _step(task, opt, rays[(0, step)], step)
        step += 1
        if step == warmup_steps:
            timed_from = time.perf_counter()
        elif step > warmup_steps:
            timed_steps += 1
    rays_per_s = timed_steps * cfg.data.rays_per_batch / (time.perf_counter() - timed_from) if timed_from else 0.0
    views = HeldOutViews(scene, "val")
    t0 = time.perf_counter()
    task.eval()
    task.render_view(views[0]["origins"], views[0]["directions"])
    render_s = time.perf_counter() - t0
    return {"name": name, "steps": step, "rays_per_s": rays_per_s, "render_s": render_s,
            "psnr": _val_psnr(task, views)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=60.0, help="training seconds for each field (60)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup-steps", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        results = [measure(name, config, Path(tmp), args.budget, args.warmup_steps)
                   for name, config in CONFIGS.items()]
    base = results[0]
    print(f"NeRF fields, embedded scene 100x100, {args.budget:.0f} s of training each, {args.threads} threads")
    print(f"{'field':32s} {'steps':>6s} {'rays/s':>9s} {'vs base':>8s} {'render 100x100':>15s} {'val PSNR':>9s}")
    for r in results:
        print(f"{r['name']:32s} {r['steps']:6d} {r['rays_per_s']:9.0f} {r['rays_per_s'] / base['rays_per_s']:7.2f}x "
              f"{r['render_s']:13.2f} s {r['psnr']:8.2f} dB")


if __name__ == "__main__":
    main()
