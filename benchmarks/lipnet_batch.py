"""LipNet training throughput: batched CTC at batch 16 against the seed's one-clip-per-step loop, same model.

The seed write-up trained LipNet (Assael et al., 2016) at **batch size 1** (its batched CTC diverged); this recipe
trains at 16 with :func:`torchrepro.lipreading.losses.ctc_loss`. This script measures what that buys in training
clips per second:

* **baseline (the seed's loop)**: one clip per optimiser step: for every clip, forward ``[1, 1, T, H, W]``, CTC
  loss, ``zero_grad``, backward, gradient clipping (norm 5, the seed's) and an Adam step (lr 1e-3);
* **ours**: the same step on a batch of ``--batch`` (16) clips at once.

Both use the same :class:`torchrepro.lipreading.model.LipNet` (two copies of one initialisation, each with its own
Adam), in training mode (dropout on), the same CTC function (``ctc_loss``: log-probabilities batch-first, each
item's loss over its target length, batch mean) and the same inputs: ``--pool`` random clips of ``--frames`` (75,
GRID's) frames, uint8 noise standardised per clip as the data pipeline does
(:func:`~torchrepro.lipreading.data.standardise`), every clip of full length, each with the transcript of a random
GRID sentence (one word of every slot, ``encode_text``). Data loading is not timed (the recipe caches decoded crops).

Timing: after ``--warmup`` untimed steps of each, ``--rounds`` rounds; in each round the baseline trains on
``--clips`` clips (``--clips`` steps) and ours on the same number of clips (``--clips / --batch`` steps), the order
alternating between rounds, so machine noise hits both alike. clips/s of a round = clips / its wall time; printed:
every round's, the median of each and the ratio of the medians (ours / baseline), all in this one process. The
thread count is printed (``--threads``, default torch's). On a machine shared with another job, give ``--threads``
no more than the free cores: oversubscribed OpenMP threads made the CPU's 3-D convolutions ~100× slower here
(11 s a batch-1 step instead of 0.09 s), which measures the contention, not the batching.

Sizes: ``--size cpu`` (default) is ``configs/lipnet_synthetic.yaml``'s network: 32×64 input, channels 16/32/48,
GRUs of 128, dropout 0.2; ``--size paper`` is LipNet's (Table 4): 50×100, 32/64/96, 256, dropout 0.5. Both the
``paper`` variant (first convolution strided 2×2 in space).

    .venv/bin/python benchmarks/lipnet_batch.py [--size cpu|paper] [--batch 16] [--clips 32] [--rounds 3]
                                                [--warmup 1] [--frames 75] [--threads N] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import numpy as np
import torch

from torchrepro.lipreading.data import standardise
from torchrepro.lipreading.losses import ctc_loss
from torchrepro.lipreading.model import LipNet
from torchrepro.lipreading.vocabulary import GRID_SLOTS, encode_text

SIZES = {"cpu": {"input_size": (32, 64), "channels": (16, 32, 48), "hidden": 128, "dropout": 0.2},
         "paper": {"input_size": (50, 100), "channels": (32, 64, 96), "hidden": 256, "dropout": 0.5}}
LR, CLIP_NORM = 1e-3, 5.0


def grid_transcripts(n: int, rng: np.random.Generator) -> list[list[int]]:
    """Class indices of ``n`` random GRID sentences (one word from every slot, in order)."""
    return [encode_text(" ".join(slot[rng.integers(len(slot))] for slot in GRID_SLOTS)) for _ in range(n)]


def make_pool(n: int, frames: int, size: tuple[int, int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor,
                                                                                  torch.Tensor]:
    """``n`` standardised random clips ``[n, 1, frames, H, W]``, their padded targets ``[n, 31]`` and lengths."""
    rng = np.random.default_rng(seed)
    clips = torch.stack([standardise(rng.integers(0, 256, (frames, *size), dtype=np.uint8)) for _ in range(n)])
    texts = grid_transcripts(n, rng)
    targets = torch.zeros(n, max(map(len, texts)), dtype=torch.long)
    for i, t in enumerate(texts):
        targets[i, :len(t)] = torch.tensor(t)
    return clips[:, None], targets, torch.tensor([len(t) for t in texts])


class Trainer:
    """One LipNet with its own Adam; ``step`` trains on a batch of the pool and returns nothing."""

    def __init__(self, net: LipNet, device: torch.device) -> None:
        self.net = net.to(device).train()
        self.opt = torch.optim.Adam(self.net.parameters(), lr=LR)
        self.device = device

    def step(self, clips: torch.Tensor, targets: torch.Tensor, target_lengths: torch.Tensor) -> None:
        lengths = torch.full((len(clips),), clips.shape[2], dtype=torch.long)
        log_probs = self.net(clips, lengths)
        loss = ctc_loss(log_probs, targets, lengths, target_lengths)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), CLIP_NORM)
        self.opt.step()


def train_clips(trainer: Trainer, pool: tuple[torch.Tensor, ...], n_clips: int, batch: int, start: int = 0) -> float:
    """Wall seconds for ``trainer`` to train on ``n_clips`` clips of the pool, ``batch`` clips a step."""
    clips, targets, target_lengths = pool
    n = len(clips)
    sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for first in range(start, start + n_clips, batch):
        idx = torch.arange(first, first + batch) % n
        trainer.step(clips[idx], targets[idx], target_lengths[idx])
    sync()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="cpu")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--clips", type=int, default=32, help="clips per timed round (a multiple of --batch)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps of each before timing")
    parser.add_argument("--frames", type=int, default=75)
    parser.add_argument("--pool", type=int, default=32, help="distinct clips cycled through")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.clips % args.batch:
        parser.error(f"--clips ({args.clips}) must be a multiple of --batch ({args.batch})")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    spec = SIZES[args.size]
    torch.manual_seed(0)
    net = LipNet(spec["input_size"], spec["channels"], spec["hidden"], variant="paper", dropout=spec["dropout"])
    seed_loop, batched = Trainer(copy.deepcopy(net), device), Trainer(net, device)
    pool = tuple(t.to(device) for t in make_pool(max(args.pool, args.batch), args.frames, spec["input_size"]))
    print(f"LipNet {args.size}: input {spec['input_size'][0]}x{spec['input_size'][1]}, channels "
          f"{'/'.join(map(str, spec['channels']))}, hidden {spec['hidden']}, "
          f"{sum(p.numel() for p in net.parameters()):,} parameters; {args.frames} frames; device {device}, "
          f"{torch.get_num_threads()} threads")
    train_clips(seed_loop, pool, args.warmup, 1)
    train_clips(batched, pool, args.warmup * args.batch, args.batch)
    rates: dict[str, list[float]] = {"baseline": [], "ours": []}
    for r in range(args.rounds):
        order = [("baseline", seed_loop, 1), ("ours", batched, args.batch)]
        for name, trainer, batch in (order if r % 2 == 0 else order[::-1]):
            rates[name].append(args.clips / train_clips(trainer, pool, args.clips, batch, start=r * args.clips))
        print(f"round {r + 1}: baseline (batch 1) {rates['baseline'][-1]:.2f} clips/s, ours (batch {args.batch}) "
              f"{rates['ours'][-1]:.2f} clips/s, ratio {rates['ours'][-1] / rates['baseline'][-1]:.2f}x")
    base, ours = statistics.median(rates["baseline"]), statistics.median(rates["ours"])
    print(f"median over {args.rounds} rounds of {args.clips} clips: baseline (seed loop, batch 1) {base:.2f} clips/s; "
          f"ours (batch {args.batch}) {ours:.2f} clips/s; ratio {ours / base:.2f}x")


if __name__ == "__main__":
    main()
