"""Bad input through the CLI: one clear line on stderr, exit status 2, nothing overwritten. The corpus of broken
inputs, each fixed and re-run, is tests/test_bad_inputs.py; these are the cases it does not cover."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import write_csv_dataset
from tests.helpers import REPO, assert_one_line_error, cli, run_main, tiny_config
from torchrepro.cli import main

DEMO = REPO / "configs" / "driving_synthetic.yaml"


def test_list_and_config(capsys):
    code, out, _ = run_main(capsys, "list")
    listed = [line.split()[0] for line in out.splitlines() if line and not line.startswith("tool ")]
    assert code == 0 and listed == ["detection", "driving", "ffn", "lipnet", "magicpoint", "nerf", "reid",
                                    "simclr", "superpoint", "vpr_event"]  # sorted by name
    code, out, _ = run_main(capsys, "config", DEMO, "optim.lr=1e-3")
    assert code == 0 and "lr: 0.001" in out


def test_run_dir_not_empty_is_refused_and_kept(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "precious.txt").write_text("keep me")
    code, _, err = run_main(capsys, "train", DEMO, f"run.dir={run}")
    assert_one_line_error(code, err, "already exists and is not empty", "torchrepro resume")
    assert (run / "precious.txt").read_text() == "keep me" and len(list(run.iterdir())) == 1


def test_resume_without_checkpoint(tmp_path, capsys):
    (tmp_path / "config.yaml").write_text(DEMO.read_text())
    code, _, err = run_main(capsys, "resume", tmp_path)
    assert_one_line_error(code, err, "has no checkpoint")



def _csv_data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    write_csv_dataset(data, 12, 6)
    return data


def test_image_that_is_not_an_image(tmp_path, capsys):
    data = _csv_data(tmp_path)
    (data / "train" / "images" / "frame_0003.jpg").write_bytes(b"\x00not a jpeg at all")
    code, _, err = run_main(capsys, "train", tiny_config(tmp_path, data), f"run.dir={tmp_path / 'run'}",
                            "trainer.max_epochs=1")
    assert_one_line_error(code, err, "frame_0003.jpg", "cannot be read as an image")




def test_nan_loss_stops_with_step_and_keeps_last_good_checkpoint(tmp_path):
    data = _csv_data(tmp_path)
    run = tmp_path / "run"
    proc = cli("train", tiny_config(tmp_path, data), f"run.dir={run}", "optim.lr=1e12", "trainer.max_epochs=5")
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = [x for x in proc.stderr.splitlines() if x.startswith("torchrepro: error:")]
    assert len(line) == 1 and "loss became" in line[0] and "at step" in line[0], proc.stderr[-2000:]
    step = int(line[0].split("at step ")[1].split()[0])
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == step  # the last good step was saved; the bad one never was
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())


def test_data_command_counts_items_and_writes_no_run(tmp_path, capsys, monkeypatch):
    """`torchrepro data`: checks and counts a real-format data set (12 training images, batch 8; 6 validation
    images, batch 16) without training or creating a run directory."""
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(capsys, "data", tiny_config(tmp_path, _csv_data(tmp_path)))
    assert code == 0, err
    assert "train: 12 items in 2 batches" in out and "val: 6 items in 1 batches" in out
    assert not (tmp_path / "runs").exists()


def test_data_command_generates_the_synthetic_set_a_later_train_reuses(tmp_path, capsys):
    over = ["data.synthetic_train_ids=10", "data.val_ids=2", "data.synthetic_test_ids=4", "data.height=64", "data.width=32",
            "data.texture_height=32", "data.texture_width=32", f"data.synthetic_dir={tmp_path / 'persons'}"]
    code, out, err = run_main(capsys, "data", REPO / "configs" / "reid_sim_bot.yaml", *over)
    assert code == 0, err
    assert "train: " in out and "val: " in out
    made = sorted(p.name for p in (tmp_path / "persons").iterdir())
    assert made, "the synthetic set was not written"
    code, _, err = run_main(capsys, "data", REPO / "configs" / "reid_sim_bot.yaml", *over)
    assert code == 0 and sorted(p.name for p in (tmp_path / "persons").iterdir()) == made


def test_data_command_names_a_missing_data_root(tmp_path, capsys):
    code, _, err = run_main(capsys, "data", DEMO, "data.source=csv", f"data.root={tmp_path / 'absent'}")
    assert_one_line_error(code, err, str(tmp_path / "absent"), "does not exist")


def test_resume_extends_a_finished_run_and_refuses_what_would_break_it(tmp_path, capsys):
    """`resume RUN_DIR trainer.max_epochs=N` continues a finished run for more epochs and records the new plan;
    an override that would change the continuation (optimiser, data, seed) is refused in one line, nothing run."""
    write_csv_dataset(tmp_path / "data", 16, 6)
    config = tiny_config(tmp_path, tmp_path / "data")
    run = tmp_path / "run"
    assert main(["train", str(config), f"run.dir={run}", "trainer.max_epochs=1"]) == 0
    one_epoch = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    code, _, err = run_main(capsys, "resume", run, "optim.lr=0.5")
    assert_one_line_error(code, err, "optim.lr", "trainer.max_epochs")
    original = (run / "config.yaml").read_text()
    assert "max_epochs: 1" in original
    assert main(["resume", str(run), "trainer.max_epochs=2"]) == 0
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2 * one_epoch
    # the new plan is recorded, and nothing else in the run's config changed
    assert (run / "config.yaml").read_text() == original.replace("max_epochs: 1", "max_epochs: 2")
    assert main(["resume", str(run)]) == 0  # a plain resume now finds the run complete
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2 * one_epoch




def test_no_figures_of_the_untrained_model_when_training_ends_before_any_validation(tmp_path, capsys):
    data = _csv_data(tmp_path)
    run = tmp_path / "run"
    code, out, err = run_main(capsys, "train", tiny_config(tmp_path, data), f"run.dir={run}", "trainer.max_steps=1")
    assert code == 0, err
    assert not (run / "confusion_matrix.png").exists()
    assert "no validation ran during training" in out


@pytest.mark.parametrize("best_weights_only", [True, False])
def test_a_truncated_last_checkpoint_points_to_an_intact_best(tmp_path, capsys, best_weights_only):
    data = _csv_data(tmp_path)
    run = tmp_path / "run"
    assert main(["train", str(tiny_config(tmp_path, data)), f"run.dir={run}", "trainer.max_epochs=1",
                 f"checkpoint.best_weights_only={str(best_weights_only).lower()}"]) == 0
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])
    code, _, err = run_main(capsys, "resume", run)
    if best_weights_only:  # the default: best.ckpt can be scored, not resumed from
        assert_one_line_error(code, err, "last.ckpt", "best.ckpt is intact (step 2, weights only)", "torchrepro eval")
    else:
        assert_one_line_error(code, err, "last.ckpt", "best.ckpt is intact (step 2)", "copy it over last.ckpt")


def test_best_is_weights_only_and_save_optimizer_false_makes_a_run_that_refuses_to_resume(tmp_path, capsys):
    """best.ckpt (what eval and the final test score) carries no optimiser state; with checkpoint.save_optimizer=false
    neither does last.ckpt, and resume says so in one line instead of failing inside Lightning."""
    data = _csv_data(tmp_path)
    config = tiny_config(tmp_path, data)
    full, lean = tmp_path / "full", tmp_path / "lean"
    assert main(["train", str(config), f"run.dir={full}", "trainer.max_epochs=1"]) == 0
    best = torch.load(full / "checkpoints" / "best.ckpt", weights_only=True)
    last = torch.load(full / "checkpoints" / "last.ckpt", weights_only=True)
    assert "optimizer_states" not in best and last["optimizer_states"]
    assert best["state_dict"].keys() == last["state_dict"].keys()
    assert (full / "checkpoints" / "best.ckpt").stat().st_size < 0.6 * (full / "checkpoints" / "last.ckpt").stat().st_size
    assert main(["train", str(config), f"run.dir={lean}", "trainer.max_epochs=1", "checkpoint.save_optimizer=false"]) == 0
    assert "optimizer_states" not in torch.load(lean / "checkpoints" / "last.ckpt", weights_only=True)
    capsys.readouterr()
    code, _, err = run_main(capsys, "resume", lean, "trainer.max_epochs=2")
    assert_one_line_error(code, err, "weights only", "checkpoint.save_optimizer=false")


@pytest.mark.parametrize("argv", [["list"], ["config", str(DEMO)], ["config", str(REPO / "configs" / "reid_sim_bot.yaml")],
                                  ["config", str(REPO / "configs" / "vpr_event_sim.yaml")]])
def test_list_and_config_import_neither_torch_nor_lightning(argv):
    """`list` and `config` read schemas and registrations only (a fraction of a second; torch takes seconds): the
    recipes' task modules, torch and Lightning are imported by the commands that build a recipe."""
    code = ("import sys; from torchrepro.cli import main; assert main(sys.argv[1:]) == 0; "
            "heavy = sorted(m for m in ('torch', 'pytorch_lightning', 'torchvision') if m in sys.modules); "
            "assert not heavy, heavy")
    res = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
