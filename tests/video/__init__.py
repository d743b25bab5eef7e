"""Tests of the shared video layer, and the fixture writers they share (real files in the real formats)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

# Distinct flat RGB colours, one per frame: a decoded frame is identified by its mean colour even after a
# lossy codec (chroma subsampling and quantisation move a flat colour by a few levels at most).
COLOURS = [(230, 20, 20), (20, 230, 20), (20, 20, 230), (220, 220, 40), (40, 200, 220), (200, 40, 200)]
SIZE = (32, 24)  # (width, height): multiples of 8, which every codec here accepts

# (suffix, fourcc) of the containers the readers meet: SSv2 (.webm/VP8), common exports (.mp4, .avi) and
# GRID (.mpg, MPEG-1). OpenCV's FFmpeg prints "tag ... is not supported" for VP80/PIM1 but still encodes with
# that codec (the container stores no fourcc); the probe in test_frames checks what was written decodes.
CODECS = [(".webm", "VP80"), (".mp4", "mp4v"), (".avi", "MJPG"), (".mpg", "PIM1")]


def flat_frame(rgb: tuple[int, int, int], size: tuple[int, int] = SIZE) -> np.ndarray:
    """An (H, W, 3) uint8 RGB frame of one colour."""
    return np.full((size[1], size[0], 3), rgb, dtype=np.uint8)


def write_frames(folder: Path, colours: list[tuple[int, int, int]], pattern: str = "{:05d}.png", start: int = 1,
                 size: tuple[int, int] = SIZE) -> list[Path]:
    """A frames folder: frame ``i`` is ``pattern.format(start + i)`` filled with ``colours[i]``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, rgb in enumerate(colours):
        path = folder / pattern.format(start + i)
        Image.fromarray(flat_frame(rgb, size)).save(path)
        paths.append(path)
    return paths


def write_video(path: Path, fourcc: str, colours: list[tuple[int, int, int]], size: tuple[int, int] = SIZE) -> bool:
    """Encode one flat-colour frame per entry of ``colours`` with OpenCV; False if the build cannot write it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 25.0, size)
    if not writer.isOpened():
        return False
    for rgb in colours:
        writer.write(cv2.cvtColor(flat_frame(rgb, size), cv2.COLOR_RGB2BGR))
    writer.release()
    return path.is_file() and path.stat().st_size > 0


# labels.json lists the templates out of index order, as the real file does (it is sorted by name)
SSV2_LABELS = {"Putting something on a surface": "3", "Approaching something with your camera": "0",
               "Pushing something from left to right": "2", "Holding something next to something": "1"}
SSV2_CLASSES = ["Approaching something with your camera", "Holding something next to something",
                "Pushing something from left to right", "Putting something on a surface"]
SSV2_TRAIN = [
    {"id": "78687", "label": "holding potato next to vicks vaporub bottle",
     "template": "Holding [something] next to [something]", "placeholders": ["potato", "vicks vaporub bottle"]},
    {"id": "42326", "label": "putting a cup on a table", "template": "Putting [something] on a surface",
     "placeholders": ["a cup"]},
    {"id": "100904", "label": "pushing a pen from left to right", "template": "Pushing [something] from left to right",
     "placeholders": ["a pen"]},
    {"id": "3", "label": "approaching a tree with your camera", "template": "Approaching [something] with your camera",
     "placeholders": ["a tree"]},
]
SSV2_VAL = [
    {"id": "74225", "label": "pushing a box from left to right", "template": "Pushing [something] from left to right",
     "placeholders": ["a box"]},
    {"id": "116154", "label": "holding a key next to a phone", "template": "Holding [something] next to [something]",
     "placeholders": ["a key", "a phone"]},
    {"id": "8", "label": "putting a book on a surface", "template": "Putting [something] on a surface",
     "placeholders": ["a book"]},
]
SSV2_TEST = [{"id": "1420"}, {"id": "23"}, {"id": "5555"}]
VIDEOS = "20bn-something-something-v2"

def write_sthv2(root: Path) -> Path:
    """An SSv2 download under ``root``: the four JSON files, one real VP8 .webm per video (video i shows
    COLOURS[i % 3:][:3]) and the same frames extracted TSM-style to root/frames/<id>/000001.jpg …"""
    root.mkdir(parents=True, exist_ok=True)
    for name, content in [("labels.json", SSV2_LABELS), ("train.json", SSV2_TRAIN),
                          ("validation.json", SSV2_VAL), ("test.json", SSV2_TEST)]:
        (root / name).write_text(json.dumps(content))
    for i, entry in enumerate(SSV2_TRAIN + SSV2_VAL + SSV2_TEST):
        colours = COLOURS[i % 3: i % 3 + 3]
        if not write_video(root / VIDEOS / f"{entry['id']}.webm", "VP80", colours):
            (root / VIDEOS / f"{entry['id']}.webm").write_bytes(b"placeholder: VP8 cannot be written here")
        write_frames(root / "frames" / entry["id"], colours, pattern="{:06d}.jpg")
    return root


