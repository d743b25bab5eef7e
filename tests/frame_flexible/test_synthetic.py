"""The FFN synthetic video set: on-disk layout, determinism, exact time reversal and measured content."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from torchrepro.frame_flexible import synthetic
from torchrepro.frame_flexible.synthetic import (
    CLASSES,
    SPLITS,
    VideoScene,
    generate_videos,
    render_scene,
    render_video,
    sample_scene,
    video_rng,
)

SMALL = dict(n_train=12, n_val=4, n_test=3, seed=5, size=32, n_frames=8)
SIZE, N_FRAMES = 64, 32  # content checks run at the default resolution
N_VIDEOS = 20  # per class in the content checks


# ---------------------------------------------------------------- helpers


def _rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as fh:
        return list(csv.reader(fh))


def _read_video(folder: Path) -> np.ndarray:
    frames = []
    for path in sorted(folder.iterdir()):
        with Image.open(path) as im:
            frames.append(np.asarray(im))
    return np.stack(frames)


def _file_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _scenes(class_index: int, n: int = N_VIDEOS) -> list[VideoScene]:
    return [sample_scene(class_index, np.random.default_rng([77, i]), size=SIZE, n_frames=N_FRAMES) for i in range(n)]


def _plain(scene: VideoScene) -> VideoScene:
    """The scene without distractors, shake, brightness changes or noise: only the action is left to move."""
    return dataclasses.replace(
        scene, sprites=tuple(s for s in scene.sprites if s.role != "distractor"),
        shake=np.zeros_like(scene.shake), gain=np.ones_like(scene.gain), noise_sigma=0.0,
    )  # fmt: skip


def _weights(scene: VideoScene, *roles: str) -> list[np.ndarray]:
    """(T, H, W) per role: how much the sprites of that role change the plain render (their visible footprint)."""
    plain = _plain(scene)
    video = render_scene(plain).astype(np.float64)
    weights = []
    for role in roles:
        without = dataclasses.replace(plain, sprites=tuple(s for s in plain.sprites if s.role != role))
        diff = np.abs(video - render_scene(without)).sum(-1)
        weights.append(np.where(diff > 30, diff, 0.0))  # ignore the anti-aliased fringe's faint pixels
    return weights


def _weight(scene: VideoScene, role: str) -> np.ndarray:
    return _weights(scene, role)[0]


def _centroid(weight: np.ndarray) -> np.ndarray:
    """(x, y) centroid (pixel centres) of an (H, W) weight image."""
    ys, xs = np.indices(weight.shape) + 0.5
    return np.array([(weight * xs).sum(), (weight * ys).sum()]) / weight.sum()


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ffn") / "videos"
    assert generate_videos(root, **SMALL) is True
    return root


# ---------------------------------------------------------------- on-disk layout


def test_layout(small_set: Path) -> None:
    assert sorted(p.name for p in small_set.iterdir()) == [
        "classes.txt", "frames", "generated.json", "test.csv", "train.csv", "val.csv"]
    assert (small_set / "classes.txt").read_text().splitlines() == list(CLASSES)
    names = []
    for split in SPLITS:
        assert (small_set / f"{split}.csv").read_text().splitlines()[0] == "video,label"
        body = _rows(small_set / f"{split}.csv")[1:]
        assert len(body) == SMALL[f"n_{split}"]
        assert [r[0] for r in body] == [f"{split}_{i:06d}" for i in range(len(body))]
        assert all(label in CLASSES for _, label in body)
        names += [r[0] for r in body]
    assert len(set(names)) == len(names) == 19
    assert sorted(p.name for p in (small_set / "frames").iterdir()) == sorted(names)
    for name in names:
        frames = sorted(p.name for p in (small_set / "frames" / name).iterdir())
        assert frames == [f"{t:05d}.png" for t in range(1, 9)]
    with Image.open(small_set / "frames" / "val_000003" / "00008.png") as im:
        assert (im.format, im.mode, im.size) == ("PNG", "RGB", (32, 32))


def test_classes_are_balanced_and_shuffled(small_set: Path) -> None:
    labels = [r[1] for r in _rows(small_set / "train.csv")[1:]]
    counts = Counter(labels)
    assert set(counts) == set(CLASSES) and sorted(counts.values()) == [1] * 8 + [2] * 2
    assert labels[:10] != list(CLASSES)  # a seeded order, not the class cycle
    assert sorted(labels[:10]) == sorted(CLASSES)  # every block of ten holds each class once


def test_stamp(small_set: Path) -> None:
    stamp = json.loads((small_set / "generated.json").read_text())
    assert stamp["generator"] == "ffn-synthetic-videos" and stamp["version"] == synthetic.GENERATOR_VERSION
    assert stamp["params"] == SMALL
    assert {split: sum(c.values()) for split, c in stamp["counts"].items()} == {"train": 12, "val": 4, "test": 3}


def test_frames_on_disk_are_the_labelled_class_rendered(small_set: Path) -> None:
    """Each written video is render_video of its CSV label drawn from video_rng(seed, split, index)."""
    for split in SPLITS:
        for index, (name, label) in enumerate(_rows(small_set / f"{split}.csv")[1:]):
            expected = render_video(CLASSES.index(label), video_rng(SMALL["seed"], split, index), size=32, n_frames=8)
            np.testing.assert_array_equal(_read_video(small_set / "frames" / name), expected)


def test_same_params_reuse_other_params_regenerate(tmp_path: Path) -> None:
    root, params = tmp_path / "videos", dict(SMALL, n_train=3, n_val=1, n_test=1)
    assert generate_videos(root, **params) is True
    probe = root / "frames" / "train_000000" / "00001.png"
    os.utime(probe, ns=(1, 1))  # any rewrite would change it
    assert generate_videos(root, **params) is False
    assert probe.stat().st_mtime_ns == 1
    assert generate_videos(root, **dict(params, n_frames=5)) is True
    assert len(list((root / "frames" / "train_000000").iterdir())) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["videos"]  # nothing left aside


def test_a_missing_frame_regenerates(tmp_path: Path) -> None:
    root, params = tmp_path / "videos", dict(SMALL, n_train=2, n_val=1, n_test=1)
    generate_videos(root, **params)
    before = _file_bytes(root)
    (root / "frames" / "val_000000" / "00008.png").unlink()
    assert generate_videos(root, **params) is True
    assert _file_bytes(root) == before


def test_videos_do_not_depend_on_the_set_size(tmp_path: Path) -> None:
    small = dict(SMALL, n_train=4, n_val=0, n_test=0)
    generate_videos(tmp_path / "a", **small)
    generate_videos(tmp_path / "b", **dict(small, n_train=8, n_val=2))
    a, b = _file_bytes(tmp_path / "a" / "frames"), _file_bytes(tmp_path / "b" / "frames")
    assert len(a) == 4 * 8 and len(b) == 10 * 8
    assert {k: b[k] for k in a} == a
    assert _rows(tmp_path / "b" / "train.csv")[:5] == _rows(tmp_path / "a" / "train.csv")


def test_different_seeds_and_splits_give_different_videos(small_set: Path, tmp_path: Path) -> None:
    generate_videos(tmp_path / "other", **dict(SMALL, seed=6))
    ours, other = _file_bytes(small_set / "frames"), _file_bytes(tmp_path / "other" / "frames")
    assert not set(ours.values()) & set(other.values())
    assert len(set(ours.values())) == len(ours)  # no two frames of the set are identical, across splits too


def test_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="class_index"):
        render_video(len(CLASSES), np.random.default_rng(0))
    with pytest.raises(ValueError, match="n_frames"):
        render_video(0, np.random.default_rng(0), n_frames=1)
    with pytest.raises(ValueError, match="seed"):
        generate_videos(tmp_path / "x", **dict(SMALL, seed=-1))
    with pytest.raises(ValueError, match="size >= 32"):
        generate_videos(tmp_path / "x", **dict(SMALL, size=24))
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------- time reversal


@pytest.mark.parametrize("pair", range(len(CLASSES) // 2))
def test_reverse_class_is_the_forward_video_played_backwards(pair: int) -> None:
    for seed in range(5):
        forward = render_video(2 * pair, np.random.default_rng(seed), size=48, n_frames=12)
        backward = render_video(2 * pair + 1, np.random.default_rng(seed), size=48, n_frames=12)
        assert forward.shape == (12, 48, 48, 3) and forward.dtype == np.uint8
        np.testing.assert_array_equal(backward, forward[::-1])
        assert not np.array_equal(forward[0], forward[-1])  # not a palindrome: the order carries the label


def test_render_video_is_a_function_of_the_generator_state() -> None:
    a, b = (render_video(4, np.random.default_rng(3)) for _ in range(2))
    np.testing.assert_array_equal(a, b)
    assert (render_video(4, np.random.default_rng(4)) != a).mean() > 0.5


# ---------------------------------------------------------------- measured content


def test_action_window_and_static_scene_outside_it() -> None:
    lengths = []
    for class_index in range(len(CLASSES)):
        for scene in _scenes(class_index, 4):
            start, end = scene.window
            lengths.append((end - start) / (N_FRAMES - 1))
            plain = render_scene(_plain(scene))
            before, after = int(np.ceil(start)), int(np.floor(end))
            assert all(np.array_equal(plain[t], plain[0]) for t in range(before))
            assert all(np.array_equal(plain[t], plain[-1]) for t in range(after + 1, N_FRAMES))
            assert not np.array_equal(plain[0], plain[-1])
            full = render_scene(scene)  # distractors, flicker and noise keep even the quiet frames changing
            assert np.abs(full[1].astype(int) - full[0]).mean() > 0.5
    assert 0.35 <= min(lengths) and max(lengths) <= 0.75 and np.ptp(lengths) > 0.2


@pytest.mark.parametrize(("class_index", "sign"), [(0, 1), (1, -1)])
def test_horizontal_motion(class_index: int, sign: int) -> None:
    shifts = []
    for scene in _scenes(class_index):
        w = _weight(scene, "actor")
        shifts.append((_centroid(w[-1]) - _centroid(w[0]))[0] / SIZE)
    shifts = sign * np.array(shifts)
    assert shifts.min() > 0.28 and 0.3 < shifts.mean() < 0.6  # drawn: 30-60 % of the frame


def _rotation_deg(scene: VideoScene) -> float:
    """Total on-screen rotation of the actor, clockwise positive, from its footprint's centroid around its centre."""
    actor = next(s for s in scene.sprites if s.role == "actor")
    w = _weight(scene, "actor")
    offsets = np.array([_centroid(frame) for frame in w]) - np.c_[actor.x, actor.y]
    angles = np.unwrap(np.arctan2(offsets[:, 1], offsets[:, 0]))  # y points down: a growing angle is clockwise
    return float(np.rad2deg(angles[-1] - angles[0]))


@pytest.mark.parametrize(("class_index", "sign"), [(2, 1), (3, -1)])
def test_rotation(class_index: int, sign: int) -> None:
    turns = sign * np.array([_rotation_deg(scene) for scene in _scenes(class_index)])
    assert turns.min() > 80 and turns.max() < 310  # drawn: 90-300°, measured through pixelated shapes


@pytest.mark.parametrize(("class_index", "grows"), [(4, True), (5, False)])
def test_approach_changes_the_area(class_index: int, grows: bool) -> None:
    ratios = []
    for scene in _scenes(class_index):
        area = (_weight(scene, "actor") > 0).sum(axis=(1, 2))
        ratios.append(area[-1] / area[0] if grows else area[0] / area[-1])
    assert min(ratios) > 2.8  # drawn: linear growth 1.8-2.5, so the area grows 3.2-6.3 times


@pytest.mark.parametrize(("class_index", "appears"), [(6, True), (7, False)])
def test_appearing_and_disappearing(class_index: int, appears: bool) -> None:
    occluded = 0
    for scene in _scenes(class_index):
        area = (_weight(scene, "actor") > 0).sum(axis=(1, 2))
        hidden, shown = (area[0], area[-1]) if appears else (area[-1], area[0])
        assert hidden == 0 and shown >= 36  # at least ~6 x 6 pixels once visible
        occluded += any(s.role == "occluder" for s in scene.sprites)
    assert 0 < occluded < N_VIDEOS  # both ways occur: from behind an occluder, and fading


@pytest.mark.parametrize(("class_index", "away"), [(8, True), (9, False)])
def test_push_moves_away_from_the_hand_and_pull_towards_it(class_index: int, away: bool) -> None:
    for scene in _scenes(class_index):
        actor, hand = _weights(scene, "actor", "hand")
        visible = np.flatnonzero(hand.sum(axis=(1, 2)) > 0)
        assert visible.size and hand[0].sum() == 0 and hand[-1].sum() == 0  # the hand comes and goes
        motion = _centroid(actor[-1]) - _centroid(actor[0])
        towards_object = _centroid(actor[visible[0]]) - _centroid(hand[visible[0]])
        assert np.linalg.norm(motion) > 0.15 * SIZE  # drawn: 20-35 % of the frame
        assert (np.dot(motion, towards_object) > 0) == away


def test_objects_are_big_enough_for_a_stride_32_network() -> None:
    for class_index in (0, 2, 8):
        for scene in _scenes(class_index, 10):
            ys, xs = np.nonzero(_weight(scene, "actor")[0])
            extent = sorted((np.ptp(xs) + 1, np.ptp(ys) + 1))
            assert extent[0] >= 5 and extent[1] >= 8
