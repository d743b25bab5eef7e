"""Image files: the extensions the folder readers take and one decoder that names the file it cannot read."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, UnidentifiedImageError

from torchrepro.core.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def load_rgb(path: Path, check_only: bool = False) -> Image.Image | None:
    """Open an image as RGB, or raise a DataError naming the file.

    ``check_only``: decode the file without converting it (JPEGs at 1/8 scale, which still reads every byte:
    a truncated file fails) and return None; what ``torchrepro data`` does for every image of every split."""
    try:
        with Image.open(path) as img:
            if not check_only:
                return img.convert("RGB")
            img.draft(img.mode, (1, 1))  # JPEG: decode at the smallest scale; other formats: no-op
            img.load()
            return None
    except FileNotFoundError:
        raise DataError(f"image '{path}' is missing: the data set folder is incomplete") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"image '{path}' cannot be read as an image ({type(err).__name__}): remove or replace the file") from None
