"""Homographic Adaptation (SuperPoint §5, Eq. 10–11) and its export tool: the identity alone is the plain detector,
batched = per-warp loop, the un-warp makes an equivariant detector's aggregate peak at the source's points (and a
deliberately broken variant that skips it does not), a pixel is averaged over exactly the warps that see it, the
export's layout / determinism / reuse, and the tool's bad inputs as one line."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import torch
import yaml

from tests.helpers import REPO
from torchrepro.core.errors import CheckpointError, ConfigError, DataError, UserError
from torchrepro.nn.superpoint import SuperPointNet
from torchrepro.superpoint import adaptation
from torchrepro.superpoint.adaptation import (
    EXPORT_NAME,
    adapt_heatmap,
    adaptation_homographies,
    classical_detector,
    count_masks,
    export_labels,
    network_detector,
)
from torchrepro.superpoint.augment_config import AdaptationConfig
from torchrepro.superpoint.export_tool import export_main
from torchrepro.superpoint.keypoints import extract_keypoints


@pytest.fixture(scope="module")
def net_detector():
    torch.manual_seed(0)
    return network_detector(SuperPointNet(descriptor=False, batchnorm=True))


def _scene(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """A grey uint8 picture with corners: a few random bright rectangles on a dark background."""
    rng = np.random.default_rng(seed)
    image = np.full((h, w), 40, np.uint8)
    for _ in range(4):
        x0, y0 = int(rng.integers(2, w - 16)), int(rng.integers(2, h - 16))
        cv2.rectangle(image, (x0, y0), (x0 + int(rng.integers(6, 14)), y0 + int(rng.integers(6, 14))),
                      int(rng.integers(120, 250)), -1)
    return image


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image.astype(np.float32) / 255.0)[None, None]


# ---------------------------------------------------------------------------------------------------- the maths
def test_identity_alone_is_the_plain_detector(net_detector) -> None:
    image = _tensor(_scene(32, 48))
    for detect in (net_detector, classical_detector("shi")):
        alone = adapt_heatmap(detect, image, np.eye(3)[None], margin=3)
        assert torch.equal(alone, detect(image)[0])


@pytest.mark.parametrize("aggregation", ["sum", "max"])
def test_batched_equals_the_per_warp_loop(net_detector, aggregation: str) -> None:
    image = _tensor(_scene(40, 56, seed=1))
    homographies = adaptation_homographies(3, "scene", (40, 56), AdaptationConfig(num_homographies=12))
    assert homographies.shape == (12, 3, 3) and np.array_equal(homographies[0], np.eye(3))
    batched = adapt_heatmap(net_detector, image, homographies, 3, aggregation, batch_size=5)
    loop = adapt_heatmap(net_detector, image, homographies, 3, aggregation, loop=True)
    assert float(batched.max()) > 0
    torch.testing.assert_close(batched, loop, rtol=0, atol=1e-6)


DOTS = [(14.0, 12.0), (50.0, 16.0), (24.0, 38.0), (60.0, 44.0)]  # (x, y)


def _dots(h: int = 56, w: int = 76, sigma: float = 2.5) -> torch.Tensor:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    image = sum(np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma ** 2)) for x, y in DOTS)
    return torch.from_numpy(np.clip(image, 0, 1).astype(np.float32))[None, None]


def _bright_dots(images: torch.Tensor) -> torch.Tensor:
    """An exactly equivariant detector: the response is the image itself (a bright dot is a point)."""
    return images[:, 0].clone()


def _peaks_at_the_dots(heat: torch.Tensor) -> bool:
    xy, scores = extract_keypoints(heat, threshold=0.05, nms_radius=4, top_k=len(DOTS), border=0)
    found = {(float(x), float(y)) for x, y in xy}
    near = all(any(math.dist(f, d) <= 1.0 for f in found) for d in DOTS)
    return near and len(found) == len(DOTS) and float(scores.min()) > 0.7


def test_unwarped_aggregate_peaks_at_the_source_points(monkeypatch) -> None:
    image = _dots()
    homographies = adaptation_homographies(0, "dots", tuple(image.shape[-2:]), AdaptationConfig(num_homographies=16))
    heat = adapt_heatmap(_bright_dots, image, homographies, margin=3)
    assert _peaks_at_the_dots(heat)
    # the accelerator's path (batched grid_sample warps) computes the same map as the CPU's cv2 loops
    torch.testing.assert_close(adapt_heatmap(_bright_dots, image, homographies, margin=3, warp="torch"), heat,
                               rtol=0, atol=1e-5)
    # the broken variant: the warped responses averaged in their own frames, never brought back by H⁻¹
    monkeypatch.setattr(adaptation, "_unwarp_heatmaps", lambda heats, inverses, shape, backend="auto": heats)
    broken = adapt_heatmap(_bright_dots, image, homographies, margin=3)
    assert not _peaks_at_the_dots(broken)


def test_a_pixel_is_averaged_over_exactly_the_warps_that_see_it() -> None:
    h, w, a, b = 16, 32, 0.25, 0.75
    image = torch.full((1, 1, h, w), a)
    image[..., w // 2:] = b
    shift = np.array([[1.0, 0.0, w / 2], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # source x → x + w/2
    homographies = np.stack([np.eye(3), shift])
    counts = count_masks((h, w), homographies, margin=0).sum(0)
    assert (counts[:, : w // 2] == 2).all() and (counts[:, w // 2:] == 1).all()
    eroded = count_masks((h, w), homographies, margin=3).sum(0)
    assert (eroded[:, : w // 2 - 3] == 2).all() and (eroded[:, w // 2 - 3:] == 1).all()

    heat = adapt_heatmap(lambda x: x[:, 0] + 1.0, image, homographies, margin=0)
    # left half: seen by both warps, mean of two (a + 1); right half: by the identity only, so b + 1, not (b + 1)/2
    torch.testing.assert_close(heat[:, : w // 2], torch.full((h, w // 2), a + 1.0))
    torch.testing.assert_close(heat[:, w // 2:], torch.full((h, w // 2), b + 1.0))
    top = adapt_heatmap(lambda x: x[:, 0] + 1.0, image, homographies, margin=0, aggregation="max")
    torch.testing.assert_close(top, heat)


def test_config_errors_name_the_key() -> None:
    AdaptationConfig().check("adaptation")
    for change, key in (({"aggregation": "mean"}, "adaptation.aggregation"), ({"top_k": 0}, "adaptation.top_k"),
                        ({"num_homographies": 0}, "adaptation.num_homographies"),
                        ({"detection_threshold": 1.5}, "adaptation.detection_threshold")):
        with pytest.raises(ConfigError, match=key):
            AdaptationConfig(**change).check("adaptation")
    cfg = AdaptationConfig()
    cfg.homographies.patch_ratio = 1.5
    with pytest.raises(ConfigError, match="adaptation.homographies.patch_ratio"):
        cfg.check("adaptation")


# ---------------------------------------------------------------------------------------------------- export
@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pictures")
    for i, name in enumerate(("a.png", "b.png", "c.jpg")):
        cv2.imwrite(str(folder / name), _scene(48, 64, seed=10 + i))
    return folder


SMALL = AdaptationConfig(num_homographies=5, top_k=50)


def _load(out, stem: str) -> np.ndarray:
    with np.load(out / f"{stem}.npz") as data:
        assert list(data.keys()) == ["pts"]
        return data["pts"]


def test_export_layout_determinism_and_reuse(pictures, tmp_path) -> None:
    images = sorted(pictures.iterdir())
    shi = classical_detector("shi")
    summary = export_labels(shi, images, tmp_path / "one", SMALL, seed=7, image_size=(40, 56), progress=False)
    assert summary["generated"] and summary["images"] == 3
    stamp = json.loads((tmp_path / "one" / EXPORT_NAME).read_text())
    assert stamp["image_size"] == [40, 56] and stamp["num_homographies"] == 5 and stamp["detector"] == "shi"
    assert stamp["detection_threshold"] == 0.015 and stamp["top_k"] == 50
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == ["a.npz", "b.npz", "c.npz", EXPORT_NAME]
    for stem in "abc":
        pts = _load(tmp_path / "one", stem)
        assert pts.dtype == np.float32 and pts.ndim == 2 and pts.shape[1] == 3 and 0 < len(pts) <= 50
        assert stamp["counts"][stem] == len(pts)
        # inside the 40x56 image the network saw (border 4), scores above the threshold, best first
        assert (pts[:, 0] >= 4).all() and (pts[:, 0] < 56 - 4).all() and (pts[:, 1] >= 4).all()
        assert (pts[:, 1] < 40 - 4).all() and (pts[:, 2] > 0.015).all() and (np.diff(pts[:, 2]) <= 0).all()

    # the same seed gives the same labels, also for one image labelled alone; another seed other labels
    export_labels(shi, images[1:2], tmp_path / "alone", SMALL, seed=7, image_size=(40, 56), progress=False)
    assert np.array_equal(_load(tmp_path / "alone", "b"), _load(tmp_path / "one", "b"))
    export_labels(shi, images, tmp_path / "other", SMALL, seed=8, image_size=(40, 56), progress=False)
    assert any(not np.array_equal(_load(tmp_path / "other", s), _load(tmp_path / "one", s)) for s in "abc")

    # reuse: same parameters → nothing recomputed; force → recomputed, same labels
    before = (tmp_path / "one" / "a.npz").stat().st_mtime_ns
    again = export_labels(shi, images, tmp_path / "one", SMALL, seed=7, image_size=(40, 56), progress=False)
    assert not again["generated"] and again["counts"] == summary["counts"]
    assert (tmp_path / "one" / "a.npz").stat().st_mtime_ns == before
    forced = export_labels(shi, images, tmp_path / "one", SMALL, seed=7, image_size=(40, 56), progress=False,
                           force=True)
    assert forced["generated"] and forced["counts"] == summary["counts"]


def test_tool_with_a_classical_detector(pictures, tmp_path, capsys) -> None:
    out = tmp_path / "labels"
    assert export_main(["--detector", "shi", "--images", str(pictures), "--out", str(out),
                        "--num-homographies", "4"]) == 0
    printed = capsys.readouterr().out
    assert "labelled 3 images (their own size, 4 homographies, detector shi)" in printed and "images/s" in printed
    stamp = json.loads((out / EXPORT_NAME).read_text())
    assert stamp["image_size"] is None and stamp["num_homographies"] == 4 and set(stamp["counts"]) == set("abc")
    pts = _load(out, "a")
    assert (pts[:, 0] < 64).all() and (pts[:, 1] < 48).all()  # the image's own 48x64 pixels
    assert export_main(["--detector", "shi", "--images", str(pictures), "--out", str(out),
                        "--num-homographies", "4"]) == 0
    assert "reused the export of 3 images" in capsys.readouterr().out


@pytest.fixture(scope="module")
def magicpoint_run(tmp_path_factory):
    """A run folder holding an (untrained) MagicPoint checkpoint and its resolved tiny config (32x48 images)."""
    import torchrepro.recipes  # noqa: F401
    from torchrepro.core.registry import get_recipe, resolve_config
    from torchrepro.superpoint.magicpoint_task import MagicPointTask

    run = tmp_path_factory.mktemp("mp_run")
    (run / "checkpoints").mkdir()
    cfg = resolve_config(REPO / "configs" / "magicpoint_shapes.yaml", list(get_recipe("magicpoint").tiny_overrides))
    (run / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    torch.manual_seed(0)
    torch.save({"state_dict": MagicPointTask(cfg).state_dict()}, run / "checkpoints" / "best.ckpt")
    return run


def test_tool_with_a_checkpoint_uses_its_image_size(magicpoint_run, pictures, tmp_path, capsys) -> None:
    out = tmp_path / "mp"
    ckpt = magicpoint_run / "checkpoints" / "best.ckpt"
    assert export_main(["--ckpt", str(ckpt), "--images", str(pictures), "--out", str(out),
                        "--num-homographies", "3", "--batch-size", "2"]) == 0
    assert "(32x48, 3 homographies" in capsys.readouterr().out
    stamp = json.loads((out / EXPORT_NAME).read_text())
    assert stamp["image_size"] == [32, 48] and "sha256" in stamp["detector"]
    for stem in "abc":
        pts = _load(out, stem)
        assert pts.shape[1] == 3 and ((pts[:, 0] < 48) & (pts[:, 1] < 32)).all()


def _one_line(err: UserError, *needles: str) -> None:
    message = str(err)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message


def test_bad_inputs_are_one_line(pictures, magicpoint_run, tmp_path) -> None:
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    cv2.imwrite(str(mixed / "ok.png"), _scene())
    (mixed / "notes.txt").write_text("not an image")
    base = ["--detector", "shi", "--out", str(tmp_path / "o")]
    with pytest.raises(DataError) as err:
        export_main([*base, "--images", str(mixed)])
    _one_line(err.value, "notes.txt", "not an image")

    tiny = tmp_path / "tiny"
    tiny.mkdir()
    cv2.imwrite(str(tiny / "speck.png"), np.zeros((6, 6), np.uint8))
    with pytest.raises(DataError) as err:
        export_main([*base, "--images", str(tiny)])
    _one_line(err.value, "speck.png", "8x8")
    assert not (tmp_path / "o").exists()  # nothing half-written

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "fake.png").write_bytes(b"definitely not a png")
    with pytest.raises(DataError) as err:
        export_main([*base, "--images", str(broken)])
    _one_line(err.value, "fake.png", "not a readable image")

    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"\x00 not a checkpoint")
    with pytest.raises(CheckpointError) as err:
        export_main(["--ckpt", str(garbage), "--config", str(magicpoint_run / "config.yaml"), "--images",
                     str(pictures), "--out", str(tmp_path / "o")])
    _one_line(err.value, "garbage.ckpt")
    with pytest.raises(ConfigError) as err:
        export_main(["--ckpt", str(garbage), "--images", str(pictures), "--out", str(tmp_path / "o")])
    _one_line(err.value, "--config")

    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "mine.txt").write_text("keep me")
    with pytest.raises(DataError) as err:
        export_main(["--detector", "shi", "--images", str(pictures), "--out", str(occupied),
                     "--num-homographies", "2"])
    _one_line(err.value, "occupied")
    assert (occupied / "mine.txt").read_text() == "keep me"
    with pytest.raises(ConfigError) as err:
        export_main([*base, "--images", str(pictures), "--image-size", "4", "4"])
    _one_line(err.value, "--image-size")
