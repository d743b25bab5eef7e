"""The registered SuperPoint recipe (joint training, HPatches scoring): the shipped configs, the training pairs
(labels warped with the image, valid cells, a pure function of the key), the HPatches evaluation set, starting
from a MagicPoint checkpoint, and the config errors. The tiny CLI run with its tools is the recipe contract's
(tests/superpoint/contract_checks.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import torchrepro.recipes  # noqa: F401  (fills the registry)
from tests.helpers import REPO, assert_one_line_error, run_main
from torchrepro.core.errors import CheckpointError
from torchrepro.core.registry import resolve_config
from torchrepro.nn.superpoint import SuperPointNet
from torchrepro.superpoint.augment_config import HomographyConfig, PhotometricConfig
from torchrepro.superpoint.hpatches import write_sequence
from torchrepro.superpoint.pairs_data import HPatchesEvalSet, LabelledPairSet
from torchrepro.superpoint.superpoint_task import SuperPointTask, load_magicpoint

PHOTOS = REPO / "configs" / "superpoint_photos.yaml"
HPATCHES = REPO / "configs" / "superpoint_hpatches.yaml"


def test_shipped_configs_parse(tmp_path: Path) -> None:
    cfg = resolve_config(PHOTOS, ["data.labeler=shi"])
    m = cfg.model
    assert (m.lambda_d, m.lambda_loss, m.positive_margin, m.negative_margin) == (1.0, 1.0, 1.0, 0.2)
    assert (m.descriptor_loss, m.sparse_matches, m.sparse_non_matches) == ("sparse", 1000, 100)  # the seed's
    assert (m.nms_radius, m.descriptor_nms_radius, m.top_k, m.top_k_descriptors) == (4, 8, 300, 1000)
    assert cfg.data.homographic.patch_ratio == 0.85 and cfg.model.init == "labeler"
    assert (cfg.data.adaptation.num_homographies, cfg.data.adaptation.detection_threshold) == (25, 0.005)  # budget
    folders = [f"data.{k}={tmp_path}" for k in ("images", "val_hpatches", "test_hpatches")]
    real = resolve_config(HPATCHES, [*folders, "data.labeler=shi"])
    assert (real.data.source, real.data.image_size, real.data.batch_size) == ("folders", [240, 320], 2)


def _pair_set(tmp_path: Path, photometric: bool = True) -> LabelledPairSet:
    """One 32×48 picture with a bright square, labelled with its four corners."""
    import cv2

    image = np.full((32, 48), 50, np.uint8)
    image[8:24, 12:36] = 200
    (tmp_path / "images").mkdir(exist_ok=True)
    (tmp_path / "labels").mkdir(exist_ok=True)
    cv2.imwrite(str(tmp_path / "images" / "a.png"), image)
    pts = np.array([[12, 8, 1.0], [35, 8, 0.9], [12, 23, 0.8], [35, 23, 0.7]], np.float32)
    np.savez(tmp_path / "labels" / "a.npz", pts=pts)
    return LabelledPairSet([tmp_path / "images" / "a.png"], tmp_path / "labels", (32, 48),
                           PhotometricConfig(enable=photometric), HomographyConfig(patch_ratio=0.85), 3, seed=1)


def test_training_pairs_warp_the_labels_with_the_image(tmp_path: Path) -> None:
    data = _pair_set(tmp_path, photometric=False)
    a, b = data[(0, 0)], data[(0, 0)]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["homography"], data[(1, 0)]["homography"])
    labels = a["labels"]
    assert int((labels < 64).sum()) == 4 and bool(a["warped_valid"].any())
    # every label of the warp sits where the homography sends a corner of the picture
    corners = np.array([[12, 8], [35, 8], [12, 23], [35, 23]], np.float64)
    h = a["homography"].numpy()
    projected = (np.c_[corners, np.ones(4)] @ h.T)
    projected = projected[:, :2] / projected[:, 2:]
    cells = {(int(i), int(j), int(a["warped_labels"][i, j]))
             for i, j in zip(*torch.nonzero(a["warped_labels"] < 64, as_tuple=True))}
    expected = {(int(round(y)) // 8, int(round(x)) // 8, (int(round(y)) % 8) * 8 + int(round(x)) % 8)
                for x, y in projected if 0 <= round(x) <= 47 and 0 <= round(y) <= 31}
    assert cells == expected


def test_labels_of_another_size_are_refused(tmp_path: Path) -> None:
    data = _pair_set(tmp_path)
    np.savez(tmp_path / "labels" / "a.npz", pts=np.array([[60.0, 5.0, 1.0]], np.float32))
    with pytest.raises(Exception, match="outside its 48x32 image"):
        data[(0, 0)]


def test_hpatches_pairs_are_padded_to_cells(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (21, 30, 3), dtype=np.uint8) for _ in range(6)]
    write_sequence(tmp_path, "v_test", images, [np.eye(3)] * 5)
    pair = HPatchesEvalSet(tmp_path, max_side=None)[0]
    assert pair["image1"].shape == (1, 24, 32) and pair["shape1"].tolist() == [21, 30]
    assert bool(pair["viewpoint"]) and float(pair["image1"][0, 21:].abs().sum()) == 0.0


def test_init_from_a_magicpoint_checkpoint(tmp_path: Path) -> None:
    magicpoint = SuperPointNet(descriptor=False, batchnorm=True)
    state = {f"net.{k}": v for k, v in magicpoint.state_dict().items()}
    torch.save({"state_dict": state}, tmp_path / "mp.ckpt")
    net = SuperPointNet(descriptor=True, batchnorm=True)
    load_magicpoint(net, tmp_path / "mp.ckpt")
    assert torch.equal(net.encoder[0].weight, magicpoint.encoder[0].weight)
    torch.save({"state_dict": {"net.other.weight": torch.zeros(1)}}, tmp_path / "foreign.ckpt")
    with pytest.raises(CheckpointError, match="not a MagicPoint checkpoint"):
        load_magicpoint(net, tmp_path / "foreign.ckpt")


@pytest.mark.parametrize("override, needle", [
    ("data.labeler=sift", "data.labeler"),
    ("data.image_size=[30,40]", "data.image_size"),
    ("data.adaptation.num_homographies=0", "data.adaptation.num_homographies"),
    ("data.homographic.perspective_amplitude_x=0.5", "data.homographic.perspective_amplitude_x"),
    ("model.negative_margin=1.5", "model.negative_margin"),
    ("model.baselines=[surf]", "model.baselines"),
    ("model.init=/nonexistent.ckpt", "model.init"),
    ("model.descriptor_loss=triplet", "model.descriptor_loss"),
    ("model.sparse_matches=0", "model.sparse_matches"),
])
def test_bad_config_values_give_one_line(capsys, override: str, needle: str) -> None:
    code, _, err = run_main(capsys, "config", PHOTOS, "data.labeler=shi", override)
    assert_one_line_error(code, err, needle)


def test_a_quick_subset_of_pairs_spans_both_kinds(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for name in ("i_a", "i_b", "v_a", "v_b"):
        images = [rng.integers(0, 255, (16, 24, 3), dtype=np.uint8) for _ in range(6)]
        write_sequence(tmp_path, name, images, [np.eye(3)] * 5)
    subset = HPatchesEvalSet(tmp_path, max_side=None, max_pairs=4)
    assert len(subset) == 4 and subset.chosen == [0, 6, 13, 19]
    assert [bool(subset[i]["viewpoint"]) for i in range(4)] == [False, False, True, True]
    assert len(HPatchesEvalSet(tmp_path, max_side=None)) == 20


@pytest.mark.filterwarnings("ignore:You are trying to `self.log")
def test_the_descriptor_loss_is_selectable(tmp_path: Path) -> None:
    """``model.descriptor_loss=sparse`` trains on pytorch-superpoint's sampled loss: the task's descriptor term
    then follows :func:`descriptor_sparse_loss` (seeded by the global RNG, which checkpoints restore), not Eq. 6."""
    from torchrepro.superpoint.losses import descriptor_hinge_loss, descriptor_sparse_loss

    data = _pair_set(tmp_path)
    batch = {k: torch.stack([data[(e, 0)][k] for e in range(2)]) for k in data[(0, 0)]}  # two epochs' pairs
    terms = {}
    for loss in ("dense", "sparse"):
        cfg = resolve_config(PHOTOS, ["data.labeler=shi", "model.init=null", f"model.descriptor_loss={loss}",
                                      "model.lambda_loss=1", "model.lambda_d=1"])
        torch.manual_seed(0)
        task = SuperPointTask(cfg).eval()
        torch.manual_seed(5)
        terms[loss] = task.losses(batch)["descriptor"]
        out = task.net(torch.cat((batch["image"], batch["warped"])))
        desc, desc_w = out["desc"].chunk(2)
        args = (desc, desc_w, batch["homography"], batch["warped_valid"])
        torch.manual_seed(5)
        expected = descriptor_sparse_loss(*args, None, 1000, 100, 1.0, 0.2, 1.0) if loss == "sparse" else \
            descriptor_hinge_loss(*args, 1.0, 0.2, 1.0)
        torch.testing.assert_close(terms[loss], expected["loss"])
    assert not torch.isclose(terms["dense"], terms["sparse"])
