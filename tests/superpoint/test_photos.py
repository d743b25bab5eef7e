"""Real-photograph sets: the split, the HPatches-layout round trip (H_1_k convention checked on pixels), the
illumination ramp, determinism / publish_once reuse and the training-folder reader's errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from torchrepro.core.errors import ConfigError, DataError
from torchrepro.superpoint.homography import warp_points
from torchrepro.superpoint.image_folder import list_images
from torchrepro.superpoint.hpatches import HPatchesPairs, list_sequences, read_homography
from torchrepro.superpoint.photos import (
    HELDOUT_PHOTOS,
    PHOTO_SOURCES,
    TRAIN_PHOTOS,
    VAL_PHOTOS,
    load_photo,
    write_photo_sets,
)

SIZE = (120, 160)  # small sequences and crops: the whole set generates in about a second
CROPS = 2
SEED = 3


def _generate(root: Path, seed: int = SEED) -> dict:
    return write_photo_sets(root, seed, crops_per_photo=CROPS, crop_size=SIZE, sequence_size=SIZE)


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return _generate(tmp_path_factory.mktemp("photos") / "set")


def _grey(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_GRAYSCALE).astype(np.float32)


# ------------------------------------------------------------------------------------------------------ the split
def test_split_is_disjoint_complete_and_loads() -> None:
    train, held = set(TRAIN_PHOTOS), set(HELDOUT_PHOTOS)
    assert not train & held
    assert train | held == set(PHOTO_SOURCES)
    assert set(VAL_PHOTOS) <= train  # model selection never sees a held-out photo
    assert {"motorcycle_left", "motorcycle_right"} <= train  # the same scene stays on one side
    assert "cat" not in PHOTO_SOURCES and "horse" not in PHOTO_SOURCES  # cat() is chelsea; horse is clip art
    assert 0.6 <= len(train) / len(PHOTO_SOURCES) <= 0.75  # about 2/3 : 1/3
    for name in PHOTO_SOURCES:
        photo = load_photo(name)
        assert photo.dtype == np.uint8 and photo.ndim in (2, 3), name
        assert min(photo.shape[:2]) >= 150, name  # no tiny photo (microaneurysms is 102x102)
        assert photo.std() > 10, name  # a real image, not a flat one
    # the two stereo views are different images of the same scene
    assert not np.array_equal(load_photo("motorcycle_left"), load_photo("motorcycle_right"))
    with pytest.raises(ConfigError, match="unknown photo 'horse'"):
        load_photo("horse")


# ------------------------------------------------------------------------------------------------------ layout
def test_training_folder(sets: dict) -> None:
    images = list_images(sets["train"])
    assert len(images) == len(TRAIN_PHOTOS) * CROPS == sets["stamp"]["counts"]["train_images"]
    assert {p.name.rsplit("_", 1)[0] for p in images} == set(TRAIN_PHOTOS)
    colour = cv2.imread(str(sets["train"] / "astronaut_000.png"), cv2.IMREAD_UNCHANGED)
    grey = cv2.imread(str(sets["train"] / "camera_000.png"), cv2.IMREAD_UNCHANGED)
    assert colour.shape == (*SIZE, 3) and np.abs(colour[..., 0].astype(int) - colour[..., 2]).mean() > 5
    assert grey.shape == SIZE  # a grey photo gives a grey PNG


def test_hpatches_round_trip(sets: dict) -> None:
    test, val = sets["hpatches_test"], sets["hpatches_val"]
    assert [p.name for p in list_sequences(test, ("v",))] == [f"v_{n}" for n in sorted(HELDOUT_PHOTOS)]
    assert [p.name for p in list_sequences(test, ("i",))] == [f"i_{n}" for n in sorted(HELDOUT_PHOTOS)]
    assert [p.name for p in list_sequences(val, ("v",))] == [f"v_{n}" for n in sorted(VAL_PHOTOS)]
    for kind in ("i", "v"):
        assert len(HPatchesPairs(test, kinds=(kind,))) == 5 * len(HELDOUT_PHOTOS)
        assert len(HPatchesPairs(val, kinds=(kind,))) == 5 * len(VAL_PHOTOS)
    counts = sets["stamp"]["counts"]
    assert counts["test_pairs"] == len(HPatchesPairs(test)) and counts["val_pairs"] == len(HPatchesPairs(val))
    pair = HPatchesPairs(test, kinds=("v",), grey=True)[0]
    assert pair.image1.shape == pair.image2.shape == SIZE and pair.kind == "viewpoint"
    assert (test / "v_coffee" / "1.ppm").read_bytes()[:2] == b"P6"


# ------------------------------------------------------------------------------------------------------ viewpoint
def _errors(seq: Path, k: int) -> tuple[float, float, float, float]:
    """Mean |warp(image 1, H) - image k| with the written H, identity and H shifted by 2 px, on pixels valid in
    both images (eroded by 2 px), on the whole overlap and (for the written H) on its smooth part."""
    im1, imk = _grey(seq / "1.ppm"), _grey(seq / f"{k}.ppm")
    H = read_homography(seq / f"H_1_{k}")
    h, w = im1.shape

    def warp(M: np.ndarray) -> np.ndarray:
        return cv2.warpPerspective(im1, M, (w, h), flags=cv2.INTER_LINEAR)

    valid = cv2.warpPerspective(np.ones_like(im1), H, (w, h), flags=cv2.INTER_NEAREST)
    valid = cv2.erode(valid, np.ones((5, 5), np.uint8)) > 0
    assert valid.mean() > 0.3  # the views overlap
    grad = np.hypot(cv2.Sobel(imk, cv2.CV_32F, 1, 0), cv2.Sobel(imk, cv2.CV_32F, 0, 1))
    smooth = valid & (grad <= np.percentile(grad[valid], 25))
    shifted = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) @ H
    err = np.abs(warp(H) - imk)
    return (float(err[valid].mean()), float(np.abs(im1 - imk)[valid].mean()),
            float(np.abs(warp(shifted) - imk)[valid].mean()), float(err[smooth].mean()))


@pytest.mark.parametrize("which", ["hpatches_test", "hpatches_val"])
def test_viewpoint_homography_maps_image1_to_imagek(sets: dict, which: str) -> None:
    for seq in list_sequences(sets[which], ("v",)):
        for k in range(2, 7):
            err, err_identity, err_shifted, err_smooth = _errors(seq, k)
            # the written H_1_k (image 1 -> image k) explains image k; a wrong H (identity, 2 px off) does not
            assert err < 0.5 * err_identity, (seq.name, k, err, err_identity)
            assert err < 0.6 * err_shifted, (seq.name, k, err, err_shifted)
            assert err_smooth < 4.0, (seq.name, k, err_smooth)


def test_viewpoint_views_are_filled_and_get_harder(sets: dict) -> None:
    for seq in list_sequences(sets["hpatches_test"], ("v",)):
        im1 = cv2.imread(str(seq / "1.ppm"))
        h, w = im1.shape[:2]
        corners = np.array([[0.0, 0.0], [w - 1.0, 0.0], [w - 1.0, h - 1.0], [0.0, h - 1.0]])
        motion = []
        for k in range(2, 7):
            imk = cv2.imread(str(seq / f"{k}.ppm"))
            # rendered from the whole photo: no black border (no more black pixels than image 1 has)
            assert (imk.max(axis=2) == 0).mean() <= (im1.max(axis=2) == 0).mean() + 0.005, (seq.name, k)
            H = read_homography(seq / f"H_1_{k}")
            assert not np.allclose(H, np.eye(3), atol=1e-3)
            motion.append(np.linalg.norm(warp_points(corners, H) - corners, axis=1).mean())
        assert all(np.diff(motion) > 0), (seq.name, motion)  # HPatches' viewpoint sequences get harder 2 -> 6


# ------------------------------------------------------------------------------------------------------ illumination
def _clipped(grey: np.ndarray) -> float:
    return float(((grey <= 2) | (grey >= 253)).mean())


def test_illumination_changes_grow_with_identity_geometry(sets: dict) -> None:
    for root in (sets["hpatches_test"], sets["hpatches_val"]):
        for seq in list_sequences(root, ("i",)):
            im1 = cv2.imread(str(seq / "1.ppm")).astype(np.float32)
            diffs = []
            for k in range(2, 7):
                np.testing.assert_allclose(read_homography(seq / f"H_1_{k}"), np.eye(3))
                imk = cv2.imread(str(seq / f"{k}.ppm")).astype(np.float32)
                diffs.append(float(np.abs(imk - im1).mean()))
                # realistic: no large area crushed to black or burnt to white
                grey = imk.mean(axis=2)
                assert _clipped(grey) <= _clipped(im1.mean(axis=2)) + 0.03, (seq.name, k)
                # the same scene: the structure (band-passed, above the added noise) correlates with image 1
                g1, gk = (cv2.Laplacian(cv2.GaussianBlur(g, (0, 0), 1.5), cv2.CV_32F).ravel()
                          for g in (im1.mean(axis=2), grey))
                assert np.corrcoef(g1, gk)[0, 1] > 0.7, (seq.name, k)
            assert all(np.diff(diffs) > 0), (seq.name, diffs)
            assert diffs[-1] > 3.0, (seq.name, diffs)  # a visible change, not noise only


# ------------------------------------------------------------------------------------------------------ determinism
def test_deterministic_reused_and_seed_dependent(sets: dict, tmp_path: Path) -> None:
    files = ["train/grass_001.png", "hpatches_test/v_coins/4.ppm", "hpatches_test/v_coins/H_1_6",
             "hpatches_test/i_rocket/6.ppm", "hpatches_val/v_page/3.ppm"]
    again = _generate(tmp_path / "again")
    assert again["generated"]
    for name in files:
        assert (again["root"] / name).read_bytes() == (sets["root"] / name).read_bytes(), name

    mtime = (again["root"] / files[1]).stat().st_mtime_ns
    reused = _generate(tmp_path / "again")
    assert not reused["generated"] and (again["root"] / files[1]).stat().st_mtime_ns == mtime
    assert reused["stamp"]["counts"] == again["stamp"]["counts"]

    other = _generate(tmp_path / "other", seed=SEED + 1)
    for name in files:
        assert (other["root"] / name).read_bytes() != (sets["root"] / name).read_bytes(), name

    (again["root"] / files[0]).unlink()  # a damaged set is regenerated, not reused
    assert _generate(tmp_path / "again")["generated"]
    assert (again["root"] / files[0]).read_bytes() == (sets["root"] / files[0]).read_bytes()


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="crops_per_photo=0"):
        write_photo_sets(tmp_path / "x", 0, crops_per_photo=0)
    with pytest.raises(ConfigError, match="crop_size"):
        write_photo_sets(tmp_path / "x", 0, crop_size=(8, 8))
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("keep me\n")
    with pytest.raises(DataError, match="my.key"):  # an unstamped, non-empty folder is left alone
        write_photo_sets(foreign, 0, crops_per_photo=1, crop_size=SIZE, sequence_size=SIZE, config_key="my.key")
    assert (foreign / "mine.txt").read_text() == "keep me\n"
