"""Synthetic grey shapes written as Fashion-MNIST IDX files, so that the recipe runs offline through the real reader.

Ten classes (disk, ring, square, frame, triangle, cross, bar, column, diagonal, dots), each drawn at a random
position, size, rotation (where the class allows it), stroke and brightness on a noisy background of random level.
Pixels alone separate them only partly (the same class moves and changes size); features that are invariant to
crops and brightness separate them well, which is what contrastive training learns. The files are those of
Fashion-MNIST: ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``, ``t10k-…``, read back by
:func:`torchrepro.simclr.data.read_fashion_mnist`.
"""

from __future__ import annotations

import gzip
import math
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from torchrepro.core.errors import DataError
from torchrepro.core.seeding import derive_seed
from torchrepro.simclr.data import IDX_FILES, IDX_UBYTE, synthetic_classes


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (gzipped when ``path`` ends in ``.gz``), atomically."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = ((IDX_UBYTE << 8) | array.ndim).to_bytes(4, "big") + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    payload = header + array.tobytes()
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(gzip.compress(payload, compresslevel=6, mtime=0) if path.suffix == ".gz" else payload)
    os.replace(tmp, path)


def _rotated(points: list[tuple[float, float]], angle: float, cx: float, cy: float) -> list[tuple[float, float]]:
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + (x - cx) * c - (y - cy) * s, cy + (x - cx) * s + (y - cy) * c) for x, y in points]


def draw_shape(label: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """One ``size``×``size`` uint8 image of class ``label`` (drawn at 4× and reduced, for smooth edges)."""
    big = 4 * size
    img = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(img)
    r = big * rng.uniform(0.18, 0.36)  # half the shape's extent
    cx, cy = big / 2 + rng.uniform(-0.14, 0.14) * big, big / 2 + rng.uniform(-0.14, 0.14) * big
    width = max(2, int(big * rng.uniform(0.05, 0.1)))
    angle = rng.uniform(-0.5, 0.5)
    fill = 255
    box = [cx - r, cy - r, cx + r, cy + r]
    square = [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if label == 0:  # disk
        draw.ellipse(box, fill=fill)
    elif label == 1:  # ring
        draw.ellipse(box, outline=fill, width=width)
    elif label == 2:  # filled square
        draw.polygon(_rotated(square, angle, cx, cy), fill=fill)
    elif label == 3:  # square frame
        pts = _rotated(square, angle, cx, cy)
        draw.line(pts + pts[:1], fill=fill, width=width, joint="curve")
    elif label == 4:  # triangle
        tri = [(cx, cy - r), (cx + r, cy + r * 0.8), (cx - r, cy + r * 0.8)]
        draw.polygon(_rotated(tri, angle, cx, cy), fill=fill)
    elif label == 5:  # cross
        for pts in ([(cx - r, cy), (cx + r, cy)], [(cx, cy - r), (cx, cy + r)]):
            draw.line(_rotated(pts, angle, cx, cy), fill=fill, width=width)
    elif label == 6:  # horizontal bar
        draw.line(_rotated([(cx - r, cy), (cx + r, cy)], angle * 0.3, cx, cy), fill=fill, width=2 * width)
    elif label == 7:  # vertical bar
        draw.line(_rotated([(cx, cy - r), (cx, cy + r)], angle * 0.3, cx, cy), fill=fill, width=2 * width)
    elif label == 8:  # diagonal line
        sign = 1 if rng.random() < 0.5 else -1
        draw.line([(cx - r, cy - sign * r), (cx + r, cy + sign * r)], fill=fill, width=width)
    else:  # two dots
        d = r * 0.6
        for x, y in _rotated([(cx - d, cy), (cx + d, cy)], angle * 3, cx, cy):
            draw.ellipse([x - r * 0.35, y - r * 0.35, x + r * 0.35, y + r * 0.35], fill=fill)
    shape = np.asarray(img.resize((size, size), Image.Resampling.BOX), dtype=np.float64) / 255.0
    background = rng.uniform(0, 60)
    brightness = rng.uniform(110, 255)
    out = background + shape * (brightness - background) + rng.normal(0, 12, (size, size))
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _write_split(root: Path, split: str, n: int, size: int, seed: int) -> None:
    rng = np.random.default_rng(derive_seed(seed, "simclr-shapes", split))
    labels = (np.arange(n) % len(synthetic_classes())).astype(np.uint8)
    rng.shuffle(labels)
    images = np.stack([draw_shape(int(k), size, rng) for k in labels]) if n else np.zeros((0, size, size), np.uint8)
    images_name, labels_name = IDX_FILES[split]
    write_idx(root / f"{images_name}.gz", images)
    write_idx(root / f"{labels_name}.gz", labels)


def generate_shapes(root: Path, n_train: int, n_test: int, size: int = 28, seed: int = 0) -> Path:
    """Write the four IDX files under ``root`` unless they are there already (the test labels are written last)."""
    root = Path(root)
    if (root / f"{IDX_FILES['test'][1]}.gz").is_file():
        return root
    try:
        root.mkdir(parents=True, exist_ok=True)
        _write_split(root, "train", n_train, size, seed)
        _write_split(root, "test", n_test, size, seed)
    except OSError as err:
        raise DataError(f"cannot write the synthetic shapes to '{root}' ({err.strerror or err}): choose a writable "
                        f"data.synthetic_dir") from None
    return root
