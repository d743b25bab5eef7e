"""Reader and writer of the Synthetic Shapes dump layout (SuperPoint §4 "MagicPoint: Synthetic pre-training", Fig. 4).

The layout is the one rpautrat/SuperPoint's ``SyntheticShapes.dump_primitive_data`` writes (and that
eric-yyjau/pytorch-superpoint reads), one folder per drawing primitive::

    <root>/<primitive>/images/<split>/<i>.png     grey 8-bit image
    <root>/<primitive>/points/<split>/<i>.npy     float array [N, 2] of junctions, (row, col) = (y, x) order

with ``split`` in ``training``, ``validation``, ``test``.

**Point order.** On disk the points are (y, x) — (row, col), as the reference stores them (it flips OpenCV's
(x, y) before ``np.save``). In memory this package uses (x, y) everywhere: :func:`read_sample` flips the
columns on the way in and :func:`write_sample` flips them on the way out. Coordinates are pixel-centre based
(pixel ``(c, r)`` covers ``[c - 0.5, c + 0.5) x [r - 0.5, r + 0.5)``); a point is inside the image when
``0 <= x < W`` and ``0 <= y < H`` (the reference's ``keep_points_inside`` rule, which its dumps satisfy).

This module is the readers' side: it does not import the generator (:mod:`torchrepro.superpoint.shapes`),
so reading a dumped set needs neither the drawing code nor its parameters.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from torchrepro.core.errors import DataError

__all__ = ["IMAGE_SUFFIXES", "PRIMITIVES", "SPLITS", "list_samples", "read_sample", "write_sample"]

#: The nine drawing primitives of rpautrat's ``SyntheticShapes.drawing_primitives``, in its order.
PRIMITIVES: tuple[str, ...] = (
    "draw_lines", "draw_polygon", "draw_multiple_polygons", "draw_ellipses", "draw_star",
    "draw_checkerboard", "draw_stripes", "draw_cube", "gaussian_noise",
)
#: Split folder names of the reference dump.
SPLITS: tuple[str, ...] = ("training", "validation", "test")
#: Files accepted in an ``images`` folder (the reference writes PNG only; other lossless/lossy stills are read too).
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp")


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise DataError(f"unknown Synthetic Shapes split {split!r}; use one of {', '.join(SPLITS)}")


def _sort_key(path: Path) -> tuple[int, int, str]:
    """Numeric file names first, in numeric order (2.png before 10.png), then any other name alphabetically."""
    return (0, int(path.stem), path.name) if re.fullmatch(r"\d+", path.stem) else (1, 0, path.name)


# ----------------------------------------------------------------------------------------------------- writing
def _check_points_xy(points_xy: np.ndarray, width: int, height: int, where: str) -> np.ndarray:
    """``points_xy`` as float64 [N, 2]; raise DataError naming ``where`` when a point lies outside the image."""
    pts = np.asarray(points_xy, dtype=np.float64)
    if pts.size == 0:
        return np.zeros((0, 2), np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise DataError(f"{where}: points must be an array of shape [N, 2], got shape {list(pts.shape)}; "
                        f"regenerate the sample or fix the points array")
    inside = (pts[:, 0] >= 0) & (pts[:, 0] < width) & (pts[:, 1] >= 0) & (pts[:, 1] < height)
    if not inside.all():
        x, y = pts[int(np.argmin(inside))]
        raise DataError(f"{where}: point (x={x:.2f}, y={y:.2f}) lies outside the {width}x{height} (WxH) image; "
                        f"regenerate the sample or drop the points outside the image")
    return pts


def write_sample(root: Path, primitive: str, split: str, index: int, image: np.ndarray,
                 points_xy: np.ndarray) -> tuple[Path, Path]:
    """Write one sample in the reference layout; ``points_xy`` are (x, y) in memory and stored as (y, x).

    Returns ``(image_path, points_path)``. The points are saved as float64 [N, 2] (the reference's dtype), the
    image as a grey 8-bit PNG. Points outside the image raise :class:`DataError` before anything is written.
    """
    _check_split(split)
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 2:
        raise DataError(f"Synthetic Shapes image {primitive}/{split}/{index} must be a grey uint8 HxW array, got "
                        f"{image.dtype} with shape {list(image.shape)}")
    image_path = Path(root) / primitive / "images" / split / f"{index}.png"
    points_path = Path(root) / primitive / "points" / split / f"{index}.npy"
    pts = _check_points_xy(points_xy, image.shape[1], image.shape[0], str(points_path))
    image_path.parent.mkdir(parents=True, exist_ok=True)
    points_path.parent.mkdir(parents=True, exist_ok=True)
    ok, png = cv2.imencode(".png", image)
    if not ok:
        raise DataError(f"could not encode {image_path} as PNG")
    image_path.write_bytes(png.tobytes())
    np.save(points_path, np.ascontiguousarray(pts[:, ::-1]))  # (x, y) -> (row, col) as the reference stores it
    return image_path, points_path


# ----------------------------------------------------------------------------------------------------- listing
def _images_in(folder: Path) -> list[Path]:
    """The image files of one ``images/<split>`` folder; anything else there is a DataError naming it."""
    images = []
    for path in folder.iterdir():
        if path.name.startswith("."):  # editor / OS droppings (.DS_Store, ._x.png) are not samples
            continue
        if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
            raise DataError(f"{path} is not an image ({', '.join(IMAGE_SUFFIXES)}) but lies in a Synthetic Shapes "
                            f"images folder; move it out of {folder}")
        images.append(path)
    return sorted(images, key=_sort_key)


def _points_path(image_path: Path, primitive_dir: Path, split: str) -> Path:
    """``<primitive>/points/<split>/<stem>.npy`` for ``<primitive>/images/<split>/<stem>.<ext>``."""
    points_path = primitive_dir / "points" / split / f"{image_path.stem}.npy"
    if not points_path.is_file():
        raise DataError(f"{image_path} has no points file: expected {points_path}; regenerate the set or "
                        f"remove the image")
    return points_path


def _primitives_to_scan(root: Path, primitives: Sequence[str] | None) -> list[str]:
    """The explicitly asked primitives (each must exist), or every known primitive present under ``root``."""
    if primitives is None:
        return [p for p in PRIMITIVES if (root / p).is_dir()]
    missing = [p for p in primitives if not (root / p).is_dir()]
    if missing:
        raise DataError(f"Synthetic Shapes primitive folder {root / missing[0]} does not exist; generate the set "
                        f"or drop {missing[0]!r} from the primitives")
    return list(primitives)


def list_samples(root: Path, split: str, primitives: Sequence[str] | None = None) -> list[tuple[Path, Path]]:
    """All ``(image_path, points_path)`` pairs of ``split``, sorted by primitive then numeric index.

    ``primitives`` None scans every primitive of :data:`PRIMITIVES` present under ``root`` (in that order);
    otherwise exactly those given (in the given order), each of which must exist. An image without its points
    file, a non-image file in an images folder or an empty split raise :class:`DataError`.
    """
    _check_split(split)
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"Synthetic Shapes root {root} does not exist; generate the set or fix the data path")
    scanned = _primitives_to_scan(root, primitives)
    samples = []
    for primitive in scanned:
        folder = root / primitive / "images" / split
        if folder.is_dir():
            samples += [(img, _points_path(img, root / primitive, split)) for img in _images_in(folder)]
    if not samples:
        looked_for = ", ".join(scanned or (primitives if primitives is not None else PRIMITIVES))
        raise DataError(f"the Synthetic Shapes split {split!r} is empty: no images in {root}/<primitive>/images/"
                        f"{split} for the primitives {looked_for}; generate the set or fix the data path")
    return samples


# ----------------------------------------------------------------------------------------------------- reading
def _read_image(image_path: Path) -> np.ndarray:
    try:
        data = np.fromfile(image_path, dtype=np.uint8)  # imdecode rather than imread: non-ASCII paths work too
    except OSError as err:
        raise DataError(f"cannot read {image_path} ({err.strerror or type(err).__name__}); check the file") from None
    image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
    if image is None:
        raise DataError(f"{image_path} is not a readable image; regenerate the set or remove the file")
    return image


def _read_points_yx(points_path: Path) -> np.ndarray:
    try:
        pts = np.load(points_path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{points_path} is not a readable .npy points file ({type(err).__name__}); "
                        f"regenerate the set") from None
    if pts.size == 0:  # a primitive without junctions (ellipses, noise); old dumps saved shape (0,)
        return np.zeros((0, 2), np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or not np.issubdtype(pts.dtype, np.number):
        raise DataError(f"{points_path}: points must be a numeric array of shape [N, 2] in (row, col) order, got "
                        f"{pts.dtype} with shape {list(pts.shape)}; regenerate the set")
    return pts.astype(np.float64)


def read_sample(image_path: Path, points_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One sample as ``(image uint8 HxW, points_xy float32 [N, 2])``.

    The file holds (row, col) = (y, x); the returned points are (x, y). Points outside the image (or NaN), a
    points array not of shape [N, 2] and an unreadable image raise :class:`DataError` naming the file.
    """
    image = _read_image(Path(image_path))
    pts_xy = _read_points_yx(Path(points_path))[:, ::-1]
    height, width = image.shape
    pts_xy = _check_points_xy(pts_xy, width, height, f"{points_path} (image {image_path})")
    return image, pts_xy.astype(np.float32)
