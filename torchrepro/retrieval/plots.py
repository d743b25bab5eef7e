"""Ranked-retrieval figure: each query followed by its top-K results, framed green (correct) or red (wrong).

The usual qualitative figure of re-ID papers (e.g. Zhong et al., CVPR 2017, Fig. 1: top-10) and place-
recognition papers (e.g. Arandjelović et al., "NetVLAD", CVPR 2016: top-5). Drawn with PIL rather than
matplotlib so every pixel is where the layout below says: the tests read the border colours back.

Layout (all sizes in pixels): images are resized to ``height`` keeping their aspect ratio and framed by a
``border``-wide frame, so a tile is ``(round(w * height / h) + 2 * border) x (height + 2 * border)``. A row is
``margin`` + query tile + ``query_gap`` + result tiles separated by ``margin`` + ``margin``; rows are stacked
with ``margin`` around them, each preceded by a ``title_height`` strip when titles are given. The canvas is
as wide as the widest row, on a white background.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from torchrepro.core.errors import DataError

__all__ = ["framed", "save_ranked_results", "GREEN", "RED", "GREY"]

GREEN = (0, 200, 0)  # correct retrieval
RED = (230, 0, 0)  # wrong retrieval
GREY = (128, 128, 128)  # the query
BACKGROUND = (255, 255, 255)
TEXT = (0, 0, 0)


def _as_rgb(image: np.ndarray, what: str) -> Image.Image:
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise DataError(f"{what} must be a uint8 image, got dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)  # greyscale -> RGB
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataError(f"{what} must be an HxWx3 (or HxW) uint8 image, got shape {arr.shape}")
    return Image.fromarray(np.ascontiguousarray(arr))


def _tile(image: Image.Image, colour: tuple[int, int, int], height: int, border: int) -> Image.Image:
    """The image resized to ``height`` (aspect ratio kept), inside a ``border``-wide frame of ``colour``."""
    width = max(1, round(image.width * height / image.height))
    tile = Image.new("RGB", (width + 2 * border, height + 2 * border), colour)
    tile.paste(image.resize((width, height), Image.Resampling.BILINEAR), (border, border))
    return tile


def framed(image: np.ndarray, colour: tuple[int, int, int], height: int = 128, border: int = 4) -> np.ndarray:
    """One tile of the figure as an array: the uint8 image resized to ``height`` (aspect ratio kept) inside a
    ``border``-wide frame of ``colour`` (the web demo shows ranked results this way)."""
    return np.asarray(_tile(_as_rgb(image, "image"), colour, height, border))


def _row_width(tiles: list[Image.Image], margin: int, query_gap: int) -> int:
    """margin + query + query_gap + first result + (margin + result) for the others + margin."""
    num_results = len(tiles) - 1
    gaps = (query_gap + margin * (num_results - 1)) if num_results else 0
    return 2 * margin + sum(t.width for t in tiles) + gaps


def _check_layout(queries: Sequence, retrieved: Sequence, correct: np.ndarray, titles) -> np.ndarray:
    correct = np.asarray(correct)
    num_q = len(queries)
    if num_q == 0:
        raise DataError("save_ranked_results needs at least one query")
    if len(retrieved) != num_q:
        raise DataError(f"got {num_q} queries but {len(retrieved)} lists of retrieved images; need one per query")
    num_k = len(retrieved[0])
    if any(len(r) != num_k for r in retrieved):
        raise DataError(f"every query needs the same number of retrieved images, got {[len(r) for r in retrieved]}")
    if correct.shape != (num_q, num_k):
        raise DataError(f"correct must have shape (num_query, top_k) = ({num_q}, {num_k}), got {correct.shape}")
    if titles is not None and len(titles) != num_q:
        raise DataError(f"got {len(titles)} query_titles for {num_q} queries; give one per query or none")
    return correct.astype(bool)


def save_ranked_results(
    queries: list[np.ndarray],
    retrieved: list[list[np.ndarray]],
    correct: np.ndarray,
    path: Path,
    query_titles: list[str] | None = None,
    *,
    height: int = 128,
    border: int = 4,
    margin: int = 4,
    query_gap: int = 16,
    title_height: int = 14,
) -> Path:
    """Save a PNG with one row per query: the query (grey frame) then its top-K results (green / red frames).

    Args:
        queries: Q query images, HxWx3 (or HxW) uint8; sizes may differ.
        retrieved: for each query its K retrieved images, best first, same format.
        correct: [Q, K] bool, ``correct[q, k]``: is the k-th result of query q a true match.
        path: where to write the PNG (parent folders are created).
        query_titles: optional text shown above each row (e.g. the query's file name or pid).
        height, border, margin, query_gap, title_height: layout in pixels, see the module docstring.

    Returns:
        ``path``.

    Raises:
        DataError: when the counts disagree with ``correct``'s shape or an image is not uint8 RGB/grey.
    """
    correct = _check_layout(queries, retrieved, correct, query_titles)
    rows = []
    for q, (query, results) in enumerate(zip(queries, retrieved)):
        tiles = [_tile(_as_rgb(query, f"query {q}"), GREY, height, border)]
        for k, image in enumerate(results):
            colour = GREEN if correct[q, k] else RED
            tiles.append(_tile(_as_rgb(image, f"retrieved image {k} of query {q}"), colour, height, border))
        rows.append(tiles)

    strip = title_height if query_titles is not None else 0
    tile_h = height + 2 * border
    width = max(_row_width(tiles, margin, query_gap) for tiles in rows)
    canvas = Image.new("RGB", (width, margin + len(rows) * (strip + tile_h + margin)), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    y = margin
    for q, tiles in enumerate(rows):
        if query_titles is not None:
            draw.text((margin, y), str(query_titles[q]), fill=TEXT)
            y += strip
        x = margin
        for i, tile in enumerate(tiles):
            canvas.paste(tile, (x, y))
            x += tile.width + (query_gap if i == 0 else margin)
        y += tile_h + margin

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, format="PNG")
    return path
