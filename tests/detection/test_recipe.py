"""The registered detection recipe: the shipped configs, a tiny real-format VOC set trained through
``data.source=voc`` (the seed head and SSDlite), the COCO source, the evaluation rows (padding, scaling back to the
original image), the prior-box baseline, and the config errors. The tiny synthetic run through the CLI (untrained
model, baseline, test split once, figures, ``eval --split test``) is checked on the recipe contract's run
(tests/detection/contract_checks.py, called by tests/test_contract.py), with the generic contract (kill + resume,
eval, torchrun)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import torchrepro.recipes  # noqa: F401  (fills the registry)
from tests.detection.fixtures import (
    CONTIGUOUS_CATEGORIES, coco_annotation, coco_image, tiny_voc, write_coco,
)
from tests.helpers import REPO, assert_one_line_error, run_main
from torchrepro.core.errors import ConfigError, DataError
from torchrepro.core.registry import resolve_config
from torchrepro.detection.config import seed_grid_sides
from torchrepro.detection.data import DetectionDataModule, class_names, read_split
from torchrepro.detection.records import DetectionRecord
from torchrepro.detection.task import (
    DetectionTask, PriorBoxBaseline, kmeans_boxes, unpad_detections,
)

ROAD = REPO / "configs" / "ssd_synthetic_road.yaml"
SSDLITE = REPO / "configs" / "ssd_synthetic_road_ssdlite.yaml"
SEED = REPO / "configs" / "ssd_synthetic_road_seed.yaml"
VOC07 = REPO / "configs" / "ssd_voc07.yaml"
SSD300_VOC07 = REPO / "configs" / "ssd300_voc07.yaml"
#: the tiny seed detector for the VOC fixture: 96-pixel inputs (grids (2, 1, 1)), a narrow trunk and head
TINY_MODEL = ["model.image_size=96", "model.width=8", "model.head_channels=32", "model.max_detections=20",
              "model.coco_metrics=false"]


# --------------------------------------------------------------------------------------- shipped configs
def test_shipped_configs_parse(tmp_path: Path) -> None:
    seed = resolve_config(SEED, [])  # the seed as it was built
    assert (seed.recipe, seed.model.name, seed.model.loss, seed.model.image_size) == ("detection", "seed_resnet34",
                                                                                      "seed", 224)
    assert (seed.optim.name, seed.optim.lr, seed.optim.betas) == ("adam", 0.001, [0.5, 0.999])
    assert (seed.sched.name, seed.sched.warmup) == ("none", "none")
    assert seed.trainer.validate_before_fit and seed_grid_sides(224, seed.model.trunk_grid) == (4, 2, 1)
    road = resolve_config(ROAD, [])  # chosen on validation: the seed's head with a trunk grid, focal loss, cosine
    assert (road.model.loss, seed_grid_sides(224, road.model.trunk_grid)) == ("focal", (7, 4, 2, 1))
    assert road.data == seed.data and road.trainer.max_epochs == seed.trainer.max_epochs
    lite = resolve_config(SSDLITE, [])
    assert lite.model.name == "ssdlite320_mobilenet_v3_large" and lite.data == road.data
    voc = resolve_config(VOC07, [f"data.root={tmp_path}"])
    assert (voc.data.source, voc.data.train_split, voc.data.val_split, voc.data.test_split) == ("voc", "train", "val",
                                                                                                 "test")
    assert len(class_names(voc.data)) == 20 and (voc.model.name, voc.model.image_size) == ("seed_resnet34", 224)
    ssd300 = resolve_config(SSD300_VOC07, [f"data.root={tmp_path}"])
    assert (ssd300.model.name, ssd300.model.image_size, ssd300.model.loss) == ("ssd300_vgg16", 300, None)
    assert (ssd300.optim.name, ssd300.optim.weight_decay, ssd300.data.batch_size) == ("sgd", 0.0005, 32)
    assert ssd300.data.source == "voc" and ssd300.data.augment.zoom_max == 4.0


@pytest.mark.parametrize("config", [VOC07, SSD300_VOC07], ids=["seed_224", "ssd300"])
def test_voc07_without_its_data_is_one_clear_line(config: Path, tmp_path: Path, capsys) -> None:
    missing = tmp_path / "VOCdevkit" / "VOC2007"
    code, _, err = run_main(capsys, "train", config, f"data.root={missing}", f"run.root={tmp_path / 'runs'}")
    assert_one_line_error(code, err, "data.root", str(missing))
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("override, key", [
    ("model.image_size=64", "model.image_size"),
    ("model.loss=sigmoid", "model.loss"),
    ("model.name=ssd300", "model.name"),
    ("data.augment.flip_p=1.5", "data.augment.flip_p"),
    ("data.val_split=train", "data.val_split"),
    ("data.classes=[car, car]", "data.classes"),
    ("data.source=coco", "data.root"),
    ("model.nms_iou=0", "model.nms_iou"),
    ("model.pretrained=/no/such/weights.pth", "model.pretrained"),
    ("data.batch_size=0", "data.batch_size"),
])
def test_bad_values_name_their_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        resolve_config(ROAD, [override])


def test_options_of_another_detector_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"model\.width.*seed head"):
        resolve_config(SSDLITE, ["model.width=8"])
    with pytest.raises(ConfigError, match=r"model\.loss"):
        resolve_config(SSDLITE, ["model.loss=focal"])
    with pytest.raises(ConfigError, match=r"data\.classes"):
        resolve_config(ROAD, ["data.source=coco", f"data.root={tmp_path}"])


# ------------------------------------------------------------------------------------- real formats
@pytest.mark.parametrize("config, model", [
    (VOC07, TINY_MODEL),  # the seed head
    (SSDLITE, ["data.source=voc", "model.image_size=96", "model.max_detections=20", "model.coco_metrics=false"]),
], ids=["seed_resnet34", "ssdlite"])
def test_tiny_voc_set_trains_two_steps(config: Path, model: list[str], tmp_path: Path, capsys) -> None:
    root = tiny_voc(tmp_path / "VOC2007")
    run = tmp_path / "run"
    code, out, err = run_main(capsys, "train", config, f"data.root={root}", "data.batch_size=2",
                              "data.eval_batch_size=2", "data.num_workers=0", *model, "trainer.max_steps=2",
                              "trainer.max_epochs=2", "trainer.accelerator=cpu", "trainer.progress_bar=false",
                              "trainer.log_every_n_steps=1", f"run.dir={run}")
    assert code == 0, err
    assert "untrained model:" in out and "baseline_prior_mAP@0.5=" in out
    history = json.loads((run / "metrics.json").read_text())["history"]
    assert [h["stage"] for h in history] == ["untrained", "fit", "fit", "test"]
    assert history[-2]["step"] == 2 and "test/mAP@0.5" in history[-1]
    assert (run / "checkpoints" / "best.ckpt").is_file()


def test_a_missing_split_file_names_its_key(tmp_path: Path) -> None:
    root = tiny_voc(tmp_path / "VOC2007")
    dm = DetectionDataModule(resolve_config(VOC07, [f"data.root={root}", "data.test_split=test2007"]))
    with pytest.raises(DataError, match=r"data\.test_split=test2007.*set data\.test_split=null"):
        dm.setup("fit")
    dm = DetectionDataModule(resolve_config(VOC07, [f"data.root={root}", "data.test_split=null"]))
    dm.setup("fit")
    assert not dm.has_test_split and sorted(dm.records) == ["train", "val"]


def test_data_command_checks_and_counts_a_voc_set(tmp_path: Path, capsys) -> None:
    root = tiny_voc(tmp_path / "VOC2007")
    code, out, err = run_main(capsys, "data", VOC07, f"data.root={root}", "data.batch_size=2", "data.num_workers=0",
                              *TINY_MODEL)
    assert code == 0, err
    assert "train: 2 items in 1 batches" in out and "val: 2 items" in out and "test: 1 items" in out
    (root / "JPEGImages" / "000002.jpg").write_bytes(b"not a jpeg")
    code, _, err = run_main(capsys, "data", VOC07, f"data.root={root}", *TINY_MODEL)
    assert_one_line_error(code, err, "000002.jpg")


def test_coco_source_reads_three_splits_and_checks_the_classes(tmp_path: Path) -> None:
    for k, split in enumerate(("train2017", "val2017", "test2017")):
        images = [coco_image(10 * k + 1, f"{k}1.jpg", 48, 40), coco_image(10 * k + 2, f"{k}2.jpg", 32, 32)]
        annotations = [coco_annotation(k + 1, 10 * k + 1, 1 + k, [4.0, 5.0, 20.0, 16.0])]
        write_coco(tmp_path / "annotations" / f"instances_{split}.json", tmp_path / split, images, annotations,
                   CONTIGUOUS_CATEGORIES)
    names = [c["name"] for c in CONTIGUOUS_CATEGORIES]
    cfg = resolve_config(ROAD, ["data.source=coco", f"data.root={tmp_path}", f"data.classes={names}",
                                "data.train_split=train2017", "data.val_split=val2017", "data.test_split=test2017"])
    dm = DetectionDataModule(cfg)
    dm.setup("fit")
    assert {k: len(v) for k, v in dm.records.items()} == {"train": 2, "val": 2, "test": 2}
    assert dm.records["test"][0].labels.tolist() == [3]
    np.testing.assert_allclose(dm.records["val"][0].boxes, [[4.0, 5.0, 24.0, 21.0]])
    cfg.data.classes = ["person", "bicycle", "motorbike"]
    with pytest.raises(DataError, match=r"data\.classes"):
        read_split(cfg.data, "train2017", cfg.data.classes, cfg.seed)


# ---------------------------------------------------------------------------------- evaluation rows
class FixedDetections(nn.Module):
    """Stands in for a detector in eval mode: the same two detections (in S×S input pixels) for every image."""

    def forward(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        det = {"boxes": torch.tensor([[0.0, 0.0, 48.0, 48.0], [48.0, 24.0, 96.0, 96.0]]),
               "scores": torch.tensor([0.9, 0.4]), "labels": torch.tensor([1, 3])}
        return [det for _ in images]


def test_evaluation_rows_are_padded_and_in_original_pixels() -> None:
    cfg = resolve_config(ROAD, [*TINY_MODEL, "model.max_detections=5"])
    task = DetectionTask(cfg)
    task.detector = FixedDetections()
    meta = torch.tensor([[0, 192, 96], [1, 48, 48]])  # [index, width, height] of two images of other sizes
    rows = task.evaluation_rows((torch.zeros(2, 3, 96, 96), meta), 0)
    assert rows["boxes"].shape == (2, 5, 4) and rows["count"].tolist() == [2, 2]
    torch.testing.assert_close(rows["boxes"][0, :2], torch.tensor([[0.0, 0.0, 96.0, 48.0], [96.0, 24.0, 192.0, 96.0]]))
    torch.testing.assert_close(rows["boxes"][1, :2], torch.tensor([[0.0, 0.0, 24.0, 24.0], [24.0, 12.0, 48.0, 48.0]]))
    assert rows["labels"][0].tolist() == [1, 3, 0, 0, 0] and rows["scores"][0, 2:].abs().sum() == 0
    unpadded = unpad_detections(rows)
    assert [len(d["scores"]) for d in unpadded] == [2, 2] and unpadded[1]["labels"].tolist() == [1, 3]


# ------------------------------------------------------------------------------------- the baseline
def _record(boxes: list[list[float]], labels: list[int], size: tuple[int, int] = (100, 50)) -> DetectionRecord:
    n = len(boxes)
    return DetectionRecord(image=Path("unused.jpg"), width=size[0], height=size[1],
                           boxes=np.array(boxes, np.float32).reshape(n, 4), labels=np.array(labels, np.int64),
                           difficult=np.zeros(n, bool), truncated=np.zeros(n, bool), image_id="x")


def test_kmeans_boxes_finds_two_clusters_and_is_seeded() -> None:
    a = np.array([[0.0, 0.0, 0.2, 0.2]]) + np.linspace(0, 0.01, 5)[:, None]
    b = np.array([[0.5, 0.5, 1.0, 1.0]]) - np.linspace(0, 0.01, 7)[:, None]
    centres, members = kmeans_boxes(np.concatenate([a, b]), 2, seed=3)
    order = np.argsort(centres[:, 0])
    np.testing.assert_allclose(centres[order], [a.mean(0), b.mean(0)])
    assert members[order].tolist() == [5, 7]
    again, _ = kmeans_boxes(np.concatenate([a, b]), 2, seed=3)
    np.testing.assert_array_equal(centres, again)
    assert kmeans_boxes(np.zeros((0, 4)), 3, seed=0)[0].shape == (0, 4)


def test_prior_baseline_is_image_blind_and_scaled_to_each_image() -> None:
    train = [_record([[10, 5, 50, 25]], [1]), _record([[10, 5, 50, 25], [60, 10, 90, 40]], [1, 2])]
    baseline = PriorBoxBaseline(train, num_classes=3, priors=2, seed=0)
    assert baseline.labels.tolist() == [1, 2]  # class 3 has no training box: no prior
    torch.testing.assert_close(baseline.scores, torch.tensor([2 / 3, 1 / 3]))
    (det,) = baseline.detections([_record([], [], size=(200, 100))])
    torch.testing.assert_close(det["boxes"], torch.tensor([[20.0, 10.0, 100.0, 50.0], [120.0, 20.0, 180.0, 80.0]]))
