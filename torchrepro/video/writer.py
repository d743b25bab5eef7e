"""Write a video file with OpenCV: what the synthetic generators use to produce data in a corpus's own format.

GRID ships MPEG-1 (``.mpg``); OpenCV's FFmpeg backend writes it with fourcc ``PIM1`` (it prints "tag ... is not
supported" and encodes MPEG-1 anyway: the container stores no fourcc). :func:`write_video` checks the file was
written, since OpenCV's writer fails silently when a codec is missing from the build.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from torchrepro.core.errors import DataError

__all__ = ["FOURCC_BY_SUFFIX", "write_video"]

#: the codec OpenCV writes for each container suffix
FOURCC_BY_SUFFIX = {".mpg": "PIM1", ".mpeg": "PIM1", ".webm": "VP80", ".mp4": "mp4v", ".avi": "MJPG"}


def write_video(path: Path, frames: np.ndarray, fps: float = 25.0) -> Path:
    """Encode ``frames`` (``(T, H, W)`` grey or ``(T, H, W, 3)`` RGB uint8) to ``path``; the codec follows the
    suffix (:data:`FOURCC_BY_SUFFIX`). Even frame sizes are safest: MPEG codecs subsample chroma by 2."""
    path = Path(path)
    fourcc = FOURCC_BY_SUFFIX.get(path.suffix.lower())
    if fourcc is None:
        raise ValueError(f"write_video: no codec for suffix '{path.suffix}' (known: {', '.join(FOURCC_BY_SUFFIX)})")
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim not in (3, 4) or len(frames) == 0:
        raise ValueError(f"write_video: frames must be a non-empty (T, H, W[, 3]) uint8 array, got {frames.dtype} "
                         f"{frames.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), float(fps), (width, height))
    try:
        if not writer.isOpened():
            raise DataError(f"OpenCV cannot write '{path}' (codec {fourcc}): this OpenCV build lacks the encoder")
        for frame in frames:
            rgb = frame if frame.ndim == 3 else np.repeat(frame[:, :, None], 3, axis=2)
            writer.write(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    if not path.is_file() or path.stat().st_size == 0:
        raise DataError(f"OpenCV wrote nothing to '{path}' (codec {fourcc}): this OpenCV build lacks the encoder")
    return path
