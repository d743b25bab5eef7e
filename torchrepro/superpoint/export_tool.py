"""Pseudo ground truth by Homographic Adaptation (SuperPoint §5, Fig. 5): ``torchrepro tool superpoint-export``.

    torchrepro tool superpoint-export (--ckpt RUN/checkpoints/best.ckpt | --detector shi) --images DIR --out DIR
        [--config CFG] [--num-homographies N] [--image-size H W] [--seed S] [--batch-size B] [--force]

The detector is a MagicPoint / SuperPoint checkpoint (restored as ``torchrepro eval`` restores it; its config is
``--config`` or the run's ``config.yaml``, and a config of another recipe is refused) or a classical detector
(``harris``, ``shi``, ``fast``: a cheap labeler, e.g. for a smoke test). Every image of ``--images`` (not
recursive) is resized to ``--image-size`` (default: the checkpoint config's ``data.image_size``; a classical
detector keeps each image's own size), warped by the identity and ``N - 1`` random homographies (the reference's
export: N = 100, :class:`~torchrepro.superpoint.augment_config.AdaptationConfig`), and labelled with the points of
the aggregated heatmap (:func:`torchrepro.superpoint.adaptation.export_labels`).

Written: ``--out/<image stem>.npz`` (``pts`` [N, 3] = x, y, score in the resized image's pixels: eric-yyjau/
pytorch-superpoint's export layout) and ``--out/export.json``, published at once when every image is done. Run
again with the same inputs and parameters, the export is reused; ``--force`` recomputes it. A non-empty ``--out``
that is not such an export is refused, as is a non-image file in ``--images`` (named), in one line.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from torchrepro.core.errors import ConfigError
from torchrepro.superpoint.augment_config import AdaptationConfig
from torchrepro.superpoint.corners import CORNER_DETECTORS

__all__ = ["export_main"]


def _parser() -> argparse.ArgumentParser:
    defaults = AdaptationConfig()
    parser = argparse.ArgumentParser(prog="torchrepro tool superpoint-export",
                                     description="label images by homographic adaptation (SuperPoint §5): one "
                                                 "<stem>.npz (pts: x, y, score) per image and export.json")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--ckpt", type=Path, help="a .ckpt of a magicpoint / superpoint run")
    source.add_argument("--detector", choices=CORNER_DETECTORS, help="a classical detector instead of a network")
    parser.add_argument("--config", type=Path, default=None,
                        help="the config the checkpoint was trained with (default: the run's config.yaml)")
    parser.add_argument("--images", type=Path, required=True, help="folder of images to label (not recursive)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the labels (<stem>.npz, export.json)")
    parser.add_argument("--num-homographies", type=int, default=defaults.num_homographies,
                        help=f"warps per image, the identity included (default {defaults.num_homographies})")
    parser.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), default=None,
                        help="resize every image to H x W first (default: the checkpoint config's data.image_size)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random homographies (default 0)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size,
                        help="warps per network forward (default: 1 on the CPU, 32 on a GPU; the labels do not "
                             "depend on it)")
    parser.add_argument("--force", action="store_true", help="recompute an existing export with these parameters")
    return parser


def _check_args(args: argparse.Namespace) -> None:
    if args.config is not None and args.ckpt is None:
        raise ConfigError("--config goes with --ckpt (it is the checkpoint's training config); a classical "
                          "--detector needs none")
    if args.num_homographies < 1:
        raise ConfigError(f"--num-homographies must be >= 1 (the identity counts as one), got {args.num_homographies}")
    if args.batch_size is not None and args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.image_size is not None and min(args.image_size) < 8:
        raise ConfigError(f"--image-size {args.image_size[0]} {args.image_size[1]} is smaller than one 8x8 cell: "
                          f"pass sides of at least 8 pixels (the network's: multiples of 8, e.g. 240 320)")


def export_main(argv: list[str]) -> int:
    """``torchrepro tool superpoint-export`` (module docstring); exit status 0, or a UserError (one line)."""
    from torchrepro.core.engine import configure_rank_logging
    from torchrepro.superpoint.adaptation import export_labels, load_labeler
    from torchrepro.superpoint.image_folder import list_images

    args = _parser().parse_args(argv)
    _check_args(args)
    images = list_images(args.images)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    detect, trained_size = load_labeler(args.ckpt if args.ckpt is not None else args.detector, args.config, device)
    image_size = args.image_size or trained_size
    adaptation = AdaptationConfig(num_homographies=args.num_homographies, batch_size=args.batch_size)
    configure_rank_logging()
    started = time.perf_counter()
    summary = export_labels(detect, images, args.out, adaptation, args.seed, image_size, force=args.force)
    seconds = time.perf_counter() - started
    size = f"{image_size[0]}x{image_size[1]}" if image_size else "their own size"
    verb = "labelled" if summary["generated"] else "reused the export of"
    print(f"{verb} {summary['images']} images ({size}, {args.num_homographies} homographies, detector "
          f"{detect.name}): {summary['mean_points']:.1f} points per image on average")
    if summary["generated"]:
        print(f"time {seconds:.1f} s, {summary['images'] / max(seconds, 1e-9):.2f} images/s on {device.type}")
    print(f"wrote {args.out}/<stem>.npz (pts: x, y, score) and {args.out}/export.json")
    return 0
