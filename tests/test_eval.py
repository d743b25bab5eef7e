"""`torchrepro eval` reproduces the validation metric of the checkpoint it loads."""

from __future__ import annotations

import json

from tests.conftest import write_csv_dataset
from tests.helpers import tiny_config
from torchrepro.cli import main


def test_eval_of_last_checkpoint_matches_the_runs_final_validation(tmp_path, capsys):
    data = tmp_path / "data"
    write_csv_dataset(data, 16, 12)
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


def test_eval_writes_into_the_runs_eval_folder_records_the_checkpoint_and_copies_no_weights(tmp_path, capsys):
    import hashlib

    data = tmp_path / "data"
    write_csv_dataset(data, 16, 6)
    config = tiny_config(tmp_path, data)
    run = tmp_path / "run"
    assert main(["train", str(config), f"run.dir={run}", "trainer.max_epochs=1", "checkpoint.every_n_steps=0"]) == 0
    ckpt = run / "checkpoints" / "best.ckpt"
    # the config names no run.dir of its own: the results go next to the run that wrote the checkpoint
    assert main(["eval", str(config), "--ckpt", str(ckpt)]) == 0
    (folder,) = (run / "eval").iterdir()
    record = json.loads((folder / "eval.json").read_text())
    assert record["checkpoint"] == str(ckpt.resolve())
    assert record["sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert record["metrics"]["accuracy"] == json.loads((folder / "metrics.json").read_text())["last"]["accuracy"]
    assert not (folder / "checkpoints").exists()
    assert not [p for p in folder.rglob("*") if p.suffix in (".ckpt", ".pth")]
    # --out chooses the folder
    assert main(["eval", str(config), "--ckpt", str(ckpt), "--out", str(tmp_path / "elsewhere")]) == 0
    assert (tmp_path / "elsewhere" / "eval.json").is_file()
    # a checkpoint of another model: the message says what does not fit, not just "Error(s) in loading …:"
    capsys.readouterr()
    assert main(["eval", str(config), "--ckpt", str(ckpt), "model.arch=resnet34", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "does not fit recipe 'driving'" in err and ("size mismatch" in err or "key" in err), err
    assert not err.rstrip().endswith(":")


def test_the_test_split_is_scored_once_with_best_ckpt_and_eval_split_test_reproduces_it(tmp_path, capsys):
    """Validation chooses best.ckpt; the held-out split is scored once, at the end, with that checkpoint; its
    figures are `test/…`; `eval --split test` on best.ckpt gives the same numbers; a missing split is one line."""
    data = tmp_path / "data"
    write_csv_dataset(data, 16, 9, n_test=7)
    config = tiny_config(tmp_path, data)
    run = tmp_path / "run"
    assert main(["train", str(config), f"run.dir={run}", "trainer.max_epochs=2", "checkpoint.every_n_steps=0"]) == 0
    out = capsys.readouterr().out
    assert out.count("test (held-out, scored once with best.ckpt): test/accuracy=") == 1, out
    history = json.loads((run / "metrics.json").read_text())["history"]
    assert [h["stage"] for h in history] == ["untrained", "fit", "fit", "test"]
    tested = history[-1]
    assert not any(k.startswith("test/") for h in history[:-1] for k in h)  # nothing of the test split before
    # the held-out split has 7 images: accuracy is a multiple of 1/7
    assert abs(tested["test/accuracy"] * 7 - round(tested["test/accuracy"] * 7)) < 1e-6
    assert main(["eval", str(config), "--ckpt", str(run / "checkpoints" / "best.ckpt"), "--split", "test",
                 "--out", str(tmp_path / "ev")]) == 0
    record = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert record["split"] == "test"
    assert abs(record["metrics"]["test/accuracy"] - tested["test/accuracy"]) < 1e-9
    assert abs(record["metrics"]["test/val_loss"] - tested["test/val_loss"]) < 1e-5
    # the split of the config is missing: one line naming the folder and the key that switches it off
    capsys.readouterr()
    assert main(["eval", str(config), "--ckpt", str(run / "checkpoints" / "best.ckpt"), "--split", "test",
                 "data.test_split=holdout", "--out", str(tmp_path / "ev2")]) == 2
    err = capsys.readouterr().err.strip()
    assert "holdout" in err and "data.test_split=null" in err and len(err.splitlines()) == 1, err
    assert main(["eval", str(config), "--ckpt", str(run / "checkpoints" / "best.ckpt"), "--split", "test",
                 "data.test_split=null", "--out", str(tmp_path / "ev3")]) == 2
    assert "no held-out test split" in capsys.readouterr().err
