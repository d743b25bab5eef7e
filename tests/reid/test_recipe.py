"""The reid recipe end to end through the CLI on tiny synthetic persons: SAN (two optimisers), SAN-PG and its
pseudo-texture tool, the ablation table; the real-format configs parse; bad inputs give one clear line. BoT's tiny run
(validated on held-out training identities every epoch, the test split scored once at the end) is checked on the
recipe contract's run (tests/reid/contract_checks.py).

The ablation tool trains, among its six rows, exactly the SAN, SAN-PG and SAN-from-SAN-PG runs (same config, same
tiny overrides, same seed) that this module's SAN tests used to train again through ``train``: their checks are made
on the ablation's runs (:func:`_check_san_run`, :func:`_check_pseudo_textures`), which spares three tiny trainings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import REPO, cli, run_main, scratch_dir

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


def _persons(workdir: Path) -> Path:
    """The synthetic persons of :data:`TINY` (20 training and 8 test identities, seed 0), as a run of it writes them
    under ``data.synthetic_dir`` (generated once; a later run reuses them)."""
    from torchrepro.reid.synthetic import generate_persons

    root = workdir / "persons" / "seed0-ids20-8"
    generate_persons(root, seed=0, num_train_ids=20, num_test_ids=8)
    return root


def test_missing_texture_is_named(workdir):
    src = _persons(workdir)
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


def _check_san_run(run_dir: Path) -> None:
    """A SAN run trains its encoder and decoder with separate optimisers and exports the encoder alone."""
    history = json.loads((run_dir / "metrics.json").read_text())["history"]
    trained = [h for h in history if h["stage"] == "fit"][-1]  # the last entry is the test split's
    assert {"loss_recon", "loss_constraint", "loss_id", "loss_triplet"} <= set(trained)
    import torch

    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert len(ckpt["optimizer_states"]) == 2
    assert (run_dir / "textures.png").is_file()
    # the exported model is the encoder alone: loads into a fresh encoder, holds no decoder weights
    from torchrepro.reid.model import ReidEncoder

    state = torch.load(run_dir / "encoder.pth", map_location="cpu", weights_only=True)
    assert not any("decoder" in k for k in state)
    ReidEncoder(16, "resnet18").load_state_dict(state)  # 20 generated training identities, 4 held out


def _check_pseudo_textures(capsys, sanpg: Path, workdir: Path) -> None:
    """``tool reid-textures`` writes a SAN-PG run's pseudo texture for every image of a data set, and refuses to
    overwrite them without ``--overwrite`` (in-process: the same entry point, one interpreter start-up fewer)."""
    src = _persons(workdir)
    target = workdir / "market_copy"
    target.mkdir()
    for folder in ("bounding_box_train", "query", "bounding_box_test"):
        shutil.copytree(src / folder, target / folder)
    code, _, err = run_main(capsys, "tool", "reid-textures", "--run", sanpg, "--root", target)
    assert code == 0, err[-3000:]
    images = sorted((target / "query").glob("*.jpg"))
    assert images and all((target / "texture" / "query" / f"{p.stem}.png").is_file() for p in images)
    code, _, err = run_main(capsys, "tool", "reid-textures", "--run", sanpg, "--root", target)
    assert code == 2 and "--overwrite" in err


def test_ablation_tool_writes_the_table(workdir, capsys):
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
    # SAN initialised from the SAN-PG run's last checkpoint (the row trained, as every row did: test scored above)
    assert rows[3]["run"].startswith("SAN-PG") and "model.method=san_pg" in rows[3]["overrides"]
    sanpg_ckpt = f"model.init_from={Path(rows[3]['run_dir']) / 'checkpoints' / 'last.ckpt'}"
    assert rows[4]["run"] == "SAN initialised from SAN-PG" and sanpg_ckpt in rows[4]["overrides"]
    # the control: the baseline trained as long as SAN-PG + SAN (1 + 1 epochs here), its schedule stretched
    control = rows[-1]
    assert control["run"] == "baseline trained as long as SAN-PG + SAN" and control["epochs"] == "2"
    assert {"model.method=bot", "trainer.max_epochs=2", "sched.milestones=[14,18]"} <= set(control["overrides"])
    table = (out / "ablation.md").read_text()
    assert table.count("\n") == 8 and "| + reconstruction + constraints (SAN) | 1 |" in table
    assert "| SAN initialised from SAN-PG | 1 + 1 |" in table
    code, _, err = run_main(capsys, "tool", "reid-ablation", REPO / "configs" / "reid_sim_san.yaml", "--out", out)
    assert code == 2 and "not empty" in err
    # the SAN row is the run `train reid_sim_san.yaml` makes with these overrides; the SAN-PG row, the tool's input
    assert rows[2]["run"] == "+ reconstruction + constraints (SAN)" and rows[2]["overrides"] == ["model.method=san"]
    _check_san_run(Path(rows[2]["run_dir"]))
    _check_pseudo_textures(capsys, Path(rows[3]["run_dir"]), workdir)
