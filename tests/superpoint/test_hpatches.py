"""HPatches reader/writer: the real ``hpatches-sequences-release`` layout, H rescaling on resize, bad inputs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from torchrepro.core.errors import DataError
from torchrepro.superpoint.hpatches import (
    HPatchesPair,
    HPatchesPairs,
    list_sequences,
    read_homography,
    read_sequence,
    write_sequence,
)

# v_graffiti/H_1_2 of the release (the Oxford "graf" H1to2p), byte for byte in its formatting.
GRAFFITI_H_1_2 = (
    "   8.7976964e-01   3.1245438e-01  -3.9430589e+01\n"
    "  -1.8389418e-01   9.3847198e-01   1.5315784e+02\n"
    "   1.9641425e-04  -1.6015275e-05   1.0000000e+00\n"
)
IDENTITY_TEXT = "1 0 0\n0 1 0\n0 0 1\n"  # the illumination sequences' H_1_k


def _image(seed: int, h: int = 24, w: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _write_fixture(root: Path) -> dict[str, list[np.ndarray]]:
    """Two sequences written by hand (cv2.imwrite P6 PPMs, literal H files), not by write_sequence."""
    images: dict[str, list[np.ndarray]] = {}
    for s, (name, h_text) in enumerate((("i_test", IDENTITY_TEXT), ("v_test", GRAFFITI_H_1_2))):
        seq = root / name
        seq.mkdir(parents=True)
        images[name] = [_image(10 * s + k) for k in range(1, 7)]
        for k, img in enumerate(images[name], start=1):
            cv2.imwrite(str(seq / f"{k}.ppm"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        for k in range(2, 7):
            (seq / f"H_1_{k}").write_text(h_text)
    (root / "README.txt").write_text("not a sequence\n")  # stray files beside the sequences are ignored
    return images


def test_reads_real_layout(tmp_path: Path) -> None:
    images = _write_fixture(tmp_path)
    assert [p.name for p in list_sequences(tmp_path)] == ["i_test", "v_test"]
    assert [p.name for p in list_sequences(tmp_path, kinds=("v",))] == ["v_test"]
    assert (tmp_path / "v_test" / "1.ppm").read_bytes()[:2] == b"P6"  # binary PPM, as the release

    pairs = HPatchesPairs(tmp_path)
    assert len(pairs) == 10
    got = list(pairs)
    assert all(isinstance(p, HPatchesPair) for p in got)
    assert [(p.sequence, p.kind, p.index) for p in got[:6]] == [("i_test", "illumination", k) for k in range(2, 7)] + [
        ("v_test", "viewpoint", 2)
    ]
    v = got[5]
    np.testing.assert_array_equal(v.image1, images["v_test"][0])  # RGB order preserved
    np.testing.assert_array_equal(v.image2, images["v_test"][1])
    assert v.image1.dtype == np.uint8 and v.image1.shape == (24, 32, 3)
    np.testing.assert_allclose(v.H[0], [8.7976964e-01, 3.1245438e-01, -3.9430589e01])
    np.testing.assert_allclose(v.H[2], [1.9641425e-04, -1.6015275e-05, 1.0])
    np.testing.assert_array_equal(got[0].H, np.eye(3))

    grey = HPatchesPairs(tmp_path, kinds=("i",), grey=True)
    assert len(grey) == 5 and grey[0].image1.shape == (24, 32) and grey[0].image1.dtype == np.uint8
    assert [p.index for p in read_sequence(tmp_path / "v_test")] == [2, 3, 4, 5, 6]


def test_writer_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    imgs = [_image(k, 20, 28) for k in range(6)]
    hs = [np.eye(3) + rng.normal(0, 1e-3, (3, 3)) * [[1, 1, 100], [1, 1, 100], [1e-3, 1e-3, 0]] for _ in range(5)]
    seq = write_sequence(tmp_path, "v_synth", imgs, hs)
    text = (seq / "H_1_3").read_text()
    assert len(text.splitlines()) == 3 and all(len(line.split()) == 3 for line in text.splitlines())
    assert all("e" in v for v in text.split())  # scientific notation, as the release
    pairs = read_sequence(seq)
    for k, pair in zip(range(2, 7), pairs):
        np.testing.assert_array_equal(pair.image2, imgs[k - 1])
        np.testing.assert_allclose(pair.H, hs[k - 2], rtol=1e-7, atol=1e-9)
    np.testing.assert_array_equal(pairs[0].image1, imgs[0])


def _blob(h: int, w: int, x: float, y: float, sigma: float = 3.0) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    g = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    return np.repeat((g * 255).round().astype(np.uint8)[..., None], 3, axis=2)


def _centroid(img: np.ndarray) -> np.ndarray:
    g = img[..., 0].astype(np.float64)
    yy, xx = np.mgrid[0 : g.shape[0], 0 : g.shape[1]]
    return np.array([(g * xx).sum() / g.sum(), (g * yy).sum() / g.sum()])


def _warp(H: np.ndarray, p: np.ndarray) -> np.ndarray:
    q = H @ np.r_[p, 1.0]
    return q[:2] / q[2]


def test_resize_rescales_homography(tmp_path: Path) -> None:
    # Image 2 = image 1 warped by H (with a different size): a blob at p1 lands at H·p1. After shrinking both
    # images to max_side 100, the rescaled H' must send the resized blob of image 1 onto the resized blob of image 2.
    H = np.array([[0.9, 0.05, 30.0], [-0.04, 0.95, 12.0], [1e-4, -5e-5, 1.0]])
    p1 = np.array([140.0, 90.0])
    img1 = _blob(200, 300, *p1)
    img2 = cv2.warpPerspective(img1, H, (260, 220), flags=cv2.INTER_CUBIC)
    np.testing.assert_allclose(_centroid(img2), _warp(H, p1), atol=0.1)  # the fixture itself is right
    write_sequence(tmp_path, "v_blob", [img1, img2] + [img1] * 4, [H] + [np.eye(3)] * 4)

    pair = HPatchesPairs(tmp_path, max_side=100)[0]
    assert max(pair.image1.shape[:2]) == 100 and pair.image1.shape[:2] == (67, 100)
    assert max(pair.image2.shape[:2]) == 100 and pair.image2.shape[:2] == (85, 100)
    c1, c2 = _centroid(pair.image1), _centroid(pair.image2)
    np.testing.assert_allclose(_warp(pair.H, c1), c2, atol=0.1)
    # …whereas ignoring the resize would be off by tens of pixels
    assert np.linalg.norm(_warp(H, c1) - c2) > 10
    # no resize when the image is already small enough
    same = HPatchesPairs(tmp_path, max_side=1000)[0]
    np.testing.assert_allclose(same.H, H)


def test_bad_inputs_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        list_sequences(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no HPatches sequence folders .* in .*empty"):
        HPatchesPairs(tmp_path / "empty")

    _write_fixture(tmp_path / "ds")
    seq = tmp_path / "ds" / "v_test"
    (seq / "H_1_3").write_text("1 0 0\n0 1 0\n0 0\n")
    with pytest.raises(DataError, match=r"H_1_3 in .*v_test holds 8 numbers"):
        HPatchesPairs(tmp_path / "ds")
    (seq / "H_1_3").write_text("1 0 0\n0 1 0\n0 0 nan\n")
    with pytest.raises(DataError, match=r"H_1_3 in .*v_test holds non-finite"):
        read_homography(seq / "H_1_3")
    (seq / "H_1_3").write_text("1 2 3\n2 4 6\n0 0 1\n")
    with pytest.raises(DataError, match=r"H_1_3 in .*v_test is singular \(det"):
        HPatchesPairs(tmp_path / "ds")
    (seq / "H_1_3").write_text("1 0 x\n0 1 0\n0 0 1\n")
    with pytest.raises(DataError, match=r"H_1_3 in .*v_test is not a text file of 9 numbers"):
        HPatchesPairs(tmp_path / "ds")
    (seq / "H_1_3").write_text(IDENTITY_TEXT)

    (seq / "H_1_5").unlink()
    with pytest.raises(DataError, match=r"H_1_5 in .*v_test is missing"):
        HPatchesPairs(tmp_path / "ds")
    (seq / "H_1_5").write_text(IDENTITY_TEXT)
    (seq / "4.ppm").unlink()
    with pytest.raises(DataError, match=r"4.ppm in .*v_test is missing"):
        HPatchesPairs(tmp_path / "ds")

    (seq / "4.ppm").write_bytes(b"P6\n this is not an image")
    pairs = HPatchesPairs(tmp_path / "ds", kinds=("v",))  # images are read lazily
    with pytest.raises(DataError, match=r"v_test/4.ppm is not a readable image"):
        pairs[2]
    with pytest.raises(DataError, match="need 6 and 5"):
        write_sequence(tmp_path, "v_short", [_image(0)] * 5, [np.eye(3)] * 5)
    with pytest.raises(DataError, match="must start with 'i_'"):
        write_sequence(tmp_path, "boat", [_image(0)] * 6, [np.eye(3)] * 5)
