"""Tests for the ranked-retrieval figure (torchrepro.retrieval.plots.save_ranked_results)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from torchrepro.core.errors import DataError
from torchrepro.retrieval.plots import GREEN, GREY, RED, save_ranked_results


def image(h, w, value):
    return np.full((h, w, 3), value, dtype=np.uint8)


def test_layout_and_border_colours(tmp_path):
    # Two queries of different sizes, three results each (one greyscale, different aspect ratios).
    queries = [image(64, 32, 50), image(128, 64, 60)]
    retrieved = [
        [image(64, 32, 70), image(32, 32, 80), np.full((128, 64), 90, np.uint8)],
        [image(256, 128, 100), image(64, 64, 110), image(16, 8, 120)],
    ]
    correct = np.array([[True, False, True], [False, True, False]])
    height, border, margin, gap = 40, 3, 5, 12
    out = save_ranked_results(
        queries, retrieved, correct, tmp_path / "sub" / "ranks.png",
        height=height, border=border, margin=margin, query_gap=gap,
    )
    assert out == tmp_path / "sub" / "ranks.png" and out.is_file()
    img = np.asarray(Image.open(out).convert("RGB"))

    # Widths after resizing to height 40: 1:2 aspect -> 20, square -> 40 (+ 2 * border each).
    tile_h = height + 2 * border
    row0 = [20, 20, 40, 20]
    row1 = [20, 20, 40, 20]
    expected_w = max(2 * margin + sum(w + 2 * border for w in r) + gap + 2 * margin for r in (row0, row1))
    assert img.shape == (margin + 2 * (tile_h + margin), expected_w, 3)

    def border_pixel(row, col):
        """Top-left frame pixel and the image centre of tile `col` in row `row`."""
        widths = (row0, row1)[row]
        x = margin + sum(w + 2 * border for w in widths[:col]) + (gap if col > 0 else 0) + margin * max(col - 1, 0)
        y = margin + row * (tile_h + margin)
        centre = img[y + tile_h // 2, x + (widths[col] + 2 * border) // 2]
        return tuple(img[y, x]), tuple(img[y + tile_h - 1, x + widths[col] + 2 * border - 1]), centre

    for row in range(2):
        first, last, centre = border_pixel(row, 0)
        assert first == last == GREY and centre[0] == (50, 60)[row]
        for k in range(3):
            first, last, centre = border_pixel(row, k + 1)
            colour = GREEN if correct[row, k] else RED
            assert first == last == colour
            assert centre[0] == [[70, 80, 90], [100, 110, 120]][row][k]  # the image itself is inside the frame


def test_titles_add_a_strip_and_top5(tmp_path):
    queries = [image(32, 32, 10)] * 3
    retrieved = [[image(32, 32, 200)] * 5] * 3
    correct = np.zeros((3, 5), dtype=bool)
    correct[:, 0] = True
    plain = save_ranked_results(queries, retrieved, correct, tmp_path / "a.png", height=32)
    titled = save_ranked_results(
        queries, retrieved, correct, tmp_path / "b.png", ["q0", "q1", "q2"], height=32, title_height=14
    )
    w_plain, h_plain = Image.open(plain).size
    w_titled, h_titled = Image.open(titled).size
    assert w_titled == w_plain == 2 * 4 + 6 * 40 + 16 + 4 * 4
    assert h_plain == 4 + 3 * (40 + 4) and h_titled == h_plain + 3 * 14
    # Some title text is drawn (dark pixels in the strip above the first row).
    strip = np.asarray(Image.open(titled).convert("L"))[4 : 4 + 14, :60]
    assert strip.min() < 128


@pytest.mark.parametrize(
    "queries, retrieved, correct, titles, pattern",
    [
        ([image(8, 8, 0)], [[image(8, 8, 0)]] * 2, np.ones((1, 1), bool), None, "lists of retrieved"),
        ([image(8, 8, 0)], [[image(8, 8, 0)]], np.ones((1, 2), bool), None, "correct must have shape"),
        ([image(8, 8, 0)], [[image(8, 8, 0)]], np.ones((1, 1), bool), ["a", "b"], "query_titles"),
        ([np.zeros((8, 8, 3), np.float32)], [[image(8, 8, 0)]], np.ones((1, 1), bool), None, "uint8"),
        ([image(8, 8, 0)], [[np.zeros((8, 8, 4), np.uint8)]], np.ones((1, 1), bool), None, "HxWx3"),
        ([], [], np.zeros((0, 0), bool), None, "at least one query"),
    ],
)
def test_bad_inputs(tmp_path, queries, retrieved, correct, titles, pattern):
    with pytest.raises(DataError, match=pattern):
        save_ranked_results(queries, retrieved, correct, tmp_path / "x.png", titles)
