"""SSD transforms: box geometry by hand, boxes and labels kept aligned with the pixels, per-sample determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision import tv_tensors

from tests.detection.fixtures import VocImage, VocObject, class_color, tiny_voc, write_image, write_voc
from torchrepro.core.errors import DataError
from torchrepro.detection.records import DetectionRecord
from torchrepro.detection.transforms import (
    SSD_MEAN_RGB,
    apply,
    collate_detection,
    detection_transform,
    load_sample,
    record_target,
)
from torchrepro.detection.voc import read_voc

SYNTH = ("car", "pedestrian", "cyclist", "traffic_light", "traffic_sign")


def _sample(width: int, height: int, boxes, labels, difficult=None):
    """A black uint8 image with each box painted in its label's colour, and its target dict."""
    pixels = torch.zeros(3, height, width, dtype=torch.uint8)
    for (x1, y1, x2, y2), label in zip(boxes, labels):
        pixels[:, int(y1):int(y2), int(x1):int(x2)] = torch.tensor(class_color(label), dtype=torch.uint8)[:, None, None]
    target = {
        "boxes": tv_tensors.BoundingBoxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), format="XYXY",
                                          canvas_size=(height, width)),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "difficult": torch.tensor(difficult or [False] * len(labels)),
    }
    return tv_tensors.Image(pixels), target


def _flip_only(size: int):
    return detection_transform(True, size, zoom_out=False, photometric=False, iou_crop=False, flip_p=1.0)


def test_flip_by_hand() -> None:
    image, target = _sample(100, 100, [[10, 20, 30, 40]], [2])
    out_image, out = apply(_flip_only(100), image, target, seed=0)
    np.testing.assert_allclose(out["boxes"].tolist(), [[70, 20, 90, 40]])
    assert out["labels"].tolist() == [2]
    # the painted object moved with its box
    assert out_image[:, 25, 75].mul(255).round().tolist() == list(class_color(2))
    assert out_image[:, 25, 15].abs().sum() == 0


def test_flip_then_resize_by_hand() -> None:
    """100x50 image, size 200: flip x -> 100 - x, then scale x by 2 and y by 4."""
    image, target = _sample(100, 50, [[10, 20, 30, 40]], [1])
    _, out = apply(_flip_only(200), image, target, seed=0)
    np.testing.assert_allclose(out["boxes"].tolist(), [[140, 80, 180, 160]])
    assert out["boxes"].canvas_size == (200, 200)


def test_eval_is_resize_only_and_keeps_every_box() -> None:
    image, target = _sample(100, 50, [[10, 20, 30, 40], [5, 5, 5.2, 5.1]], [1, 2])  # 2nd: degenerate, kept
    t = detection_transform(False, 200)
    outs = [apply(t, image, target, seed=s) for s in (0, 1)]
    for out_image, out in outs:
        assert out_image.shape == (3, 200, 200) and out_image.dtype == torch.float32
        np.testing.assert_allclose(out["boxes"].tolist(), [[20, 80, 60, 160], [10, 20, 10.4, 20.4]], atol=1e-5)
        assert out["labels"].tolist() == [1, 2]
    assert torch.equal(outs[0][0], outs[1][0])  # no randomness


def test_train_boxes_stay_on_their_objects() -> None:
    """Over many seeds of the full geometric pipeline: boxes inside the canvas, every surviving box's centre
    pixel has the colour of its own label (labels stay aligned when boxes are dropped), flags follow."""
    size = 64
    boxes = [[4, 6, 30, 40], [40, 10, 76, 30], [20, 44, 60, 58]]
    image, target = _sample(80, 60, boxes, [1, 2, 3], difficult=[False, True, False])
    t = detection_transform(True, size, photometric=False)
    dropped = zoomed = 0
    for seed in range(40):
        out_image, out = apply(t, image, target, seed=seed)
        b, labels = out["boxes"], out["labels"]
        assert out_image.shape == (3, size, size) and out_image.dtype == torch.float32
        assert len(b) == len(labels) == len(out["difficult"])
        assert (b >= 0).all() and (b <= size).all() and (b[:, 2:] > b[:, :2]).all()
        assert out["difficult"].tolist() == [lab == 2 for lab in labels.tolist()]
        dropped += len(b) < 3
        zoomed += bool((out_image * 255 - torch.tensor(SSD_MEAN_RGB)[:, None, None]).abs().amax(0).lt(2).any())
        for (x1, y1, x2, y2), lab in zip(b.tolist(), labels.tolist()):
            if x2 - x1 >= 4 and y2 - y1 >= 4:
                cx, cy = int((x1 + x2) / 2), int((y1 + y2) / 2)
                got = (out_image[:, cy, cx] * 255).tolist()
                assert np.abs(np.subtract(got, class_color(lab))).max() < 12, (seed, lab, got)
    # the draws did exercise the crop (boxes dropped) and the mean-filled zoom-out canvas
    assert dropped > 0 and zoomed > 0


def test_photometric_changes_pixels_not_boxes() -> None:
    image, target = _sample(50, 40, [[5, 5, 20, 20]], [1])
    t = detection_transform(True, 50, zoom_out=False, iou_crop=False, flip_p=0.0)
    changed = 0
    for seed in range(6):
        out_image, out = apply(t, image, target, seed=seed)
        np.testing.assert_allclose(out["boxes"].tolist(), [[5, 6.25, 20, 25]])  # resize 40 -> 50 in y only
        changed += not torch.allclose(out_image, detection_transform(False, 50)(image, target)[0])
    assert changed > 0


def test_apply_is_a_pure_function_of_the_key() -> None:
    image, target = _sample(80, 60, [[4, 6, 30, 40], [40, 10, 76, 30]], [1, 2])
    t = detection_transform(True, 48)
    before = torch.get_rng_state()
    a_img, a = apply(t, image, target, seed=3, epoch=1, index=5)
    b_img, b = apply(t, image, target, seed=3, epoch=1, index=5)
    assert torch.equal(a_img, b_img) and torch.equal(a["boxes"], b["boxes"]) and torch.equal(a["labels"], b["labels"])
    assert torch.equal(torch.get_rng_state(), before)  # the caller's random stream is untouched
    others = [apply(t, image, target, seed=s, epoch=e, index=i) for s, e, i in ((4, 1, 5), (3, 2, 5), (3, 1, 6))]
    for o_img, o in others:
        assert o_img.shape == a_img.shape
        assert not (torch.equal(o_img, a_img) and torch.equal(o["boxes"], a["boxes"]))
    # the input sample is not modified in place
    assert target["boxes"].tolist() == [[4, 6, 30, 40], [40, 10, 76, 30]]


def test_load_sample_and_collate(tmp_path: Path) -> None:
    records = read_voc(tiny_voc(tmp_path), "trainval")
    t = detection_transform(True, 32)
    batch = [apply(t, *load_sample(r), seed=0, index=i) for i, r in enumerate(records)]
    images, targets = collate_detection(batch)
    assert images.shape == (4, 3, 32, 32) and images.dtype == torch.float32 and type(images) is torch.Tensor
    assert len(targets) == 4 and targets[3]["boxes"].shape == (0, 4)  # 000004 has no objects
    assert all(type(tg["boxes"]) is torch.Tensor for tg in targets)
    assert all(tg["labels"].dtype == torch.int64 and len(tg["labels"]) == len(tg["boxes"]) for tg in targets)


def test_record_target_copies_read_only_arrays(tmp_path: Path) -> None:
    rec = read_voc(tiny_voc(tmp_path), "train")[0]
    target = record_target(rec)
    assert target["boxes"].canvas_size == (48, 64) and target["boxes"].format.name == "XYXY"
    target["boxes"][0, 0] = 99.0
    assert rec.boxes[0, 0] == 0.0
    assert target["labels"].tolist() == [12, 15] and target["difficult"].tolist() == [False, True]


def test_image_size_disagreeing_with_annotation(tmp_path: Path) -> None:
    root = write_voc(tmp_path / "v", {"a": VocImage(40, 30, [VocObject("car", (1, 1, 9, 9))])}, {"train": ["a"]}, SYNTH)
    write_image(root / "JPEGImages" / "a.jpg", 30, 40)  # rotated by someone: 30x40 instead of 40x30
    rec = read_voc(root, "train", classes=SYNTH)[0]
    with pytest.raises(DataError, match=r"JPEGImages/a\.jpg' is 30x40 but its annotation .* says 40x30"):
        load_sample(rec)


def test_corrupt_image_names_file(tmp_path: Path) -> None:
    (tmp_path / "x.jpg").write_bytes(b"not a jpeg")
    rec = DetectionRecord(image=tmp_path / "x.jpg", width=4, height=4, boxes=np.zeros((0, 4), np.float32),
                          labels=np.zeros(0, np.int64), difficult=np.zeros(0, bool), truncated=np.zeros(0, bool),
                          image_id="x")
    with pytest.raises(DataError, match=r"x\.jpg' cannot be read"):
        load_sample(rec)
