"""The reid recipe's own checks on the recipe contract's tiny BoT run (tests/test_contract.py calls
:func:`check_reid_run` after its step 1), so the suite trains that tiny run once: the untrained model and the colour
baseline, validation on held-out training identities every epoch (its own figures, nothing of the test split), the
test split scored once with best.ckpt, the losses and the ranked-results figure."""

from __future__ import annotations

import json
from pathlib import Path


def check_reid_run(config: Path, overrides: list[str], cwd: Path, run: Path, stdout: str,
                   stderr: str = "") -> None:
    """``run``: the contract's finished tiny run of ``config`` with ``overrides``; ``stdout`` / ``stderr``: what its
    ``train`` printed."""
    assert "untrained model:" in stdout and "baseline_colour_rank-1" in stdout
    setting = {o.split("=", 1)[0]: o.split("=", 1)[1] for o in overrides if "=" in o}
    held_out = int(setting["data.val_ids"])
    assert f"validation: {held_out} held-out training identities" in stderr, stderr[-2000:]
    assert stdout.count("test (held-out, scored once with best.ckpt):") == 1
    history = json.loads((run / "metrics.json").read_text())["history"]
    assert [h["stage"] for h in history] == ["untrained", "fit", "fit", "test"]
    tested = [h for h in history if "test/rank-1" in h]
    assert len(tested) == 1 and tested[0]["stage"] == "test"
    assert "test/baseline_colour_rank-1" in tested[0] and "rank-1" not in tested[0]
    for entry in history[:-1]:  # validation: its own figures and baseline, nothing of the test split
        assert not any(k.startswith("test/") for k in entry)
        assert {"rank-1", "rank-5", "rank-10", "rank-20", "mAP", "mINP", "baseline_colour_rank-1"} <= set(entry)
        assert entry["rank-1"] <= entry["rank-5"] <= entry["rank-10"] <= entry["rank-20"]
    assert {"loss_id", "loss_triplet"} <= set(history[-2])
    assert (run / "ranked_results.png").stat().st_size > 1000
