"""Box-aware transforms of the SSD recipe (torchvision transforms v2), made reproducible per sample.

Training follows SSD (Liu et al., ECCV 2016): §2.2 "Data augmentation" (photometric distortion; a patch sampled
with a minimum IoU of 0.1/0.3/0.5/0.7/0.9 with the objects, a random patch, or the whole image; horizontal flip
with probability 0.5; resize to a fixed square) and §3.6 (zoom out: the image placed on a canvas up to 16× its
area, filled with the mean pixel, before cropping, which makes small objects). Evaluation only resizes.

A sample is ``(image, target)``: a ``tv_tensors.Image`` (uint8 [3, H, W]) and a dict with ``"boxes"``
(``tv_tensors.BoundingBoxes`` XYXY in continuous pixels, ``canvas_size=(H, W)``), ``"labels"`` (int64 [n]) and
``"difficult"`` (bool [n]); ``"truncated"`` may ride along. Boxes that the crop removes or that become smaller
than a pixel are dropped together with their labels and flags (``SanitizeBoundingBoxes`` with
:func:`per_box_fields`). The output image is float32 in [0, 1]: normalisation belongs to the model (torchvision's
SSD normalises inside).

Randomness: torchvision's v2 transforms draw from torch's global CPU generator. :func:`apply` runs the pipeline
under :func:`torchrepro.core.data.keyed_rng`, which forks that generator and seeds it from ``(seed, epoch,
index)``: a sample's augmentation is a pure function of its key, whatever the worker count or order, and the
caller's random stream is left untouched.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from torchrepro.core.data import keyed_rng
from torchrepro.core.errors import DataError
from torchrepro.core.images import load_rgb
from torchrepro.detection.records import DetectionRecord

__all__ = [
    "SSD_MEAN_RGB",
    "PER_BOX_KEYS",
    "apply",
    "boxes_to_original",
    "collate_detection",
    "detection_transform",
    "load_image",
    "load_sample",
    "per_box_fields",
    "record_target",
]

#: SSD's mean pixel (Caffe: 104, 117, 123 in BGR), the fill of the zoom-out canvas (§3.6). After the model's
#: mean subtraction the canvas is ~0: it adds no signal.
SSD_MEAN_RGB: tuple[int, int, int] = (123, 117, 104)
#: Target entries indexed like the boxes: they are filtered together when a box is dropped.
PER_BOX_KEYS: tuple[str, ...] = ("labels", "difficult", "truncated")


def per_box_fields(inputs: Any) -> tuple[torch.Tensor, ...]:
    """``SanitizeBoundingBoxes``'s ``labels_getter``: the per-box tensors of the target of ``(image, target)``.

    A module-level function, not a lambda, so the pipeline pickles into DataLoader worker processes.
    """
    target = inputs[1]
    return tuple(target[key] for key in PER_BOX_KEYS if key in target)


def detection_transform(
    train: bool,
    size: int,
    zoom_out: bool = True,
    photometric: bool = True,
    iou_crop: bool = True,
    flip_p: float = 0.5,
    zoom_max: float = 4.0,
    crop_min_scale: float = 0.3,
    mean: Sequence[int] = SSD_MEAN_RGB,
) -> v2.Compose:
    """The SSD pipeline: ``train`` → augmentation + resize to ``size`` × ``size``; else resize only.

    Training (§2.2, §3.6), in the order of the paper's Caffe data layer:
    1. ``RandomPhotometricDistort`` (brightness, contrast, saturation, hue, channel order; each with p 0.5),
    2. ``RandomZoomOut`` (p 0.5; side ×[1, ``zoom_max``], i.e. up to 16× the area, filled with ``mean``),
    3. ``RandomIoUCrop``: min IoU drawn from {0, 0.1, 0.3, 0.5, 0.7, 0.9, whole image}, aspect ratio in
       [1/2, 2]; a box is kept when its centre lies in the patch. Side scale in [``crop_min_scale``, 1]: the
       paper's text says [0.1, 1] of the size, its released ``ssd_pascal.py`` (and torchvision) use 0.3,
    4. ``RandomHorizontalFlip(flip_p)``, 5. ``Resize((size, size))`` (SSD300 warps, no aspect kept),
    then ``SanitizeBoundingBoxes`` (drops the crop's rejected boxes and boxes under one output pixel, with their
    labels/flags) and ``ToDtype(float32, scale=True)``. ``zoom_out``/``photometric``/``iou_crop``/``flip_p``
    switch single steps off (ablations, tests).

    Evaluation resizes and converts only: no box is ever dropped, so the ground truth stays complete (score
    against the record's original boxes after scaling predictions back by (width / size, height / size)).
    """
    steps: list[Any] = [v2.ToImage()]  # PIL or ndarray in → tv_tensors.Image; an Image passes through
    if train:
        if photometric:
            steps.append(v2.RandomPhotometricDistort(p=0.5))
        if zoom_out:
            # A fresh dict: torchvision converts the fill values inside the dict it is given.
            fill = {tv_tensors.Image: tuple(int(v) for v in mean), "others": 0}
            steps.append(v2.RandomZoomOut(fill=fill, side_range=(1.0, zoom_max), p=0.5))
        if iou_crop:
            steps.append(v2.RandomIoUCrop(min_scale=crop_min_scale, max_scale=1.0,
                                          min_aspect_ratio=0.5, max_aspect_ratio=2.0))
        if flip_p > 0:
            steps.append(v2.RandomHorizontalFlip(p=flip_p))
    steps.append(v2.Resize((size, size)))
    if train:
        # After the resize: "degenerate" is then measured in the network's input pixels.
        steps.append(v2.SanitizeBoundingBoxes(min_size=1.0, labels_getter=per_box_fields))
    steps.append(v2.ToDtype(torch.float32, scale=True))  # a dtype, not a dict: only the image is converted
    return v2.Compose(steps)


def boxes_to_original(boxes: torch.Tensor, width: float, height: float, size: int) -> torch.Tensor:
    """xyxy boxes [n, 4] in the S×S network input (``size`` = S) → float32 boxes in the pixels of the original
    ``width`` × ``height`` image: the inverse of the evaluation transform's resize (it warps, no aspect kept), i.e.
    a scale by (width / S, height / S). The evaluation rows and ``torchrepro tool detect`` both map with it."""
    s = float(size)
    scale = torch.tensor([width / s, height / s, width / s, height / s], device=boxes.device)
    return boxes.float() * scale


def record_target(record: DetectionRecord) -> dict[str, torch.Tensor]:
    """The target dict of a record: ``boxes`` (BoundingBoxes XYXY on its canvas), ``labels``, ``difficult``.

    Copies the arrays: the record's are read-only and must stay untouched by the transforms.
    """
    return {
        "boxes": tv_tensors.BoundingBoxes(torch.tensor(record.boxes, dtype=torch.float32).reshape(-1, 4),
                                          format="XYXY", canvas_size=(record.height, record.width)),
        "labels": torch.tensor(record.labels, dtype=torch.int64),
        "difficult": torch.tensor(record.difficult, dtype=torch.bool),
    }


def load_image(record: DetectionRecord) -> tv_tensors.Image:
    """Decode a record's image (uint8 [3, H, W]); a size that disagrees with the annotation is a DataError."""
    img = load_rgb(record.image)
    assert img is not None
    if img.size != (record.width, record.height):
        # The boxes were drawn on an image of the annotated size: on another one they would point elsewhere.
        raise DataError(
            f"image '{record.image}' is {img.size[0]}x{img.size[1]} but its annotation (image id "
            f"'{record.image_id}') says {record.width}x{record.height}: fix the annotation's size or replace the image"
        )
    return F.to_image(img)


def load_sample(record: DetectionRecord) -> tuple[tv_tensors.Image, dict[str, torch.Tensor]]:
    """``(image, target)`` of a record, ready for :func:`apply`."""
    return load_image(record), record_target(record)


def apply(
    transform: v2.Transform,
    image: Any,
    target: dict[str, Any],
    seed: int,
    epoch: int = 0,
    index: int = 0,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Run ``transform`` on one sample with every random draw seeded from ``(seed, epoch, index)``.

    The same key always gives the same image and boxes; the global torch RNG is restored afterwards.
    """
    with keyed_rng(seed, epoch, index):
        return transform(image, target)


def collate_detection(batch: Sequence[tuple[torch.Tensor, dict[str, Any]]]) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """Batch samples with a variable number of boxes: images stacked to [B, 3, S, S], targets kept as a list.

    Boxes become plain tensors (no ``BoundingBoxes`` subclass past the data pipeline: losses and metrics then
    see ordinary tensors, and device moves and pinning behave as for any tensor).
    """
    images = torch.stack([torch.as_tensor(image).as_subclass(torch.Tensor) for image, _ in batch])
    targets = []
    for _, target in batch:
        out = dict(target)
        if isinstance(out.get("boxes"), torch.Tensor):
            out["boxes"] = out["boxes"].as_subclass(torch.Tensor)
        targets.append(out)
    return images, targets
