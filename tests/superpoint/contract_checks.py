"""The SuperPoint recipes' own checks on the recipe contract's tiny runs (tests/test_contract.py calls them after its
step 1), so the suite trains each tiny run once: the untrained model and the classical baselines, the test split
scored once, the HPatches table and the match picture, and ``superpoint-match`` on two held-out pictures with the
run's checkpoint (``superpoint-export`` with a checkpoint is tests/superpoint/test_adaptation.py's)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import cli


def _scored_once(stdout: str, key: str) -> None:
    tested = [line for line in stdout.splitlines() if line.startswith("test (held-out, scored once with best.ckpt)")]
    assert len(tested) == 1 and f"test/{key}=" in tested[0], stdout[-2000:]


def check_magicpoint_run(config: Path, overrides: list[str], cwd: Path, run: Path, stdout: str,
                         stderr: str = "") -> None:
    untrained = next(line for line in stdout.splitlines() if line.startswith("untrained model:"))
    for key in ("mAP=", "repeatability=", "baseline_shi_mAP=", "baseline_harris_mAP=", "baseline_fast_mAP="):
        assert key in untrained, untrained
    _scored_once(stdout, "mAP")
    last = json.loads((run / "metrics.json").read_text())["last"]
    assert 0.0 <= last["test/mAP"] <= 1.0 and 0.0 <= last["test/baseline_shi_mAP"] <= 1.0, last


def check_superpoint_run(config: Path, overrides: list[str], cwd: Path, run: Path, stdout: str,
                         stderr: str = "") -> None:
    untrained = next(line for line in stdout.splitlines() if line.startswith("untrained model:"))
    for key in ("hcorr@3=", "viewpoint/hcorr@3=", "illumination/nn_map=", "baseline_sift_hcorr@3=",
                "baseline_orb_repeatability="):
        assert key in untrained, untrained
    _scored_once(stdout, "hcorr@3")
    table = (run / "hpatches.md").read_text()
    assert "held-out test split" in table and "| SuperPoint (ours) |" in table and "| SIFT |" in table, table
    assert (run / "matches.png").is_file()

    # superpoint-match: two held-out pictures of one viewpoint sequence, a PNG of the matches
    photos = Path(next(o.split("=", 1)[1] for o in overrides if o.startswith("data.synthetic_dir=")))
    photos = photos if photos.is_absolute() else cwd / photos
    sequence = next(iter(sorted(photos.glob("*/hpatches_test/v_*"))))
    png = cwd / "match.png"
    res = cli("tool", "superpoint-match", "--ckpt", run / "checkpoints" / "best.ckpt", "--out", png,
              sequence / "1.ppm", sequence / "3.ppm", cwd=cwd)
    assert res.returncode == 0, res.stderr[-3000:]
    assert png.is_file() and "mutual matches" in res.stdout, res.stdout
