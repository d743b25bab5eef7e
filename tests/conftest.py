"""Shared fixtures: tiny data sets in the real on-disk formats, written into tmp paths."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("OMP_NUM_THREADS", "2")
REPO = Path(__file__).resolve().parents[1]


def write_csv_split(root: Path, n: int, seed: int = 0, size: int = 32, classes=("left", "right", "straight")) -> Path:
    """A split in the seed's CSV format: root/images/<name>.jpg + root/labels.csv (header, no extension)."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = ["image_name,label"]
    for i in range(n):
        label = classes[i % len(classes)]
        img = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        Image.fromarray(img).save(root / "images" / f"frame_{i:04d}.jpg", quality=90)
        rows.append(f"frame_{i:04d},{label}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture
def csv_data(tmp_path: Path) -> Path:
    """data root with train/ and val/ in the CSV format."""
    root = tmp_path / "frames"
    write_csv_split(root / "train", 24, seed=1)
    write_csv_split(root / "val", 9, seed=2)
    write_csv_split(root / "test", 6, seed=3)
    return root
