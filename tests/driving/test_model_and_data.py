"""Driving recipe: model shape/parameter count against torchvision, data formats, flip label swap."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from PIL import Image

from tests.conftest import write_csv_split
from torchrepro.core.errors import CheckpointError, DataError
from torchrepro.driving.data import DirectionDataset, read_image_folder, read_label_csv
from torchrepro.driving.model import DirectionNet
from torchrepro.driving.data import build_transforms

CLASSES = ["left", "right", "straight"]


def test_parameter_count_is_resnet34_minus_fc_plus_3way_head():
    tv = torchvision.models.resnet34(weights=None)
    expected = sum(p.numel() for p in tv.parameters()) - (512 * 1000 + 1000) + (512 * 3 + 3)
    net = DirectionNet(3, "resnet34")
    assert sum(p.numel() for p in net.parameters()) == expected == 21_286_211
    assert net(torch.randn(2, 3, 64, 64)).shape == (2, 3)


def test_l2_normalised_head_option():
    out = DirectionNet(3, "resnet18", l2_normalize=True)(torch.randn(4, 3, 32, 32))
    assert torch.allclose(out.norm(dim=1), torch.ones(4), atol=1e-5)


def test_freeze_backbone_trains_only_the_head():
    net = DirectionNet(3, "resnet18", freeze_backbone=True).train()
    trainable = [n for n, p in net.named_parameters() if p.requires_grad]
    assert trainable == ["head.1.weight", "head.1.bias"]
    assert not net.backbone.training  # frozen BN statistics stay fixed


def test_pretrained_weights_from_a_local_file(tmp_path: Path):
    tv = torchvision.models.resnet18(weights=None)
    torch.save(tv.state_dict(), tmp_path / "r18.pth")
    net = DirectionNet(3, "resnet18", pretrained=str(tmp_path / "r18.pth"))
    assert torch.equal(net.backbone[0].weight, tv.conv1.weight)
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="does not match the backbone"):
        DirectionNet(3, "resnet18", pretrained=str(tmp_path / "bad.pth"))


def test_csv_format_with_and_without_header(tmp_path: Path):
    root = write_csv_split(tmp_path / "s", 6)
    items = read_label_csv(root / "labels.csv", root / "images", CLASSES)
    assert [label for _, label in items] == [0, 1, 2, 0, 1, 2]
    assert items[0][0].name == "frame_0000.jpg"
    (root / "labels.csv").write_text("frame_0001,right\nframe_0002,straight\n")  # the seed wrote no header
    assert [label for _, label in read_label_csv(root / "labels.csv", root / "images", CLASSES)] == [1, 2]


@pytest.mark.parametrize("content, needle", [
    ("frame_0001,up\n", "label 'up' is not one of"),
    ("frame_0001\n", "expected 'image_name,label'"),
    ("frame_9999,left\n", "image 'frame_9999' not found"),
])
def test_csv_errors_name_line_and_problem(tmp_path: Path, content: str, needle: str):
    root = write_csv_split(tmp_path / "s", 3)
    (root / "labels.csv").write_text("image_name,label\n" + content)
    with pytest.raises(DataError, match="line 2") as err:
        read_label_csv(root / "labels.csv", root / "images", CLASSES)
    assert needle in str(err.value)


def test_image_folder_layout(tmp_path: Path):
    for i, c in enumerate(CLASSES):
        (tmp_path / c).mkdir()
        Image.new("RGB", (8, 8), (i * 80, 0, 0)).save(tmp_path / c / f"{i}.png")
    items = read_image_folder(tmp_path, CLASSES)
    assert [label for _, label in items] == [0, 1, 2]
    (tmp_path / "reverse").mkdir()
    with pytest.raises(DataError, match="class folders"):
        read_image_folder(tmp_path, CLASSES)


def test_flip_swaps_left_and_right_and_augmentation_is_keyed(tmp_path: Path):
    root = write_csv_split(tmp_path / "s", 3)
    items = read_label_csv(root / "labels.csv", root / "images", CLASSES)
    ds = DirectionDataset(items, build_transforms(32, train=True), CLASSES, seed=0, flip_swap=True)
    seen = {}
    for epoch in range(12):
        image, label = ds[(epoch, 0)]  # item 0 is "left"
        seen.setdefault(label, image)
        again, label2 = ds[(epoch, 0)]
        assert label2 == label and torch.equal(again, image)  # pure function of (seed, epoch, index)
    assert set(seen) == {0, 1}  # left, and right when mirrored
    _, straight = ds[(0, 2)]
    assert straight == 2  # a straight road stays straight when mirrored
