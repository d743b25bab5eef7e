"""The re-ID validation split (training identities held out, one query per camera as Market-1501 builds its query
set) and the split-specific evaluation: validation and test are each scored against their own query/gallery ids,
cameras and colour baseline."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers import REPO
from torchrepro.core.errors import ConfigError
from torchrepro.core.registry import resolve_config
from torchrepro.reid.config import ReidData
from torchrepro.reid.data import ReidDataModule, TargetSet
from torchrepro.reid.datasets import (
    ReidItem,
    hold_out_identities,
    market_query_split,
    relabel_pids,
    validation_candidates,
)
from torchrepro.reid.task import ReidTask

# (pid, camera) of every training image, by hand:
#   pid 10: cameras 0, 0, 1      → a candidate (2 cameras, 3 images > 2)
#   pid 11: camera 0 only ×4     → never held out (one camera: no cross-camera match)
#   pid 12: cameras 0, 1, 2, 2, 1 → a candidate
#   pid 13: cameras 0, 1         → never held out (one image per camera: nothing left for the gallery)
#   pid 14: cameras 1, 2, 2, 2   → a candidate
LAYOUT = [(10, 0), (10, 0), (10, 1), (11, 0), (11, 0), (11, 0), (11, 0), (12, 0), (12, 1), (12, 2), (12, 2),
          (12, 1), (13, 0), (13, 1), (14, 1), (14, 2), (14, 2), (14, 2)]
ITEMS = [ReidItem(Path(f"{pid:04d}_c{cam + 1}s1_{i:06d}_01.jpg"), pid, cam) for i, (pid, cam) in enumerate(LAYOUT)]


def test_candidates_are_identities_with_two_cameras_and_a_gallery_image_left() -> None:
    assert validation_candidates(ITEMS) == [10, 12, 14]


def test_held_out_identities_leave_training_and_give_one_query_per_camera() -> None:
    keep, query, gallery = hold_out_identities(ITEMS, 2, seed=3)
    held = {it.pid for it in query}
    assert len(held) == 2 and held <= {10, 12, 14}
    # every image of a held-out identity left the training set, every other image stayed
    assert keep == [i for i, it in enumerate(ITEMS) if it.pid not in held]
    assert sorted(query + gallery, key=ITEMS.index) == [it for it in ITEMS if it.pid in held]
    assert not set(query) & set(gallery)
    # Market-1501: exactly one query per (identity, camera that sees it)
    pairs = [(it.pid, it.camid) for it in query]
    assert len(pairs) == len(set(pairs)) and set(pairs) == {(it.pid, it.camid) for it in ITEMS if it.pid in held}
    # the remaining training identities are relabelled 0..N-1 for the classifier
    assert sorted({it.pid for it in relabel_pids([ITEMS[i] for i in keep])}) == [0, 1, 2]


def test_held_out_split_is_seeded() -> None:
    assert hold_out_identities(ITEMS, 2, seed=3) == hold_out_identities(ITEMS, 2, seed=3)
    draws = {tuple(it.path.name for it in hold_out_identities(ITEMS, 2, seed=s)[1]) for s in range(12)}
    assert len(draws) > 1, "the seed does not change which identities and query images are drawn"


def test_all_candidates_held_out_never_takes_a_single_camera_identity() -> None:
    keep, query, _ = hold_out_identities(ITEMS, 3, seed=0)
    assert {it.pid for it in query} == {10, 12, 14}
    assert {ITEMS[i].pid for i in keep} == {11, 13}


def test_query_choice_is_a_seeded_draw_within_each_camera() -> None:
    items = [it for it in ITEMS if it.pid == 14]  # camera 1 once, camera 2 three times
    chosen = {market_query_split(items, np.random.default_rng(s))[0][1].path.name for s in range(20)}
    assert len(chosen) > 1 and all("_c3s1_" in name for name in chosen)


@pytest.mark.parametrize("num_ids,fix", [(0, "between 1 and 3"), (4, "between 1 and 3"), (-2, "between 1 and 3")])
def test_bad_val_ids_is_one_line_naming_the_key_and_the_fix(num_ids: int, fix: str) -> None:
    with pytest.raises(ConfigError) as info:
        hold_out_identities(ITEMS, num_ids, seed=0)
    message = str(info.value)
    assert "data.val_ids" in message and fix in message and "\n" not in message


def test_too_few_training_identities_left_is_named() -> None:
    # 5 identities, 4 must stay for a P x K batch: at most one can be held out
    with pytest.raises(ConfigError, match=r"data\.val_ids=2.*at least 4 must stay.*between 1 and 1"):
        hold_out_identities(ITEMS, 2, seed=0, min_train_ids=4)


def test_config_refuses_no_validation_and_a_synthetic_set_too_small() -> None:
    with pytest.raises(ConfigError, match=r"data\.val_ids must be >= 1.*never on the test split"):
        ReidData(val_ids=0).check("data")
    with pytest.raises(ConfigError, match=r"data\.val_ids \(250\).*data\.synthetic_train_ids \(250\)"):
        ReidData(val_ids=250, synthetic_train_ids=250).check("data")


# --- split-specific evaluation --------------------------------------------------------------------------------

RED, BLUE = (255, 0, 0), (0, 0, 255)


def _image(path: Path, colour: tuple[int, int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 16), colour).save(path)
    return path


def _set(root: Path, name: str, query: list, gallery: list) -> TargetSet:
    """(pid, camid, colour) triples → a TargetSet of real PNG files."""
    def items(kind: str, spec: list) -> list[ReidItem]:
        return [ReidItem(_image(root / name / kind / f"{i}.png", colour), pid, cam)
                for i, (pid, cam, colour) in enumerate(spec)]

    return TargetSet(name, items("query", query), items("gallery", gallery))


def test_val_and_test_are_scored_against_their_own_references(tmp_path: Path) -> None:
    """The same two query and two gallery features, evaluated once as validation and once as test: validation's
    gallery holds each query's identity at its nearest neighbour (rank-1 = mAP = 1), the test's holds it second
    (rank-1 = 0, AP = 1/2 for both queries). The colour baselines see red/blue images laid out the same way."""
    cfg = resolve_config(REPO / "configs" / "reid_sim_bot.yaml", ["model.arch=resnet18", "data.height=16",
                                                                   "data.width=8"])
    dm = ReidDataModule(cfg)
    dm.splits = {
        "val": [_set(tmp_path, "val", [(1, 0, RED), (2, 0, BLUE)], [(1, 1, RED), (2, 1, BLUE)])],
        "test": [_set(tmp_path, "synthetic", [(5, 0, RED), (6, 0, BLUE)], [(6, 1, RED), (5, 1, BLUE)])],
    }
    task = ReidTask(cfg, num_classes=3)
    task._trainer = SimpleNamespace(datamodule=dm)  # what evaluation_metrics reads of the trainer
    rows = [{"feature": torch.tensor([[0.0, 0.0], [10.0, 0.0], [1.0, 0.0], [9.0, 0.0]])}]  # query 0, 1; gallery 0, 1
    scored = {}
    for split in ("val", "test"):
        task.eval_split = split
        scored[split] = task.evaluation_metrics(rows)
        assert task.last_eval["split"] == split
    assert scored["val"]["rank-1"] == 1.0 and scored["val"]["mAP"] == 1.0
    assert scored["test"]["rank-1"] == 0.0 and scored["test"]["rank-5"] == 1.0 and scored["test"]["mAP"] == 0.5
    assert scored["val"]["baseline_colour_rank-1"] == 1.0 and scored["val"]["baseline_colour_mAP"] == 1.0
    assert scored["test"]["baseline_colour_rank-1"] == 0.0 and scored["test"]["baseline_colour_mAP"] == 0.5
