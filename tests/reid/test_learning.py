"""A short real BoT training run on synthetic persons must beat the untrained network on held-out identities:
on the validation split (training identities held out) every epoch, and on the test split scored once."""

from __future__ import annotations

import json

from tests.helpers import REPO, cli


def test_short_bot_run_improves_rank1_and_map(tmp_path):
    res = cli("train", REPO / "configs" / "reid_sim_bot.yaml", "trainer.max_epochs=4", "trainer.progress_bar=false",
              "data.synthetic_train_ids=60", "data.val_ids=12", "data.synthetic_test_ids=24", "data.height=64", "data.width=32",
              "data.batch_size=32", "optim.lr=0.001", "sched.milestones=[3]", "sched.warmup_length=1",
              f"data.synthetic_dir={tmp_path / 'persons'}", f"run.dir={tmp_path / 'run'}", timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())["history"]
    untrained = next(h for h in history if h["stage"] == "untrained")
    final = [h for h in history if h["stage"] == "fit"][-1]
    assert final["rank-1"] >= untrained["rank-1"] + 0.15, (untrained["rank-1"], final["rank-1"])
    assert final["mAP"] >= untrained["mAP"] + 0.10, (untrained["mAP"], final["mAP"])
    test = history[-1]
    assert test["stage"] == "test" and test["test/rank-1"] >= test["test/baseline_colour_rank-1"], test
