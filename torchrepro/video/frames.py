"""The frames of one video, from a folder of extracted frames or from a video file.

Both sources the TSN/TSM family trains on are read here: the TSM code base extracts every video of
Something-Something V2 to a folder ``<id>/000001.jpg …`` (``tools/vid2img_sthv2.py``), while LipNet's GRID
corpus ships ``.mpg`` files that are decoded on the fly. :func:`read_frames` returns the same thing for both:
a ``(T, H, W, 3)`` uint8 RGB array of the requested 0-based frames.

Video files are decoded with OpenCV's FFmpeg backend. ``CAP_PROP_FRAME_COUNT`` comes from the container
header and is wrong or missing for WebM and MPEG-1 streams (it reports 1 for a 5-frame ``.mpg``), so frames are
counted by decoding. A decoded video is kept in a small cache keyed by path, modification time and size:
the usual access pattern, ``num_frames`` then ``read_frames`` on the same clip, decodes it once.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from torchrepro.core.errors import DataError
from torchrepro.core.images import IMAGE_EXTENSIONS, load_rgb

VIDEO_EXTENSIONS = (".webm", ".mp4", ".avi", ".mpg", ".mpeg", ".mkv")

# Decoded videos kept per process (each DataLoader worker has its own). A Something-Something V2 clip of
# ~50 frames at 240x427 is ~15 MB, a GRID clip of 75 frames at 288x360 ~23 MB: a few entries stay small.
_VIDEO_CACHE_SIZE = 4

_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[tuple[int | str, ...], str]:
    """Sort key that orders digit runs by value: ``img_2.jpg`` before ``img_10.jpg``.

    ``re.split`` with a capturing group alternates text and digits starting with text, so two keys always
    compare str with str and int with int; the name itself breaks ties (``01`` vs ``1``)."""
    parts = _DIGITS.split(name)
    return tuple(int(p) if i % 2 else p.lower() for i, p in enumerate(parts)), name


def list_frames(folder: Path) -> list[Path]:
    """The image files of a frames folder in natural order, or a DataError naming the folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"frames folder '{folder}' does not exist: extract the video's frames there "
                        f"or fix the data root")
    frames = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
    if not frames:
        raise DataError(f"frames folder '{folder}' holds no images ({', '.join(IMAGE_EXTENSIONS)}): "
                        f"re-extract the video's frames")
    return sorted(frames, key=lambda p: natural_key(p.name))


def is_video_file(path: Path) -> bool:
    """Whether ``path`` has one of :data:`VIDEO_EXTENSIONS` (case-insensitive); the file need not exist."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def _check_source(source: Path) -> Path:
    """``source`` as a Path if it is a frames folder or a video file, else a DataError saying which it is not."""
    source = Path(source)
    if source.is_dir():
        return source
    if not source.exists():
        raise DataError(f"video source '{source}' does not exist: expected a frames folder or a video file "
                        f"({', '.join(VIDEO_EXTENSIONS)})")
    if not is_video_file(source):
        raise DataError(f"'{source}' is neither a frames folder nor a video file ({', '.join(VIDEO_EXTENSIONS)}): "
                        f"point the data set at the videos or their extracted frames")
    return source


@functools.lru_cache(maxsize=_VIDEO_CACHE_SIZE)
def _decode_video(path: str, mtime_ns: int, size: int) -> np.ndarray:
    """Every frame of a video file as a read-only ``(T, H, W, 3)`` RGB uint8 array.

    ``mtime_ns`` and ``size`` are only part of the cache key: a video rewritten in place is decoded again.
    Exceptions are not cached by ``lru_cache``, so a fixed file is retried."""
    del mtime_ns, size
    capture = cv2.VideoCapture(path)
    try:
        if not capture.isOpened():
            raise DataError(f"video '{path}' cannot be opened by OpenCV/FFmpeg: the file is corrupt or its codec is "
                            f"unsupported; replace it or extract its frames to a folder")
        frames: list[np.ndarray] = []
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            if frames and bgr.shape != frames[0].shape:
                raise DataError(f"video '{path}' frame {len(frames)} is {bgr.shape[1]}x{bgr.shape[0]}, earlier frames "
                                f"are {frames[0].shape[1]}x{frames[0].shape[0]}: re-encode the video at one size")
            # OpenCV decodes to BGR; every consumer here (PIL, torchvision, the models) expects RGB.
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    if not frames:
        raise DataError(f"video '{path}' decodes to 0 frames: the file is empty or corrupt, replace it")
    video = np.stack(frames)
    video.flags.writeable = False  # shared by every caller through the cache
    return video


def _video(path: Path) -> np.ndarray:
    """The cached decode of a video file (see :func:`_decode_video`)."""
    stat = path.stat()
    return _decode_video(str(path), stat.st_mtime_ns, stat.st_size)


def num_frames(source: Path) -> int:
    """The number of frames of a frames folder (its images) or of a video file (counted by decoding)."""
    source = _check_source(source)
    if source.is_dir():
        return len(list_frames(source))
    return int(_video(source).shape[0])


def _check_indices(source: Path, indices: Sequence[int], n_frames: int) -> None:
    if len(indices) == 0:
        raise ValueError(f"read_frames('{source}'): no frame indices given")
    bad = [i for i in indices if not 0 <= i < n_frames]
    if bad:
        raise DataError(f"frame index {bad[0]} is out of range for '{source}', which has {n_frames} frames "
                        f"(valid: 0..{n_frames - 1}): the frame count changed since the data set was indexed?")


def _read_folder_frames(folder: Path, indices: Sequence[int]) -> np.ndarray:
    """The requested frames of a frames folder; each distinct frame file is decoded once."""
    files = list_frames(folder)
    _check_indices(folder, indices, len(files))
    decoded: dict[int, np.ndarray] = {}
    first_shape: tuple[int, ...] | None = None
    for index in dict.fromkeys(indices):  # distinct indices, in order
        image = np.asarray(load_rgb(files[index]), dtype=np.uint8)
        if first_shape is None:
            first_shape = image.shape
        elif image.shape != first_shape:
            raise DataError(f"frame '{files[index]}' is {image.shape[1]}x{image.shape[0]} but other frames of "
                            f"'{folder}' are {first_shape[1]}x{first_shape[0]}: re-extract the frames at one size")
        decoded[index] = image
    return np.stack([decoded[i] for i in indices])


def read_frames(source: Path, indices: Sequence[int]) -> np.ndarray:
    """Frames ``indices`` (0-based, repeats allowed) of a frames folder or video file.

    Returns a new, writable ``(T, H, W, 3)`` uint8 RGB array with ``T = len(indices)``. Errors (a DataError, one
    line) name the unreadable frame file, the video OpenCV cannot decode, the frame of a different size, or
    the out-of-range index. For a folder only the requested frames are decoded, so only they are size-checked.
    """
    source = _check_source(source)
    indices = [int(i) for i in indices]
    if source.is_dir():
        return _read_folder_frames(source, indices)
    video = _video(source)
    _check_indices(source, indices, video.shape[0])
    return video[indices]  # fancy indexing copies: callers may modify the result
