"""Deterministic synthetic data set for a driving-direction classifier.

Every image shows a road from a driver's forward-facing camera; the label says
whether the road ahead curves ``left``, curves ``right`` or goes ``straight``.

The scene (camera, sky, road, cars, roadside objects, photometry) is drawn by the road-scene renderer that this
recipe shares with the detection recipe, :mod:`torchrepro.render.road`; its module docstring describes the
camera model.  The road centreline is ``X_c(z) = x0 + yaw * z + curvature * z**2 / 2``; in the image this is
``x = cx + f * (x0 / z + yaw + curvature * z / 2)``: the first two terms are a straight line in image space
(``1/z`` is linear in the row), so only the curvature term bends the road.  ``x0`` shifts the near part of the
road and ``yaw`` tilts it (moves the vanishing point); both are random and independent of the label, so *where*
the road is does not tell the class, only *how it bends* does.

On disk a split is ``<dir>/images/<name>.jpg`` plus ``<dir>/labels.csv`` with
the header ``image_name,label`` (names without extension), and ``<dir>/generated.json``, the stamp of the
parameters it was generated with (see :mod:`torchrepro.core.generated`).
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from torchrepro.core.generated import publish_once
from torchrepro.render import road
from torchrepro.render.road import (  # re-exported: part of this module's API since before the move
    FOCAL_FRACTION,
    CarParams,
    RoadScene,
    RoadsideParams,
    ShadowParams,
    centreline_x,
    road_centre_px,
)

__all__ = [
    "CLASSES", "GENERATOR_VERSION", "FOCAL_FRACTION", "STRAIGHT_BEND", "MIN_BEND", "MAX_BEND", "CarParams",
    "RoadsideParams", "ShadowParams", "RoadSceneParams", "centreline_x", "road_centre_px", "sample_scene_params",
    "render_scene", "generate_split", "generate_dataset",
]

CLASSES: tuple[str, ...] = ("left", "right", "straight")

Rng = np.random.Generator

#: Bump when the rendering changes, so that cached splits are regenerated.
GENERATOR_VERSION = 1

#: JPEG quality; fixed so that files are byte-identical across runs.
JPEG_QUALITY = 92
CSV_HEADER: tuple[str, str] = ("image_name", "label")
CSV_NAME = "labels.csv"
IMAGES_DIR = "images"

# Far-end lateral deviation ("bend", in units of f) caused by the curvature,
# i.e. curvature * view_depth / 2.  Straight roads stay inside +-STRAIGHT_BEND,
# curves lie in [MIN_BEND, MAX_BEND]; the gap keeps labels unambiguous while
# the lower end keeps gentle curves in the set.
STRAIGHT_BEND = 0.02
MIN_BEND = 0.25
MAX_BEND = 0.70


@dataclass(frozen=True)
class RoadSceneParams(RoadScene):
    """A road scene (:class:`torchrepro.render.road.RoadScene`) with its class: the way the road bends."""

    label: str


# --------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------


def _sample_bend(rng: np.random.Generator, label: str) -> float:
    """Far-end deviation: exactly the quantity that defines the class.

    Curve magnitudes are uniform between a gentle (MIN_BEND) and a sharp (MAX_BEND) bend so the task is not
    trivial; straight roads get a little noise so "straight" is not a
    pixel-perfect line.
    """
    if label == "straight":
        return float(rng.uniform(-STRAIGHT_BEND, STRAIGHT_BEND))
    magnitude = MIN_BEND + (MAX_BEND - MIN_BEND) * rng.uniform()
    return float(-magnitude if label == "left" else magnitude)


def _sample_geometry(rng: Rng, label: str) -> dict[str, float]:
    """Camera and road geometry.  Offset and yaw are label-independent nuisances."""
    half_width = rng.uniform(0.45, 0.8)
    view_depth = rng.uniform(5.0, 12.0)
    bend = _sample_bend(rng, label)
    return dict(
        horizon=rng.uniform(0.30, 0.48),
        lateral_offset=rng.uniform(-0.7, 0.7) * half_width,
        yaw=rng.uniform(-0.35, 0.35),
        curvature=2.0 * bend / view_depth,
        view_depth=view_depth,
        road_half_width=half_width,
    )


def sample_scene_params(rng: np.random.Generator, label: str) -> RoadSceneParams:
    """Draw one random scene of class ``label`` from ``rng``.

    All randomness of a scene is drawn here (the renderer only re-seeds its
    pixel noise from ``texture_seed``), so the same generator state always
    gives the same image.  The order of the draws is part of the data set's contract.
    """
    if label not in CLASSES:
        raise ValueError(f"label must be one of {CLASSES}, got {label!r}")
    geo = _sample_geometry(rng, label)
    depth, hw = geo["view_depth"], geo["road_half_width"]
    fields = {**geo, **road.sample_sky(rng), **road.sample_surface(rng)}
    fields["shadows"] = road.sample_shadows(rng, depth, hw)
    fields["cars"] = road.sample_cars(rng, depth, hw)
    fields["roadside"] = road.sample_roadside(rng, depth, hw)
    fields.update(road.sample_photometry(rng))
    fields = {k: float(v) if isinstance(v, np.floating) else v for k, v in fields.items()}
    return RoadSceneParams(label=label, **fields)


def render_scene(params: RoadSceneParams, size: int) -> np.ndarray:
    """Render ``params`` as a ``size x size x 3`` uint8 RGB image (:func:`torchrepro.render.road.render_road_scene`)."""
    return road.render_road_scene(params, size)


# --------------------------------------------------------------------------
# Writing splits
# --------------------------------------------------------------------------


def _split_labels(n_images: int, seed: int) -> list[str]:
    """Balanced labels (counts differ by at most one) in a seeded random order."""
    labels = [CLASSES[i % len(CLASSES)] for i in range(n_images)]
    order = np.random.default_rng(np.random.SeedSequence([seed, 0, 0])).permutation(n_images)
    return [labels[i] for i in order]


def _image_names(n_images: int) -> list[str]:
    width = max(6, len(str(max(n_images - 1, 0))))
    return [f"{i:0{width}d}" for i in range(n_images)]


def _is_intact(out_dir: Path, stamp: dict) -> bool:
    """True if every image that ``out_dir/labels.csv`` lists is there (a stamped split may lose files)."""
    csv_path = out_dir / CSV_NAME
    if not csv_path.is_file():
        return False
    with csv_path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows or tuple(rows[0]) != CSV_HEADER or len(rows) - 1 != stamp["params"]["n_images"]:
        return False
    return all((out_dir / IMAGES_DIR / f"{r[0]}.jpg").is_file() for r in rows[1:])


def _is_legacy_split(out_dir: Path) -> bool:
    """An unstamped split written before splits were stamped: nothing but ``images/`` and the CSV."""
    return {p.name for p in out_dir.iterdir()} <= {IMAGES_DIR, CSV_NAME}


def _write_split(target: Path, n_images: int, seed: int, size: int) -> dict[str, dict[str, int]]:
    """Render and write every image plus the CSV into ``target`` (an empty dir); returns the label counts."""
    (target / IMAGES_DIR).mkdir()
    names, labels = _image_names(n_images), _split_labels(n_images, seed)
    for i, (name, label) in enumerate(zip(names, labels)):
        rng = np.random.default_rng(np.random.SeedSequence([seed, 1, i]))
        img = render_scene(sample_scene_params(rng, label), size)
        path = target / IMAGES_DIR / f"{name}.jpg"
        Image.fromarray(img).save(path, format="JPEG", quality=JPEG_QUALITY)
    with (target / CSV_NAME).open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(CSV_HEADER)
        writer.writerows(zip(names, labels))
    return {"counts": dict(sorted(Counter(labels).items()))}


def generate_split(out_dir: Path, n_images: int, seed: int, size: int = 96) -> Path:
    """Write out_dir/images/*.jpg and out_dir/labels.csv (balanced classes, shuffled order). Returns csv path.

    Deterministic: same (n_images, seed, size) -> byte-identical files. A split stamped with the same
    (n_images, seed, size) and generator version is reused as it is; any other one is regenerated, written
    into a temporary sibling dir and renamed into place, so an interrupted run never leaves a half set (see
    :func:`torchrepro.core.generated.publish_once`).
    """
    out_dir = Path(out_dir)
    if n_images < 0:
        raise ValueError(f"n_images must be >= 0, got {n_images}")
    params = {"n_images": int(n_images), "seed": int(seed), "size": int(size)}
    publish_once(
        out_dir, lambda tmp: _write_split(tmp, n_images, seed, size), generator=__name__,
        version=GENERATOR_VERSION, params=params, bytes_needed=n_images * (size * size + 4096) + 65536,
        config_key="data.synthetic_dir", intact=_is_intact, legacy=_is_legacy_split,
    )
    return out_dir / CSV_NAME


def _derived_seed(seed: int, stream: int) -> int:
    """Independent 32-bit seed for sub-stream ``stream`` of ``seed``."""
    return int(np.random.SeedSequence([seed, 2, stream]).generate_state(1)[0])


def generate_dataset(
    root: Path, n_train: int, n_val: int, seed: int, size: int = 96, n_test: int = 0
) -> list[Path]:
    """root/train, root/val and (``n_test > 0``) root/test, each from its own derived seed: different scenes, so
    validation and test are held out from training and from each other.

    Returns the CSV paths, in that order.
    """
    root = Path(root)
    counts = [("train", n_train), ("val", n_val)] + ([("test", n_test)] if n_test > 0 else [])
    return [generate_split(root / split, n, _derived_seed(seed, k), size) for k, (split, n) in enumerate(counts)]
