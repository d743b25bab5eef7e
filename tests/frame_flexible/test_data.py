"""Clips of the FFN recipe: TSN sampling at every frame count, one crop per video, determinism, and the three
sources (generated set, frames-folder + CSV, Something-Something V2) read through the data module."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

import torchrepro.recipes  # noqa: F401  (fills the registry)
from tests.helpers import REPO
from tests.video import SSV2_CLASSES, SSV2_TRAIN, SSV2_VAL, write_sthv2
from torchrepro.core.registry import resolve_config
from torchrepro.frame_flexible.data import ClipDataset, FFNDataModule, split_off_validation
from torchrepro.frame_flexible.synthetic import CLASSES
from torchrepro.video.sampling import _reset_short_warning

TINY = ["data.synthetic_train=10", "data.synthetic_val=10", "data.synthetic_test=10", "data.synthetic_size=32",
        "data.synthetic_frames=8", "data.image_size=24", "data.resize=32", "model.train_frames=[2,4,8]",
        "model.eval_frames=[2,4,8]"]


@pytest.fixture(scope="module")
def synthetic_dm(tmp_path_factory) -> FFNDataModule:
    root = tmp_path_factory.mktemp("ffn_data")
    cfg = resolve_config(REPO / "configs" / "ffn_synthetic.yaml", [*TINY, f"data.synthetic_dir={root}"])
    dm = FFNDataModule(cfg)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_synthetic_set_reads_back_through_the_csv_layout(synthetic_dm: FFNDataModule) -> None:
    assert synthetic_dm.class_names() == list(CLASSES)
    assert [len(synthetic_dm.splits[s]) for s in ("train", "val", "test")] == [10, 10, 10]
    assert sorted(synthetic_dm.train_set.labels()) == list(range(10))  # one video per class
    names = {it.name for split in synthetic_dm.splits.values() for it in split}
    assert len(names) == 30  # splits are disjoint
    csv_cfg = resolve_config(REPO / "configs" / "ffn_synthetic.yaml",
                             [*TINY, "data.source=frames_csv", f"data.root={synthetic_dm.synthetic_root()}"])
    csv_dm = FFNDataModule(csv_cfg)
    csv_dm.setup("fit")
    assert csv_dm.splits == synthetic_dm.splits


def test_evaluation_clips_are_the_segment_centres_of_one_decoding(synthetic_dm: FFNDataModule) -> None:
    """8 stored frames: the 2-frame clip is frames (2, 6), the 4-frame clip (1, 3, 5, 7), the 8-frame clip all of
    them (TSN test sampling); the same stored frame gives the same tensor in every clip (one centre crop)."""
    clips, label = synthetic_dm.val_set[3]
    assert label == synthetic_dm.splits["val"][3].label
    assert {f: tuple(c.shape) for f, c in clips.items()} == {f: (f, 3, 24, 24) for f in (2, 4, 8)}
    assert torch.equal(clips[4], clips[8][[1, 3, 5, 7]])
    assert torch.equal(clips[2], clips[8][[2, 6]])
    assert torch.equal(synthetic_dm.val_set[3][0][8], clips[8])  # evaluation is deterministic


def test_training_clips_share_one_crop_and_are_keyed_by_seed_epoch_index(synthetic_dm: FFNDataModule) -> None:
    train = synthetic_dm.train_set
    a, b = train[(0, 5)][0], train[(0, 5)][0]
    assert all(torch.equal(a[f], b[f]) for f in a)  # a pure function of (seed, epoch, index)
    other = train[(1, 5)][0]
    assert not all(torch.equal(a[f], other[f]) for f in a)  # a new epoch draws new frames and a new crop
    picks = train.frame_picks(8, epoch=0, index=5)
    # a stored frame drawn by two clips of the same video is cropped identically in both
    for f, g in ((2, 4), (2, 8), (4, 8)):
        for i, frame in enumerate(picks[f]):
            if frame in picks[g]:
                assert torch.equal(a[f][i], a[g][picks[g].index(frame)])
    # the training crop differs from evaluation's centre crop (the random crop covers 60-100 % of the area)
    centre = ClipDataset(train.items, (8,), synthetic_dm.val_set.transform)[5][0][8]
    assert a[8].shape == centre.shape and not torch.equal(a[8], centre)


def test_validation_held_out_of_a_training_list_is_fixed_and_disjoint() -> None:
    items = list(range(40))
    train, val = split_off_validation(items, 0.1, seed=3)
    assert len(val) == 4 and sorted(train + val) == items
    assert split_off_validation(items, 0.1, seed=3) == (train, val)
    assert split_off_validation(items, 0.1, seed=4)[1] != val


@pytest.fixture(scope="module")
def sthv2_root(tmp_path_factory) -> Path:
    return write_sthv2(tmp_path_factory.mktemp("sthv2"))


@pytest.mark.parametrize("frames_dir", [None, "frames"])
def test_something_something_v2_splits_and_clips(sthv2_root: Path, frames_dir: str | None) -> None:
    """train.json minus a held-out fraction trains, the fraction validates, validation.json is the test split;
    the fixture's videos have 3 frames, so 4-frame clips repeat frames (and say so once)."""
    over = [f"data.root={sthv2_root}", "data.val_fraction=0.25", "data.image_size=16", "data.resize=24",
            "model.train_frames=[2,4]", "model.eval_frames=[2,4]"]
    if frames_dir:
        over.append(f"data.frames_dir={frames_dir}")
    cfg = resolve_config(REPO / "configs" / "ffn_sthv2.yaml", over)
    dm = FFNDataModule(cfg)
    dm.setup("fit")
    assert dm.class_names() == SSV2_CLASSES
    assert len(dm.splits["train"]) == 3 and len(dm.splits["val"]) == 1
    assert {it.name for it in dm.splits["train"] + dm.splits["val"]} == {e["id"] for e in SSV2_TRAIN}
    assert [it.name for it in dm.splits["test"]] == [e["id"] for e in SSV2_VAL]
    _reset_short_warning()
    with pytest.warns(UserWarning, match="frames"):
        clips, _ = dm.test_set[0]
    assert tuple(clips[4].shape) == (4, 3, 16, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dm.test_set[1]  # said once


def test_check_files_names_an_unreadable_frame(tmp_path: Path, synthetic_dm: FFNDataModule) -> None:
    import shutil

    from torchrepro.core.errors import DataError

    root = tmp_path / "copy"
    shutil.copytree(synthetic_dm.synthetic_root(), root)
    bad = sorted((root / "frames").iterdir())[0] / "00003.png"
    bad.write_bytes(b"not a png")
    cfg = resolve_config(REPO / "configs" / "ffn_synthetic.yaml", [*TINY, "data.source=frames_csv", f"data.root={root}"])
    dm = FFNDataModule(cfg)
    dm.setup("fit")
    with pytest.raises(DataError, match="00003.png"):
        dm.check_files()
