"""The FFN recipe end to end: the regime table tool on a tiny generated set, the regimes' training steps, the
shipped configs, and bad inputs through the CLI (one line naming the key or file, exit status 2)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import torchrepro.recipes  # noqa: F401  (fills the registry)
from tests.helpers import REPO, assert_one_line_error, run_main
from tests.video import write_sthv2
from torchrepro.core.registry import resolve_config
from torchrepro.frame_flexible.task import build

SYNTHETIC = REPO / "configs" / "ffn_synthetic.yaml"
STHV2 = REPO / "configs" / "ffn_sthv2.yaml"
TINY = ["data.synthetic_train=10", "data.synthetic_val=10", "data.synthetic_test=10", "data.synthetic_size=32",
        "data.synthetic_frames=8", "data.image_size=32", "data.resize=32", "data.batch_size=5",
        "model.train_frames=[2,4]", "model.eval_frames=[2,4]", "model.width=4", "trainer.max_epochs=1",
        "trainer.validate_before_fit=false", "trainer.progress_bar=false", "checkpoint.every_n_steps=0"]


def test_table_tool_trains_every_regime_and_writes_the_table(tmp_path: Path, capsys) -> None:
    out = tmp_path / "table"
    code, stdout, err = run_main(capsys, "tool", "ffn-table", SYNTHETIC, "--out", out, *TINY,
                                 f"data.synthetic_dir={tmp_path / 'data'}")
    assert code == 0, err[-2000:]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["ffn", "mixed", "single_2", "single_4"]
    table = json.loads((out / "table.json").read_text())
    rows = {r["row"]: r for r in table["rows"]}
    assert list(rows) == ["trained at 4 frames", "separated training (one model per frame count)", "mixed sampling",
                          "FFN"]
    for name, row in rows.items():
        run_metrics = [json.loads((out / run / "metrics.json").read_text())["history"] for run in row["runs"]]
        tests = [h for history in run_metrics for h in history if h["stage"] == "test"]
        assert len(tests) == len(row["runs"])  # each run scored its test split once
        if len(row["runs"]) == 1:  # the row's figures are its run's test figures at every frame count
            assert row["test"] == {str(f): tests[0][f"test/acc@{f}"] for f in (2, 4)}
    separated = rows["separated training (one model per frame count)"]
    assert separated["runs"] == ["single_2", "single_4"]
    for f, run in ((2, "single_2"), (4, "single_4")):  # each frame count is tested on its own model
        history = json.loads((out / run / "metrics.json").read_text())["history"]
        assert separated["test"][str(f)] == next(h for h in history if h["stage"] == "test")[f"test/acc@{f}"]
    single = rows["trained at 4 frames"]["params"]
    assert separated["params"] == 2 * single and rows["mixed sampling"]["params"] == single
    assert single < rows["FFN"]["params"] < 1.1 * single  # private norms + alterations only
    md = (out / "table.md").read_text()
    assert "| FFN |" in md and "56.1" in md  # the paper's figures beside ours
    assert (out / "accuracy_vs_frames.png").stat().st_size > 0
    assert md in stdout
    # nothing is overwritten: a second table into the same folder is refused
    code, _, err = run_main(capsys, "tool", "ffn-table", SYNTHETIC, "--out", out, *TINY)
    assert_one_line_error(code, err, "not empty")


@pytest.mark.parametrize("regime,frames", [("single", "[4]"), ("mixed", "[2,4]"), ("ffn", "[2,4]")])
def test_regime_losses(tmp_path: Path, regime: str, frames: str) -> None:
    """One training batch per regime: ``single`` is CE at its frame count; ``mixed`` CE at a frame count drawn
    from (seed, step); ``ffn`` CE on the most frames plus λ·KL of each other frame count."""
    cfg = resolve_config(SYNTHETIC, [*TINY, f"model.regime={regime}", f"model.train_frames={frames}",
                                     "model.kl_weight=0.5", f"data.synthetic_dir={tmp_path}"])
    task, _ = build(cfg)
    task.net.train()
    torch.manual_seed(0)
    clips = {f: torch.randn(3, f, 3, 32, 32) for f in (2, 4)}
    labels = torch.tensor([0, 1, 2])
    terms = task.losses((clips, labels))
    assert sorted(terms) == (["ce", "kl_2"] if regime == "ffn" else ["ce"])
    assert all(torch.isfinite(t) for t in terms.values())
    if regime == "mixed":
        drawn = [task.mixed_frames(step) for step in range(40)]
        assert set(drawn) == {2, 4} and 10 < drawn.count(2) < 30
        assert drawn == [task.mixed_frames(step) for step in range(40)]


def test_synthetic_config_is_the_paper_setting_at_cpu_scale() -> None:
    cfg = resolve_config(SYNTHETIC, [])
    assert cfg.model.regime == "ffn" and cfg.model.train_frames == [4, 8, 16] and cfg.model.kl_weight == 1.0
    assert cfg.model.weight_alteration and cfg.model.shift_div == 8 and cfg.trainer.gradient_clip_val == 20


def test_sthv2_config_parses_and_names_a_missing_root(tmp_path: Path, capsys) -> None:
    cfg = resolve_config(STHV2, [f"data.root={tmp_path}"])
    assert (cfg.model.arch, cfg.data.image_size, cfg.optim.lr, cfg.sched.milestones) == ("resnet50", 224, 0.01,
                                                                                         [20, 40])
    code, _, err = run_main(capsys, "train", STHV2)
    assert_one_line_error(code, err, "/data/something-something-v2", "data.root")


@pytest.mark.parametrize("override,needles", [
    ("model.train_frames=[4]", ("regime 'ffn'", "model.train_frames")),
    ("model.eval_frames=[4,8]", ("model.eval_frames", "[4, 8, 16]")),
    ("model.regime=single", ("regime 'single'", "train_frames=[16]")),
    ("data.resize=16", ("data.resize", "data.image_size")),
    ("model.regime=tsn", ("model.regime",)),
])
def test_bad_config_is_one_line(capsys, override: str, needles: tuple[str, ...]) -> None:
    code, _, err = run_main(capsys, "config", SYNTHETIC, override)
    assert_one_line_error(code, err, *needles)


def test_bad_data_is_named_by_the_data_command(tmp_path: Path, capsys) -> None:
    """A template missing from labels.json names the video and the template; once fixed, the same command works."""
    root = write_sthv2(tmp_path / "sthv2")
    good = (root / "labels.json").read_text()
    labels = json.loads(good)
    labels.pop("Putting something on a surface")
    (root / "labels.json").write_text(json.dumps({k: str(i) for i, k in enumerate(sorted(labels))}))
    cmd = ["data", STHV2, f"data.root={root}", "data.val_fraction=0.25", "model.train_frames=[2,4]",
           "model.eval_frames=[2,4]", "data.image_size=16", "data.resize=16"]
    code, _, err = run_main(capsys, *cmd)
    assert_one_line_error(code, err, "video 42326", "Putting [something] on a surface", "labels.json")
    (root / "labels.json").write_text(good)
    code, _, err = run_main(capsys, *cmd)
    assert code == 0, err
    shutil.rmtree(root)
