"""Detection tool: ``torchrepro tool detect --ckpt CKPT [--config CFG] [--out DIR] [--score-thresh 0.3] [--force]
IMAGES…`` runs a detection checkpoint on pictures of any size.

The checkpoint is restored as ``torchrepro eval`` restores it (:func:`torchrepro.core.engine.restore`): a missing,
corrupt or foreign checkpoint ends in one line. The config is ``--config`` or, for a checkpoint in a run's
``checkpoints/`` folder, the run's ``config.yaml``. Each picture goes through the evaluation's path
(:mod:`torchrepro.detection.inference`: the evaluation resize to ``model.image_size``, SSD's post-processing,
Liu et al., ECCV 2016, §3.7, boxes mapped back to the picture's pixels); the detections scored at least
``--score-thresh`` are kept.

Written into ``--out`` (default ``RUN_DIR/detect/``): ``<image stem>.png`` per picture (its detections drawn, class
name and score on each box) and ``detections.json`` (per picture: file, width, height and the list of ``{label,
class, score, box [x1, y1, x2, y2]}`` in the picture's pixels). Every picture is decoded before anything is
written: a missing file or a non-image is named in one line and nothing is written. A non-empty ``--out`` is
refused unless ``--force`` (which replaces the files of the same names and leaves the others).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from torchrepro.core.config import Config
from torchrepro.core.errors import ConfigError
from torchrepro.core.registry import checkpoint_config
from torchrepro.core.rundir import run_dir_of, write_json_atomic
from torchrepro.detection.inference import DEFAULT_SCORE, ImageDetections, detect_image, draw_detections, read_image

__all__ = ["JSON_NAME", "detect_main", "output_names"]

RECIPE = "detection"
JSON_NAME = "detections.json"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="torchrepro tool detect",
                                     description="run a detection checkpoint on pictures; write annotated PNGs and "
                                                 f"{JSON_NAME}")
    parser.add_argument("--ckpt", type=Path, required=True, help="a .ckpt of a detection run")
    parser.add_argument("--config", type=Path, default=None,
                        help="the config the checkpoint was trained with (default: the run's config.yaml)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: RUN_DIR/detect/)")
    parser.add_argument("--score-thresh", type=float, default=DEFAULT_SCORE,
                        help=f"keep detections scored at least this (default {DEFAULT_SCORE})")
    parser.add_argument("--force", action="store_true", help="write into a non-empty --out")
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGES")
    return parser


def resolve_detection_config(ckpt: Path, config: Path | None) -> Config:
    """``--config``, else the checkpoint's run's config; a config of another recipe is refused in one line."""
    return checkpoint_config(ckpt, config, (RECIPE,))


def output_folder(ckpt: Path, out: Path | None, force: bool) -> Path:
    """``--out`` or ``RUN_DIR/detect``; a non-empty folder is refused unless ``force``."""
    if out is None:
        run = run_dir_of(ckpt)
        if run is None:
            raise ConfigError(f"checkpoint '{ckpt}' is not in a run directory: pass --out DIR for the results")
        out = run / "detect"
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out '{out}' is a file: choose a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ConfigError(f"output folder '{out}' is not empty: choose another --out, or pass --force to write into "
                          f"it (files of the same names are replaced)")
    return out


def output_names(images: list[Path]) -> list[str]:
    """``<stem>.png`` per picture; a stem met again gets ``-2``, ``-3``… (``a/x.jpg`` and ``b/x.jpg``)."""
    names: list[str] = []
    for image in images:
        name, n = f"{image.stem}.png", 1
        while name in names or name == JSON_NAME:
            n += 1
            name = f"{image.stem}-{n}.png"
        names.append(name)
    return names


def _check_inputs(images: list[Path], out: Path, names: list[str]) -> None:
    """Decode every picture (a DataError names the first bad one) and make sure no output replaces an input."""
    for image in images:
        read_image(image, check_only=True)
    inputs = {p.resolve() for p in images}
    clash = next((out / n for n in names if (out / n).resolve() in inputs), None)
    if clash is not None:
        raise ConfigError(f"writing '{clash}' would replace an input picture: choose another --out")


def _summary(name: str, found: ImageDetections, out_png: Path) -> str:
    """One line per picture: its size, how many detections, the first few (class and score), the PNG written."""
    shown = ", ".join(f"{d.name} {d.score:.2f}" for d in found.detections[:8])
    more = f", … ({len(found.detections) - 8} more)" if len(found.detections) > 8 else ""
    return (f"{name} ({found.width}x{found.height}): {len(found.detections)} detection"
            f"{'' if len(found.detections) == 1 else 's'}{': ' + shown + more if shown else ''} -> {out_png}")


def detect_main(argv: list[str]) -> int:
    """``torchrepro tool detect`` (module docstring); exit status 0, or a UserError (one line, status 2)."""
    from torchrepro.core.engine import restore

    args = _parser().parse_args(argv)
    if not 0.0 <= args.score_thresh <= 1.0:
        raise ConfigError(f"--score-thresh must be in [0, 1], got {args.score_thresh}")
    cfg = resolve_detection_config(args.ckpt, args.config)
    out = output_folder(args.ckpt, args.out, args.force)
    names = output_names(args.images)
    _check_inputs(args.images, out, names)
    module, _ = restore(cfg, args.ckpt)
    module.eval()
    results = []
    out.mkdir(parents=True, exist_ok=True)
    for image_path, png in zip(args.images, names):
        image = read_image(image_path)
        found = detect_image(module, image, image_path.name).above(args.score_thresh)
        draw_detections(image, found, module.classes, out / png)
        results.append({**found.to_json(), "path": str(image_path.resolve()), "annotated": png})
        print(_summary(image_path.name, found, out / png), flush=True)
    write_json_atomic(out / JSON_NAME, {"checkpoint": str(args.ckpt.resolve()), "score_thresh": args.score_thresh,
                                        "image_size": cfg.model.image_size, "classes": list(module.classes),
                                        "images": results})
    print(f"wrote {len(results)} annotated PNG{'s' if len(results) != 1 else ''} and {out / JSON_NAME}")
    return 0
