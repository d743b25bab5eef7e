"""`torchrepro eval` reproduces the validation metric of the checkpoint it loads."""

from __future__ import annotations

import json

from tests.conftest import write_csv_split
from tests.helpers import tiny_config
from torchrepro.cli import main


def test_eval_of_last_checkpoint_matches_the_runs_final_validation(tmp_path, capsys):
    data = tmp_path / "data"
    write_csv_split(data / "train", 16, seed=1)
    write_csv_split(data / "val", 12, seed=2)
    config = tiny_config(tmp_path, data)
    assert main([
        "train", str(config), f"run.dir={tmp_path / 'run'}", "trainer.max_epochs=2", "checkpoint.every_n_steps=0"]) == 0
    history = [h for h in json.loads((tmp_path / "run" / "metrics.json").read_text())["history"] if h["stage"] == "fit"]
    assert [h["epoch"] for h in history] == [0, 1]
    capsys.readouterr()
    code = main(["eval", str(config), "--ckpt", str(tmp_path / "run" / "checkpoints" / "last.ckpt"),
                 f"run.dir={tmp_path / 'eval'}"])
    assert code == 0
    evaluated = json.loads((tmp_path / "eval" / "metrics.json").read_text())["last"]
    assert evaluated["stage"] == "validate"
    assert abs(evaluated["accuracy"] - history[-1]["accuracy"]) < 1e-9
    assert abs(evaluated["val_loss"] - history[-1]["val_loss"]) < 1e-5
    for name in ("confusion_matrix.png", "config.yaml", "metrics.json"):
        assert (tmp_path / "eval" / name).is_file()
    assert (tmp_path / "run" / "curves.png").is_file()
