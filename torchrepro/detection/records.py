"""The record every detection reader returns, and the box checks the readers share.

Coordinates are continuous pixel coordinates: ``(x1, y1, x2, y2)`` with ``0 <= x1 < x2 <= width``, a pixel ``i``
covering ``[i, i + 1)``. Box widths and IoUs are then computed without the "+1" of the VOC devkit
(``torchvision.ops.box_iou`` as it is). Labels run ``1..C``: 0 is the background, as torchvision's detection
models expect.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

import numpy as np

from torchrepro.core.errors import DataError

__all__ = ["BadBoxes", "BAD_BOXES", "DetectionRecord", "check_boxes", "empty_record_arrays"]

#: What a reader does with a box outside its image or with x2 <= x1 / y2 <= y1.
BadBoxes = Literal["error", "clip", "drop"]
BAD_BOXES: tuple[str, ...] = ("error", "clip", "drop")


@dataclass(frozen=True, eq=False)
class DetectionRecord:
    """One annotated image.

    ``boxes`` float32 [n, 4] (x1, y1, x2, y2) continuous pixels; ``labels`` int64 [n] in 1..C; ``difficult`` bool
    [n] (VOC ``<difficult>``; COCO ``iscrowd``: both mark objects the evaluation ignores); ``truncated`` bool [n]
    (VOC ``<truncated>``; always False for COCO). ``image_id`` is the VOC id (file stem) or the COCO image id as
    a string.

    ``eq=False``: a dataclass's generated ``==`` would compare numpy arrays (ambiguous truth value) and its hash
    would fail on them; records compare by identity. The arrays are made read-only, so "frozen" holds for them
    too: a transform cannot edit the data set's boxes in place.
    """

    image: Path
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray
    difficult: np.ndarray
    truncated: np.ndarray
    image_id: str

    def __post_init__(self) -> None:
        # Our readers' invariants: a violation is a bug in a reader, hence ValueError and not a DataError.
        n = len(self.boxes)
        if self.boxes.dtype != np.float32 or self.boxes.shape != (n, 4):
            raise ValueError(f"boxes must be float32 [n, 4], got {self.boxes.dtype} {self.boxes.shape}")
        for name, dtype in (("labels", np.int64), ("difficult", np.bool_), ("truncated", np.bool_)):
            arr = getattr(self, name)
            if arr.dtype != dtype or arr.shape != (n,):
                raise ValueError(f"{name} must be {np.dtype(dtype)} [{n}], got {arr.dtype} {arr.shape}")
        if n and self.labels.min() < 1:
            raise ValueError("labels must be >= 1: 0 is the background")
        for name in ("boxes", "labels", "difficult", "truncated"):
            getattr(self, name).setflags(write=False)

    @property
    def num_objects(self) -> int:
        return len(self.boxes)


def empty_record_arrays() -> dict[str, np.ndarray]:
    """The arrays of an image without objects, with the record's dtypes and shapes."""
    return {
        "boxes": np.zeros((0, 4), np.float32),
        "labels": np.zeros((0,), np.int64),
        "difficult": np.zeros((0,), bool),
        "truncated": np.zeros((0,), bool),
    }


def check_boxes(
    boxes: np.ndarray,
    width: int,
    height: int,
    mode: BadBoxes,
    describe: Callable[[int], str],
    tolerance: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Validate continuous ``boxes`` [n, 4] against a ``width`` × ``height`` image; returns (boxes, keep mask).

    A box is bad when it reaches outside ``[0, width] × [0, height]`` by more than ``tolerance`` pixels or when
    ``x2 <= x1`` or ``y2 <= y1``. ``mode``: ``error`` raises a DataError whose message starts with
    ``describe(i)`` (the file and the object); ``clip`` clips into the image and drops a box that is still empty
    afterwards (an inverted or wholly outside box has nothing left to keep); ``drop`` drops every bad box.
    Overshoots within ``tolerance`` are clipped silently in every mode (float annotations, e.g. COCO's, land a
    hair outside the image; that is rounding, not a bad annotation).
    """
    if mode not in BAD_BOXES:
        raise ValueError(f"bad_boxes must be one of {BAD_BOXES}, got {mode!r}")
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    limits = np.array([width, height, width, height], np.float32)
    outside = (boxes[:, :2] < -tolerance).any(1) | (boxes[:, 2:] > limits[2:] + tolerance).any(1)
    empty = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    bad = outside | empty
    if bad.any() and mode == "error":
        i = int(np.flatnonzero(bad)[0])
        x1, y1, x2, y2 = (float(v) for v in boxes[i])
        why = (f"reaches outside the {width}x{height} image" if outside[i]
               else "is empty (x2 <= x1 or y2 <= y1)")
        raise DataError(
            f"{describe(i)}: box (x1, y1, x2, y2) = ({x1:g}, {y1:g}, {x2:g}, {y2:g}) {why}; fix the annotation, "
            f"or read with bad_boxes='clip' (clip into the image) or bad_boxes='drop' (skip such boxes)"
        )
    if mode == "drop":
        keep = ~bad
    else:  # clip, or error with nothing bad: only overshoots within the tolerance remain to clip
        keep = np.ones(len(boxes), bool)
    boxes = np.clip(boxes, 0.0, limits)
    keep &= (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return boxes, keep
