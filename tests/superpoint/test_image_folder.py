"""The picture folder SuperPoint trains on and labels: listing, checks, grey decoding."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from torchrepro.core.errors import DataError
from torchrepro.superpoint.image_folder import list_images, read_grey


def _png(path: Path, shape: tuple[int, int] = (24, 32)) -> Path:
    cv2.imwrite(str(path), np.arange(shape[0] * shape[1], dtype=np.uint8).reshape(shape))
    return path


def test_lists_images_sorted_skipping_hidden_files_and_subfolders(tmp_path: Path) -> None:
    for name in ("b.png", "a.PNG", "c.jpg"):
        _png(tmp_path / name) if not name.endswith(".jpg") else cv2.imwrite(str(tmp_path / name), np.zeros((9, 9)))
    (tmp_path / ".DS_Store").write_bytes(b"\0")
    (tmp_path / "sub").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.PNG", "b.png", "c.jpg"]


@pytest.mark.parametrize("setup, needle", [
    (lambda d: (d / "notes.txt").write_text("x"), "notes.txt' is not an image"),
    (lambda d: (d / "broken.png").write_bytes(b"not a png"), "broken.png' is not a readable image"),
    (lambda d: None, "holds no image"),
])
def test_bad_folders_are_named(tmp_path: Path, setup, needle: str) -> None:
    setup(tmp_path)
    with pytest.raises(DataError, match=needle.replace(".", r"\.")):
        list_images(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        list_images(tmp_path / "missing")


def test_read_grey_resizes_and_refuses_images_below_one_cell(tmp_path: Path) -> None:
    image = read_grey(_png(tmp_path / "a.png"), (12, 16))
    assert image.dtype == np.uint8 and image.shape == (12, 16)
    assert read_grey(tmp_path / "a.png").shape == (24, 32)
    with pytest.raises(DataError, match="smaller than one 8x8 cell"):
        read_grey(_png(tmp_path / "tiny.png", (6, 6)))
