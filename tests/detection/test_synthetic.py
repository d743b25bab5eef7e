"""Tests for the synthetic road-object set (torchrepro.detection.synthetic) and the VOC writer it uses."""

from __future__ import annotations

import dataclasses
import math
import os
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from torchrepro.core.generated import read_stamp
from torchrepro.detection import synthetic
from torchrepro.detection.synthetic import (
    ROAD_CLASSES,
    SPLITS,
    VISIBLE_EPS,
    RoadObject,
    RoadObjectScene,
    generate_road_voc,
    object_shapes,
    render_object_mask,
    render_scene,
    sample_scene,
    scene_rng,
)
from torchrepro.detection.voc import (
    VocObject,
    read_split_ids,
    read_voc,
    read_voc_annotation,
    voc_bndbox,
    write_split_file,
    write_voc_annotation,
)
from torchrepro.render import road

SIZE = 96
COUNTS = {"train": 24, "val": 4, "test": 4}


# ---------------------------------------------------------------- helpers


def _file_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Continuous pixel-aligned box (x1, y1, x2, y2) of the True pixels."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return None if not len(rows) else (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


def _generate(root: Path, seed: int = 0, size: int = SIZE, **kw) -> Path:
    counts = {f"n_{k}": v for k, v in COUNTS.items()}
    return generate_road_voc(root, **{**counts, **kw}, seed=seed, size=size, max_workers=kw.pop("max_workers", 1))


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _generate(tmp_path_factory.mktemp("road") / "voc")


def _plain_scene(objects: tuple[RoadObject, ...], seed: int = 0) -> RoadObjectScene:
    """A sampled road with only ``objects``: no clutter, shadows, noise or blur."""
    base = sample_scene(scene_rng(seed, 0, 0))
    return dataclasses.replace(base, objects=objects, roadside=(), shadows=(), noise_sigma=0.0, blur=False)


def _lateral_at_column(scene: RoadObjectScene, size: int, column: float, depth: float) -> float:
    """The lateral offset (from the centreline) that projects to ``column`` at ``depth``."""
    x_world = (column - size / 2) * depth / (road.FOCAL_FRACTION * size)
    return x_world - float(road.centreline_x(scene, depth))


def _pedestrian(depth: float, lateral: float, height: float = 1.1) -> RoadObject:
    grey = (0.5, 0.5, 0.5)
    return RoadObject("pedestrian", depth, lateral, 0.0, height, 0, 1, ((0.9, 0.1, 0.1), (0.1, 0.1, 0.8), grey, grey))


def _car(depth: float, lateral: float) -> RoadObject:
    return RoadObject("car", depth, lateral, 1.2, 1.0, 0, 1, ((0.2, 0.7, 0.3),))


# ---------------------------------------------------------------- the VOC writer


def test_voc_bndbox_inverts_the_readers_conversion() -> None:
    # integer (pixel-aligned) continuous boxes survive exactly; fractional ones grow to the pixels they touch
    assert voc_bndbox((0, 0, 96, 64)) == (1, 1, 96, 64)
    assert voc_bndbox((3, 4, 5, 9)) == (4, 5, 5, 9)
    assert voc_bndbox((3.2, 4.9, 5.1, 8.5)) == (4, 5, 6, 9)
    assert voc_bndbox((np.float32(12.000001), 1.9999999, 30.0000004, 7.0)) == (13, 3, 30, 7)  # float noise snapped


def test_writer_round_trip_through_the_reader(tmp_path: Path) -> None:
    objects = [VocObject("car", (0, 0, 1, 1)), VocObject("traffic_sign", (10, 20, 95, 63), truncated=True),
               VocObject("pedestrian", (2.5, 3.25, 7.75, 9.0), difficult=True)]
    xml = write_voc_annotation(tmp_path / "Annotations" / "000001.xml", "000001", 96, 64, objects)
    Image.new("RGB", (96, 64)).save(tmp_path / "000001.jpg")
    text = xml.read_text()
    assert not text.startswith("<?xml") and "\t<object>" in text and "<pose>Unspecified</pose>" in text
    root = ET.parse(xml).getroot()
    assert [c.tag for c in root][:5] == ["folder", "filename", "source", "size", "segmented"]
    assert root.findtext("filename") == "000001.jpg" and root.findtext("size/depth") == "3"
    assert [o.findtext("bndbox/xmin") for o in root.iter("object")] == ["1", "11", "3"]
    record = read_voc_annotation(xml, "000001", {"000001.jpg": tmp_path / "000001.jpg"}, ROAD_CLASSES)
    assert (record.width, record.height) == (96, 64)
    np.testing.assert_array_equal(record.boxes, np.array([[0, 0, 1, 1], [10, 20, 95, 63], [2, 3, 8, 9]], np.float32))
    assert record.labels.tolist() == [1, 5, 2]
    assert record.truncated.tolist() == [False, True, False] and record.difficult.tolist() == [False, False, True]
    # an image without objects is a valid annotation
    empty = write_voc_annotation(tmp_path / "Annotations" / "000002.xml", "000002", 96, 64, [])
    assert read_voc_annotation(empty, "000001", {"000001.jpg": tmp_path / "000001.jpg"}).num_objects == 0


def test_write_split_file(tmp_path: Path) -> None:
    path = write_split_file(tmp_path, "val", ["100000", "100001"])
    assert path == tmp_path / "ImageSets" / "Main" / "val.txt" and path.read_text() == "100000\n100001\n"
    assert read_split_ids(tmp_path, "val") == ["100000", "100001"]
    with pytest.raises(ValueError, match="twice"):
        write_split_file(tmp_path, "val", ["1", "1"])


# ---------------------------------------------------------------- the generated folder


def test_voc_layout(voc_root: Path) -> None:
    assert sorted(p.name for p in voc_root.iterdir()) == ["Annotations", "ImageSets", "JPEGImages", "generated.json"]
    assert sorted(p.name for p in (voc_root / "ImageSets" / "Main").iterdir()) == ["test.txt", "train.txt", "val.txt"]
    ids = {split: read_split_ids(voc_root, split) for split in SPLITS}
    assert {k: len(v) for k, v in ids.items()} == COUNTS
    for k, split in enumerate(SPLITS):
        assert all(len(i) == 6 and i.isdigit() and i[0] == str(k) for i in ids[split])
    everything = [i for split in SPLITS for i in ids[split]]
    assert len(set(everything)) == len(everything)  # the splits are disjoint
    assert sorted(p.stem for p in (voc_root / "JPEGImages").iterdir()) == sorted(everything)
    assert sorted(p.stem for p in (voc_root / "Annotations").iterdir()) == sorted(everything)
    for path in list((voc_root / "JPEGImages").iterdir())[:5]:
        with Image.open(path) as im:
            assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (SIZE, SIZE))
    xml = ET.parse(voc_root / "Annotations" / f"{ids['train'][0]}.xml").getroot()
    assert xml.findtext("folder") == "VOC2007" and xml.findtext("filename") == f"{ids['train'][0]}.jpg"
    assert (xml.findtext("size/width"), xml.findtext("size/height"), xml.findtext("size/depth")) == ("96", "96", "3")
    for obj in xml.iter("object"):
        assert obj.findtext("name") in ROAD_CLASSES and obj.findtext("pose") == "Unspecified"
        assert obj.findtext("truncated") in ("0", "1") and obj.findtext("difficult") in ("0", "1")
        xmin, ymin, xmax, ymax = (int(obj.findtext(f"bndbox/{t}")) for t in ("xmin", "ymin", "xmax", "ymax"))
        assert 1 <= xmin <= xmax <= SIZE and 1 <= ymin <= ymax <= SIZE


def test_read_back_gives_the_generated_boxes(voc_root: Path) -> None:
    """read_voc(classes=ROAD_CLASSES) returns exactly what the renderer annotated, image by image."""
    for k, split in enumerate(SPLITS):
        records = read_voc(voc_root, split, classes=ROAD_CLASSES)
        assert len(records) == COUNTS[split]
        for index, record in enumerate(records):
            assert record.image_id == synthetic.image_id(k, index)
            img, anns = render_scene(sample_scene(scene_rng(0, k, index)), SIZE)
            want = np.array([a.box for a in anns], np.float32).reshape(-1, 4)
            np.testing.assert_array_equal(record.boxes, want)
            assert record.labels.tolist() == [ROAD_CLASSES.index(a.name) + 1 for a in anns]
            assert record.truncated.tolist() == [a.truncated for a in anns]
            assert record.difficult.tolist() == [a.difficult for a in anns]
            with Image.open(record.image) as im:  # the JPEG is the rendered image (up to compression and noise)
                jpeg = np.asarray(im.convert("RGB"), np.float32)
            blocks = lambda a: a.reshape(SIZE // 8, 8, SIZE // 8, 8, 3).mean((1, 3))  # noqa: E731
            assert np.abs(blocks(jpeg) - blocks(img.astype(np.float32))).mean() < 2


def test_every_class_occurs_and_the_stamp_counts_them(voc_root: Path) -> None:
    records = read_voc(voc_root, "train", classes=ROAD_CLASSES)
    counts = Counter(ROAD_CLASSES[label - 1] for r in records for label in r.labels.tolist())
    assert set(counts) == set(ROAD_CLASSES) and min(counts.values()) > 0, counts
    stamp = read_stamp(voc_root)
    assert stamp["generator"] == "torchrepro.detection.synthetic" and stamp["version"] == synthetic.GENERATOR_VERSION
    assert stamp["params"] == {"n_train": 24, "n_val": 4, "n_test": 4, "seed": 0, "size": SIZE, "box_extent": "visible"}
    assert stamp["splits"]["train"]["objects"] == dict(sorted(counts.items()))
    assert stamp["splits"]["train"]["truncated"] == sum(int(r.truncated.sum()) for r in records)
    assert stamp["splits"]["train"]["difficult"] == sum(int(r.difficult.sum()) for r in records)


def test_boxes_span_many_scales() -> None:
    heights = []
    for i in range(40):
        _, anns = render_scene(sample_scene(scene_rng(2, 0, i)), 224)
        heights += [a.box[3] - a.box[1] for a in anns if not a.truncated]
    assert min(heights) <= 10 and max(heights) >= 0.4 * 224, (min(heights), max(heights))


def test_objects_below_kittis_minimum_height_are_difficult() -> None:
    """KITTI's evaluation ignores boxes under 25 px in 375-pixel-high images: here under 25/375 of the side (15 px
    at 224), at any image size; such objects are drawn and annotated, but difficult (ignored by the VOC scoring)."""
    for size in (224, 96):
        small = large = 0
        for i in range(30):
            _, anns = render_scene(sample_scene(scene_rng(5, 0, i)), size)
            for a in anns:
                height = a.box[3] - a.box[1]
                if height < size * 25 / 375:
                    small += 1
                    assert a.difficult, (size, i, a)
                elif a.visible >= synthetic.DIFFICULT_VISIBLE and a.box[2] - a.box[0] >= synthetic.DIFFICULT_MIN_WIDTH:
                    large += 1
                    assert not a.difficult, (size, i, a)
        assert small > 0 and large > 0, (size, small, large)


# ---------------------------------------------------------------- determinism and caching


def test_same_seed_same_bytes_other_seed_other_images(tmp_path: Path, voc_root: Path) -> None:
    again = _generate(tmp_path / "again")
    assert _file_bytes(again) == _file_bytes(voc_root)
    other = _generate(tmp_path / "other", seed=1)
    jpgs = lambda root: {v for k, v in _file_bytes(root).items() if k.endswith(".jpg")}  # noqa: E731
    assert not jpgs(other) & jpgs(voc_root)


def test_worker_processes_write_the_same_files(tmp_path: Path) -> None:
    kw = dict(n_train=5, n_val=2, n_test=2, seed=4, size=48)
    serial = generate_road_voc(tmp_path / "serial", **kw, max_workers=1)
    parallel = generate_road_voc(tmp_path / "parallel", **kw, max_workers=2)
    assert _file_bytes(serial) == _file_bytes(parallel)


def test_scenes_are_a_function_of_seed_split_and_index() -> None:
    assert sample_scene(scene_rng(3, 1, 7)) == sample_scene(scene_rng(3, 1, 7))
    assert len({sample_scene(scene_rng(*key)).texture_seed for key in [(3, 1, 7), (3, 0, 7), (3, 1, 8), (4, 1, 7)]}) == 4


def test_cached_set_is_reused_and_changed_parameters_regenerate(tmp_path: Path) -> None:
    kw = dict(n_train=3, n_val=1, n_test=1, seed=0, size=32, max_workers=1)
    root = generate_road_voc(tmp_path / "voc", **kw)
    image = next((root / "JPEGImages").iterdir())
    os.utime(image, ns=(1, 1))
    generate_road_voc(tmp_path / "voc", **kw)
    assert image.stat().st_mtime_ns == 1  # reused as it is
    generate_road_voc(tmp_path / "voc", **{**kw, "n_val": 2})
    assert len(read_split_ids(root, "val")) == 2 and read_stamp(root)["params"]["n_val"] == 2
    (root / "Annotations" / f"{read_split_ids(root, 'train')[0]}.xml").unlink()  # a damaged set is regenerated
    generate_road_voc(tmp_path / "voc", **{**kw, "n_val": 2})
    assert len(list((root / "Annotations").iterdir())) == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["voc"]  # no temporary folders left


# ---------------------------------------------------------------- boxes against the rendered pixels


@pytest.mark.parametrize("box_extent", ["visible", "full"])
def test_boxes_match_the_rendered_object_pixels(box_extent: str) -> None:
    """Each written box is the bounding box of the pixels where the object shows (within 1 px), painted by the
    scene's own painter: the object in white, every nearer item's opaque shapes in black over it ("full": the
    object alone, for boxes not cut by the border; the amodal box is clipped, not shrunk to the pixels inside)."""
    checked = Counter()
    for i, size in [(i, 96) for i in range(14)] + [(i, 160) for i in range(14, 22)]:
        scene = sample_scene(scene_rng(5, 0, i))
        _, anns = render_scene(scene, size, box_extent)
        for a in anns:
            mask = render_object_mask(scene, a.index, size, occluders=box_extent == "visible") > VISIBLE_EPS
            got = _bbox(mask)
            if box_extent == "full" and (min(a.box) == 0 or max(a.box) == size):
                continue
            assert got is not None and max(abs(u - v) for u, v in zip(got, a.box)) <= 1, (i, a, got)
            x1, y1, x2, y2 = a.box
            assert not mask.sum() - mask[y1:y2, x1:x2].sum()  # nothing of it shows outside its box
            checked[a.name] += 1
    assert set(checked) == set(ROAD_CLASSES), checked


def test_an_object_changes_the_real_render_only_inside_its_box() -> None:
    """Remove an unoccluded object from the scene and render again (real renderer, no blur): the pixels that
    change lie in its box, apart from its pole or arm and its contact shadow; for figures, they reach every side."""
    size, checked = 128, Counter()
    for i in range(10):
        scene = dataclasses.replace(sample_scene(scene_rng(6, 0, i)), blur=False)
        img, anns = render_scene(scene, size)
        cam = road.make_camera(scene, size)
        for a in anns:
            if a.visible < 0.999 or a.truncated:
                continue
            without = dataclasses.replace(scene, objects=scene.objects[:a.index] + scene.objects[a.index + 1:])
            changed = (render_scene(without, size)[0] != img).any(-1)
            allowed = np.zeros_like(changed)
            x1, y1, x2, y2 = a.box
            allowed[y1:y2, x1:x2] = True
            for shape in object_shapes(scene.objects[a.index], scene, cam):
                if shape.role != "body":
                    c0, c1, r0, r1 = shape.window()
                    allowed[max(r0, 0):max(r1, 0), max(c0, 0):max(c1, 0)] = True
            assert not (changed & ~allowed).any(), (i, a)
            if a.name in ("pedestrian", "cyclist"):
                got = _bbox(changed)
                assert max(abs(u - v) for u, v in zip(got, a.box)) <= 1, (i, a, got)
            checked[a.name] += 1
    assert checked["pedestrian"] + checked["cyclist"] > 3 and checked["car"] > 3, checked


# ---------------------------------------------------------------- truncation and occlusion


def test_object_cut_by_the_border_is_truncated_and_its_box_clipped() -> None:
    size, depth = 96, 3.0
    base = _plain_scene(())
    half_out = _pedestrian(depth, _lateral_at_column(base, size, size, depth))  # centred on the right border
    inside = _pedestrian(depth, _lateral_at_column(base, size, size * 0.3, depth))
    _, anns = render_scene(dataclasses.replace(base, objects=(half_out, inside)), size)
    cut, whole = anns
    assert cut.box[2] == size and cut.truncated and 0.3 < cut.outside < 0.7
    assert not whole.truncated and not whole.difficult and whole.outside == 0 and whole.visible > 0.999
    assert whole.box[0] > 0 and whole.box[2] < size
    # the sampled sets flag every object that extends across the border by more than the VOC threshold
    for i in range(30):
        scene = sample_scene(scene_rng(7, 0, i))
        for a in render_scene(scene, size)[1]:
            assert a.truncated == (a.outside > synthetic.TRUNCATED_FRACTION)


def test_occluded_object_box_and_flags() -> None:
    """Painter's order: a car in front hides the pedestrian behind it. Hidden beyond MIN_VISIBLE: left out. Partly
    hidden: the box covers the visible part (VOC); hidden area inside the box does not make it truncated, hidden
    area outside it does (VOC2007 guidelines)."""
    size = 128
    base = _plain_scene(())
    lat = _lateral_at_column(base, size, size / 2, 4.0)
    hidden = dataclasses.replace(base, objects=(_pedestrian(4.0, lat, height=0.8), _car(3.0, lat)))
    assert [a.name for a in render_scene(hidden, size)[1]] == ["car"]

    def pedestrian_beside_the_car(edge: float) -> tuple:
        """The pedestrian centred ``edge`` car widths left of the car's centre, both boxes: (visible, full)."""
        column = size / 2 - edge * road.FOCAL_FRACTION * size * 1.2 / 3.0
        scene = dataclasses.replace(base, objects=(_pedestrian(4.0, _lateral_at_column(base, size, column, 4.0)),
                                                   _car(3.0, lat)))
        return render_scene(scene, size)[1][0], render_scene(scene, size, box_extent="full")[1][0]

    ped, full = pedestrian_beside_the_car(0.5)  # on the body's edge: its right half hidden, head shows over it
    assert ped.name == "pedestrian" and 0.2 < ped.visible < 0.8
    assert full.box[0] <= ped.box[0] and ped.box[2] < full.box[2] and full.box[1:4:2] == ped.box[1:4:2]
    assert ped.outside < synthetic.TRUNCATED_FRACTION and not ped.truncated  # most hidden area is inside the box
    assert full.outside == 0 and not full.truncated  # amodal: nothing lies outside the box
    ped, full = pedestrian_beside_the_car(0.45)  # further behind the car: only the top left shows
    assert ped.visible < synthetic.DIFFICULT_VISIBLE and ped.difficult
    assert ped.box[3] < full.box[3] and ped.outside > synthetic.TRUNCATED_FRACTION and ped.truncated


def test_full_extent_boxes_contain_the_visible_ones() -> None:
    for i in range(10):
        scene = sample_scene(scene_rng(8, 0, i))
        visible = {a.index: a for a in render_scene(scene, SIZE)[1]}
        full = {a.index: a for a in render_scene(scene, SIZE, box_extent="full")[1]}
        assert visible.keys() == full.keys()
        for k, a in visible.items():
            f = full[k]
            assert f.box[0] <= a.box[0] and f.box[1] <= a.box[1] and f.box[2] >= a.box[2] and f.box[3] >= a.box[3]
            assert f.visible == a.visible and f.difficult <= a.difficult  # a smaller visible box may be "too small"


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="box_extent"):
        render_scene(sample_scene(scene_rng(0, 0, 0)), 32, box_extent="amodal")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=">= 0"):
        generate_road_voc("/nonexistent", n_train=-1)
    assert math.isclose(synthetic.MIN_HEIGHT_FRACTION * 224, 8)
