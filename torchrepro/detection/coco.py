"""COCO reader: ``instances_<split>.json`` (``images``, ``annotations``, ``categories``) + an image folder.

Boxes: COCO's ``bbox`` is ``[x, y, w, h]`` in continuous pixel coordinates already (no 1-based "+1" as in
VOC), so a record box is ``(x, y, x + w, y + h)``.

Labels: a record's labels must run ``1..C`` (0 is the background). When the json's category ids are exactly
``1..C`` the label *is* the category id, and detections map back to category ids (for a results file or
pycocotools) with no table at all. A json whose ids have gaps is refused by default: silently renumbering would
make label ``k`` mean a different category than the json's id ``k``, and a results file written with labels as
ids would then be scored against the wrong classes. The official COCO files *do* have gaps (80 categories with
ids 1..90), so ``contiguous_ids=True`` is the explicit way in: sorted ids are remapped to ``1..C`` and
:attr:`CocoSplit.category_ids` holds the way back (label ``l`` → ``category_ids[l - 1]``).

Crowd: ``iscrowd: 1`` annotations (one box around a group of objects) are kept and flagged in the record's
``difficult`` field: COCO's evaluation treats them as regions to ignore, like VOC's difficult objects, and
training should not use them as positives. ``keep_crowd=False`` drops them. COCO has no truncation flag:
``truncated`` is all False.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from torchrepro.core.errors import DataError
from torchrepro.detection.records import BadBoxes, DetectionRecord, check_boxes, empty_record_arrays

__all__ = ["CocoSplit", "read_coco", "COCO_BOX_TOLERANCE"]

#: COCO boxes are floats derived from polygons; an overshoot of the image border up to this many pixels is
#: rounding and is clipped silently in every ``bad_boxes`` mode.
COCO_BOX_TOLERANCE = 1.0


@dataclass(frozen=True)
class CocoSplit:
    """The records of one json plus its class table.

    ``classes[l - 1]`` is the name of label ``l``; ``category_ids[l - 1]`` its id in the json (equal to ``l``
    unless the json had gaps and was read with ``contiguous_ids=True``). ``dropped``: boxes dropped by
    ``bad_boxes='drop'``/``'clip'`` (report it: the data set lost them).
    """

    records: list[DetectionRecord]
    classes: tuple[str, ...]
    category_ids: tuple[int, ...]
    dropped: int = 0


def _load_json(path: Path) -> dict[str, Any]:
    """Parse the annotation file, with a DataError that names it on any failure."""
    try:
        with open(path, "rb") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise DataError(f"COCO annotation file '{path}' is missing: point the config at the instances_<split>.json "
                        f"file (under annotations/ in the COCO download)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"COCO annotation file '{path}' is not valid JSON ({err}): fix or download it again") from None
    except OSError as err:
        raise DataError(f"COCO annotation file '{path}' cannot be read ({type(err).__name__}): replace the file") from None
    if not isinstance(data, dict):
        raise DataError(f"COCO annotation file '{path}' holds a {type(data).__name__}, not an object with "
                        f"'images', 'annotations' and 'categories': is it a results file? give an instances_*.json")
    for key in ("images", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(f"COCO annotation file '{path}' has no '{key}' list: give an instances_*.json file")
    if not isinstance(data.get("annotations", []), list):
        raise DataError(f"COCO annotation file '{path}': 'annotations' is not a list: give an instances_*.json file")
    return data


def _category_table(path: Path, categories: list[Any], contiguous_ids: bool) -> tuple[dict[int, int], list[str], list[int]]:
    """category id → label, and the names / ids in label order. Refuses gaps unless ``contiguous_ids``."""
    by_id: dict[int, str] = {}
    for k, cat in enumerate(categories):
        try:
            cid, name = int(cat["id"]), str(cat["name"])
        except (KeyError, TypeError, ValueError):
            raise DataError(f"COCO annotation file '{path}' categories[{k}] needs an integer 'id' and a 'name': "
                            f"fix the category entry") from None
        if cid in by_id:
            raise DataError(f"COCO annotation file '{path}' categories[{k}] repeats category id {cid}: "
                            f"give each category its own id")
        by_id[cid] = name
    if not by_id:
        raise DataError(f"COCO annotation file '{path}' has an empty 'categories' list: list the object classes")
    ids = sorted(by_id)
    if ids != list(range(1, len(ids) + 1)) and not contiguous_ids:
        missing = sorted(set(range(1, ids[-1] + 1)) - set(ids))
        shown = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
        detail = f"missing {shown}" if missing else f"they start at {ids[0]}"
        raise DataError(
            f"COCO annotation file '{path}': category ids are not 1..{len(ids)} (ids {ids[0]}..{ids[-1]} for "
            f"{len(ids)} categories, {detail}); labels must be 1..C, so renumber the categories, or read with "
            f"contiguous_ids=True to map the sorted ids to 1..{len(ids)} (the official COCO files need it)"
        )
    names = [by_id[cid] for cid in ids]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"COCO annotation file '{path}' has several categories named {dup}: give each class one name")
    return {cid: label for label, cid in enumerate(ids, start=1)}, names, ids


def _image_table(path: Path, images: list[Any], image_dir: Path) -> dict[Any, dict[str, Any]]:
    """image id → {file, width, height}, in file order; every image must exist in ``image_dir``."""
    if not images:
        raise DataError(f"COCO annotation file '{path}' has an empty 'images' list: nothing to read; "
                        f"check that this is the right split's file")
    present = {e.name for e in os.scandir(image_dir)} if image_dir.is_dir() else set()
    table: dict[Any, dict[str, Any]] = {}
    for k, img in enumerate(images):
        try:
            iid, file_name = img["id"], str(img["file_name"])
            width, height = int(img["width"]), int(img["height"])
        except (KeyError, TypeError, ValueError):
            raise DataError(f"COCO annotation file '{path}' images[{k}] needs 'id', 'file_name', 'width' and "
                            f"'height': fix the image entry") from None
        if iid in table:
            raise DataError(f"COCO annotation file '{path}' images[{k}] repeats image id {iid}: give each image its own id")
        if width <= 0 or height <= 0:
            raise DataError(f"COCO annotation file '{path}' images[{k}] ('{file_name}') has size {width}x{height}: "
                            f"write the image's real width and height")
        file = image_dir / file_name
        # One listing of the folder instead of a stat per image (118k images in train2017).
        if not (file_name in present or ("/" in file_name and file.is_file())):
            raise DataError(f"COCO annotation file '{path}' images[{k}] (id {iid}): image file '{file}' is missing; "
                            f"point the image folder at the right split (e.g. train2017/) or add the file")
        table[iid] = {"file": file, "width": width, "height": height}
    return table


def read_coco(
    annotation_json: Path | str,
    image_dir: Path | str,
    contiguous_ids: bool = False,
    keep_crowd: bool = True,
    skip_empty: bool = False,
    bad_boxes: BadBoxes = "drop",
) -> CocoSplit:
    """Read a COCO ``instances_*.json`` whose images are in ``image_dir``; records in the json's image order.

    ``contiguous_ids``: remap sorted category ids with gaps to 1..C (see the module docstring: needed for the
    official files, refused otherwise). ``keep_crowd``: keep ``iscrowd`` boxes, flagged ``difficult``.
    ``skip_empty``: leave out images without any (kept) annotation (1021 of train2017's images have none).
    ``bad_boxes``: for a box outside its image (beyond :data:`COCO_BOX_TOLERANCE`) or with w/h <= 0. The default
    is ``drop``, not ``error`` as for VOC, because the official train2017 file itself holds two boxes of height 0
    (cocoapi issue #355); the count is in :attr:`CocoSplit.dropped`. ``error`` names the annotation.
    """
    path, image_dir = Path(annotation_json), Path(image_dir)
    data = _load_json(path)
    cat_to_label, names, ids = _category_table(path, data["categories"], contiguous_ids)
    images = _image_table(path, data["images"], image_dir)

    per_image: dict[Any, list[tuple[int, list[float], int, bool]]] = {iid: [] for iid in images}
    for k, ann in enumerate(data.get("annotations", [])):
        where = f"COCO annotation file '{path}' annotations[{k}] (id {ann.get('id') if isinstance(ann, dict) else '?'})"
        try:
            iid, cid, bbox = ann["image_id"], int(ann["category_id"]), [float(v) for v in ann["bbox"]]
            crowd = bool(int(ann.get("iscrowd", 0)))
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{where} needs 'image_id', 'category_id' and a numeric 'bbox' [x, y, w, h]: "
                            f"fix the annotation") from None
        if len(bbox) != 4 or not np.isfinite(bbox).all():
            raise DataError(f"{where}: bbox {bbox} is not 4 finite numbers [x, y, w, h]; fix the annotation")
        if iid not in per_image:
            raise DataError(f"{where} refers to image_id {iid}, which is not in 'images': add the image entry "
                            f"or remove the annotation")
        if cid not in cat_to_label:
            raise DataError(f"{where} has category_id {cid}, which is not in 'categories' (ids {ids[0]}..{ids[-1]}): "
                            f"fix the annotation or add the category")
        if crowd and not keep_crowd:
            continue
        per_image[iid].append((k, bbox, cat_to_label[cid], crowd))

    records, dropped = [], 0
    for iid, anns in per_image.items():
        rec, n_dropped = _record(path, iid, images[iid], anns, bad_boxes)
        dropped += n_dropped
        if rec.num_objects or not skip_empty:
            records.append(rec)
    if not records:
        raise DataError(f"COCO annotation file '{path}' leaves no image with annotations (skip_empty=True): "
                        f"check the file, or read with skip_empty=False")
    return CocoSplit(records=records, classes=tuple(names), category_ids=tuple(ids), dropped=dropped)


def _record(path: Path, iid: Any, img: dict[str, Any], anns: list[tuple[int, list[float], int, bool]],
            bad_boxes: BadBoxes) -> tuple[DetectionRecord, int]:
    """One image's record and the number of its boxes that ``bad_boxes`` dropped."""
    common = dict(image=img["file"], width=img["width"], height=img["height"], image_id=str(iid))
    if not anns:
        return DetectionRecord(**common, **empty_record_arrays()), 0
    xywh = np.array([a[1] for a in anns], np.float64)
    boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1).astype(np.float32)

    def describe(i: int) -> str:
        return (f"COCO annotation file '{path}' annotations[{anns[i][0]}] (image_id {iid}, "
                f"bbox [x, y, w, h] = {anns[i][1]})")

    boxes, keep = check_boxes(boxes, img["width"], img["height"], bad_boxes, describe, tolerance=COCO_BOX_TOLERANCE)
    return DetectionRecord(
        **common,
        boxes=np.ascontiguousarray(boxes[keep]),
        labels=np.array([a[2] for a in anns], np.int64)[keep],
        difficult=np.array([a[3] for a in anns], bool)[keep],
        truncated=np.zeros(int(keep.sum()), bool),
    ), int((~keep).sum())
