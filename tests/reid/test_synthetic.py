"""Tests for the synthetic PIT-like re-ID set (torchrepro.reid.synthetic) and the colour baseline."""

from __future__ import annotations

import colorsys
import hashlib
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from torchrepro.core.errors import DataError
from torchrepro.reid.baselines import colour_histogram_features, rgb_to_hsv
from torchrepro.reid.datasets import parse_market_name, read_market1501, texture_path
from torchrepro.reid.synthetic import (
    STAMP_NAME,
    UV_LAYOUT,
    generate_persons,
    make_texture,
    render_person,
    sample_cameras,
    sample_person,
    sample_view,
)

TINY = dict(
    num_train_ids=6, num_test_ids=4, images_per_id=4, height=64, width=32, texture_size=32,
    num_distractor_ids=2, num_background=2, num_junk=1,
)
SPLITS = ("bounding_box_train", "query", "bounding_box_test")


def _digests(root: Path) -> dict[str, str]:
    """Relative path -> sha1 of every image and texture file (the stamp excluded)."""
    return {
        str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix in (".jpg", ".png")
    }


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_persons(tmp_path_factory.mktemp("persons") / "market", seed=0, **TINY)


def test_read_by_market_reader(tiny: Path) -> None:
    split = read_market1501(tiny)
    assert len(split.train) == 6 * 4 and len({it.pid for it in split.train}) == 6
    assert sorted({it.pid for it in split.train}) == list(range(6))  # relabelled
    assert len({it.pid for it in split.query}) == 4
    # gallery: 4 test ids + 2 distractor ids + pid 0 (bad crops); the -1 junk is skipped by the reader
    g_pids = {it.pid for it in split.gallery}
    assert 0 in g_pids and len(g_pids) == 4 + 2 + 1
    assert len(split.query) + sum(it.pid in {q.pid for q in split.query} for it in split.gallery) == 4 * 4
    assert any(p.name.startswith("-1_") for p in (tiny / "bounding_box_test").glob("*.jpg"))
    for items in (split.train, split.query, split.gallery):
        assert all(0 <= it.camid < 6 for it in items)
    with Image.open(split.query[0].path) as img:
        assert img.size == (32, 64) and img.mode == "RGB"


def test_names_and_disjoint_ids(tiny: Path) -> None:
    raw = {s: [parse_market_name(p.name) for p in sorted((tiny / s).glob("*.jpg"))] for s in SPLITS}
    for s in SPLITS:
        for p in (tiny / s).glob("*.jpg"):
            pid, cam, rest = p.name.split("_", 2)[0], p.name.split("_")[1], p.name.split("_", 2)[2]
            assert len(cam) == 4 and cam[0] == "c" and cam[2:] == "s1"
            assert rest[:6].isdigit() and rest[6:] == "_01.jpg"
            assert pid == "-1" or len(pid) == 4
    train_pids = {pid for pid, _ in raw["bounding_box_train"]}
    test_pids = {pid for pid, _ in raw["query"]} | {pid for pid, _ in raw["bounding_box_test"]}
    assert not train_pids & test_pids
    # every identity of train and query is seen by at least two cameras
    cams = defaultdict(set)
    for s in SPLITS:
        for pid, cam in raw[s]:
            cams[pid].add(cam)
    assert all(len(cams[pid]) >= 2 for pid in train_pids | {pid for pid, _ in raw["query"]})


def test_every_query_has_cross_camera_gallery_match(tiny: Path) -> None:
    split = read_market1501(tiny)
    seen = set()
    for q in split.query:
        assert (q.pid, q.camid) not in seen  # one query per (identity, camera)
        seen.add((q.pid, q.camid))
        assert any(g.pid == q.pid and g.camid != q.camid for g in split.gallery)


def test_textures_aligned_per_image(tiny: Path) -> None:
    by_pid: dict[int, set[str]] = defaultdict(set)
    n = 0
    for s in SPLITS:
        for img_path in (tiny / s).glob("*.jpg"):
            tex = texture_path(tiny, img_path)
            assert tex == tiny / "texture" / s / (img_path.stem + ".png")
            assert tex.is_file(), tex
            pid, _ = parse_market_name(img_path.name)
            if pid > 0:
                by_pid[pid].add(hashlib.sha1(tex.read_bytes()).hexdigest())
            n += 1
    assert n == sum(1 for s in SPLITS for _ in (tiny / s).glob("*.jpg"))
    assert all(len(d) == 1 for d in by_pid.values())  # one texture per identity
    digests = [next(iter(d)) for d in by_pid.values()]
    assert len(set(digests)) == len(digests)  # different identities, different textures
    with Image.open(next((tiny / "texture" / "query").glob("*.png"))) as tex:
        assert tex.size == (32, 32) and tex.mode == "RGB"


def test_deterministic_and_seed_dependent(tiny: Path, tmp_path: Path) -> None:
    again = generate_persons(tmp_path / "again", seed=0, **TINY)
    assert _digests(again) == _digests(tiny)
    other = generate_persons(tmp_path / "other", seed=1, **TINY)
    assert _digests(other) != _digests(tiny)
    assert json.loads((other / STAMP_NAME).read_text())["params"]["seed"] == 1


def test_idempotent_and_regenerates_on_new_params(tmp_path: Path) -> None:
    root = tmp_path / "m"
    params = dict(TINY, num_train_ids=2, num_test_ids=2, num_distractor_ids=0, num_background=0, num_junk=0)
    generate_persons(root, **params)
    stamp_mtime = (root / STAMP_NAME).stat().st_mtime_ns
    marker = root / "query" / "keep.txt"
    marker.write_text("x")  # a second identical call must not touch the folder
    generate_persons(root, **params)
    assert marker.exists() and (root / STAMP_NAME).stat().st_mtime_ns == stamp_mtime
    generate_persons(root, **dict(params, num_train_ids=3))  # stale set of ours: replaced atomically
    assert not marker.exists()
    assert len(read_market1501(root).train) == 3 * 4
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left behind


def test_refuses_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "notes.txt").write_text("my data")
    with pytest.raises(DataError, match="not empty"):
        generate_persons(tmp_path / "real", **TINY)
    assert (tmp_path / "real" / "notes.txt").exists()


def test_texture_layout_front_back_differ() -> None:
    # a person with a backpack: its back half of the torso differs from the front half
    rng = np.random.default_rng(3)
    person = next(p for p in (sample_person(rng) for _ in range(100)) if p.back == "backpack" and p.logo is not None)
    tex = make_texture(person, 64)
    v0, v1, _, _ = UV_LAYOUT["torso"]
    torso = tex[round(v0 * 64) : round(v1 * 64)]
    assert not np.array_equal(torso[:, :32], torso[:, 32:])
    assert tex.dtype == np.uint8 and tex.shape == (64, 64, 3)


def test_render_shapes_and_views() -> None:
    rng = np.random.default_rng(0)
    cams = sample_cameras(rng)
    person = sample_person(rng)
    tex = make_texture(person, 32)
    img = render_person(person, tex, sample_view(rng, cams[0]), cams[0], rng, 96, 48)
    assert img.shape == (96, 48, 3) and img.dtype == np.uint8
    yaws = [sample_view(rng, c).yaw for c in cams for _ in range(20)]
    assert min(yaws) >= 0 and max(yaws) < 2 * np.pi and np.ptp(yaws) > np.pi  # front, back and side views


def test_rgb_to_hsv_matches_colorsys() -> None:
    rng = np.random.default_rng(0)
    px = rng.integers(0, 256, (200, 3), dtype=np.uint8)
    ours = rgb_to_hsv(px)
    ref = np.array([colorsys.rgb_to_hsv(*(c / 255.0)) for c in px], np.float32)
    assert np.allclose(ours, ref, atol=1e-5)


def test_colour_histogram_features() -> None:
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (5, 24, 12, 3), dtype=np.uint8)
    feats = colour_histogram_features(imgs, bins=4, stripes=6)
    assert feats.shape == (5, 6 * 4**3) and feats.dtype == np.float32
    assert np.allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-5)
    assert (feats >= 0).all()
    # identical images -> cosine 1; a flat image puts all mass of a stripe into one bin
    assert np.isclose(float(feats[0] @ colour_histogram_features(imgs[:1], 4, 6)[0]), 1.0, atol=1e-6)
    flat = colour_histogram_features(np.full((1, 24, 12, 3), 200, np.uint8), 4, 6)[0]
    assert np.count_nonzero(flat) == 6
    with pytest.raises(ValueError):
        colour_histogram_features(imgs.astype(np.float32))
