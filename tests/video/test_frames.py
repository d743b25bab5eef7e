"""Frames of one video (torchrepro.video.frames): frames folders and real video files written here."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import torchrepro.video.frames as frames_mod
from torchrepro.core.errors import DataError
from torchrepro.video.frames import VIDEO_EXTENSIONS, list_frames, natural_key, num_frames, read_frames
from tests.video import CODECS, COLOURS, SIZE, flat_frame, write_frames, write_video

W, H = SIZE


def _means(video: np.ndarray) -> np.ndarray:
    """Mean RGB colour of each frame, shape (T, 3)."""
    return video.reshape(video.shape[0], -1, 3).mean(axis=1)


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


# ------------------------------------------------------------------------------------------------ listing

def test_list_frames_natural_order_and_image_extensions_only(tmp_path):
    for name in ["img_10.jpg", "img_2.jpg", "img_1.JPG", "img_100.png", "notes.txt", "img_3.webp"]:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "img_4.jpg").mkdir()  # a folder named like an image is not a frame
    assert [p.name for p in list_frames(tmp_path)] == ["img_1.JPG", "img_2.jpg", "img_3.webp", "img_10.jpg",
                                                       "img_100.png"]


def test_list_frames_tsm_names(tmp_path):
    # TSM's extraction names frames 000001.jpg ...; a plain sort and the natural sort agree there
    for i in (12, 1, 3, 10, 2):
        (tmp_path / f"{i:06d}.jpg").write_bytes(b"")
    assert [p.name for p in list_frames(tmp_path)] == ["000001.jpg", "000002.jpg", "000003.jpg", "000010.jpg",
                                                       "000012.jpg"]


def test_natural_key_orders_digit_runs_by_value():
    # equal keys ("Frame9", "frame09") fall back to the plain name, so the order is total and stable
    names = ["frame10", "Frame9", "frame9b", "frame09", "a", "10"]
    assert sorted(names, key=natural_key) == ["10", "a", "Frame9", "frame09", "frame9b", "frame10"]


def test_list_frames_missing_or_empty_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist") as err:
        list_frames(tmp_path / "nope")
    assert str(tmp_path / "nope") in _one_line(err)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match="holds no images") as err:
        list_frames(tmp_path / "empty")
    assert str(tmp_path / "empty") in _one_line(err)


# ------------------------------------------------------------------------------------------ frames folder

def test_read_frames_from_png_folder_is_exact(tmp_path):
    write_frames(tmp_path / "v", COLOURS[:4])
    assert num_frames(tmp_path / "v") == 4
    video = read_frames(tmp_path / "v", [3, 0, 0, 2])
    assert video.dtype == np.uint8 and video.shape == (4, H, W, 3)
    expected = np.stack([flat_frame(COLOURS[i]) for i in (3, 0, 0, 2)])
    np.testing.assert_array_equal(video, expected)


def test_read_frames_from_jpeg_folder_natural_order(tmp_path):
    # unpadded names: a lexicographic sort would read frame 10 second
    write_frames(tmp_path / "v", COLOURS + COLOURS[:5], pattern="img_{}.jpg")
    assert num_frames(tmp_path / "v") == 11
    video = read_frames(tmp_path / "v", [0, 1, 9])  # img_1, img_2, img_10
    expected = np.array([COLOURS[0], COLOURS[1], COLOURS[3]], dtype=float)
    np.testing.assert_allclose(_means(video), expected, atol=4)


def test_duplicate_indices_are_decoded_once(tmp_path, monkeypatch):
    write_frames(tmp_path / "v", COLOURS[:4])
    calls: list[str] = []

    def counting_load(path, check_only=False):
        calls.append(path.name)
        return Image.open(path).convert("RGB")

    monkeypatch.setattr(frames_mod, "load_rgb", counting_load)
    video = read_frames(tmp_path / "v", [1, 1, 3, 1])
    assert sorted(calls) == ["00002.png", "00004.png"]
    np.testing.assert_array_equal(video[:, 0, 0], [COLOURS[1], COLOURS[1], COLOURS[3], COLOURS[1]])


def test_corrupt_frame_is_named(tmp_path):
    paths = write_frames(tmp_path / "v", COLOURS[:3])
    paths[1].write_bytes(b"not a png at all")
    assert read_frames(tmp_path / "v", [0, 2]).shape == (2, H, W, 3)  # only requested frames are decoded
    with pytest.raises(DataError, match="cannot be read") as err:
        read_frames(tmp_path / "v", [0, 1])
    assert str(paths[1]) in _one_line(err)


def test_frame_of_another_size_is_named(tmp_path):
    paths = write_frames(tmp_path / "v", COLOURS[:3])
    Image.fromarray(flat_frame(COLOURS[2], (W * 2, H))).save(paths[2])
    with pytest.raises(DataError, match=f"{2 * W}x{H}") as err:
        read_frames(tmp_path / "v", [0, 2])
    assert str(paths[2]) in _one_line(err)


@pytest.mark.parametrize("bad", [[4], [-1], [0, 7]])
def test_folder_index_out_of_range(tmp_path, bad):
    write_frames(tmp_path / "v", COLOURS[:4])
    with pytest.raises(DataError, match="out of range") as err:
        read_frames(tmp_path / "v", bad)
    message = _one_line(err)
    assert str(tmp_path / "v") in message and "4 frames" in message


def test_missing_source_and_non_video_file(tmp_path):
    with pytest.raises(DataError, match="does not exist") as err:
        num_frames(tmp_path / "gone.webm")
    assert str(tmp_path / "gone.webm") in _one_line(err)
    (tmp_path / "clip.txt").write_text("hello")
    with pytest.raises(DataError, match="neither a frames folder nor a video file") as err:
        read_frames(tmp_path / "clip.txt", [0])
    assert str(tmp_path / "clip.txt") in _one_line(err)


# -------------------------------------------------------------------------------------------- video files

def test_video_extensions():
    assert VIDEO_EXTENSIONS == (".webm", ".mp4", ".avi", ".mpg", ".mpeg", ".mkv")


@pytest.mark.parametrize(("suffix", "fourcc"), CODECS, ids=[c[1] for c in CODECS])
def test_read_frames_from_video_file(tmp_path, suffix, fourcc):
    path = tmp_path / f"clip{suffix}"
    if not write_video(path, fourcc, COLOURS):
        pytest.skip(f"this OpenCV build cannot write {fourcc} into {suffix} (cv2.VideoWriter did not open)")
    assert num_frames(path) == len(COLOURS)  # counted by decoding, not from the container header
    video = read_frames(path, [5, 0, 2, 2])
    assert video.dtype == np.uint8 and video.shape == (4, H, W, 3)
    # lossy codecs move a flat colour by a few levels; neighbouring colours of COLOURS differ by > 150
    expected = np.array([COLOURS[i] for i in (5, 0, 2, 2)], dtype=float)
    np.testing.assert_allclose(_means(video), expected, atol=12)
    video[:] = 0  # the result is the caller's own copy, not the cached decode
    assert _means(read_frames(path, [5]))[0, 0] > 150


def test_rewritten_video_is_decoded_again(tmp_path):
    path = tmp_path / "clip.avi"
    assert write_video(path, "MJPG", COLOURS[:3])
    assert num_frames(path) == 3
    assert write_video(path, "MJPG", COLOURS[3:5] + COLOURS[:3])
    assert num_frames(path) == 5  # new size and mtime: the cache entry of the old file is not reused
    np.testing.assert_allclose(_means(read_frames(path, [0])), [COLOURS[3]], atol=12)


def test_video_index_out_of_range(tmp_path):
    path = tmp_path / "clip.avi"
    assert write_video(path, "MJPG", COLOURS[:3])
    with pytest.raises(DataError, match="frame index 3 is out of range") as err:
        read_frames(path, [0, 3])
    assert str(path) in _one_line(err)


def test_unopenable_video_is_named(tmp_path):
    path = tmp_path / "broken.webm"
    path.write_bytes(b"\x1a\x45\xdf\xa3 this is not a webm file" * 4)
    with pytest.raises(DataError, match="cannot be opened") as err:
        num_frames(path)
    assert str(path) in _one_line(err)


def test_video_without_frames_is_named(tmp_path):
    path = tmp_path / "empty.avi"
    assert write_video(path, "MJPG", [])  # a valid AVI header with no frame: OpenCV opens it, reads nothing
    with pytest.raises(DataError, match="0 frames") as err:
        read_frames(path, [0])
    assert str(path) in _one_line(err)


class _FakeCapture:
    """A cv2.VideoCapture stand-in whose third frame changes size (OpenCV's writer cannot produce that)."""

    def __init__(self, path: str) -> None:
        self.frames = [np.zeros((H, W, 3), np.uint8), np.zeros((H, W, 3), np.uint8), np.zeros((H, 2 * W, 3), np.uint8)]

    def isOpened(self) -> bool:  # noqa: N802  (OpenCV's name)
        return True

    def read(self):
        return (True, self.frames.pop(0)) if self.frames else (False, None)

    def release(self) -> None:
        pass


def test_video_frame_of_another_size_is_named(tmp_path, monkeypatch):
    path = tmp_path / "resized.mp4"
    path.write_bytes(b"placeholder")
    monkeypatch.setattr(frames_mod.cv2, "VideoCapture", _FakeCapture)
    with pytest.raises(DataError, match=f"frame 2 is {2 * W}x{H}, earlier frames are {W}x{H}") as err:
        num_frames(path)
    assert str(path) in _one_line(err)


def test_bgr_is_converted_to_rgb(tmp_path):
    # pure red written through OpenCV (which takes BGR) must come back as red, not blue
    path = tmp_path / "red.avi"
    assert write_video(path, "MJPG", [(255, 0, 0)])
    r, g, b = _means(read_frames(path, [0]))[0]
    assert r > 200 and g < 40 and b < 40
