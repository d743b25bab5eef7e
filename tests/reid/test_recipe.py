"""The reid recipe end to end through the CLI on tiny synthetic persons: BoT (validated on held-out training
identities every epoch, the test split scored once at the end), SAN (two optimisers), SAN-PG and its
pseudo-texture tool, the ablation table; the real-format configs parse; bad inputs give one clear line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import REPO, cli, scratch_dir

TINY = [
    "trainer.max_epochs=1", "trainer.limit_train_batches=3", "trainer.progress_bar=false",
    "trainer.log_every_n_steps=1", "data.synthetic_train_ids=20", "data.val_ids=4", "data.synthetic_test_ids=8",
    "data.height=64", "data.width=32", "data.batch_size=16", "data.test_batch_size=64",
    "data.texture_height=32", "data.texture_width=32", "model.arch=resnet18",
]


@pytest.fixture(scope="module")
def workdir(request, tmp_path_factory) -> Iterator[Path]:
    with scratch_dir(request, tmp_path_factory, "reid") as path:
        yield path


def _train(workdir: Path, config: str, name: str, *extra: str):
    return cli("train", REPO / "configs" / config, *TINY, f"data.synthetic_dir={workdir / 'persons'}",
               f"run.dir={workdir / name}", *extra, timeout=600)


def test_bot_validates_every_epoch_and_scores_the_test_split_once(workdir):
    res = _train(workdir, "reid_sim_bot.yaml", "bot", "trainer.max_epochs=2")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "untrained model:" in res.stdout and "baseline_colour_rank-1" in res.stdout
    assert "validation: 4 held-out training identities" in res.stderr  # 20 - 4 = 16 identities train
    assert res.stdout.count("test (held-out, scored once with best.ckpt):") == 1
    history = json.loads((workdir / "bot" / "metrics.json").read_text())["history"]
    assert [h["stage"] for h in history] == ["untrained", "fit", "fit", "test"]
    tested = [h for h in history if "test/rank-1" in h]
    assert len(tested) == 1 and tested[0]["stage"] == "test"
    assert "test/baseline_colour_rank-1" in tested[0] and "rank-1" not in tested[0]
    for entry in history[:-1]:  # validation: its own figures and baseline, nothing of the test split
        assert not any(k.startswith("test/") for k in entry)
        assert {"rank-1", "rank-5", "rank-10", "rank-20", "mAP", "mINP", "baseline_colour_rank-1"} <= set(entry)
        assert entry["rank-1"] <= entry["rank-5"] <= entry["rank-10"] <= entry["rank-20"]
    assert {"loss_id", "loss_triplet"} <= set(history[-2])
    assert (workdir / "bot" / "ranked_results.png").stat().st_size > 1000


def test_san_trains_encoder_and_decoder_with_separate_optimisers(workdir):
    res = _train(workdir, "reid_sim_san.yaml", "san")
    assert res.returncode == 0, res.stderr[-3000:]
    history = json.loads((workdir / "san" / "metrics.json").read_text())["history"]
    trained = [h for h in history if h["stage"] == "fit"][-1]  # the last entry is the test split's
    assert {"loss_recon", "loss_constraint", "loss_id", "loss_triplet"} <= set(trained)
    import torch

    ckpt = torch.load(workdir / "san" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert len(ckpt["optimizer_states"]) == 2
    assert (workdir / "san" / "textures.png").is_file()
    # the exported model is the encoder alone: loads into a fresh encoder, holds no decoder weights
    from torchrepro.reid.model import ReidEncoder

    state = torch.load(workdir / "san" / "encoder.pth", map_location="cpu", weights_only=True)
    assert not any("decoder" in k for k in state)
    ReidEncoder(16, "resnet18").load_state_dict(state)  # 20 generated training identities, 4 held out


def test_san_pg_then_pseudo_textures(workdir):
    res = _train(workdir, "reid_sim_san.yaml", "sanpg", "model.method=san_pg")
    assert res.returncode == 0, res.stderr[-3000:]
    src = next((workdir / "persons").iterdir())
    target = workdir / "market_copy"
    target.mkdir()
    for folder in ("bounding_box_train", "query", "bounding_box_test"):
        shutil.copytree(src / folder, target / folder)
    res = cli("tool", "reid-textures", "--run", workdir / "sanpg", "--root", target)
    assert res.returncode == 0, res.stderr[-3000:]
    images = sorted((target / "query").glob("*.jpg"))
    assert images and all((target / "texture" / "query" / f"{p.stem}.png").is_file() for p in images)
    again = cli("tool", "reid-textures", "--run", workdir / "sanpg", "--root", target)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    # SAN initialised from the SAN-PG run, training on the pseudo textures just written
    res = _train(workdir, "reid_sim_san.yaml", "san_init", f"model.init_from={workdir / 'sanpg' / 'checkpoints' / 'last.ckpt'}")
    assert res.returncode == 0, res.stderr[-3000:]


def test_missing_texture_is_named(workdir):
    src = next((workdir / "persons").iterdir())
    root = workdir / "no_textures"
    for folder in ("bounding_box_train", "query", "bounding_box_test"):
        shutil.copytree(src / folder, root / folder)
    res = cli("train", REPO / "configs" / "reid_sim_san.yaml", *TINY, "data.sources=[market1501]",
              "data.targets=[market1501]", f"data.roots={{market1501: {root}}}", f"run.dir={workdir / 'nt'}")
    assert res.returncode == 2
    assert "texture" in res.stderr and "bounding_box_train" in res.stderr and ".jpg" in res.stderr


@pytest.mark.parametrize("config,key", [("reid_market_bot.yaml", "market1501"),
                                        ("reid_market_san.yaml", "market1501"),
                                        ("reid_cuhk03_san.yaml", "cuhk03_labeled")])
def test_real_configs_parse(tmp_path, config, key):
    res = cli("config", REPO / "configs" / config, f"data.roots.{key}={tmp_path}")
    assert res.returncode == 0, res.stderr
    assert key in res.stdout
    missing = cli("config", REPO / "configs" / config)
    assert missing.returncode == 2 and f"data.roots.{key}" in missing.stderr


def test_ablation_tool_writes_the_table(workdir):
    out = workdir / "ablation"
    res = cli("tool", "reid-ablation", REPO / "configs" / "reid_sim_san.yaml", "--out", out, *TINY,
              f"data.synthetic_dir={workdir / 'persons'}", timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = json.loads((out / "ablation.json").read_text())
    assert [r["run"] for r in rows][0] == "baseline (ID + triplet)" and len(rows) == 6
    for r in rows:  # validation figures of the chosen checkpoint, test figures scored once
        assert all(0.0 <= r[k] <= 1.0 for k in ("val/rank-1", "val/mAP", "test/rank-1", "test/mAP", "test/mINP"))
        history = json.loads((Path(r["run_dir"]) / "metrics.json").read_text())["history"]
        assert [h["stage"] for h in history].count("test") == 1
    assert any("init_from=" in o and o.endswith("last.ckpt") for o in rows[4]["overrides"])
    # the control: the baseline trained as long as SAN-PG + SAN (1 + 1 epochs here), its schedule stretched
    control = rows[-1]
    assert control["run"] == "baseline trained as long as SAN-PG + SAN" and control["epochs"] == "2"
    assert {"model.method=bot", "trainer.max_epochs=2", "sched.milestones=[14,18]"} <= set(control["overrides"])
    table = (out / "ablation.md").read_text()
    assert table.count("\n") == 8 and "| + reconstruction + constraints (SAN) | 1 |" in table
    assert "| SAN initialised from SAN-PG | 1 + 1 |" in table
    again = cli("tool", "reid-ablation", REPO / "configs" / "reid_sim_san.yaml", "--out", out)
    assert again.returncode == 2 and "not empty" in again.stderr
