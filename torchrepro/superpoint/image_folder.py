"""A folder of pictures as SuperPoint's training and labelling read it (COCO ``train2014/``, the photo crops).

:func:`list_images` lists and checks a folder (hidden entries and sub-folders skipped, a non-image named in one
line before any work); :func:`read_grey` decodes one picture as the network sees it: grey, resized, at least one
8×8 cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from torchrepro.core.errors import DataError

__all__ = ["IMAGE_SUFFIXES", "list_images", "read_grey"]

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp")
CELL = 8  # SuperPointNet's cell side


def list_images(folder: Path) -> list[Path]:
    """The images of ``folder`` (not recursive; hidden files skipped), sorted by name. A file that is not an
    image (by its suffix) or a header OpenCV cannot read is named in one line (:class:`DataError`)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"images folder '{folder}' does not exist or is not a folder: point it at a folder of "
                        f"pictures (e.g. COCO train2014/)")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    for path in files:
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise DataError(f"'{path}' is not an image (suffix '{path.suffix}'; expected one of "
                            f"{' '.join(IMAGE_SUFFIXES)}): move it out of the images folder")
        if not cv2.haveImageReader(str(path)):  # reads the header only: a broken file fails before any work
            raise DataError(f"'{path}' is not a readable image (its header is not one OpenCV decodes): re-export "
                            f"or remove it")
    if not files:
        raise DataError(f"images folder '{folder}' holds no image ({' '.join(IMAGE_SUFFIXES)})")
    return files


def read_grey(path: Path, image_size: Sequence[int] | None = None) -> np.ndarray:
    """``path`` as the network sees it: grey uint8 [H, W], resized to ``image_size`` (rows, cols) when given
    (``cv2.INTER_AREA``). Raises :class:`DataError` naming the file when it cannot be decoded or is smaller than
    one 8×8 cell."""
    data = np.fromfile(str(path), dtype=np.uint8)  # imdecode rather than imread: non-ASCII paths work too
    grey = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
    if grey is None:
        raise DataError(f"'{path}' is not a readable image: re-export or remove it")
    if image_size is not None and grey.shape != tuple(image_size):
        grey = cv2.resize(grey, (int(image_size[1]), int(image_size[0])), interpolation=cv2.INTER_AREA)
    if grey.shape[0] < CELL or grey.shape[1] < CELL:
        raise DataError(f"'{path}' is {grey.shape[1]}x{grey.shape[0]} pixels as the detector sees it, smaller than "
                        f"one {CELL}x{CELL} cell: remove it or use a larger image size")
    return grey
