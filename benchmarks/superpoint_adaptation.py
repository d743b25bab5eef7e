"""SuperPoint on the CPU: homographic adaptation throughput, and key point extraction against OpenCV SIFT.

Part (a), homographic adaptation (SuperPoint §5, Eq. 10–11; :func:`torchrepro.superpoint.adaptation.adapt_heatmap`).
An untrained MagicPoint (``SuperPointNet(descriptor=False, batchnorm=True)``, eval mode; the weights do not change
the cost) labels a 120×160 grey photograph (skimage's astronaut, centre 384×512 crop, resized) with N = 100
homographies (the identity + 99 draws of the reference's export config). Baseline: the per-warp loop
(``loop=True``: warp, one network forward of a single image, un-warp, accumulate -- what the reference's
``tf.while_loop`` does). Ours: the same warps with ``batch_size`` of them per forward (4 and 25; the GPU default
is 32, the CPU default 1 = the loop, because on one CPU thread batching measured slower: its activations leave the
cache).
The heatmaps are checked equal (≤ 1e-6) before timing; reported: images/s and the speed-up over the loop.

Part (b), key point extraction on one 480×640 grey photograph (the same astronaut crop). Baseline: OpenCV SIFT,
``cv2.SIFT_create(nfeatures=1000).detectAndCompute`` (detector + 128-d descriptors). Ours: SuperPointNet
(Magic Leap's network: descriptor head, no BatchNorm, untrained) forward, the heatmap (§3.2), threshold, NMS 4 px
(:func:`~torchrepro.superpoint.keypoints.extract_keypoints`), the best 1000 points and their 256-d descriptors
interpolated from the map (§3.3) -- the same work ``detectAndCompute`` does. An untrained network's heatmap is
flat (every pixel ≈ 1/65 > the demo's 0.015), so the threshold is set to keep the 5,000 or the 20,000 strongest
pixels as NMS candidates (a trained detector's candidates are of that order); the flat worst case (all 307,200
pixels) is timed once on its own line. Also shown: the forward alone. Reported: ms per image and the ratio to
SIFT (> 1: faster than SIFT).

Calls alternate (baseline, ours, ...) so machine noise hits all alike; medians are reported.

    .venv/bin/python benchmarks/superpoint_adaptation.py [--quick] [--threads 1] [--repeats 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import cv2
import numpy as np
import torch

from torchrepro.nn.superpoint import SuperPointNet
from torchrepro.superpoint.adaptation import adapt_heatmap, adaptation_homographies, network_detector
from torchrepro.superpoint.augment_config import AdaptationConfig
from torchrepro.superpoint.keypoints import extract_keypoints, heatmap_from_logits, sample_descriptors


def photograph(shape: tuple[int, int]) -> np.ndarray:
    """skimage's astronaut, grey, its centre 4:3 crop (384×512) resized to ``shape`` (rows, cols): uint8."""
    from skimage import data

    grey = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)[64:448]
    return cv2.resize(grey, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


def compare(label: str, unit: str, runs: dict[str, Callable[[], object]], repeats: int,
            scale: Callable[[float], float], warmup: bool = True) -> dict[str, float]:
    """Median seconds per call of each run (one warm-up call each unless the caller ran them already, then
    ``repeats`` alternating rounds)."""
    for fn in runs.values() if warmup else ():
        fn()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    base = next(iter(runs))
    print(f"{label}:")
    print(f"  {'':<58} {unit:>12} {'vs ' + base.split(' (')[0]:>18}")
    for name in runs:
        print(f"  {name:<58} {scale(med[name]):12.3f} {med[base] / med[name]:17.2f}x")
    return med


def adaptation_part(n: int, batch_sizes: list[int], repeats: int) -> None:
    torch.manual_seed(0)
    detect = network_detector(SuperPointNet(descriptor=False, batchnorm=True))
    image = torch.from_numpy(photograph((120, 160)).astype(np.float32) / 255.0)[None, None]
    homographies = adaptation_homographies(0, "astronaut", (120, 160), AdaptationConfig(num_homographies=n))
    loop = adapt_heatmap(detect, image, homographies, loop=True)
    for b in batch_sizes:
        batched = adapt_heatmap(detect, image, homographies, batch_size=b)
        err = float((batched - loop).abs().max())
        if err > 1e-6:
            raise SystemExit(f"batched (batch {b}) and per-warp heatmaps disagree by {err:.2e}")
    print(f"heatmaps agree: batched vs per-warp loop, max |diff| <= 1e-6 (peak {float(loop.max()):.4f})")
    runs: dict[str, Callable[[], object]] = {"per-warp loop (1 warp / forward)": lambda: adapt_heatmap(
        detect, image, homographies, loop=True)}
    for b in batch_sizes:
        runs[f"batched ({b} warps / forward)"] = lambda b=b: adapt_heatmap(detect, image, homographies, batch_size=b)
    # no warm-up round: the equality check above ran every mode once already
    compare(f"(a) homographic adaptation, 120x160, N = {n}, untrained MagicPoint", "images/s", runs, repeats,
            lambda s: 1.0 / s, warmup=False)


def extraction_part(repeats: int, worst_case: bool) -> None:
    grey = photograph((480, 640))
    sift = cv2.SIFT_create(nfeatures=1000)
    torch.manual_seed(0)
    net = SuperPointNet(descriptor=True, batchnorm=False).eval()
    x = torch.from_numpy(grey.astype(np.float32) / 255.0)[None, None]
    with torch.no_grad():
        flat = heatmap_from_logits(net(x)["semi"]).flatten()

    def keeping(n: int) -> float:
        """The threshold that leaves the ``n`` strongest pixels of this image's heatmap as NMS candidates."""
        return float(torch.topk(flat, n + 1).values[-1])

    @torch.no_grad()
    def superpoint(threshold: float) -> int:
        out = net(x)
        heat = heatmap_from_logits(out["semi"])[0]
        xy, _ = extract_keypoints(heat, threshold=threshold, nms_radius=4, top_k=1000, border=4)
        return len(sample_descriptors(out["desc"][0], xy))

    @torch.no_grad()
    def forward() -> None:
        net(x)

    t5k, t20k = keeping(5000), keeping(20000)
    print(f"points: SIFT {len(sift.detectAndCompute(grey, None)[0])}, SuperPoint {superpoint(t5k)} from 5,000 "
          f"candidates, {superpoint(t20k)} from 20,000 (top 1000 after NMS 4)")
    med = compare("(b) key points + descriptors, one 480x640 grey image", "ms / image", {
        "OpenCV SIFT detectAndCompute (nfeatures=1000)": lambda: sift.detectAndCompute(grey, None),
        "SuperPoint: forward only": forward,
        "SuperPoint: forward + NMS + top 1000 + desc, 5k candidates": lambda: superpoint(t5k),
        "SuperPoint: forward + NMS + top 1000 + desc, 20k candidates": lambda: superpoint(t20k),
    }, repeats, lambda s: 1e3 * s)
    if worst_case:
        start = time.perf_counter()
        superpoint(0.0)
        worst = time.perf_counter() - start
        sift_s = med["OpenCV SIFT detectAndCompute (nfeatures=1000)"]
        print(f"  {'SuperPoint: the same, all 307,200 pixels candidates (once)':<58} {1e3 * worst:12.3f} "
              f"{sift_s / worst:17.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 25, one round, no worst case (a smoke run)")
    parser.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads (default 1)")
    parser.add_argument("--repeats", type=int, default=2, help="timed rounds of part (a); part (b) runs 3x more")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    n, repeats = (25, 1) if args.quick else (100, args.repeats)
    print(f"SuperPoint CPU benchmark: torch {torch.__version__} ({torch.get_num_threads()} threads), OpenCV "
          f"{cv2.__version__} ({cv2.getNumThreads()} threads), median of {repeats} (a) / {3 * repeats} (b)")
    adaptation_part(n, [4, 25], repeats)
    extraction_part(3 * repeats, worst_case=not args.quick)


if __name__ == "__main__":
    main()
