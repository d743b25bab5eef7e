"""``torchrepro tool nerf-render --ckpt CKPT [--config CFG] [--poses POSES.npy | --frames 40] [--elevation DEG]
[--radius R] [--size PX] [--out DIR]``: render a NeRF checkpoint along a camera path.

The path is either the user's camera-to-world matrices (``.npy`` of shape [N, 4, 4], OpenGL convention as the
NeRF data sets: −z forward) or an orbit of ``--frames`` views around the scene's vertical axis, at the training
cameras' mean distance and elevation unless ``--radius`` / ``--elevation`` say otherwise (the novel-view videos of
NeRF §6). The intrinsics are the scene's (its focal, scaled with ``--size``). Written to ``--out`` (default:
``RUN_DIR/render/``): one PNG per frame with its depth beside it, ``orbit.gif`` and ``orbit.mp4`` when OpenCV has
an MP4 encoder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from torchrepro.core.errors import ConfigError, DataError
from torchrepro.core.registry import checkpoint_config
from torchrepro.core.rundir import run_dir_of

__all__ = ["render_and_depth", "render_main", "scene_orbit", "training_orbit"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="torchrepro tool nerf-render",
                                     description="render a NeRF checkpoint along a camera path: PNGs, GIF, MP4")
    parser.add_argument("--ckpt", type=Path, required=True, help="a .ckpt of a nerf run")
    parser.add_argument("--config", type=Path, default=None, help="its config (default: the run's config.yaml)")
    parser.add_argument("--poses", type=Path, default=None, help="camera-to-world matrices, .npy [N, 4, 4]")
    parser.add_argument("--frames", type=int, default=40, help="views of the orbit when no --poses (40)")
    parser.add_argument("--elevation", type=float, default=None, help="orbit elevation in degrees (default: mean "
                                                                      "of the training cameras)")
    parser.add_argument("--radius", type=float, default=None, help="orbit radius (default: mean training distance)")
    parser.add_argument("--size", type=int, default=None, help="longer side of the frames (default: the scene's)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: RUN_DIR/render)")
    return parser


def read_poses(path: Path) -> np.ndarray:
    """Camera-to-world matrices [N, 4, 4] from a ``.npy``, checked rigid (a DataError names the file)."""
    from torchrepro.nerf.cameras import check_poses

    if not path.is_file():
        raise DataError(f"poses file '{path}' does not exist: give a .npy of camera-to-world matrices [N, 4, 4]")
    try:
        poses = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise DataError(f"poses file '{path}' is not a .npy array ({err}): save the matrices with numpy.save") from None
    check_poses(poses, str(path))
    return poses.astype(np.float32)


def training_orbit(train_poses: np.ndarray) -> tuple[float, float]:
    """The training cameras' mean distance from the world origin and mean elevation (degrees) above the z = 0
    plane: the orbit of NeRF's novel-view videos (Mildenhall et al., ECCV 2020, §6) around the scene."""
    centres = train_poses[:, :3, 3]
    distance = np.linalg.norm(centres, axis=1)
    elevation = np.degrees(np.arcsin(np.clip(centres[:, 2] / distance, -1, 1)))
    return float(distance.mean()), float(elevation.mean())


def scene_orbit(train_poses: np.ndarray, frames: int, radius: float | None, elevation: float | None) -> np.ndarray:
    """An orbit around the world z axis at the training cameras' mean distance and elevation (or the given ones)."""
    from torchrepro.nerf.cameras import orbit_poses

    mean_radius, mean_elevation = training_orbit(train_poses)
    return orbit_poses(frames, mean_radius if radius is None else radius,
                       mean_elevation if elevation is None else elevation)


def render_main(argv: list[str]) -> int:
    """``torchrepro tool nerf-render`` (module docstring); exit status 0, or a UserError (one line, status 2)."""
    import torch

    from torchrepro.core.engine import restore
    from torchrepro.nerf.cameras import pixel_rays
    from torchrepro.nerf.data import load_scene

    args = _parser().parse_args(argv)
    if args.frames < 1 or (args.size is not None and args.size < 8):
        raise ConfigError(f"--frames must be >= 1 and --size >= 8, got {args.frames} and {args.size}")
    cfg = checkpoint_config(args.ckpt, args.config, ("nerf",))
    out = args.out
    if out is None:
        run = run_dir_of(args.ckpt)
        if run is None:
            raise ConfigError(f"checkpoint '{args.ckpt}' is not in a run directory: pass --out FOLDER")
        out = run / "render"
    scene = load_scene(cfg.data, cfg.seed)
    poses = read_poses(args.poses) if args.poses is not None else \
        scene_orbit(scene.poses[scene.splits["train"]], args.frames, args.radius, args.elevation)
    scale = 1.0 if args.size is None else args.size / max(scene.height, scene.width)
    height, width = max(1, round(scene.height * scale)), max(1, round(scene.width * scale))
    module, _ = restore(cfg, args.ckpt)
    module.eval()
    out.mkdir(parents=True, exist_ok=True)
    frames = []
    for i, pose in enumerate(poses):
        origins, directions = pixel_rays(height, width, float(scene.focal) * scale, torch.from_numpy(pose).float())
        view = module.render_view(origins, directions)
        frame = render_and_depth(view["rgb"].clamp(0, 1).numpy(), view["depth"].numpy(), cfg.data.near, cfg.data.far)
        _save_png(frame, out / f"frame_{i:03d}.png")
        frames.append(frame)
    written = _write_videos(frames, out)
    print(f"rendered {len(frames)} views of {width}x{height} -> {out} ({', '.join(written)})")
    return 0


def render_and_depth(rgb: np.ndarray, depth: np.ndarray, near: float, far: float) -> np.ndarray:
    """The render and its depth (near white, far black) side by side, uint8 [H, 2W, 3]."""
    shade = 1.0 - np.clip((depth - near) / (far - near), 0, 1)
    return (np.concatenate([rgb, np.repeat(shade[..., None], 3, axis=-1)], axis=1) * 255).round().astype(np.uint8)


def _save_png(frame: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray(frame).save(path)


def _write_videos(frames: list[np.ndarray], out: Path) -> list[str]:
    """``orbit.gif`` (Pillow, always) and ``orbit.mp4`` (OpenCV's ``mp4v`` encoder, when this build has one)."""
    import cv2
    from PIL import Image

    pictures = [Image.fromarray(f) for f in frames]
    pictures[0].save(out / "orbit.gif", save_all=True, append_images=pictures[1:], duration=80, loop=0)
    written = ["orbit.gif"]
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(out / "orbit.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 12, (w, h))
    if writer.isOpened():
        for f in frames:
            writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
        writer.release()
        written.append("orbit.mp4")
    else:
        (out / "orbit.mp4").unlink(missing_ok=True)
    return written
