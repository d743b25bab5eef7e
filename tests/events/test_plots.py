"""Polarity picture: ON red / OFF blue at exactly (x, y) — row y, column x — in the saved PNG, no flips."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from torchrepro.core.errors import DataError
from torchrepro.events.plots import TITLE_BAND, polarity_image, save_polarity_image

H, W = 48, 64
RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)
# ON at (x=10, y=5), OFF at (x=30, y=20): asymmetric, so a flip or transpose moves them.
EVENTS = np.array([[0.00, 10, 5, 1], [0.01, 30, 20, 0]], dtype=np.float64)


def expected_image(scale: int) -> np.ndarray:
    img = np.full((H * scale, W * scale, 3), 255, dtype=np.uint8)
    img[5 * scale : 6 * scale, 10 * scale : 11 * scale] = RED
    img[20 * scale : 21 * scale, 30 * scale : 31 * scale] = BLUE
    return img


@pytest.mark.parametrize("scale", [1, 2, 3])
def test_saved_png_has_events_at_sensor_positions(tmp_path, scale):
    path = save_polarity_image(EVENTS, H, W, tmp_path / "sub" / "w.png", scale=scale)
    img = np.asarray(Image.open(path).convert("RGB"))
    assert img.shape == (H * scale, W * scale, 3)
    assert tuple(img[5 * scale, 10 * scale]) == RED and tuple(img[20 * scale, 30 * scale]) == BLUE
    np.testing.assert_array_equal(img, expected_image(scale))  # white everywhere else


def test_title_band_above_canvas(tmp_path):
    path = save_polarity_image(EVENTS, H, W, tmp_path / "t.png", title="window 3", scale=2)
    pil = Image.open(path)
    assert pil.info.get("Title") == "window 3"
    img = np.asarray(pil.convert("RGB"))
    assert img.shape == (H * 2 + TITLE_BAND, W * 2, 3)
    np.testing.assert_array_equal(img[TITLE_BAND:], expected_image(2))
    assert (img[:TITLE_BAND] < 128).any()  # the text is drawn


def test_latest_event_wins_and_empty_window():
    ev = np.array([[0.0, 3, 2, 1], [0.1, 3, 2, 0], [0.2, 4, 2, 0], [0.3, 4, 2, 1]])
    img = polarity_image(ev, 6, 8)
    assert tuple(img[2, 3]) == BLUE and tuple(img[2, 4]) == RED
    assert (polarity_image(np.zeros((0, 4)), 6, 8) == 255).all()


def test_out_of_sensor_raises(tmp_path):
    ev = EVENTS.copy()
    ev[0, 1] = W
    with pytest.raises(DataError, match="outside the sensor of height=48, width=64"):
        save_polarity_image(ev, H, W, tmp_path / "x.png")
