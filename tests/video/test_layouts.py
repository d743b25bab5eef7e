"""Data set layouts (torchrepro.video.layouts): small fixtures written in exactly the documented layouts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from torchrepro.core.errors import DataError
from torchrepro.video.frames import num_frames, read_frames
from torchrepro.video.layouts import (
    VideoItem,
    read_class_list,
    read_frames_csv,
    read_sthv2_classes,
    read_sthv2_split,
    sthv2_class_name,
)
from tests.video import (COLOURS, SSV2_CLASSES, SSV2_LABELS, SSV2_TRAIN, VIDEOS, write_frames, write_sthv2)


def _message(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def _frame_colours(source: Path, n: int) -> list[tuple[int, ...]]:
    """The mean colour of the first ``n`` frames, rounded to the nearest multiple of 10 (lossy codecs)."""
    means = read_frames(source, list(range(n))).reshape(n, -1, 3).mean(axis=1)
    return [tuple(int(v) for v in np.round(m / 10) * 10) for m in means]


# ---------------------------------------------------------------------------------------- generic CSV layout

CLASSES = ["push", "pull", "spin"]
TRAIN_ROWS = [("clip_a", "pull"), ("clip_b", "push"), ("clip_c", "spin"), ("clip_d", "pull")]


@pytest.fixture
def csv_root(tmp_path) -> Path:
    """root/classes.txt, root/train.csv, root/val.csv, root/frames/<video>/00001.png …; clip i shows COLOURS[i:]."""
    root = tmp_path / "data"
    root.mkdir()
    (root / "classes.txt").write_text("push\npull\nspin\n\n")
    rows = {"train": TRAIN_ROWS, "val": [("clip_e", "spin"), ("clip_f", "push"), ("clip_g", "pull")]}
    for split, split_rows in rows.items():
        (root / f"{split}.csv").write_text("video,label\n" + "".join(f"{v},{c}\n" for v, c in split_rows))
    for i, (video, _) in enumerate(rows["train"] + rows["val"]):
        write_frames(root / "frames" / video, COLOURS[i % 3: i % 3 + 3])
    return root


def test_read_class_list(csv_root):
    assert read_class_list(csv_root) == CLASSES  # the trailing blank line is not a class


def test_read_frames_csv(csv_root):
    items = read_frames_csv(csv_root, "train", CLASSES)
    frames = csv_root / "frames"
    assert items == [VideoItem("clip_a", frames / "clip_a", 1), VideoItem("clip_b", frames / "clip_b", 0),
                     VideoItem("clip_c", frames / "clip_c", 2), VideoItem("clip_d", frames / "clip_d", 1)]
    assert [it.label for it in read_frames_csv(csv_root, "val", CLASSES)] == [2, 0, 1]
    # clip_b (index 1) was written with COLOURS[1:4]
    assert num_frames(items[1].source) == 3
    assert _frame_colours(items[1].source, 3) == [(20, 230, 20), (20, 20, 230), (220, 220, 40)]


def test_missing_class_list(tmp_path):
    with pytest.raises(DataError, match="one class name per line") as err:
        read_class_list(tmp_path)
    assert str(tmp_path / "classes.txt") in _message(err)


def test_duplicate_class_names(csv_root):
    (csv_root / "classes.txt").write_text("push\npull\npush\n")
    with pytest.raises(DataError, match=r"line 3: class 'push' repeats line 1"):
        read_class_list(csv_root)


def test_empty_class_list(csv_root):
    (csv_root / "classes.txt").write_text("\n\n")
    with pytest.raises(DataError, match="is empty"):
        read_class_list(csv_root)


def test_missing_split_csv(csv_root):
    with pytest.raises(DataError, match="does not exist") as err:
        read_frames_csv(csv_root, "test", CLASSES)
    assert str(csv_root / "test.csv") in _message(err)


@pytest.mark.parametrize("header", ["name,label", "video", "label,video", ""])
def test_bad_header(csv_root, header):
    (csv_root / "train.csv").write_text(f"{header}\nclip_a,pull\n" if header else "")
    with pytest.raises(DataError, match="line 1: expected the header 'video,label'") as err:
        read_frames_csv(csv_root, "train", CLASSES)
    assert str(csv_root / "train.csv") in _message(err)


def test_unknown_label_names_label_and_line(csv_root):
    (csv_root / "train.csv").write_text("video,label\nclip_a,pull\nclip_b,jump\n")
    with pytest.raises(DataError, match=r"line 3: label 'jump' is not in") as err:
        read_frames_csv(csv_root, "train", CLASSES)
    assert str(csv_root / "classes.txt") in _message(err)


def test_missing_frames_folder_names_row(csv_root):
    (csv_root / "train.csv").write_text("video,label\nclip_a,pull\n\nclip_zz,spin\n")
    with pytest.raises(DataError, match=r"train\.csv' line 4: frames folder") as err:
        read_frames_csv(csv_root, "train", CLASSES)
    assert str(csv_root / "frames" / "clip_zz") in _message(err)


def test_malformed_row(csv_root):
    (csv_root / "train.csv").write_text("video,label\nclip_a,pull,extra\n")
    with pytest.raises(DataError, match=r"line 2: expected '<video name>,<class name>'"):
        read_frames_csv(csv_root, "train", CLASSES)


def test_empty_split(csv_root):
    (csv_root / "val.csv").write_text("video,label\n\n")
    with pytest.raises(DataError, match="lists no videos: the split is empty") as err:
        read_frames_csv(csv_root, "val", CLASSES)
    assert str(csv_root / "val.csv") in _message(err)


# ------------------------------------------------------------------------------------- Something-Something V2

@pytest.fixture(scope="module")
def ssv2_root(tmp_path_factory) -> Path:
    """An SSv2 download (see :func:`tests.video.write_sthv2`)."""
    return write_sthv2(tmp_path_factory.mktemp("ssv2"))


@pytest.fixture
def ssv2_copy(ssv2_root, tmp_path) -> Path:
    """A private copy of the JSON files for tests that break them; the videos and frames are linked."""
    root = tmp_path / "ssv2"
    root.mkdir()
    for name in ("labels.json", "train.json", "validation.json", "test.json"):
        (root / name).write_bytes((ssv2_root / name).read_bytes())
    (root / VIDEOS).symlink_to(ssv2_root / VIDEOS, target_is_directory=True)
    (root / "frames").symlink_to(ssv2_root / "frames", target_is_directory=True)
    return root


def test_sthv2_class_name_drops_brackets_like_gen_label_sthv2():
    assert sthv2_class_name("Holding [something] next to [something]") == "Holding something next to something"
    assert sthv2_class_name("Approaching something with your camera") == "Approaching something with your camera"


def test_read_sthv2_classes_in_index_order(ssv2_root):
    assert read_sthv2_classes(ssv2_root) == SSV2_CLASSES


def test_read_sthv2_split_videos(ssv2_root):
    items = read_sthv2_split(ssv2_root, "train.json")
    videos = ssv2_root / VIDEOS
    assert items == [VideoItem("78687", videos / "78687.webm", 1), VideoItem("42326", videos / "42326.webm", 3),
                     VideoItem("100904", videos / "100904.webm", 2), VideoItem("3", videos / "3.webm", 0)]
    assert [(it.name, it.label) for it in read_sthv2_split(ssv2_root, "validation.json")] == [
        ("74225", 2), ("116154", 1), ("8", 3)]


def test_sthv2_webm_reads_back(ssv2_root):
    source = ssv2_root / VIDEOS / "42326.webm"  # train entry 1: COLOURS[1:4]
    if source.stat().st_size < 100:
        pytest.skip("this OpenCV build cannot write VP8 .webm (cv2.VideoWriter 'VP80' did not open)")
    assert num_frames(source) == 3
    assert _frame_colours(source, 3) == [(20, 230, 20), (20, 20, 230), (220, 220, 40)]


def test_read_sthv2_split_frames(ssv2_root):
    items = read_sthv2_split(ssv2_root, "validation.json", frames_dir="frames")
    assert items == [VideoItem("74225", ssv2_root / "frames" / "74225", 2),
                     VideoItem("116154", ssv2_root / "frames" / "116154", 1),
                     VideoItem("8", ssv2_root / "frames" / "8", 3)]
    # validation entry 0 is the 5th video written: COLOURS[1:4], as JPEG
    assert _frame_colours(items[0].source, 3) == [(20, 230, 20), (20, 20, 230), (220, 220, 40)]


def test_missing_root(tmp_path):
    with pytest.raises(DataError, match="root .* does not exist: the Something-Something V2 download holds"):
        read_sthv2_split(tmp_path / "nowhere", "train.json")


def test_missing_labels_json(ssv2_copy):
    (ssv2_copy / "labels.json").unlink()
    with pytest.raises(DataError, match="download holds labels.json, train.json, validation.json") as err:
        read_sthv2_split(ssv2_copy, "train.json")
    assert str(ssv2_copy / "labels.json") in _message(err)


def test_missing_split_file(ssv2_copy):
    with pytest.raises(DataError, match="does not exist: the Something-Something V2 download holds") as err:
        read_sthv2_split(ssv2_copy, "val.json")
    assert str(ssv2_copy / "val.json") in _message(err)


def test_unlabelled_split(ssv2_copy):
    with pytest.raises(DataError, match=r"entry 0 \(video 1420\) has no \"template\": this split has no labels"):
        read_sthv2_split(ssv2_copy, "test.json")


def test_template_missing_from_labels(ssv2_copy):
    labels = dict(SSV2_LABELS)
    del labels["Putting something on a surface"]
    labels["Pushing something from left to right"] = "3"
    labels["Tearing something into two pieces"] = "2"
    (ssv2_copy / "labels.json").write_text(json.dumps(labels))
    with pytest.raises(DataError, match=r"video 42326: template 'Putting \[something\] on a surface' is a label "
                                        r"missing from labels.json"):
        read_sthv2_split(ssv2_copy, "train.json")


@pytest.mark.parametrize(("labels", "needle"), [
    ({"a": "0", "b": "1", "c": "3"}, "class index 3 is out of range"),
    ({"a": "0", "b": "1", "c": "1"}, "class index 1 is given to both 'b' and 'c'"),
    ({"a": "zero"}, "class index 'zero' of 'a' is not an integer"),
    ([], "must map each template to its class index"),
])
def test_bad_label_indices(ssv2_copy, labels, needle):
    (ssv2_copy / "labels.json").write_text(json.dumps(labels))
    with pytest.raises(DataError, match=needle):
        read_sthv2_classes(ssv2_copy)


def test_corrupt_json(ssv2_copy):
    (ssv2_copy / "train.json").write_text('[{"id": "1", ')
    with pytest.raises(DataError, match="is not valid JSON") as err:
        read_sthv2_split(ssv2_copy, "train.json")
    assert str(ssv2_copy / "train.json") in _message(err)


def test_missing_videos_reported_once_with_count(ssv2_copy):
    train = SSV2_TRAIN + [dict(SSV2_TRAIN[0], id="999001"), dict(SSV2_TRAIN[1], id="999002")]
    (ssv2_copy / "train.json").write_text(json.dumps(train))
    with pytest.raises(DataError, match=r"2 of the 6 videos of .* are missing, the first: video") as err:
        read_sthv2_split(ssv2_copy, "train.json")
    assert str(ssv2_copy / VIDEOS / "999001.webm") in _message(err)
    with pytest.raises(DataError, match=r"2 of the 6 videos .* the first: frames folder") as err:
        read_sthv2_split(ssv2_copy, "train.json", frames_dir="frames")
    assert str(ssv2_copy / "frames" / "999001") in _message(err)


def test_missing_videos_folder(ssv2_copy):
    with pytest.raises(DataError, match="videos folder .* does not exist") as err:
        read_sthv2_split(ssv2_copy, "train.json", videos_dir="videos")
    assert str(ssv2_copy / "videos") in _message(err)
    with pytest.raises(DataError, match="frames folder .* does not exist") as err:
        read_sthv2_split(ssv2_copy, "train.json", frames_dir="rgb_frames")
    assert str(ssv2_copy / "rgb_frames") in _message(err)


def test_empty_sthv2_split(ssv2_copy):
    (ssv2_copy / "validation.json").write_text("[]")
    with pytest.raises(DataError, match="lists no videos"):
        read_sthv2_split(ssv2_copy, "validation.json")
