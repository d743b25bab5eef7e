"""``torchrepro tool superpoint-match --ckpt CKPT [--config CFG] [--out PNG] [--max-side 640] [--top-k 1000]
IMAGE1 IMAGE2``: match two pictures with a SuperPoint checkpoint and draw the matches.

Both pictures are read grey, shrunk so the longer side is at most ``--max-side``, padded to whole 8×8 cells and run
through the network; key points come with NMS 8 and the best ``--top-k`` (the HPatches protocol's descriptor setting,
SuperPoint §7.3), matched by mutual nearest neighbours of their descriptors, and a homography is fitted with
RANSAC (``cv2.findHomography``, 3 px), as the protocol does. The PNG (default: ``RUN_DIR/match_<a>_<b>.png``)
shows the two pictures side by side, inlier matches green, outliers red; one line reports the counts.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from torchrepro.core.errors import ConfigError, DataError
from torchrepro.core.registry import checkpoint_config
from torchrepro.core.rundir import run_dir_of

__all__ = ["DEFAULT_MAX_SIDE", "fit_picture", "match_main", "match_pictures", "match_summary"]

DEFAULT_MAX_SIDE = 640  # --max-side: the longer side pictures are shrunk to


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="torchrepro tool superpoint-match",
                                     description="match two pictures with a SuperPoint checkpoint; draw the matches")
    parser.add_argument("--ckpt", type=Path, required=True, help="a .ckpt of a superpoint run")
    parser.add_argument("--config", type=Path, default=None, help="its config (default: the run's config.yaml)")
    parser.add_argument("--out", type=Path, default=None, help="the PNG to write (default: RUN_DIR/match_A_B.png)")
    parser.add_argument("--max-side", type=int, default=DEFAULT_MAX_SIDE,
                        help=f"shrink pictures to this longer side ({DEFAULT_MAX_SIDE})")
    parser.add_argument("--top-k", type=int, default=1000, help="key points kept per picture (1000)")
    parser.add_argument("images", nargs=2, type=Path, metavar="IMAGE")
    return parser


def _read(path: Path, max_side: int) -> np.ndarray:
    import cv2

    if not path.is_file():
        raise DataError(f"picture '{path}' does not exist: give two image files")
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise DataError(f"'{path}' is not a readable image: give two image files (PNG, JPEG, PPM…)")
    return fit_picture(image, str(path), max_side)


def fit_picture(image: np.ndarray, name: str, max_side: int) -> np.ndarray:
    """A grey uint8 picture as the network takes it: at least 16×16 pixels (two 8×8 cells, else a DataError
    naming ``name``), shrunk so its longer side is at most ``max_side`` (:func:`~torchrepro.superpoint.hpatches.
    resize_max_side`; :func:`match_pictures` then pads it to whole cells)."""
    from torchrepro.superpoint.hpatches import resize_max_side

    if min(image.shape) < 16:
        raise DataError(f"picture '{name}' is {image.shape[1]}x{image.shape[0]}: SuperPoint needs at least 16x16 "
                        f"pixels (two 8x8 cells)")
    return resize_max_side(image, max_side)[0]


def match_pictures(net, image1: np.ndarray, image2: np.ndarray, top_k: int, threshold: float = 0.001,  # noqa: ANN001
                   nms_radius: int = 8) -> dict:
    """Key points, descriptors, mutual-NN matches and the RANSAC homography of two grey uint8 pictures."""
    import torch

    from torchrepro.superpoint.hpatches_metrics import estimate_homography, mutual_nn_matches
    from torchrepro.superpoint.keypoints import keypoints_and_descriptors
    from torchrepro.superpoint.pairs_data import pad_to_cells

    found = []
    device = next(net.parameters()).device
    with torch.inference_mode():
        for image in (image1, image2):
            tensor = torch.from_numpy(pad_to_cells(image).astype(np.float32) / 255.0)[None, None].to(device)
            out = net(tensor)
            xy, scores, desc = keypoints_and_descriptors(out["semi"][0], out["desc"][0], image.shape, threshold,
                                                         nms_radius, top_k)
            found.append((xy.cpu().numpy(), scores.cpu().numpy(), desc.cpu().numpy()))
    (kp1, _, d1), (kp2, _, d2) = found
    matches = mutual_nn_matches(d1, d2, "l2")
    homography, inliers = estimate_homography(kp1, kp2, matches)
    return {"kp1": kp1, "kp2": kp2, "matches": matches, "homography": homography, "inliers": inliers}


def match_summary(found: dict, name1: str, name2: str) -> str:
    """The counts of :func:`match_pictures`' result in one line: key points of each picture, mutual matches,
    RANSAC inliers and whether a homography was found."""
    return (f"{name1}: {len(found['kp1'])} key points, {name2}: {len(found['kp2'])}; {len(found['matches'])} mutual "
            f"matches, {int(found['inliers'].sum())} RANSAC inliers "
            f"({'homography found' if found['homography'] is not None else 'no homography'})")


def match_main(argv: list[str]) -> int:
    """``torchrepro tool superpoint-match`` (module docstring); exit status 0, or a UserError (one line, status 2)."""
    from torchrepro.core.engine import restore
    from torchrepro.superpoint.baselines import draw_matches

    args = _parser().parse_args(argv)
    if args.max_side < 16 or args.top_k < 1:
        raise ConfigError(f"--max-side must be >= 16 and --top-k >= 1, got {args.max_side} and {args.top_k}")
    cfg = checkpoint_config(args.ckpt, args.config, ("superpoint",))
    images = [_read(p, args.max_side) for p in args.images]
    out = args.out
    if out is None:
        run = run_dir_of(args.ckpt)
        if run is None:
            raise ConfigError(f"checkpoint '{args.ckpt}' is not in a run directory: pass --out PNG")
        out = run / f"match_{args.images[0].stem}_{args.images[1].stem}.png"
    module, _ = restore(cfg, args.ckpt)
    module.eval()
    m = cfg.model
    found = match_pictures(module.net, *images, top_k=args.top_k, threshold=m.detection_threshold,
                           nms_radius=m.descriptor_nms_radius)
    out.parent.mkdir(parents=True, exist_ok=True)
    draw_matches(images[0], images[1], found["kp1"], found["kp2"], found["matches"], found["inliers"], out)
    print(f"{match_summary(found, args.images[0].name, args.images[1].name)} -> {out}")
    return 0
