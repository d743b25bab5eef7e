"""Pascal VOC reader: ``ImageSets/Main/<split>.txt`` → ``Annotations/<id>.xml`` + ``JPEGImages/<id>.jpg``.

Layout (VOC2007 / VOC2012 ``VOCdevkit/VOC20xx``, or a synthetic set written in the same format)::

    root/ImageSets/Main/{train,val,trainval,test}.txt   one image id per line
    root/Annotations/<id>.xml                           <size>, <object>s with <name>, <difficult>,
                                                        <truncated>, <bndbox> (xmin, ymin, xmax, ymax)
    root/JPEGImages/<id>.jpg                            (.png, and the other IMAGE_EXTENSIONS, accepted)

Coordinates: VOC's ``bndbox`` values are 1-based *inclusive* pixel indices (a box covering only the first pixel
is ``xmin = xmax = 1``). We convert them to continuous coordinates as ``(xmin - 1, ymin - 1, xmax, ymax)``: the
box then spans ``xmax - xmin + 1`` pixels as a plain ``x2 - x1``, so an IoU computed without "+1" on our boxes
equals the VOC devkit's IoU computed with "+1" on the raw values (py-faster-rcnn ``voc_eval`` does the same
"+1"). Evaluation code must therefore *not* add 1 again.

The 07+12 training set of SSD (Liu et al., ECCV 2016, §3.2) is ``read_voc(voc2007, "trainval") +
read_voc(voc2012, "trainval")``: ids of the two years never collide.

Writing (for generators of synthetic sets in this format): :func:`write_voc_annotation` writes one XML as the
VOC2007 devkit's ``Annotations/*.xml`` are laid out, with :func:`voc_bndbox` turning a continuous box into the
1-based inclusive integers that the reader's conversion maps back exactly; :func:`write_split_file` writes
``ImageSets/Main/<split>.txt``.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET  # local annotation files the user chose, not untrusted network input
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from torchrepro.core.errors import ConfigError, DataError
from torchrepro.core.images import IMAGE_EXTENSIONS, load_rgb
from torchrepro.detection.records import BadBoxes, DetectionRecord, check_boxes, empty_record_arrays

__all__ = ["VOC_CLASSES", "CLASSES_KEY", "VocObject", "read_voc", "read_voc_annotation", "read_split_ids",
           "voc_bndbox", "write_split_file", "write_voc_annotation"]

#: The 20 Pascal VOC classes in the devkit's order; label ``k + 1`` is ``VOC_CLASSES[k]``.
VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
#: The config key that sets the class names, quoted in error messages.
CLASSES_KEY = "data.classes"


def read_split_ids(root: Path, split: str) -> list[str]:
    """The image ids of ``root/ImageSets/Main/<split>.txt`` (first token of each non-blank line, file order)."""
    path = Path(root) / "ImageSets" / "Main" / f"{split}.txt"
    if not path.is_file():
        folder = path.parent
        have = sorted(p.stem for p in folder.glob("*.txt") if "_" not in p.stem) if folder.is_dir() else []
        raise DataError(
            f"VOC split file '{path}' is missing (split '{split}'; split files there: {have or 'none'}): "
            f"point the data root at the VOC20xx folder or choose an existing split"
        )
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"VOC split file '{path}' cannot be read ({type(err).__name__}): replace the file") from None
    # Per-class files (aeroplane_train.txt) carry "<id> <±1>"; Main/<split>.txt has one column. Take the id.
    ids = [line.split()[0] for line in lines if line.strip()]
    if not ids:
        raise DataError(f"VOC split file '{path}' lists no image ids: write one id per line, or choose another split")
    seen: set[str] = set()
    for image_id in ids:
        if image_id in seen:
            # A repeated id would be trained on twice and counted twice by the evaluation.
            raise DataError(f"VOC split file '{path}' lists image id '{image_id}' twice: remove the duplicate line")
        seen.add(image_id)
    return ids


def _text(elem: ET.Element | None, tag: str) -> str | None:
    """Stripped text of ``elem/<tag>``, or None when the element or its text is absent."""
    child = None if elem is None else elem.find(tag)
    return None if child is None or child.text is None else child.text.strip()


def _flag(obj: ET.Element, tag: str, where: str) -> bool:
    """A 0/1 flag (``difficult``, ``truncated``); absent means 0, as in the VOC2012 test annotations."""
    text = _text(obj, tag)
    if text is None or text == "":
        return False
    try:
        return bool(int(float(text)))
    except ValueError:
        raise DataError(f"{where}: <{tag}> is '{text}', expected 0 or 1; fix the annotation") from None


def _find_image(images: dict[str, Path], image_id: str, filename: str | None) -> Path | None:
    """``JPEGImages/<id><ext>`` for the first accepted extension, else the XML's ``<filename>``."""
    for ext in IMAGE_EXTENSIONS:
        if image_id + ext in images:
            return images[image_id + ext]
    if filename and filename in images:
        return images[filename]
    return None


def _list_images(folder: Path) -> dict[str, Path]:
    """File name → path of the images in ``folder``: one directory listing instead of a stat per candidate."""
    if not folder.is_dir():
        return {}
    return {e.name: Path(e.path) for e in os.scandir(folder) if e.name.lower().endswith(IMAGE_EXTENSIONS)}


def read_voc_annotation(
    xml_path: Path,
    image_id: str,
    images: dict[str, Path],
    classes: Sequence[str] = VOC_CLASSES,
    keep_difficult: bool = True,
    bad_boxes: BadBoxes = "error",
) -> DetectionRecord:
    """Parse one VOC XML into a record; ``images`` maps file names in ``JPEGImages`` to their paths.

    Every object is checked (class name, coordinates, flags) before ``keep_difficult=False`` drops the difficult
    ones: a broken annotation is reported even where it would not be used.
    """
    xml_path = Path(xml_path)
    try:
        tree = ET.parse(xml_path)
    except FileNotFoundError:
        raise DataError(f"VOC annotation '{xml_path}' is missing for image id '{image_id}': add it, "
                        f"or remove the id from the split file") from None
    except ET.ParseError as err:
        raise DataError(f"VOC annotation '{xml_path}' is not valid XML ({err}): fix or replace the file") from None
    except OSError as err:
        raise DataError(f"VOC annotation '{xml_path}' cannot be read ({type(err).__name__}): replace the file") from None
    root = tree.getroot()

    image = _find_image(images, image_id, _text(root, "filename"))
    if image is None:
        raise DataError(
            f"VOC annotation '{xml_path}' has no image: expected JPEGImages/{image_id}.jpg (or "
            f"{', '.join(IMAGE_EXTENSIONS[1:])}) beside Annotations/; add the image or remove '{image_id}' from the split"
        )
    width, height = _image_size(root, xml_path, image)

    class_index = {name: k + 1 for k, name in enumerate(classes)}
    rows, labels, difficult, truncated = [], [], [], []
    names: list[str] = []
    for k, obj in enumerate(root.findall("object")):
        where = f"VOC annotation '{xml_path}' object {k + 1}"
        name = _text(obj, "name")
        if not name:
            raise DataError(f"{where}: <name> is missing or empty; give the object its class name")
        where += f" ('{name}')"
        if name not in class_index:
            raise DataError(
                f"{where}: class '{name}' is not one of the {len(classes)} known classes "
                f"({', '.join(classes)}); set {CLASSES_KEY} to this data set's class names"
            )
        rows.append(_bndbox(obj, where))
        names.append(name)
        labels.append(class_index[name])
        difficult.append(_flag(obj, "difficult", where))
        truncated.append(_flag(obj, "truncated", where))

    if not rows:
        return DetectionRecord(image=image, width=width, height=height, image_id=image_id, **empty_record_arrays())
    raw = np.array(rows, np.float64)
    # 1-based inclusive pixel indices -> continuous coordinates (see the module docstring).
    boxes = (raw - np.array([1.0, 1.0, 0.0, 0.0])).astype(np.float32)

    def describe(i: int) -> str:
        xmin, ymin, xmax, ymax = (f"{v:g}" for v in raw[i])
        return (f"VOC annotation '{xml_path}' object {i + 1} ('{names[i]}', bndbox xmin={xmin} ymin={ymin} "
                f"xmax={xmax} ymax={ymax}, 1-based)")

    boxes, keep = check_boxes(boxes, width, height, bad_boxes, describe)
    difficult_arr = np.array(difficult, bool)
    if not keep_difficult:
        keep &= ~difficult_arr
    return DetectionRecord(
        image=image, width=width, height=height, image_id=image_id,
        boxes=np.ascontiguousarray(boxes[keep]),
        labels=np.array(labels, np.int64)[keep],
        difficult=difficult_arr[keep],
        truncated=np.array(truncated, bool)[keep],
    )


def _bndbox(obj: ET.Element, where: str) -> list[float]:
    """The raw ``xmin, ymin, xmax, ymax`` of an object (VOC2012 has a few written as floats, hence float)."""
    box = obj.find("bndbox")
    if box is None:
        raise DataError(f"{where}: <bndbox> is missing; add xmin, ymin, xmax, ymax or remove the object")
    values = []
    for tag in ("xmin", "ymin", "xmax", "ymax"):
        text = _text(box, tag)
        try:
            value = float(text)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise DataError(f"{where}: <bndbox><{tag}> is {text!r}, not a number; fix the annotation") from None
        if not np.isfinite(value):
            raise DataError(f"{where}: <bndbox><{tag}> is {text!r}, not a finite number; fix the annotation")
        values.append(value)
    return values


def _image_size(root: ET.Element, xml_path: Path, image: Path) -> tuple[int, int]:
    """``<size>`` (width, height); when it is absent or zero, the image's own size (decoding it: rare)."""
    size = root.find("size")
    texts = (_text(size, "width"), _text(size, "height"))
    try:
        width, height = (int(float(t)) for t in texts)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        width = height = 0
    if width > 0 and height > 0:
        return width, height
    img = load_rgb(image)
    assert img is not None
    return img.size


def read_voc(
    root: Path | str,
    split: str,
    classes: Sequence[str] = VOC_CLASSES,
    keep_difficult: bool = True,
    bad_boxes: BadBoxes = "error",
) -> list[DetectionRecord]:
    """Read the records of ``split`` (``root/ImageSets/Main/<split>.txt``), in the split file's order.

    ``classes``: the class names; an object's label is its 1-based position in this list (default: the 20 VOC
    classes). ``keep_difficult``: keep objects marked ``<difficult>1`` (flagged in ``record.difficult``, which the
    VOC evaluation ignores); False drops them. ``bad_boxes``: what to do with a box outside the image or empty —
    ``error`` (default: the message names the file and the object), ``clip``, ``drop``
    (:func:`torchrepro.detection.records.check_boxes`). Images without objects are kept (no boxes).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"VOC data root '{root}' does not exist: point it at the VOC20xx folder "
                        f"(the one holding Annotations/, ImageSets/ and JPEGImages/)")
    if len(set(classes)) != len(classes) or not classes:
        raise ConfigError(f"{CLASSES_KEY} must list distinct class names, got {list(classes)}")
    ids = read_split_ids(root, split)
    images = _list_images(root / "JPEGImages")
    return [
        read_voc_annotation(root / "Annotations" / f"{image_id}.xml", image_id, images, classes,
                            keep_difficult, bad_boxes)
        for image_id in ids
    ]


# --------------------------------------------------------------------------
# Writing (the synthetic generators write the real format through these)
# --------------------------------------------------------------------------

#: Continuous coordinates within this distance of an integer are snapped to it before rounding outwards, so that a
#: pixel-aligned box carried through float32 (12.000000477) does not grow by a pixel.
_SNAP = 1e-4


@dataclass(frozen=True)
class VocObject:
    """One ``<object>`` to write: its class name, continuous box ``(x1, y1, x2, y2)`` and the two flags."""

    name: str
    box: tuple[float, float, float, float]
    truncated: bool = False
    difficult: bool = False


def voc_bndbox(box: Sequence[float]) -> tuple[int, int, int, int]:
    """The VOC ``bndbox`` (1-based inclusive ``xmin, ymin, xmax, ymax``) of a continuous box ``(x1, y1, x2, y2)``.

    ``xmin = floor(x1) + 1``, ``xmax = ceil(x2)`` (same for y): the pixels the box touches. The reader maps it back
    to ``(xmin - 1, ymin - 1, xmax, ymax) = (floor(x1), floor(y1), ceil(x2), ceil(y2))``, so a pixel-aligned
    (integer) box survives the round trip exactly and any other box becomes the smallest pixel-aligned box
    holding it.
    """
    x1, y1, x2, y2 = (float(v) for v in box)

    def snap(v: float) -> float:
        r = round(v)
        return float(r) if abs(v - r) < _SNAP else v

    return (math.floor(snap(x1)) + 1, math.floor(snap(y1)) + 1, math.ceil(snap(x2)), math.ceil(snap(y2)))


def write_voc_annotation(
    path: Path,
    image_id: str,
    width: int,
    height: int,
    objects: Sequence[VocObject],
    *,
    folder: str = "VOC2007",
    image_ext: str = ".jpg",
    database: str = "torchrepro synthetic",
    depth: int = 3,
) -> Path:
    """Write ``Annotations/<id>.xml`` with the elements of the VOC devkit's annotations; returns ``path``.

    ``<annotation>``: ``<folder>``, ``<filename>`` (``<id><image_ext>``), ``<source><database>``, ``<size>``
    (``<width>``, ``<height>``, ``<depth>``), ``<segmented>0``, then per object ``<name>``,
    ``<pose>Unspecified``, ``<truncated>``, ``<difficult>`` and ``<bndbox>`` (:func:`voc_bndbox`: 1-based
    inclusive integers, as in the VOC2007 devkit's ``Annotations/*.xml``). Tab-indented, no XML declaration
    (as the devkit's files), UTF-8; the bytes depend on the arguments only.
    """
    ann = ET.Element("annotation")
    ET.SubElement(ann, "folder").text = folder
    ET.SubElement(ann, "filename").text = image_id + image_ext
    ET.SubElement(ET.SubElement(ann, "source"), "database").text = database
    size = ET.SubElement(ann, "size")
    for tag, value in (("width", width), ("height", height), ("depth", depth)):
        ET.SubElement(size, tag).text = str(int(value))
    ET.SubElement(ann, "segmented").text = "0"
    for obj in objects:
        o = ET.SubElement(ann, "object")
        ET.SubElement(o, "name").text = obj.name
        ET.SubElement(o, "pose").text = "Unspecified"
        ET.SubElement(o, "truncated").text = str(int(bool(obj.truncated)))
        ET.SubElement(o, "difficult").text = str(int(bool(obj.difficult)))
        bndbox = ET.SubElement(o, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), voc_bndbox(obj.box)):
            ET.SubElement(bndbox, tag).text = str(value)
    ET.indent(ann, space="\t")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(ET.tostring(ann, encoding="unicode") + "\n", encoding="utf-8")
    return path


def write_split_file(root: Path, split: str, ids: Sequence[str]) -> Path:
    """Write ``root/ImageSets/Main/<split>.txt``, one image id per line (the file :func:`read_split_ids` reads)."""
    if len(set(ids)) != len(ids):
        raise ValueError(f"split '{split}' lists an image id twice")
    path = Path(root) / "ImageSets" / "Main" / f"{split}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{image_id}\n" for image_id in ids))
    return path
