"""A picture of any size → the detector's boxes in that picture's own pixels: what ``torchrepro tool detect`` writes
and what the live page of ``torchrepro serve`` shows (:mod:`torchrepro.detection.tools`,
:mod:`torchrepro.detection.demo`), computed the way the evaluation computes it.

1. the file is decoded to RGB by the data readers' decoder (:func:`torchrepro.core.images.load_rgb`: grey, palette
   and RGBA pictures are converted, the alpha channel dropped);
2. the evaluation transform resizes it to the square network input S = ``model.image_size``
   (:func:`~torchrepro.detection.transforms.detection_transform` with ``train=False``: a warp, no aspect kept);
3. the detector's own post-processing (Liu et al., SSD, ECCV 2016, §3.7 "Inference time": per-class score
   threshold ``model.score_thresh``, the ``model.topk`` best per class, NMS at ``model.nms_iou`` within each class,
   the ``model.max_detections`` best of the image) gives boxes in S×S input pixels;
4. :func:`~torchrepro.detection.transforms.boxes_to_original` maps them back to the picture's W×H pixels, the very
   function the evaluation rows use (:meth:`torchrepro.detection.task.DetectionTask.evaluation_rows`).

A display threshold (``--score-thresh``, the page's slider; :meth:`ImageDetections.above`) then keeps the
confident detections: SSD's 0.01 of step 3 is there for the AP's ranking, not for a picture.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as F

from torchrepro.core.errors import DataError
from torchrepro.core.images import load_rgb
from torchrepro.detection.plots import image_detections_png
from torchrepro.detection.transforms import boxes_to_original, detection_transform

__all__ = ["DEFAULT_SCORE", "Detection", "ImageDetections", "detect_image", "draw_detections", "network_input",
           "read_image"]

#: the lowest score shown by default (the tool's ``--score-thresh``, the page's slider; the recipe's figures too)
DEFAULT_SCORE = 0.3


@dataclass(frozen=True)
class Detection:
    """One detected object: ``label`` (1..C), its class ``name``, ``score`` and ``box`` (x1, y1, x2, y2) in the
    original picture's continuous pixels."""

    label: int
    name: str
    score: float
    box: tuple[float, float, float, float]

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "class": self.name, "score": self.score, "box": list(self.box)}


@dataclass(frozen=True)
class ImageDetections:
    """The detections of one picture (``name``, ``width`` × ``height`` pixels), by decreasing score."""

    name: str
    width: int
    height: int
    detections: tuple[Detection, ...]

    def above(self, score_thresh: float) -> "ImageDetections":
        """The detections scored at least ``score_thresh``."""
        kept = tuple(d for d in self.detections if d.score >= score_thresh)
        return ImageDetections(self.name, self.width, self.height, kept)

    def target(self) -> dict[str, torch.Tensor]:
        """``{"boxes" [n, 4], "scores" [n], "labels" [n]}``: the evaluation's (and the plots') format."""
        return {"boxes": torch.tensor([d.box for d in self.detections], dtype=torch.float32).reshape(-1, 4),
                "scores": torch.tensor([d.score for d in self.detections], dtype=torch.float32),
                "labels": torch.tensor([d.label for d in self.detections], dtype=torch.int64)}

    def to_json(self) -> dict[str, Any]:
        return {"file": self.name, "width": self.width, "height": self.height,
                "detections": [d.to_json() for d in self.detections]}


def read_image(path: Path, check_only: bool = False) -> Image.Image | None:
    """A picture file as RGB (``check_only``: decode it and return None), or a DataError naming the file and the
    fix: a missing file, a folder, a file that is not a picture (or is truncated)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"image '{path}' does not exist: check the path (pass PNG or JPEG files)")
    if path.is_dir():
        raise DataError(f"'{path}' is a folder, not an image: pass the image files themselves (e.g. '{path}/*.png')")
    try:
        return load_rgb(path, check_only=check_only)
    except (DataError, Image.DecompressionBombError) as err:
        why = "too large to decode safely" if isinstance(err, Image.DecompressionBombError) else "not a readable image"
        raise DataError(f"'{path}' is {why}: pass PNG or JPEG pictures (any format Pillow reads)") from None


def network_input(image: Image.Image, size: int) -> torch.Tensor:
    """An RGB picture as the detector sees it in evaluation: float [3, S, S] in [0, 1], resized by the evaluation
    transform (:func:`~torchrepro.detection.transforms.detection_transform`, ``train=False``)."""
    return detection_transform(False, size)(F.to_image(image.convert("RGB"))).as_subclass(torch.Tensor)


@torch.inference_mode()
def detect_image(module: torch.nn.Module, image: Image.Image, name: str = "") -> ImageDetections:
    """Every detection of the detector's post-processing (SSD §3.7, the module docstring's steps 2–4) for one RGB
    picture, its boxes in the picture's own pixels. ``module``: a :class:`~torchrepro.detection.task.DetectionTask`
    in eval mode (its ``cfg.model.image_size`` and ``classes`` are used)."""
    size = int(module.cfg.model.image_size)
    x = network_input(image, size)[None].to(module.device)
    found = module(x)[0]
    width, height = image.size
    boxes = boxes_to_original(found["boxes"], width, height, size).cpu().tolist()
    scores = found["scores"].float().cpu().tolist()
    labels = found["labels"].cpu().tolist()
    classes = module.classes
    detections = [Detection(int(lb), classes[lb - 1] if 1 <= lb <= len(classes) else str(lb), float(sc),
                            tuple(float(v) for v in bx))  # type: ignore[arg-type]
                  for bx, sc, lb in zip(boxes, scores, labels)]
    detections.sort(key=lambda d: -d.score)
    return ImageDetections(name, width, height, tuple(detections))


def draw_detections(image: Image.Image, detections: ImageDetections, classes: list[str],
                    out: Path | BinaryIO) -> None:
    """The picture with ``detections`` drawn (class name and score per box) as a PNG at ``out``
    (:func:`~torchrepro.detection.plots.image_detections_png`)."""
    image_detections_png(np.asarray(image.convert("RGB")), detections.target(), classes, out)
