"""TSM against 3-D convolutions on the CPU: training clips/s, and FFN's inference cost at 4 / 8 / 16 frames.

Part 1, **training throughput** (the reason TSM exists: temporal modelling at a 2-D network's cost). One training
step = forward + cross-entropy + backward + SGD step (lr 0.01, momentum 0.9) on random clips and random labels of
10 classes, 8 frames of 112×112 (torchvision's video models' native input), batch 4 by default; clips/s =
batch / median step time over ``--steps`` timed steps after ``--warmup`` untimed ones. The models take their
steps in turn (model A, B, C, … then again), so machine noise hits all of them alike, and every ratio is measured in
the same process. Networks:

* **TSM ResNet-18** (Lin et al., ICCV 2019): ``FrameFlexibleNet(10, [8], arch="resnet18", width=64)``, a 2-D
  ResNet-18 run on ``N·T`` images with the residual temporal shift, clips ``[N, T, 3, H, W]``;
* **TSN ResNet-18**: the same network with ``shift=False`` (so TSM − TSN is the shift's own cost);
* **baseline**: torchvision's R3D-18 / MC3-18 / R(2+1)D-18 (Tran et al., CVPR 2018), the 3-D networks a user would
  pick instead, built with ``weights=None, num_classes=10``, clips ``[N, 3, T, H, W]``. R3D-18 (full 3×3×3
  convolutions) is the standard 3-D baseline but has about 3× TSM's parameters; MC3-18 (3-D convolutions in the
  first stage only, 2-D after) is the one of *similar parameter count*; R(2+1)D-18 factorises every 3-D
  convolution into a spatial and a temporal one (same parameter count as R3D-18).

The exact parameter counts are printed, with the ratio of TSM's clips/s to each 3-D network's.

Part 2, **inference cost at 4 / 8 / 16 frames** of TSM-R18 (trained at 8 frames, run at F) and of the FFN network
(Zhang et al., CVPR 2023: ``private=True, weight_alteration=True``, sub-networks for 4, 8 and 16 frames; a clip of F
frames runs the F-frame sub-network): milliseconds per clip (eval mode, ``torch.inference_mode``, batch 1 and 8;
median of ``--repeats`` runs at the largest batch and 2·repeats − 1 at smaller ones, after one warm-up, the two
networks in turn) and GFLOPs per clip counted by
``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix products, 2 FLOPs per multiply-add; batch
norms, shifts and element-wise ops are not counted). FFN's only extra work at inference is its weight alterations,
one per-channel scale per residual block (its private batch norms replace, not add to, TSM's); their multiplies
are counted separately with hooks and printed in the last column.

``--width 16 --size 64`` measures the CPU-sized network of ``configs/ffn_synthetic.yaml`` (a quarter of
torchvision's channels, 64×64 frames). With ``--width`` other than 64 the 3-D baselines are narrowed alike (every
channel count except the RGB input × width/64, torchvision's initialisation), so the comparison stays like for like.
The thread count is every core the process may use (``torch.set_num_threads``), printed with the results.

    .venv/bin/python benchmarks/ffn_tsm.py [--frames 8] [--size 112] [--batch 4] [--steps 3] [--warmup 1]
                                           [--width 64] [--infer-frames 4 8 16] [--infer-batches 1 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from torchrepro.frame_flexible.model import FrameFlexibleNet
from torchrepro.nn.temporal_shift import WeightAlteration

CLASSES = 10
BASELINES = {"R3D-18 (3-D baseline)": "r3d_18", "MC3-18 (3-D, similar params)": "mc3_18",
             "R(2+1)D-18 (3-D baseline)": "r2plus1d_18"}


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _narrow_3d(model: nn.Module, width: int) -> nn.Module:
    """Every ``Conv3d`` / ``BatchNorm3d`` / ``Linear`` of a torchvision video ResNet rebuilt with its channel counts
    × ``width``/64 (the 3 RGB input channels kept), with torchvision's ``VideoResNet`` initialisation."""
    if width == 64:
        return model

    def scale(c: int) -> int:
        return c if c == 3 else max(1, round(c * width / 64))

    for parent in list(model.modules()):
        for name, m in list(parent.named_children()):
            if isinstance(m, nn.Conv3d):
                new = nn.Conv3d(scale(m.in_channels), scale(m.out_channels), m.kernel_size, m.stride, m.padding,
                                bias=m.bias is not None)
                nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
                if new.bias is not None:
                    nn.init.zeros_(new.bias)
            elif isinstance(m, nn.BatchNorm3d):
                new = nn.BatchNorm3d(scale(m.num_features))
            elif isinstance(m, nn.Linear):
                new = nn.Linear(scale(m.in_features), m.out_features)
                nn.init.normal_(new.weight, 0, 0.01)
                nn.init.zeros_(new.bias)
            else:
                continue
            setattr(parent, name, new)
    return model


class Entry:
    """A network to measure and how it takes a clip batch made as ``[N, T, 3, H, W]``."""

    def __init__(self, name: str, model: nn.Module, channels_first: bool) -> None:
        self.name = name
        self.model = model
        self.channels_first = channels_first  # torchvision's video models take [N, 3, T, H, W]
        self.opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        self.times: list[float] = []

    def layout(self, clips: torch.Tensor) -> torch.Tensor:
        return clips.transpose(1, 2).contiguous() if self.channels_first else clips

    def train_step(self, clips: torch.Tensor, labels: torch.Tensor) -> float:
        t0 = time.perf_counter()
        loss = F.cross_entropy(self.model(clips), labels)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return time.perf_counter() - t0


def training_entries(frames: int, width: int) -> list[Entry]:
    torch.manual_seed(0)
    entries = [Entry("TSM ResNet-18", FrameFlexibleNet(CLASSES, [frames], arch="resnet18", width=width), False),
               Entry("TSN ResNet-18 (no shift)",
                     FrameFlexibleNet(CLASSES, [frames], arch="resnet18", width=width, shift=False), False)]
    for name, builder in BASELINES.items():
        model = getattr(torchvision.models.video, builder)(weights=None, num_classes=CLASSES)
        entries.append(Entry(name, _narrow_3d(model, width), True))
    return entries


def measure_training(entries: list[Entry], batch: int, frames: int, size: int, steps: int, warmup: int) -> None:
    clips = torch.randn(batch, frames, 3, size, size)
    labels = torch.randint(0, CLASSES, (batch,))
    inputs = {e.name: e.layout(clips) for e in entries}
    for e in entries:
        e.model.train()
    for step in range(warmup + steps):
        for e in entries:  # in turn, so noise from the shared machine hits every network alike
            elapsed = e.train_step(inputs[e.name], labels)
            if step >= warmup:
                e.times.append(elapsed)


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _gflops(model: nn.Module, clip: torch.Tensor) -> float:
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(clip)
    return counter.get_total_flops() / 1e9


def _alteration_mflops(model: nn.Module, clip: torch.Tensor) -> float:
    """Multiplies of the weight alterations (one per activation they scale) on one clip, in MFLOPs."""
    count = [0]
    hooks = [m.register_forward_hook(lambda _m, inp, _out: count.__setitem__(0, count[0] + inp[0].numel()))
             for m in model.modules() if isinstance(m, WeightAlteration)]
    with torch.inference_mode():
        model(clip)
    for h in hooks:
        h.remove()
    return count[0] / 1e6


def measure_inference(frame_counts: list[int], batches: list[int], size: int, width: int,
                      repeats: int) -> tuple[list[dict], dict[str, int]]:
    torch.manual_seed(0)
    nets = {"TSM-R18": FrameFlexibleNet(CLASSES, [8], arch="resnet18", width=width),
            "FFN-R18": FrameFlexibleNet(CLASSES, [4, 8, 16], arch="resnet18", width=width, private=True,
                                        weight_alteration=True)}
    for net in nets.values():
        net.eval()
    rows = []
    for frames in frame_counts:
        one = torch.randn(1, frames, 3, size, size)
        row: dict = {"frames": frames}
        for name, net in nets.items():
            row[f"{name} GFLOPs"] = _gflops(net, one)
            row[f"{name} alt"] = _alteration_mflops(net, one)
        for batch in batches:
            clips = torch.randn(batch, frames, 3, size, size)
            times: dict[str, list[float]] = {name: [] for name in nets}
            with torch.inference_mode():
                for name, net in nets.items():
                    net(clips)  # warm-up
                # short runs are the most exposed to noise on a shared machine: more of them below the largest batch
                for _ in range(repeats if batch == max(batches) else 2 * repeats - 1):
                    for name, net in nets.items():
                        times[name].append(_timed(lambda net=net: net(clips)))
            for name in nets:
                row[f"{name} ms b{batch}"] = 1000 * statistics.median(times[name]) / batch
        rows.append(row)
    return rows, {name: _params(net) for name, net in nets.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8, help="frames per clip for training (8)")
    parser.add_argument("--size", type=int, default=112, help="frame height and width (112)")
    parser.add_argument("--batch", type=int, default=4, help="training clips per step (4)")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per network (3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed training steps per network first (1)")
    parser.add_argument("--width", type=int, default=64, help="base channels: 64 paper-sized, 16 the CPU config")
    parser.add_argument("--infer-frames", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--infer-batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=3, help="timed inference runs per cell (3)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="torch threads (default: every core this process may use)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()

    entries = training_entries(args.frames, args.width)
    measure_training(entries, args.batch, args.frames, args.size, args.steps, args.warmup)
    tsm = entries[0]
    tsm_rate = args.batch / statistics.median(tsm.times)
    print(f"## Training throughput: {args.frames} frames, {args.size}x{args.size}, batch {args.batch}, "
          f"width {args.width}, {CLASSES} classes, SGD; median of {args.steps} steps after {args.warmup} warm-up; "
          f"torch threads {args.threads} (all cores)\n")
    print("| network | parameters | median step (s) | fastest–slowest (s) | clips/s | TSM clips/s ÷ this |")
    print("|---|---:|---:|---:|---:|---:|")
    ratios = {}
    for e in entries:
        step = statistics.median(e.times)
        rate = args.batch / step
        ratios[e.name] = tsm_rate / rate
        print(f"| {e.name} | {_params(e.model):,} | {step:.3f} | {min(e.times):.3f}–{max(e.times):.3f} | {rate:.2f} "
              f"| {ratios[e.name]:.2f}x |")
    del entries, tsm

    rows, params = measure_inference(args.infer_frames, args.infer_batches, args.size, args.width, args.repeats)
    print(f"\n## Inference cost per clip: {args.size}x{args.size}, width {args.width}, eval + inference_mode, "
          f"median of {args.repeats} runs at batch {max(args.infer_batches)}, {2 * args.repeats - 1} at smaller; "
          f"TSM-R18 {params['TSM-R18']:,} parameters, FFN-R18 {params['FFN-R18']:,} (sub-networks for "
          f"4/8/16 frames)\n")
    batch_cols = [f"{net} ms (b{b})" for b in args.infer_batches for net in ("TSM", "FFN")]
    print("| frames | TSM GFLOPs | FFN GFLOPs | " + " | ".join(batch_cols) + " | FFN alteration MFLOPs |")
    print("|---:|---:|---:|" + "---:|" * len(batch_cols) + "---:|")
    for r in rows:
        cells = [f"{r[f'{net}-R18 ms b{b}']:.1f}" for b in args.infer_batches for net in ("TSM", "FFN")]
        print(f"| {r['frames']} | {r['TSM-R18 GFLOPs']:.2f} | {r['FFN-R18 GFLOPs']:.2f} | " + " | ".join(cells)
              + f" | {r['FFN-R18 alt']:.2f} |")

    same_flops = all(r["FFN-R18 GFLOPs"] == r["TSM-R18 GFLOPs"] for r in rows)
    ffn_vs_tsm = "; ".join(
        f"batch {b}: " + ", ".join(f"{r['frames']} fr {r[f'FFN-R18 ms b{b}'] / r[f'TSM-R18 ms b{b}']:.2f}x"
                                   for r in rows)
        for b in args.infer_batches)
    print(f"\nSummary: TSM-R18 trains {ratios['R3D-18 (3-D baseline)']:.2f}x the clips/s of R3D-18, "
          f"{ratios['MC3-18 (3-D, similar params)']:.2f}x MC3-18, {ratios['R(2+1)D-18 (3-D baseline)']:.2f}x "
          f"R(2+1)D-18, {ratios['TSN ResNet-18 (no shift)']:.2f}x TSN (the shift's cost). FFN/TSM inference time per "
          f"clip, {ffn_vs_tsm}; counted GFLOPs {'identical' if same_flops else 'DIFFERENT'} at every frame count. "
          f"Total {time.perf_counter() - started:.0f} s.")


if __name__ == "__main__":
    main()
