"""The registered SuperPoint recipe (MagicPoint on Synthetic Shapes): the shipped config, the training samples
(augmentation a pure function of the key, labels and valid cells consistent with the warp), the evaluation set,
and the config errors. The tiny CLI run (untrained model, baselines, test split once, kill + resume, eval,
torchrun) is the recipe contract's (tests/test_contract.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import torchrepro.recipes  # noqa: F401  (fills the registry)
from tests.helpers import REPO, assert_one_line_error, run_main
from torchrepro.core.registry import resolve_config
from torchrepro.superpoint.augment_config import HomographyConfig, PhotometricConfig
from torchrepro.superpoint.shapes_data import ShapesEvalSet, ShapesTrainSet, fit_to_size
from torchrepro.superpoint.homography import warp_points
from torchrepro.superpoint.shapes_format import read_sample, write_sample

SHAPES = REPO / "configs" / "magicpoint_shapes.yaml"


def test_shipped_config_is_the_seeds_but_for_the_documented_budget_changes() -> None:
    cfg = resolve_config(SHAPES, [])
    assert cfg.recipe == "magicpoint" and cfg.data.image_size == [120, 160]
    assert (cfg.optim.name, cfg.optim.lr) == ("adam", 0.001)
    # chosen on validation for the CPU budget (docs/superpoint.md): crops, small batches, the prior initialisation
    assert (cfg.data.train_crop, cfg.data.batch_size, cfg.model.dustbin_prior) == ([64, 64], 8, 0.97)
    assert (cfg.model.detection_threshold, cfg.model.nms_radius, cfg.model.batchnorm) == (0.001, 4, True)
    h, p = cfg.data.homographic, cfg.data.photometric
    assert (h.patch_ratio, h.max_angle, h.scaling_amplitude, h.perspective_amplitude_x) == (0.8, 1.57, 0.2, 0.2)
    assert (p.max_abs_change, p.strength_range, p.stddev_range) == (75.0, [0.3, 1.8], [0.0, 15.0])


@pytest.fixture(scope="module")
def tiny_dump(tmp_path_factory) -> Path:
    """Two 32×48 samples per split in rpautrat's layout: a white square on grey with its four corners."""
    root = tmp_path_factory.mktemp("shapes")
    image = np.full((32, 48), 60, np.uint8)
    image[8:24, 12:36] = 220
    corners = np.array([[12.0, 8.0], [35.0, 8.0], [12.0, 23.0], [35.0, 23.0]])
    for split in ("training", "validation", "test"):
        for i in range(2):
            write_sample(root, "draw_polygon", split, i, image, corners)
    return root


def _train_set(root: Path, homographic: bool = True) -> ShapesTrainSet:
    from torchrepro.superpoint.shapes_format import list_samples

    return ShapesTrainSet(list_samples(root, "training"), (32, 48), PhotometricConfig(), HomographyConfig(),
                          homographic, border_margin=2, seed=3)


def test_training_samples_are_a_pure_function_of_their_key(tiny_dump: Path) -> None:
    data = _train_set(tiny_dump)
    a, b, c = data[(0, 1)], data[(0, 1)], data[(1, 1)]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["image"], c["image"])
    assert a["image"].shape == (1, 32, 48) and a["labels"].shape == a["valid"].shape == (4, 6)
    assert 0.0 <= float(a["image"].min()) and float(a["image"].max()) <= 1.0


def test_without_warp_the_labels_are_the_drawn_corners(tiny_dump: Path) -> None:
    data = _train_set(tiny_dump, homographic=False)
    labels = data[(0, 0)]["labels"]
    marked = {(int(i), int(j), int(labels[i, j])) for i, j in zip(*torch.nonzero(labels < 64, as_tuple=True))}
    # (x 12, y 8) → cell (1, 1), bin (0, 4); (35, 8) → cell (1, 4), bin (0, 3); rows 23 → cell 2, bin row 7
    assert marked == {(1, 1, 4), (1, 4, 3), (2, 1, 7 * 8 + 4), (2, 4, 7 * 8 + 3)}
    assert bool(data[(0, 0)]["valid"].all())


def test_eval_set_pads_points_and_warps_with_a_fixed_homography(tiny_dump: Path) -> None:
    from torchrepro.superpoint.shapes_format import list_samples

    data = ShapesEvalSet(list_samples(tiny_dump, "validation"), (32, 48), HomographyConfig(), seed=0)
    first, again = data[0], data[0]
    assert torch.equal(first["warped"], again["warped"]) and torch.equal(first["homography"], again["homography"])
    points = first["points"][~torch.isnan(first["points"][:, 0])]
    assert points.shape == (4, 2) and data.max_points == 4
    # the warped image's bright square sits where the homography sends the square's centre
    centre = warp_points(np.array([[23.5, 15.5]]), first["homography"].numpy())[0]
    x, y = int(round(centre[0])), int(round(centre[1]))
    if 0 <= x < 48 and 0 <= y < 32:
        assert first["warped"][0, y, x] > 0.6


def test_fit_to_size_moves_points_with_the_resize(tiny_dump: Path) -> None:
    image, points = read_sample(*_first_test_sample(tiny_dump))
    big, moved = fit_to_size(image, points, (64, 96))
    assert big.shape == (64, 96)
    np.testing.assert_allclose(moved, (points + 0.5) * 2 - 0.5)


def _first_test_sample(root: Path) -> tuple[Path, Path]:
    from torchrepro.superpoint.shapes_format import list_samples

    return list_samples(root, "test")[0]


@pytest.mark.parametrize("override, needle", [
    ("data.image_size=[120,150]", "data.image_size"),
    ("data.primitives=[draw_spiral]", "data.primitives"),
    ("data.homographic.patch_ratio=1.5", "data.homographic.patch_ratio"),
    ("data.photometric.primitives=[blur]", "data.photometric.primitives"),
    ("model.detection_threshold=1.5", "model.detection_threshold"),
    ("model.baselines=[sift]", "model.baselines"),
    ("data.root=/nonexistent/shapes", "data.root"),
    ("data.train_crop=[60,64]", "data.train_crop"),
    ("model.dustbin_prior=1.0", "model.dustbin_prior"),
])
def test_bad_config_values_give_one_line(capsys, override: str, needle: str) -> None:
    code, _, err = run_main(capsys, "config", SHAPES, override)
    assert_one_line_error(code, err, needle)


def test_a_training_crop_is_a_cell_aligned_block_of_the_whole_sample(tiny_dump: Path) -> None:
    from torchrepro.superpoint.shapes_format import list_samples

    samples = list_samples(tiny_dump, "training")
    whole = ShapesTrainSet(samples, (32, 48), PhotometricConfig(), HomographyConfig(), True, 2, seed=3)[(0, 1)]
    crop = ShapesTrainSet(samples, (32, 48), PhotometricConfig(), HomographyConfig(), True, 2, seed=3,
                          crop=(16, 24))[(0, 1)]
    assert crop["image"].shape == (1, 16, 24) and crop["labels"].shape == crop["valid"].shape == (2, 3)
    offsets = [(i, j) for i in range(3) for j in range(4)
               if torch.equal(whole["labels"][i:i + 2, j:j + 3], crop["labels"])
               and torch.equal(whole["image"][:, 8 * i:8 * i + 16, 8 * j:8 * j + 24], crop["image"])]
    assert offsets, "the crop is not a cell-aligned block of the uncropped sample"
