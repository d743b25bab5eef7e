"""Pictures of event windows: the seed's ON-red / OFF-blue polarity image, with the sensor's orientation.

The image is an RGB array indexed ``[y, x]``: row 0 is the top of the picture and the sensor's ``y = 0``, the
column is ``x``. It is written with Pillow as it is, with no axis flip or transpose; the seed's author plotted
events with matplotlib's default y-up axes and so got pictures upside down. Pillow (already a dependency, and
matplotlib's own PNG backend) writes exact pixels, so each sensor pixel becomes an exact ``scale x scale``
block, which the tests check.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, PngImagePlugin

from torchrepro.events.representations import _as_numpy, _check_sensor, _check_xy

__all__ = ["polarity_image", "save_polarity_image"]

WHITE = (255, 255, 255)
ON_COLOUR = (255, 0, 0)  # red
OFF_COLOUR = (0, 0, 255)  # blue
TITLE_BAND = 16  # pixels of white band above the canvas when a title is drawn


def polarity_image(events: np.ndarray | torch.Tensor, height: int, width: int) -> np.ndarray:
    """``(height, width, 3)`` uint8 picture of a window: white background, ON (``p > 0``) red, OFF blue.

    A pixel hit by both polarities takes the colour of its **latest** event (the last row at that pixel),
    which is what a scatter plot drawn in time order shows. Events outside the sensor raise
    :class:`~torchrepro.core.errors.DataError`.
    """
    _check_sensor(height, width)
    height, width = int(height), int(width)
    ev = _as_numpy(events).reshape(-1, 4)
    image = np.full((height, width, 3), WHITE, dtype=np.uint8)
    if len(ev) == 0:
        return image
    x, y = ev[:, 1], ev[:, 2]
    _check_xy(torch.from_numpy(x), torch.from_numpy(y), height, width, "the events to plot")
    pixel = y.astype(np.int64) * width + x.astype(np.int64)
    # Row number of the last event at each pixel (-1: none); np.maximum.at is order-independent.
    last = np.full(height * width, -1, dtype=np.int64)
    np.maximum.at(last, pixel, np.arange(len(ev)))
    hit = last >= 0
    on = np.zeros(height * width, dtype=bool)
    on[hit] = ev[last[hit], 3] > 0
    flat = image.reshape(-1, 3)
    flat[hit & on] = ON_COLOUR
    flat[hit & ~on] = OFF_COLOUR
    return image


def save_polarity_image(
    events: np.ndarray | torch.Tensor,
    height: int,
    width: int,
    path: str | Path,
    title: str | None = None,
    scale: int = 2,
) -> Path:
    """Save :func:`polarity_image` as a PNG, each sensor pixel an exact ``scale x scale`` block.

    Without a title the PNG is ``(height*scale, width*scale)`` and sensor pixel ``(x, y)`` covers rows
    ``y*scale .. y*scale+scale-1`` and columns ``x*scale ..``. With a title, a white band of
    :data:`TITLE_BAND` rows holding the text in black is added above the canvas (the canvas starts at row
    ``TITLE_BAND``), and the title is also stored in the PNG's ``Title`` text field. Returns the path.
    """
    scale = int(scale)
    if scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    image = polarity_image(events, height, width)
    image = np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)  # nearest-neighbour, exact blocks
    pil = Image.fromarray(image)  # uint8 (H, W, 3) -> RGB
    info = None
    if title:
        canvas = Image.new("RGB", (pil.width, pil.height + TITLE_BAND), WHITE)
        canvas.paste(pil, (0, TITLE_BAND))
        ImageDraw.Draw(canvas).text((2, 2), title, fill=(0, 0, 0))
        pil = canvas
        info = PngImagePlugin.PngInfo()
        info.add_text("Title", title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pil.save(path, format="PNG", pnginfo=info)
    return path
