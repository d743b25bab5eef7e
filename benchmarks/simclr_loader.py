"""SimCLR training throughput: images/s of loader + training step, the recipe against the seed's pipeline.

Baseline (the seed's SimCLR, SEEDS §3): a ``Dataset`` whose ``__getitem__`` turns one image into a PIL image and
returns two views, each through torchvision's per-sample PIL transforms ``Compose([RandomResizedCrop(size),
RandomHorizontalFlip(), RandomApply([ColorJitter(0.8s, 0.8s, 0.8s, 0.2s)], p=0.8), RandomGrayscale(0.2),
RandomApply([GaussianBlur(kernel ≈ 10 % of size, σ ∈ [0.1, 2])], p=0.5), ToTensor(), Normalize(mean, std)])``, batched
by a ``DataLoader`` (default collate, shuffled). Ours: the recipe's ``ResumableLoader`` over uint8 images with
(epoch, index) keys and :class:`torchrepro.simclr.augment.SimCLRAugment` on the whole batch (the same operations,
probabilities and ranges). Both feed the same step — the recipe's encoder and projection head (config's model
block), NT-Xent, Adam — at the same batch size, in this process, with ``--workers`` loader workers (0: the
main process). Data: the Fashion-MNIST training images when the package is installed, else the synthetic shapes.

    .venv/bin/python benchmarks/simclr_loader.py [--batches 15] [--batch-size 256] [--workers 0]

Prints images/s of each (loader alone, and loader + step) and the ratios, from one run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

import torchrepro.recipes  # noqa: F401
from torchrepro.core.data import ResumableLoader, ResumableSampler
from torchrepro.core.registry import resolve_config
from torchrepro.simclr.augment import SimCLRAugment, blur_kernel_size
from torchrepro.simclr.data import KeyedImages, read_fashion_mnist
from torchrepro.simclr.losses import nt_xent_loss
from torchrepro.simclr.model import SimCLRNet

REPO = Path(__file__).resolve().parents[1]


class SeedTwoViews(Dataset):
    """The seed's Dataset: two views of one image through per-sample PIL transforms."""

    def __init__(self, images: np.ndarray, size: int, strength: float, mean: float, std: float) -> None:
        self.images = images
        s = strength
        self.transform = T.Compose([
            T.RandomResizedCrop(size),
            T.RandomHorizontalFlip(),
            T.RandomApply([T.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)], p=0.8),
            T.RandomGrayscale(p=0.2),
            T.RandomApply([T.GaussianBlur(blur_kernel_size(size, 0.1), sigma=(0.1, 2.0))], p=0.5),
            T.ToTensor(),
            T.Normalize([mean], [std]),
        ])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = Image.fromarray(self.images[i])
        return self.transform(image), self.transform(image)


def load_images() -> tuple[np.ndarray, str]:
    root = Path("/usr/share/datasets/fashion-mnist")
    if (root / "train-images-idx3-ubyte.gz").is_file():
        return read_fashion_mnist(root, "train").images[:, 0].numpy(), "Fashion-MNIST training images"
    from torchrepro.simclr.synthetic import generate_shapes

    folder = generate_shapes(Path(tempfile.mkdtemp()) / "shapes", 6000, 10, 28)
    return read_fashion_mnist(folder, "train").images[:, 0].numpy(), "synthetic shapes (Fashion-MNIST not installed)"


def measure(batches, n: int, step) -> float:
    """Images/s over ``n`` batches after one warm-up batch; ``step(batch)`` may be None (loader alone)."""
    it = iter(batches)
    first = next(it)
    if step is not None:
        step(first)
    count, start = 0, time.perf_counter()
    for _ in range(n):
        batch = next(it)
        if step is not None:
            step(batch)
        count += len(batch[0])
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--config", default=str(REPO / "configs" / "simclr_fashion_mnist.yaml"))
    args = parser.parse_args()
    cfg = resolve_config(Path(args.config), ["data.root=null", "data.source=synthetic"])
    m, aug_cfg = cfg.model, cfg.data.augment
    aug_cfg.blur_p, aug_cfg.jitter_strength = 0.5, 1.0  # the seed's augmentation, for both pipelines
    images, what = load_images()
    size = images.shape[-1]
    mean, std = float(images.mean() / 255), float(images.std() / 255)

    torch.manual_seed(0)
    net = SimCLRNet(m.arch, 1, m.small_stem, m.width, m.proj_hidden, m.proj_dim, m.proj_bn, m.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def train_step(v1: torch.Tensor, v2: torch.Tensor) -> None:
        z1, z2 = net.project(torch.cat([v1, v2])).chunk(2)
        loss = nt_xent_loss(z1, z2, m.temperature)
        opt.zero_grad()
        loss.backward()
        opt.step()

    seed_loader = DataLoader(SeedTwoViews(images, size, 1.0, mean, std), batch_size=args.batch_size, shuffle=True,
                             num_workers=args.workers, drop_last=True)
    keyed = KeyedImages(torch.from_numpy(images).unsqueeze(1), seed=0)
    ours_loader = ResumableLoader(keyed, ResumableSampler(keyed, seed=0, keyed=True), batch_size=args.batch_size,
                                  drop_last=True, num_workers=args.workers)
    augment = SimCLRAugment(aug_cfg, size, 1)

    def ours_views(batch):
        v1, v2 = augment(*batch)
        return (v1 - mean) / std, (v2 - mean) / std

    def ours_batches():
        for batch in ours_loader:
            yield ours_views(batch)

    print(f"{what}: {len(images)} images of {size}x{size}; batch {args.batch_size}, {args.workers} loader workers, "
          f"{torch.get_num_threads()} torch threads; encoder {m.arch} width {m.width} small_stem={m.small_stem}",
          flush=True)
    seed_load = measure(seed_loader, args.batches, None)
    ours_load = measure(ours_batches(), args.batches, None)
    print(f"loader alone:    seed {seed_load:8.0f} images/s   ours {ours_load:8.0f} images/s   ratio {ours_load / seed_load:.1f}x",
          flush=True)
    seed_train = measure(seed_loader, args.batches, lambda b: train_step(*b))
    ours_train = measure(ours_batches(), args.batches, lambda b: train_step(*b))
    print(f"loader + step:   seed {seed_train:8.0f} images/s   ours {ours_train:8.0f} images/s   ratio "
          f"{ours_train / seed_train:.2f}x", flush=True)


if __name__ == "__main__":
    main()
