"""The detection recipe's own checks on the recipe contract's tiny synthetic run (tests/test_contract.py calls
:func:`check_tiny_synthetic_run` after its step 1), so the suite trains that tiny run once: the untrained model and
the prior-box baseline, the test split scored once, the figures and the per-class table, and ``torchrepro eval
--split test`` scoring the held-out split again with ``best.ckpt``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import cli


def check_tiny_synthetic_run(config: Path, overrides: list[str], cwd: Path, run: Path, stdout: str,
                             stderr: str = "") -> None:
    """``run``: the contract's finished tiny run of ``config`` with ``overrides`` (relative data paths under ``cwd``);
    ``stdout``: what its ``train`` printed."""
    untrained = next(line for line in stdout.splitlines() if line.startswith("untrained model:"))
    for key in ("mAP@0.5=", "mAP@0.5_all_point=", "coco_mAP=", "baseline_prior_mAP@0.5="):
        assert key in untrained, untrained
    tested = [line for line in stdout.splitlines() if line.startswith("test (held-out, scored once with best.ckpt)")]
    assert len(tested) == 1 and "test/mAP@0.5=" in tested[0] and "test/baseline_prior_mAP@0.5=" in tested[0], stdout
    last = json.loads((run / "metrics.json").read_text())["last"]
    assert last["stage"] == "test" and 0.0 <= last["test/mAP@0.5"] <= 1.0, last
    for name in ("curves.png", "pr_curves.png", "detections.png", "per_class_ap.md"):
        assert (run / name).is_file(), name
    table = (run / "per_class_ap.md").read_text()
    assert "validation split" in table and "| car |" in table and "**mAP**" in table, table

    # `torchrepro eval --split test` scores the held-out split again with best.ckpt and draws its figures
    evaluated = cwd / "eval_test"
    res = cli("eval", config, "--ckpt", run / "checkpoints" / "best.ckpt", "--split", "test", *overrides,
              f"run.dir={evaluated}", cwd=cwd)
    assert res.returncode == 0, res.stderr[-3000:]
    again = json.loads((evaluated / "metrics.json").read_text())["last"]
    assert again["test/mAP@0.5"] == pytest.approx(last["test/mAP@0.5"], abs=1e-6)
    assert "test split" in (evaluated / "per_class_ap.md").read_text()
    assert (evaluated / "pr_curves.png").is_file() and (evaluated / "detections.png").is_file()
