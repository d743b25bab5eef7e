"""Tests for the synthetic driving-direction data set (torchrepro.driving.synthetic)."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from torchrepro.core.errors import DataError
from torchrepro.driving import synthetic
from torchrepro.driving.synthetic import (
    CLASSES,
    FOCAL_FRACTION,
    MIN_BEND,
    STRAIGHT_BEND,
    RoadSceneParams,
    generate_dataset,
    generate_split,
    render_scene,
    road_centre_px,
    sample_scene_params,
)

SIZE = 96


# ---------------------------------------------------------------- helpers


def _read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="") as fh:
        return list(csv.reader(fh))


def _file_bytes(root: Path) -> dict[str, bytes]:
    """Relative path -> content for every file below ``root``."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def _scenes(n_per_class: int, seed: int) -> list[RoadSceneParams]:
    rng = np.random.default_rng(seed)
    return [sample_scene_params(rng, label) for _ in range(n_per_class) for label in CLASSES]


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("split") / "train"
    generate_split(out, n_images=31, seed=123)
    return out


# ---------------------------------------------------------------- on-disk format


def test_csv_format(split_dir: Path) -> None:
    rows = _read_csv(split_dir / "labels.csv")
    assert (split_dir / "labels.csv").read_text().splitlines()[0] == "image_name,label"
    assert rows[0] == ["image_name", "label"]
    body = rows[1:]
    assert len(body) == 31
    names = [r[0] for r in body]
    assert len(set(names)) == len(names)
    for name, label in body:
        assert not name.endswith(".jpg") and "." not in name
        assert (split_dir / "images" / f"{name}.jpg").is_file()
        assert label in CLASSES
    counts = Counter(r[1] for r in body)
    assert set(counts) == set(CLASSES)
    assert max(counts.values()) - min(counts.values()) <= 1
    # shuffled: labels are not simply cycling in class order
    assert [r[1] for r in body] != [CLASSES[i % 3] for i in range(31)]
    # nothing but the images, the CSV and the generator's stamp in the split directory
    assert sorted(p.name for p in split_dir.iterdir()) == ["generated.json", "images", "labels.csv"]
    assert len(list((split_dir / "images").iterdir())) == 31


def test_images_are_96px_rgb_jpegs(split_dir: Path) -> None:
    for path in (split_dir / "images").iterdir():
        with Image.open(path) as im:
            assert im.format == "JPEG"
            assert im.size == (SIZE, SIZE)
            assert im.mode == "RGB"


def test_no_temporary_dirs_left_behind(split_dir: Path) -> None:
    assert [p.name for p in split_dir.parent.iterdir()] == ["train"]


# ---------------------------------------------------------------- determinism / caching


def test_generate_split_is_byte_identical(tmp_path: Path) -> None:
    a = generate_split(tmp_path / "a", n_images=12, seed=7, size=64)
    b = generate_split(tmp_path / "b", n_images=12, seed=7, size=64)
    assert a == tmp_path / "a" / "labels.csv"
    files_a, files_b = _file_bytes(a.parent), _file_bytes(b.parent)
    assert len(files_a) == 14  # 12 images, the CSV and the stamp
    assert files_a == files_b


def test_different_seed_gives_different_data(tmp_path: Path) -> None:
    a = generate_split(tmp_path / "a", n_images=6, seed=1, size=48).parent
    b = generate_split(tmp_path / "b", n_images=6, seed=2, size=48).parent
    imgs_a = {v for k, v in _file_bytes(a).items() if k.endswith(".jpg")}
    imgs_b = {v for k, v in _file_bytes(b).items() if k.endswith(".jpg")}
    assert not imgs_a & imgs_b


def test_cache_is_idempotent(tmp_path: Path) -> None:
    out = tmp_path / "split"
    csv_path = generate_split(out, n_images=9, seed=3, size=48)
    files = [csv_path, *sorted((out / "images").iterdir())]
    before = {p: p.stat().st_mtime_ns for p in files}
    os.utime(csv_path, ns=(1, 1))  # make any rewrite detectable even on coarse clocks
    before[csv_path] = 1
    assert generate_split(out, n_images=9, seed=3, size=48) == csv_path
    assert {p: p.stat().st_mtime_ns for p in files} == before


def test_stamp_holds_seed_size_and_counts(split_dir: Path) -> None:
    stamp = json.loads((split_dir / "generated.json").read_text())
    assert stamp["params"] == {"n_images": 31, "seed": 123, "size": SIZE}
    assert stamp["version"] == synthetic.GENERATOR_VERSION and sum(stamp["counts"].values()) == 31


@pytest.mark.parametrize("change", [{"seed": 4}, {"size": 40}])
def test_other_seed_or_size_regenerates(tmp_path: Path, change: dict) -> None:
    """The cache is keyed by every parameter: a changed config never silently reuses the old images."""
    out = tmp_path / "split"
    generate_split(out, n_images=6, seed=3, size=48)
    before = _file_bytes(out / "images")
    generate_split(out, **dict(dict(n_images=6, seed=3, size=48), **change))
    fresh = generate_split(tmp_path / "fresh", **dict(dict(n_images=6, seed=3, size=48), **change)).parent
    assert _file_bytes(out / "images") == _file_bytes(fresh / "images") != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh", "split"]


def test_legacy_unstamped_split_is_replaced_but_a_foreign_folder_is_not(tmp_path: Path) -> None:
    legacy = tmp_path / "legacy"
    generate_split(legacy, n_images=3, seed=3, size=32)
    (legacy / "generated.json").unlink()  # as written before splits were stamped
    generate_split(legacy, n_images=3, seed=3, size=32)
    assert (legacy / "generated.json").is_file()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="data.synthetic_dir"):
        generate_split(foreign, n_images=3, seed=3, size=32)
    assert (foreign / "notes.txt").exists()


def test_wrong_row_count_regenerates(tmp_path: Path) -> None:
    out = tmp_path / "split"
    generate_split(out, n_images=6, seed=3, size=48)
    csv_path = generate_split(out, n_images=9, seed=3, size=48)
    assert len(_read_csv(csv_path)) == 10
    assert len(list((out / "images").iterdir())) == 9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["split"]


def test_interrupted_run_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real = synthetic.render_scene

    def flaky(params: RoadSceneParams, size: int) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt("simulated interruption")
        return real(params, size)

    monkeypatch.setattr(synthetic, "render_scene", flaky)
    with pytest.raises(KeyboardInterrupt):
        generate_split(tmp_path / "split", n_images=8, seed=0, size=32)
    assert list(tmp_path.iterdir()) == []  # no half set, no temp dir
    monkeypatch.setattr(synthetic, "render_scene", real)
    generate_split(tmp_path / "split", n_images=8, seed=0, size=32)
    assert len(_read_csv(tmp_path / "split" / "labels.csv")) == 9


def test_generate_dataset_train_val_and_test_differ(tmp_path: Path) -> None:
    train_csv, val_csv, test_csv = generate_dataset(tmp_path / "ds", n_train=12, n_val=9, seed=5, size=48, n_test=7)
    assert train_csv == tmp_path / "ds" / "train" / "labels.csv"
    assert val_csv == tmp_path / "ds" / "val" / "labels.csv"
    assert test_csv == tmp_path / "ds" / "test" / "labels.csv"
    assert [len(_read_csv(p)) for p in (train_csv, val_csv, test_csv)] == [13, 10, 8]  # with the header line
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    train, val, test = ({digest(p) for p in (csv.parent / "images").iterdir()} for csv in (train_csv, val_csv, test_csv))
    assert (len(train), len(val), len(test)) == (12, 9, 7)
    assert not train & val and not train & test and not val & test
    # same call again is a cache hit and returns the same paths
    again = generate_dataset(tmp_path / "ds", n_train=12, n_val=9, seed=5, size=48, n_test=7)
    assert again == [train_csv, val_csv, test_csv]


# ---------------------------------------------------------------- scenes and rendering


def test_sample_scene_params_is_deterministic() -> None:
    a = sample_scene_params(np.random.default_rng(11), "left")
    b = sample_scene_params(np.random.default_rng(11), "left")
    assert a == b and a.label == "left"
    assert hash(a) == hash(b)  # frozen and hashable
    with pytest.raises(ValueError):
        sample_scene_params(np.random.default_rng(0), "up")


@pytest.mark.parametrize("label", CLASSES)
def test_render_scene_shape_dtype(
    label: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # rendering must not write anything anywhere
    params = sample_scene_params(np.random.default_rng(CLASSES.index(label)), label)
    for size in (SIZE, 40):
        img = render_scene(params, size)
        assert img.shape == (size, size, 3) and img.dtype == np.uint8
        assert img.std() > 5  # not a blank image
    np.testing.assert_array_equal(render_scene(params, SIZE), render_scene(params, SIZE))
    assert list(tmp_path.iterdir()) == []


def _far_bend_px(p: RoadSceneParams, size: int = SIZE) -> float:
    """Far-end centreline x minus the straight-line extrapolation of the near road.

    The near road (depths 1 and 1.25) defines a straight line in the image;
    offset and yaw keep a straight road on that line, so only curvature moves
    the far end off it.  Computed from the params, in pixels.
    """
    (x1, x2, xf), (y1, y2, yf) = road_centre_px(p, size, np.array([1.0, 1.25, p.view_depth]))
    return float(xf - (x1 + (x2 - x1) * (yf - y1) / (y2 - y1)))


def test_centreline_bends_the_labelled_way() -> None:
    f = FOCAL_FRACTION * SIZE
    scenes = _scenes(300, seed=99)
    for p in scenes:
        bend = _far_bend_px(p)
        if p.label == "left":
            assert p.curvature < 0 and bend < -0.5 * MIN_BEND * f
        elif p.label == "right":
            assert p.curvature > 0 and bend > 0.5 * MIN_BEND * f
        else:
            assert abs(p.bend) <= STRAIGHT_BEND and abs(bend) < 1.5 * STRAIGHT_BEND * f
    # Where the far end lies relative to the near end does not separate the classes: thanks to yaw, some
    # left curves still end to the right of where they start, and vice versa (the classes overlap; the
    # network has to see the *bend*, not the direction the road points in).
    shift = {c: [] for c in CLASSES}
    for p in scenes:
        (x_near, x_far), _ = road_centre_px(p, SIZE, np.array([1.0, p.view_depth]))
        shift[p.label].append(x_far - x_near)
    assert np.mean(np.array(shift["left"]) > 0) > 0.02
    assert np.mean(np.array(shift["right"]) < 0) > 0.02
    straight = np.abs(np.array(shift["straight"]))
    assert np.mean(straight > np.percentile(np.abs(shift["left"]), 25)) > 0.1  # straight roads tilt too


def _plain(p: RoadSceneParams) -> RoadSceneParams:
    """Black road on white ground, no clutter, markings or photometric effects."""
    return dataclasses.replace(
        p, road_rgb=(0.0, 0.0, 0.0), ground_rgb=(1.0, 1.0, 1.0), ground_texture=0.0,
        shoulder=0.0, edge_lines=0.0, centre_dashes=0.0, shadows=(), cars=(), roadside=(),
        haze=0.0, brightness=1.0, contrast=1.0, colour_gain=(1.0, 1.0, 1.0),
        noise_sigma=0.0, blur=False,
    )  # fmt: skip


def test_rendered_road_follows_params_centreline() -> None:
    """The dark band in each ground row is centred where the params say the road is."""
    checked = 0
    for p in map(_plain, _scenes(5, seed=3)):
        img = render_scene(p, SIZE).mean(-1)
        for z in np.linspace(1.1, 0.6 * p.view_depth, 6):
            x, y = road_centre_px(p, SIZE, z)
            half = FOCAL_FRACTION * SIZE * p.road_half_width / z
            if x - half < 1 or x + half > SIZE - 1:
                continue  # road leaves the image in this row
            row = img[int(y)]
            dark = np.flatnonzero(row < 128)
            assert dark.size > 0
            assert abs((dark.min() + dark.max() + 1) / 2 - x) < 1.5
            checked += 1
    assert checked > 20


# ---------------------------------------------------------------- non-trivial baselines


def _gray4(imgs: np.ndarray) -> np.ndarray:
    g = imgs.astype(np.float32).mean(-1) / 255
    s = g.shape[1] // 4
    return g.reshape(len(g), 4, s, 4, s).mean((2, 4)).reshape(len(g), -1)


def _dark_mean_x(imgs: np.ndarray) -> np.ndarray:
    """Mean column of the darkest quarter of pixels (where the asphalt usually is)."""
    g = imgs.astype(np.float32).mean(-1).reshape(len(imgs), -1)
    mask = g <= np.percentile(g, 25, axis=1, keepdims=True)
    cols = np.tile(np.arange(imgs.shape[2]), imgs.shape[1])
    return ((mask * cols).sum(1) / mask.sum(1))[:, None]


def _standardise(tr: np.ndarray, te: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu, sd = tr.mean(0), tr.std(0) + 1e-6
    return (tr - mu) / sd, (te - mu) / sd


def _nearest_centroid(xtr, ytr, xte, yte) -> float:
    xtr, xte = _standardise(xtr, xte)
    cent = np.stack([xtr[ytr == k].mean(0) for k in range(len(CLASSES))])
    pred = ((xte[:, None] - cent[None]) ** 2).sum(-1).argmin(1)
    return float((pred == yte).mean())


def _logistic_regression(xtr, ytr, xte, yte, steps: int = 500, lr: float = 0.5) -> float:
    """Multinomial logistic regression by full-batch gradient descent (L2 1e-3)."""
    xtr, xte = _standardise(xtr, xte)
    xtr, xte = np.c_[xtr, np.ones(len(xtr))], np.c_[xte, np.ones(len(xte))]
    w, onehot = np.zeros((xtr.shape[1], len(CLASSES))), np.eye(len(CLASSES))[ytr]
    for _ in range(steps):
        z = xtr @ w
        prob = np.exp(z - z.max(1, keepdims=True))
        prob /= prob.sum(1, keepdims=True)
        w -= lr * (xtr.T @ (prob - onehot) / len(xtr) + 1e-3 * w)
    return float(((xte @ w).argmax(1) == yte).mean())


@pytest.fixture(scope="module")
def baseline_data() -> tuple[np.ndarray, np.ndarray]:
    """900 rendered scenes (300 per class), shuffled; rendered in memory only."""
    scenes = _scenes(300, seed=2024)
    order = np.random.default_rng(0).permutation(len(scenes))
    imgs = np.stack([render_scene(scenes[i], SIZE) for i in order])
    labels = np.array([CLASSES.index(scenes[i].label) for i in order])
    return imgs, labels


def test_hand_crafted_baselines_are_far_from_solving_it(baseline_data) -> None:
    imgs, y = baseline_data
    results = {}
    for name, feats in (("gray4x4", _gray4(imgs)), ("dark_mean_x", _dark_mean_x(imgs))):
        args = (feats[:600], y[:600], feats[600:900], y[600:900])
        results[f"{name}/nearest_centroid"] = _nearest_centroid(*args)
        results[f"{name}/logistic"] = _logistic_regression(*args)
    print("baseline accuracies (600 train / 300 test):", results)
    for name, acc in results.items():
        assert acc < 0.75, f"{name} accuracy {acc:.3f}: data set is too easy ({results})"
