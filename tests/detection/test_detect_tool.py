"""``torchrepro tool detect`` against the tiny detection run (the recipe contract's run: its ``tiny_overrides``, two
epochs): the JSON's boxes are the evaluation path's boxes in the picture's own pixels (an image of another size and
aspect than ``model.image_size``), the score threshold, grey / RGBA / palette / JPEG pictures, the annotated PNGs,
the default output folder, and every bad input as one line with nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers import assert_one_line_error, run_main, scratch_dir
from torchrepro.core.engine import restore
from torchrepro.core.registry import resolve_config
from torchrepro.detection.data import DetectionDataModule, EvalImages
from torchrepro.detection.inference import network_input
from torchrepro.detection.records import DetectionRecord, empty_record_arrays
from torchrepro.detection.task import unpad_detections
from torchrepro.detection.tools import JSON_NAME, output_names
from torchrepro.detection.transforms import detection_transform

#: another size and aspect than the tiny run's 96×96 network input
WIDE = (200, 120)


@pytest.fixture(scope="module")
def work(request, tmp_path_factory, tiny_runs):
    """A copy of the tiny detection run (config + checkpoints: the tool writes into RUN_DIR/detect/), the trained
    module restored as `eval` restores it, and test pictures made from a validation image."""
    with scratch_dir(request, tmp_path_factory, "detect_tool") as tmp:
        source = tiny_runs("detection")
        run = tmp / "run"
        (run / "checkpoints").mkdir(parents=True)
        shutil.copy(source / "config.yaml", run / "config.yaml")
        shutil.copy(source / "checkpoints" / "best.ckpt", run / "checkpoints" / "best.ckpt")
        cfg = resolve_config(run / "config.yaml", [])
        dm = DetectionDataModule(cfg)
        dm.setup("validate")
        val = Image.open(dm.records["val"][0].image).convert("RGB")
        pictures = tmp / "pictures"
        pictures.mkdir()
        val.resize(WIDE).save(pictures / "wide.png")
        val.convert("L").save(pictures / "grey.png")
        val.convert("RGBA").save(pictures / "rgba.png")
        val.convert("P").save(pictures / "palette.png")
        val.resize((130, 77)).save(pictures / "photo.jpg", quality=90)
        module, _ = restore(cfg, run / "checkpoints" / "best.ckpt")
        yield {"tmp": tmp, "run": run, "ckpt": run / "checkpoints" / "best.ckpt", "cfg": cfg,
               "module": module.eval(), "pictures": pictures}


def _detect(capsys, work, *args) -> tuple[int, str, str]:
    return run_main(capsys, "tool", "detect", "--ckpt", work["ckpt"], *args)


def _evaluation_path(work, image: Path) -> dict[str, torch.Tensor]:
    """The detections `torchrepro eval` scores for ``image``: its record through EvalImages and evaluation_rows."""
    width, height = Image.open(image).size
    record = DetectionRecord(image=image, width=width, height=height, image_id=image.stem, **empty_record_arrays())
    x, meta = EvalImages([record], detection_transform(False, work["cfg"].model.image_size))[0]
    with torch.no_grad():
        rows = work["module"].evaluation_rows((x[None], meta[None]), 0)
    return unpad_detections(rows)[0]


def test_json_boxes_are_the_evaluation_boxes_in_original_pixels(work, capsys) -> None:
    wide = work["pictures"] / "wide.png"
    out = work["tmp"] / "all"
    code, stdout, err = _detect(capsys, work, "--out", out, "--score-thresh", "0", wide)
    assert code == 0, err
    assert len([line for line in stdout.splitlines() if line.startswith("wide.png (200x120): ")]) == 1, stdout
    written = json.loads((out / JSON_NAME).read_text())
    assert written["score_thresh"] == 0.0 and written["image_size"] == 96
    (entry,) = written["images"]
    assert (entry["file"], entry["width"], entry["height"], entry["annotated"]) == ("wide.png", *WIDE, "wide.png")
    found = entry["detections"]
    assert found, "the tiny run's detector keeps scores above model.score_thresh (0.01): some must be there"
    boxes = torch.tensor([d["box"] for d in found])
    scores = torch.tensor([d["score"] for d in found])
    labels = torch.tensor([d["label"] for d in found])
    assert [d["class"] for d in found] == [work["module"].classes[label - 1] for label in labels.tolist()]
    assert torch.all(scores[:-1] >= scores[1:])

    # the evaluation path (EvalImages → evaluation_rows): the same detections, the same original-pixel boxes
    evaluated = _evaluation_path(work, wide)
    assert torch.equal(labels, evaluated["labels"])
    assert torch.allclose(scores, evaluated["scores"], atol=1e-6)
    assert torch.allclose(boxes, evaluated["boxes"], atol=1e-4)
    # and the detector's S×S boxes scaled by (200 / 96, 120 / 96): x and y scaled apart
    with torch.no_grad():
        raw = work["module"](network_input(Image.open(wide).convert("RGB"), 96)[None])[0]
    scale = torch.tensor([200 / 96, 120 / 96, 200 / 96, 120 / 96])
    assert torch.allclose(boxes, raw["boxes"] * scale, atol=1e-4)

    picture = Image.open(out / "wide.png")
    assert picture.format == "PNG" and abs(picture.width / picture.height - 200 / 120) < 0.02

    # a score threshold keeps exactly the detections scored at least that
    cut = float(scores[len(scores) // 2])
    code, _, err = _detect(capsys, work, "--out", work["tmp"] / "cut", "--score-thresh", str(cut), wide)
    assert code == 0, err
    kept = json.loads((work["tmp"] / "cut" / JSON_NAME).read_text())["images"][0]["detections"]
    assert kept == [d for d in found if d["score"] >= cut] and 0 < len(kept) < len(found)


def test_grey_rgba_palette_and_jpeg_pictures_into_the_run_folder(work, capsys) -> None:
    names = ["grey.png", "rgba.png", "palette.png", "photo.jpg"]
    code, stdout, err = _detect(capsys, work, "--score-thresh", "0", *(work["pictures"] / n for n in names))
    assert code == 0, err
    out = work["run"] / "detect"  # the default: RUN_DIR/detect/
    written = json.loads((out / JSON_NAME).read_text())["images"]
    assert [(e["file"], e["width"], e["height"]) for e in written] == [
        ("grey.png", 96, 96), ("rgba.png", 96, 96), ("palette.png", 96, 96), ("photo.jpg", 130, 77)]
    assert sorted(p.name for p in out.iterdir()) == sorted([JSON_NAME, "grey.png", "rgba.png", "palette.png",
                                                            "photo.png"])
    assert len(stdout.splitlines()) == len(names) + 1  # one line per picture, then what was written
    # a grey picture is its RGB conversion: the same detections as that of the RGB file
    rgb = work["tmp"] / "grey_as_rgb.png"
    Image.open(work["pictures"] / "grey.png").convert("RGB").save(rgb)
    assert torch.allclose(torch.tensor([d["box"] for d in written[0]["detections"]]),
                          _evaluation_path(work, rgb)["boxes"], atol=1e-4)

    # the folder is not empty now: refused without --force, nothing touched; --force replaces the files
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    code, _, err = _detect(capsys, work, work["pictures"] / "wide.png")
    assert_one_line_error(code, err, str(out), "is not empty", "--force")
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    code, _, err = _detect(capsys, work, "--force", work["pictures"] / "wide.png")
    assert code == 0, err
    assert [e["file"] for e in json.loads((out / JSON_NAME).read_text())["images"]] == ["wide.png"]


def _bad_picture(tmp: Path, kind: str) -> Path:
    if kind == "text":
        (tmp / "notes.txt").write_text("not a picture\n")
        return tmp / "notes.txt"
    if kind == "truncated":
        data = (tmp.parent / "pictures" / "wide.png").read_bytes()
        (tmp / "cut.png").write_bytes(data[: len(data) // 2])
        return tmp / "cut.png"
    if kind == "folder":
        (tmp / "a_folder").mkdir()
        return tmp / "a_folder"
    return tmp / "missing.png"


@pytest.mark.parametrize("kind, needle", [
    ("text", "is not a readable image"), ("truncated", "is not a readable image"),
    ("folder", "is a folder, not an image"), ("missing", "does not exist"),
])
def test_a_bad_picture_is_one_line_and_nothing_is_written(work, capsys, kind: str, needle: str) -> None:
    tmp = work["tmp"] / f"bad_{kind}"
    tmp.mkdir()
    bad = _bad_picture(tmp, kind)
    out = tmp / "out"
    code, stdout, err = _detect(capsys, work, "--out", out, work["pictures"] / "wide.png", bad)
    assert_one_line_error(code, err, str(bad), needle)
    assert not out.exists() and not stdout


def test_foreign_checkpoints_and_bad_arguments_are_one_line(work, capsys, tiny_runs) -> None:
    driving = tiny_runs("driving")
    wide = work["pictures"] / "wide.png"
    out = work["tmp"] / "never"
    cases = [
        # a driving run's checkpoint: its run's config is a driving one
        (["--ckpt", driving / "checkpoints" / "best.ckpt"], ("is a 'driving' config", "detection run")),
        # the same checkpoint with the detection config: the weights do not fit
        (["--ckpt", driving / "checkpoints" / "best.ckpt", "--config", work["run"] / "config.yaml"],
         ("does not fit recipe 'detection'",)),
        (["--ckpt", work["tmp"] / "none.ckpt", "--config", work["run"] / "config.yaml"],
         ("none.ckpt", "does not exist")),
        (["--ckpt", work["ckpt"], "--score-thresh", "1.5"], ("--score-thresh must be in [0, 1]",)),
    ]
    for args, needles in cases:
        code, _, err = run_main(capsys, "tool", "detect", *args, "--out", out, wide)
        assert_one_line_error(code, err, *needles)
        assert not out.exists()
    # a checkpoint outside a run directory needs --config (and --out)
    loose = work["tmp"] / "loose.ckpt"
    shutil.copy(work["ckpt"], loose)
    code, _, err = run_main(capsys, "tool", "detect", "--ckpt", loose, "--out", out, wide)
    assert_one_line_error(code, err, "loose.ckpt", "--config")
    code, _, err = run_main(capsys, "tool", "detect", "--ckpt", loose, "--config", work["run"] / "config.yaml", wide)
    assert_one_line_error(code, err, "loose.ckpt", "--out")
    assert not out.exists()


def test_output_names_are_unique_and_never_an_input(work, capsys, tmp_path: Path) -> None:
    assert output_names([Path("a/x.jpg"), Path("b/x.png"), Path("detections.jpg"), Path("x-2.png")]) == [
        "x.png", "x-2.png", "detections.png", "x-2-2.png"]
    folder = tmp_path / "pictures"
    folder.mkdir()
    shutil.copy(work["pictures"] / "wide.png", folder / "wide.png")
    before = (folder / "wide.png").read_bytes()
    code, _, err = _detect(capsys, work, "--out", folder, "--force", folder / "wide.png")
    assert_one_line_error(code, err, "would replace an input picture")
    assert (folder / "wide.png").read_bytes() == before and not (folder / JSON_NAME).exists()
    assert np.asarray(Image.open(folder / "wide.png")).shape == (120, 200, 3)
