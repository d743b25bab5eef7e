"""COCO instances-json reader on tiny files in the real COCO layout (tests/detection/fixtures.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.detection.fixtures import (
    CONTIGUOUS_CATEGORIES,
    GAPPED_CATEGORIES,
    coco_annotation,
    coco_image,
    tiny_coco,
    write_coco,
)
from torchrepro.core.errors import DataError
from torchrepro.detection.coco import CocoSplit, read_coco


def _edit(json_path: Path, edit) -> Path:
    """Apply ``edit(doc)`` to the json in place."""
    doc = json.loads(json_path.read_text())
    edit(doc)
    json_path.write_text(json.dumps(doc))
    return json_path


def test_read_coco_boxes_labels_crowd(tmp_path: Path) -> None:
    json_path, image_dir = tiny_coco(tmp_path)
    split = read_coco(json_path, image_dir)
    assert isinstance(split, CocoSplit)
    assert split.classes == ("person", "bicycle", "motorcycle") and split.category_ids == (1, 2, 3)
    assert [r.image_id for r in split.records] == ["42", "7", "9"]  # the json's image order
    r42, r7, r9 = split.records
    assert r42.image == image_dir / "000000000042.jpg" and (r42.width, r42.height) == (64, 48)
    # [x, y, w, h] -> (x, y, x + w, y + h), no "+1": COCO coordinates are continuous already
    np.testing.assert_array_equal(r42.boxes, [[10.5, 4.0, 30.5, 34.25], [0, 0, 8, 8]])
    assert r42.boxes.dtype == np.float32 and r42.labels.dtype == np.int64
    assert r42.labels.tolist() == [1, 2]
    assert r42.difficult.tolist() == [False, True]  # iscrowd -> difficult: the evaluation ignores it
    assert r42.truncated.tolist() == [False, False]
    np.testing.assert_array_equal(r7.boxes, [[5, 6, 40, 30]])  # touches the 40x30 border exactly: valid
    assert r7.labels.tolist() == [3]
    assert r9.num_objects == 0 and r9.boxes.shape == (0, 4)
    assert split.dropped == 0


def test_read_coco_drop_crowd_and_skip_empty(tmp_path: Path) -> None:
    split = read_coco(*tiny_coco(tmp_path), keep_crowd=False, skip_empty=True)
    assert [r.image_id for r in split.records] == ["42", "7"]
    assert split.records[0].labels.tolist() == [1] and split.records[0].difficult.tolist() == [False]


def test_gapped_category_ids_refused_by_default(tmp_path: Path) -> None:
    json_path, image_dir = tiny_coco(tmp_path, GAPPED_CATEGORIES)
    with pytest.raises(DataError, match=r"instances_val2017\.json': category ids are not 1\.\.3 .*missing 3.*"
                                        r"contiguous_ids=True"):
        read_coco(json_path, image_dir)


def test_gapped_category_ids_remapped_on_request(tmp_path: Path) -> None:
    split = read_coco(*tiny_coco(tmp_path, GAPPED_CATEGORIES), contiguous_ids=True)
    assert split.classes == ("person", "bicycle", "motorcycle")
    assert split.category_ids == (1, 2, 4)  # label 3 -> category id 4: the way back for a results file
    assert split.records[1].labels.tolist() == [3]  # annotation 3 has category_id 4


def test_ids_not_starting_at_one_are_a_gap(tmp_path: Path) -> None:
    cats = [{"id": 0, "name": "a"}, {"id": 1, "name": "b"}]
    json_path = write_coco(tmp_path / "a.json", tmp_path / "img", [coco_image(1, "1.jpg", 8, 8)], [], cats)
    with pytest.raises(DataError, match=r"not 1\.\.2 .*start at 0"):
        read_coco(json_path, tmp_path / "img")
    assert read_coco(json_path, tmp_path / "img", contiguous_ids=True).category_ids == (0, 1)


def test_official_style_gaps_message_is_bounded(tmp_path: Path) -> None:
    cats = [{"id": i, "name": f"c{i}"} for i in range(1, 91) if i % 9]  # 80 ids out of 1..90
    json_path = write_coco(tmp_path / "a.json", tmp_path / "img", [coco_image(1, "1.jpg", 8, 8)], [], cats)
    with pytest.raises(DataError, match=r"ids 1\.\.89 for 80 categories, missing 9, 18, 27, 36, 45, 54, 63, 72, 81\)"):
        read_coco(json_path, tmp_path / "img")


def test_annotation_whose_image_is_not_listed(tmp_path: Path) -> None:
    json_path, image_dir = tiny_coco(tmp_path)
    _edit(json_path, lambda d: d["annotations"].append(coco_annotation(99, 1234, 1, [1, 1, 2, 2])))
    with pytest.raises(DataError, match=r"instances_val2017\.json' annotations\[3\] \(id 99\) refers to image_id 1234"):
        read_coco(json_path, image_dir)


def test_image_file_missing(tmp_path: Path) -> None:
    json_path, image_dir = tiny_coco(tmp_path)
    (image_dir / "000000000007.jpg").unlink()
    with pytest.raises(DataError, match=r"images\[1\] \(id 7\): image file '.*val2017/000000000007\.jpg' is missing"):
        read_coco(json_path, image_dir)


def test_empty_image_list(tmp_path: Path) -> None:
    json_path = write_coco(tmp_path / "instances_x.json", None, [], [], CONTIGUOUS_CATEGORIES)
    with pytest.raises(DataError, match=r"instances_x\.json' has an empty 'images' list"):
        read_coco(json_path, tmp_path)


def test_unknown_category_id(tmp_path: Path) -> None:
    json_path, image_dir = tiny_coco(tmp_path)
    _edit(json_path, lambda d: d["annotations"][0].update(category_id=17))
    with pytest.raises(DataError, match=r"annotations\[0\] \(id 1\) has category_id 17"):
        read_coco(json_path, image_dir)


def test_malformed_json_names_file(tmp_path: Path) -> None:
    json_path, image_dir = tiny_coco(tmp_path)
    json_path.write_text(json_path.read_text()[:-20])
    with pytest.raises(DataError, match=r"instances_val2017\.json' is not valid JSON"):
        read_coco(json_path, image_dir)


def test_results_file_instead_of_instances(tmp_path: Path) -> None:
    path = tmp_path / "detections.json"
    path.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}]))
    with pytest.raises(DataError, match=r"detections\.json' holds a list"):
        read_coco(path, tmp_path)


def test_missing_json(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"instances_train2017\.json' is missing"):
        read_coco(tmp_path / "instances_train2017.json", tmp_path)


def _bad_box_set(tmp_path: Path) -> tuple[Path, Path]:
    """One 40x30 image: a good box, a zero-height box (as in train2017), one far outside, one within tolerance."""
    anns = [coco_annotation(1, 5, 1, [2, 2, 10, 10]), coco_annotation(2, 5, 2, [296.65 - 280, 10, 1.03, 0.0]),
            coco_annotation(3, 5, 1, [30, 20, 25, 5]), coco_annotation(4, 5, 3, [20, 10, 20.4, 20.3])]
    json_path = write_coco(tmp_path / "a.json", tmp_path / "img", [coco_image(5, "5.jpg", 40, 30)], anns,
                           CONTIGUOUS_CATEGORIES)
    return json_path, tmp_path / "img"


def test_bad_boxes_drop_is_the_coco_default(tmp_path: Path) -> None:
    split = read_coco(*_bad_box_set(tmp_path))
    rec = split.records[0]
    # box 4 overshoots by 0.4 / 0.3 px (within tolerance): clipped to the border, kept
    np.testing.assert_allclose(rec.boxes, [[2, 2, 12, 12], [20, 10, 40, 30]])
    assert rec.labels.tolist() == [1, 3] and split.dropped == 2


def test_bad_boxes_clip(tmp_path: Path) -> None:
    split = read_coco(*_bad_box_set(tmp_path), bad_boxes="clip")
    rec = split.records[0]
    # box 3 (30, 20, 55, 25) is clipped to (30, 20, 40, 25); the zero-height box stays empty: dropped
    np.testing.assert_allclose(rec.boxes, [[2, 2, 12, 12], [30, 20, 40, 25], [20, 10, 40, 30]])
    assert rec.labels.tolist() == [1, 1, 3] and split.dropped == 1


def test_bad_boxes_error_names_annotation(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"a\.json' annotations\[1\] \(image_id 5, bbox.*is empty.*bad_boxes='drop'"):
        read_coco(*_bad_box_set(tmp_path), bad_boxes="error")


def test_duplicate_category_names(tmp_path: Path) -> None:
    cats = [{"id": 1, "name": "car"}, {"id": 2, "name": "car"}]
    json_path = write_coco(tmp_path / "a.json", tmp_path / "img", [coco_image(1, "1.jpg", 8, 8)], [], cats)
    with pytest.raises(DataError, match=r"several categories named \['car'\]"):
        read_coco(json_path, tmp_path / "img")
