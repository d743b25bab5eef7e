"""Writers of tiny detection data sets in exactly the real on-disk layouts (Pascal VOC, COCO instances json).

Images are painted: each object's box is filled with a colour of its class (:func:`class_color`) on a black
background, so a test can check that boxes still cover their objects after a transform, and a model can
actually learn the set. VOC coordinates are given as written in the XML (1-based inclusive); COCO's as
``[x, y, w, h]`` continuous.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from PIL import Image

#: Five distinct colours; class k (1-based) gets PALETTE[(k - 1) % 5].
PALETTE: tuple[tuple[int, int, int], ...] = ((230, 30, 30), (30, 220, 30), (40, 60, 240), (240, 220, 20), (220, 40, 220))


def class_color(label: int) -> tuple[int, int, int]:
    """The fill colour of objects of 1-based ``label`` in the fixture images."""
    return PALETTE[(label - 1) % len(PALETTE)]


def write_image(path: Path, width: int, height: int,
                boxes: Sequence[Sequence[float]] = (), labels: Sequence[int] = ()) -> Path:
    """A black ``width`` × ``height`` image with each continuous box ``(x1, y1, x2, y2)`` filled in its label's
    colour (pixels ``x1 .. x2 - 1``); saved as JPEG (quality 95) or PNG by the suffix of ``path``."""
    pixels = np.zeros((height, width, 3), np.uint8)
    for (x1, y1, x2, y2), label in zip(boxes, labels):
        pixels[int(y1):int(y2), int(x1):int(x2)] = class_color(label)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, **({"quality": 95} if path.suffix.lower() in (".jpg", ".jpeg") else {}))
    return path


@dataclass
class VocObject:
    """One ``<object>``: ``bndbox`` as written (1-based inclusive xmin, ymin, xmax, ymax; strings allowed for
    malformed values). ``difficult``/``truncated`` None: the element is left out."""

    name: str
    bndbox: tuple[Any, Any, Any, Any]
    difficult: int | None = 0
    truncated: int | None = 0


@dataclass
class VocImage:
    width: int
    height: int
    objects: list[VocObject] = field(default_factory=list)
    ext: str = ".jpg"
    write_size: bool = True  # False: no <size> element (the reader then decodes the image)


def write_voc_annotation(path: Path, image_id: str, image: VocImage) -> Path:
    """``Annotations/<id>.xml`` as the VOC devkit writes it (folder, filename, source, size, segmented, objects)."""
    ann = ET.Element("annotation")
    ET.SubElement(ann, "folder").text = "VOC2007"
    ET.SubElement(ann, "filename").text = image_id + image.ext
    source = ET.SubElement(ann, "source")
    ET.SubElement(source, "database").text = "The VOC2007 Database"
    ET.SubElement(source, "annotation").text = "PASCAL VOC2007"
    if image.write_size:
        size = ET.SubElement(ann, "size")
        ET.SubElement(size, "width").text = str(image.width)
        ET.SubElement(size, "height").text = str(image.height)
        ET.SubElement(size, "depth").text = "3"
    ET.SubElement(ann, "segmented").text = "0"
    for obj in image.objects:
        o = ET.SubElement(ann, "object")
        ET.SubElement(o, "name").text = obj.name
        ET.SubElement(o, "pose").text = "Unspecified"
        if obj.truncated is not None:
            ET.SubElement(o, "truncated").text = str(obj.truncated)
        if obj.difficult is not None:
            ET.SubElement(o, "difficult").text = str(obj.difficult)
        box = ET.SubElement(o, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), obj.bndbox):
            ET.SubElement(box, tag).text = str(value)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.indent(ann, space="\t")
    ET.ElementTree(ann).write(path, encoding="utf-8")
    return path


def write_voc(root: Path, images: Mapping[str, VocImage], splits: Mapping[str, Sequence[str]],
              classes: Sequence[str]) -> Path:
    """A VOC20xx folder: ``JPEGImages/<id><ext>`` (painted, objects of known classes only), ``Annotations/<id>.xml``,
    ``ImageSets/Main/<split>.txt``. Returns ``root``."""
    index = {name: k + 1 for k, name in enumerate(classes)}
    for image_id, image in images.items():
        boxes, labels = [], []
        for obj in image.objects:
            try:
                xmin, ymin, xmax, ymax = (float(v) for v in obj.bndbox)
            except (TypeError, ValueError):
                continue
            if obj.name in index:
                boxes.append((xmin - 1, ymin - 1, xmax, ymax))
                labels.append(index[obj.name])
        write_image(root / "JPEGImages" / f"{image_id}{image.ext}", image.width, image.height, boxes, labels)
        write_voc_annotation(root / "Annotations" / f"{image_id}.xml", image_id, image)
    main = root / "ImageSets" / "Main"
    main.mkdir(parents=True, exist_ok=True)
    for split, ids in splits.items():
        (main / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return root


#: The standard tiny VOC set: ids → images. 000003 is a PNG; 000004 has no objects.
TINY_VOC: dict[str, VocImage] = {
    "000001": VocImage(64, 48, [VocObject("dog", (1, 1, 20, 30)), VocObject("person", (30, 5, 64, 48), difficult=1)]),
    "000002": VocImage(50, 40, [VocObject("car", (5, 6, 25, 20), truncated=1)]),
    "000003": VocImage(40, 40, [VocObject("bicycle", (10, 10, 10, 10)), VocObject("car", (2, 3, 38, 39))], ext=".png"),
    "000004": VocImage(32, 32, []),
}
TINY_VOC_SPLITS: dict[str, list[str]] = {
    "train": ["000001", "000003"], "val": ["000002", "000004"],
    "trainval": ["000001", "000002", "000003", "000004"], "test": ["000002"],
}


def tiny_voc(root: Path, classes: Sequence[str] | None = None) -> Path:
    """Write :data:`TINY_VOC` with :data:`TINY_VOC_SPLITS` under ``root`` (VOC class names by default)."""
    from torchrepro.detection.voc import VOC_CLASSES

    return write_voc(root, TINY_VOC, TINY_VOC_SPLITS, classes or VOC_CLASSES)


def coco_image(image_id: int, file_name: str, width: int, height: int) -> dict[str, Any]:
    """An ``images`` entry with the fields of the official files."""
    return {"id": image_id, "file_name": file_name, "width": width, "height": height, "license": 1,
            "coco_url": "", "date_captured": "2013-11-14 11:18:45", "flickr_url": ""}


def coco_annotation(ann_id: int, image_id: int, category_id: int, bbox: Sequence[float],
                    iscrowd: int = 0) -> dict[str, Any]:
    """An ``annotations`` entry: ``bbox`` [x, y, w, h]; a rectangle polygon as segmentation, area w·h."""
    x, y, w, h = bbox
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "bbox": list(bbox), "iscrowd": iscrowd,
            "area": w * h, "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]]}


def write_coco(json_path: Path, image_dir: Path | None, images: Sequence[dict[str, Any]],
               annotations: Sequence[dict[str, Any]], categories: Sequence[dict[str, Any]]) -> Path:
    """``annotations/instances_<split>.json`` with ``info``, ``licenses``, ``images``, ``annotations``,
    ``categories``; and, unless ``image_dir`` is None, every listed image painted into ``image_dir``."""
    if image_dir is not None:
        colours = {c["id"]: k + 1 for k, c in enumerate(sorted(categories, key=lambda c: c["id"]))}
        for img in images:
            anns = [a for a in annotations if a["image_id"] == img["id"] and a["category_id"] in colours]
            boxes = [(a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]) for a in anns]
            write_image(image_dir / img["file_name"], img["width"], img["height"], boxes,
                        [colours[a["category_id"]] for a in anns])
    doc = {"info": {"description": "tiny test set", "version": "1.0", "year": 2017},
           "licenses": [{"id": 1, "name": "test", "url": ""}],
           "images": list(images), "annotations": list(annotations), "categories": list(categories)}
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(doc))
    return json_path


#: Categories with COCO's kind of gap (ids 1, 2, 4: id 3 unused), and the same names numbered 1..3.
GAPPED_CATEGORIES = [{"id": 1, "name": "person", "supercategory": "person"},
                     {"id": 2, "name": "bicycle", "supercategory": "vehicle"},
                     {"id": 4, "name": "motorcycle", "supercategory": "vehicle"}]
CONTIGUOUS_CATEGORIES = [{"id": 1, "name": "person", "supercategory": "person"},
                         {"id": 2, "name": "bicycle", "supercategory": "vehicle"},
                         {"id": 3, "name": "motorcycle", "supercategory": "vehicle"}]


def tiny_coco(root: Path, categories: Sequence[dict[str, Any]] = CONTIGUOUS_CATEGORIES) -> tuple[Path, Path]:
    """``root/annotations/instances_val2017.json`` + ``root/val2017/*.jpg``: three images (the third without
    annotations), one crowd box. Returns (json, image folder). The last category is used by annotation 3."""
    last = max(c["id"] for c in categories)
    images = [coco_image(42, "000000000042.jpg", 64, 48), coco_image(7, "000000000007.jpg", 40, 30),
              coco_image(9, "000000000009.jpg", 32, 32)]
    annotations = [coco_annotation(1, 42, 1, [10.5, 4.0, 20.0, 30.25]),
                   coco_annotation(2, 42, 2, [0.0, 0.0, 8.0, 8.0], iscrowd=1),
                   coco_annotation(3, 7, last, [5.0, 6.0, 35.0, 24.0])]
    image_dir = root / "val2017"
    json_path = write_coco(root / "annotations" / "instances_val2017.json", image_dir, images, annotations, categories)
    return json_path, image_dir
