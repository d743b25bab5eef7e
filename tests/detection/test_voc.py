"""Pascal VOC reader on tiny folders in the real VOC layout (tests/detection/fixtures.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.detection.fixtures import VocImage, VocObject, tiny_voc, write_voc
from torchrepro.core.errors import DataError, UserError
from torchrepro.detection.records import DetectionRecord
from torchrepro.detection.voc import VOC_CLASSES, read_voc

SYNTH = ("car", "pedestrian", "cyclist", "traffic_light", "traffic_sign")


def _one(tmp_path: Path, objects: list[VocObject], width: int = 50, height: int = 40, **kw) -> Path:
    """A VOC folder with a single image 'img' (in split 'train') holding ``objects``."""
    return write_voc(tmp_path / "voc", {"img": VocImage(width, height, objects, **kw)}, {"train": ["img"]},
                     VOC_CLASSES)


def test_voc_classes_standard_order() -> None:
    assert len(VOC_CLASSES) == 20
    assert VOC_CLASSES[0] == "aeroplane" and VOC_CLASSES[14] == "person" and VOC_CLASSES[-1] == "tvmonitor"


def test_read_voc_boxes_flags_labels(tmp_path: Path) -> None:
    recs = read_voc(tiny_voc(tmp_path), "trainval")
    assert [r.image_id for r in recs] == ["000001", "000002", "000003", "000004"]  # split file order
    r1, r2, r3, r4 = recs
    assert isinstance(r1, DetectionRecord)
    assert (r1.width, r1.height) == (64, 48)
    # 1-based inclusive (1, 1, 20, 30) -> continuous (0, 0, 20, 30): 20 pixels wide, 30 high.
    np.testing.assert_array_equal(r1.boxes, [[0, 0, 20, 30], [29, 4, 64, 48]])
    assert r1.boxes.dtype == np.float32 and r1.labels.dtype == np.int64
    # dog is the 12th class, person the 15th: labels 1..C, 0 reserved for the background
    assert r1.labels.tolist() == [12, 15]
    assert r1.difficult.tolist() == [False, True] and r1.truncated.tolist() == [False, False]
    assert r2.labels.tolist() == [7] and r2.truncated.tolist() == [True] and r2.difficult.tolist() == [False]
    np.testing.assert_array_equal(r2.boxes, [[4, 5, 25, 20]])
    # a one-pixel box (xmin = xmax = 10) is a valid box of width 1
    np.testing.assert_array_equal(r3.boxes[0], [9, 9, 10, 10])
    assert r4.num_objects == 0 and r4.boxes.shape == (0, 4) and r4.labels.shape == (0,)


def test_read_voc_iou_matches_devkit_plus_one(tmp_path: Path) -> None:
    """Our IoU without "+1" on continuous boxes equals the devkit's IoU with "+1" on the raw bndbox values."""
    root = _one(tmp_path, [VocObject("dog", (1, 1, 20, 30)), VocObject("cat", (11, 6, 30, 40))])
    (a, b) = read_voc(root, "train")[0].boxes.astype(np.float64)
    inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
    ours = inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
    # devkit on the raw values: iw = min(20, 30) - max(1, 11) + 1 = 10, ih = min(30, 40) - max(1, 6) + 1 = 25
    devkit = (10 * 25) / (20 * 30 + 20 * 35 - 10 * 25)
    assert ours == pytest.approx(devkit)


def test_read_voc_images_jpg_and_png(tmp_path: Path) -> None:
    recs = {r.image_id: r for r in read_voc(tiny_voc(tmp_path), "trainval")}
    assert recs["000001"].image.name == "000001.jpg" and recs["000003"].image.name == "000003.png"
    assert all(r.image.is_file() for r in recs.values())


def test_read_voc_splits(tmp_path: Path) -> None:
    root = tiny_voc(tmp_path)
    assert [r.image_id for r in read_voc(root, "train")] == ["000001", "000003"]
    assert [r.image_id for r in read_voc(root, "val")] == ["000002", "000004"]
    assert [r.image_id for r in read_voc(root, "test")] == ["000002"]


def test_read_voc_keep_difficult_false_drops_them(tmp_path: Path) -> None:
    r1 = read_voc(tiny_voc(tmp_path), "train", keep_difficult=False)[0]
    assert r1.labels.tolist() == [12] and r1.difficult.tolist() == [False]
    np.testing.assert_array_equal(r1.boxes, [[0, 0, 20, 30]])


def test_read_voc_missing_flags_default_to_zero(tmp_path: Path) -> None:
    root = _one(tmp_path, [VocObject("cat", (2, 2, 9, 9), difficult=None, truncated=None)])
    rec = read_voc(root, "train")[0]
    assert rec.difficult.tolist() == [False] and rec.truncated.tolist() == [False]


def test_read_voc_without_size_element_uses_the_image(tmp_path: Path) -> None:
    root = _one(tmp_path, [VocObject("cat", (2, 2, 9, 9))], width=37, height=21, write_size=False)
    rec = read_voc(root, "train")[0]
    assert (rec.width, rec.height) == (37, 21)


def test_read_voc_other_class_names(tmp_path: Path) -> None:
    images = {"s1": VocImage(40, 30, [VocObject("traffic_sign", (1, 2, 10, 12)), VocObject("car", (5, 5, 30, 25))])}
    root = write_voc(tmp_path / "synth", images, {"val": ["s1"]}, SYNTH)
    rec = read_voc(root, "val", classes=SYNTH)[0]
    assert rec.labels.tolist() == [5, 1]


def test_records_are_read_only(tmp_path: Path) -> None:
    rec = read_voc(tiny_voc(tmp_path), "train")[0]
    with pytest.raises(ValueError):
        rec.boxes[0, 0] = 5.0


# ---- bad inputs: each a DataError naming the file (and the object) -------------------------------------------


def test_box_outside_image_names_file_and_object(tmp_path: Path) -> None:
    root = _one(tmp_path, [VocObject("dog", (1, 1, 10, 10)), VocObject("cat", (5, 5, 51, 30))])  # 50 wide
    with pytest.raises(DataError, match=r"Annotations/img\.xml' object 2 \('cat'.*outside the 50x40 image.*bad_boxes"):
        read_voc(root, "train")


def test_box_zero_based_xmin_is_outside(tmp_path: Path) -> None:
    """xmin = 0 is not a 1-based index: x1 would be -1 (py-faster-rcnn's classic uint16 overflow)."""
    root = _one(tmp_path, [VocObject("dog", (0, 3, 10, 10))])
    with pytest.raises(DataError, match=r"img\.xml' object 1 \('dog'.*xmin=0.*outside"):
        read_voc(root, "train")


def test_inverted_box_names_file_and_object(tmp_path: Path) -> None:
    root = _one(tmp_path, [VocObject("dog", (20, 5, 10, 30))])  # xmax < xmin
    with pytest.raises(DataError, match=r"img\.xml' object 1 \('dog'.*empty"):
        read_voc(root, "train")


def test_bad_boxes_clip(tmp_path: Path) -> None:
    objects = [VocObject("dog", (0, 3, 10, 10)), VocObject("cat", (5, 5, 60, 45)), VocObject("cow", (20, 5, 10, 30)),
               VocObject("bird", (2, 2, 4, 4))]
    rec = read_voc(_one(tmp_path, objects), "train", bad_boxes="clip")
    r = rec[0]
    # dog: x1 = -1 -> 0; cat: (4, 4, 60, 45) -> (4, 4, 50, 40); cow inverted: nothing to keep, dropped
    np.testing.assert_array_equal(r.boxes, [[0, 2, 10, 10], [4, 4, 50, 40], [1, 1, 4, 4]])
    assert r.labels.tolist() == [VOC_CLASSES.index(n) + 1 for n in ("dog", "cat", "bird")]


def test_bad_boxes_drop(tmp_path: Path) -> None:
    objects = [VocObject("dog", (0, 3, 10, 10)), VocObject("cat", (5, 5, 60, 45), difficult=1),
               VocObject("cow", (20, 5, 10, 30)), VocObject("bird", (2, 2, 4, 4), truncated=1)]
    r = read_voc(_one(tmp_path, objects), "train", bad_boxes="drop")[0]
    np.testing.assert_array_equal(r.boxes, [[1, 1, 4, 4]])
    assert r.labels.tolist() == [3] and r.truncated.tolist() == [True] and r.difficult.tolist() == [False]


def test_unknown_class_lists_known_classes(tmp_path: Path) -> None:
    root = _one(tmp_path, [VocObject("dog", (1, 1, 5, 5)), VocObject("unicorn", (1, 1, 5, 5))])
    with pytest.raises(DataError, match=r"img\.xml' object 2 \('unicorn'\).*aeroplane, bicycle.*tvmonitor.*data\.classes"):
        read_voc(root, "train")


def test_synthetic_names_against_voc_classes_fail(tmp_path: Path) -> None:
    root = write_voc(tmp_path / "s", {"a": VocImage(20, 20, [VocObject("pedestrian", (1, 1, 5, 5))])},
                     {"train": ["a"]}, SYNTH)
    with pytest.raises(DataError, match="'pedestrian' is not one of the 20 known classes"):
        read_voc(root, "train")


def test_annotation_without_image(tmp_path: Path) -> None:
    root = tiny_voc(tmp_path)
    (root / "JPEGImages" / "000002.jpg").unlink()
    with pytest.raises(DataError, match=r"Annotations/000002\.xml' has no image.*JPEGImages/000002\.jpg"):
        read_voc(root, "val")


def test_split_id_without_annotation(tmp_path: Path) -> None:
    root = tiny_voc(tmp_path)
    (root / "ImageSets" / "Main" / "val.txt").write_text("000002\n000099\n")
    with pytest.raises(DataError, match=r"Annotations/000099\.xml' is missing"):
        read_voc(root, "val")


def test_empty_split_file(tmp_path: Path) -> None:
    root = tiny_voc(tmp_path)
    (root / "ImageSets" / "Main" / "val.txt").write_text("\n  \n")
    with pytest.raises(DataError, match=r"ImageSets/Main/val\.txt' lists no image ids"):
        read_voc(root, "val")


def test_missing_split_file_names_it_and_lists_others(tmp_path: Path) -> None:
    root = tiny_voc(tmp_path)
    with pytest.raises(DataError, match=r"ImageSets/Main/minival\.txt' is missing.*'test', 'train', 'trainval', 'val'"):
        read_voc(root, "minival")


def test_duplicate_id_in_split(tmp_path: Path) -> None:
    root = tiny_voc(tmp_path)
    (root / "ImageSets" / "Main" / "val.txt").write_text("000002\n000004\n000002\n")
    with pytest.raises(DataError, match=r"val\.txt' lists image id '000002' twice"):
        read_voc(root, "val")


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_voc(tmp_path / "nope", "train")


def test_malformed_xml_names_file(tmp_path: Path) -> None:
    root = tiny_voc(tmp_path)
    (root / "Annotations" / "000004.xml").write_text("<annotation><size><width>3</width></annotation>")
    with pytest.raises(DataError, match=r"Annotations/000004\.xml' is not valid XML"):
        read_voc(root, "val")


def test_non_numeric_coordinate(tmp_path: Path) -> None:
    root = _one(tmp_path, [VocObject("dog", (1, 1, "ten", 5))])
    with pytest.raises(DataError, match=r"img\.xml' object 1 \('dog'\): <bndbox><xmax> is 'ten'"):
        read_voc(root, "train")


def test_float_coordinates_are_accepted(tmp_path: Path) -> None:
    rec = read_voc(_one(tmp_path, [VocObject("dog", ("2.0", "3.0", "12.0", "13.0"))]), "train")[0]
    np.testing.assert_array_equal(rec.boxes, [[1, 2, 12, 13]])


def test_object_without_name(tmp_path: Path) -> None:
    root = _one(tmp_path, [VocObject("", (1, 1, 5, 5))])
    with pytest.raises(DataError, match=r"img\.xml' object 1: <name> is missing"):
        read_voc(root, "train")


def test_data_error_is_one_line_user_error(tmp_path: Path) -> None:
    root = _one(tmp_path, [VocObject("dog", (1, 1, 99, 5))])
    with pytest.raises(UserError) as info:
        read_voc(root, "train")
    assert "\n" not in str(info.value)


def test_tiny_voc_images_show_the_annotated_objects(tmp_path: Path) -> None:
    """The fixture paints each object in its class colour (other tests rely on it): the record's continuous box
    covers exactly the painted pixels, and the image has the annotated size."""
    from tests.detection.fixtures import class_color
    from torchrepro.core.images import load_rgb

    rec = read_voc(tiny_voc(tmp_path), "train")[0]
    pixels = np.asarray(load_rgb(rec.image), dtype=np.int32)
    assert pixels.shape == (rec.height, rec.width, 3)
    x1, y1, x2, y2 = rec.boxes[0].astype(int)  # dog: (0, 0, 20, 30)
    inside = pixels[y1 + 1:y2 - 1, x1 + 1:x2 - 1].reshape(-1, 3).mean(0)
    assert np.abs(inside - class_color(int(rec.labels[0]))).max() < 8
    assert pixels[y1 + 1:y2 - 1, x2 + 1:27].max() < 16  # black right of the box, before the person
