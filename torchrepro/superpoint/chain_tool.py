"""``torchrepro tool superpoint-chain [--runs DIR] [--magicpoint CFG] [--superpoint CFG] [KEY=VALUE …]``: SuperPoint's
whole pipeline in one command (DeTone et al., CVPRW 2018, Fig. 2).

1. ``torchrepro train CFG_MAGICPOINT`` (default ``configs/magicpoint_shapes.yaml``): MagicPoint on Synthetic
   Shapes (§4), into ``RUNS/magicpoint``;
2. ``torchrepro train CFG_SUPERPOINT data.labeler=RUNS/magicpoint/checkpoints/best.ckpt`` (default
   ``configs/superpoint_photos.yaml``): before training, its data module exports the pseudo ground truth of the
   training pictures by Homographic Adaptation of that checkpoint (§5; the labels folder is stamped with it), then
   trains SuperPoint jointly (§6), chooses its checkpoint on the validation folder and scores the held-out HPatches
   folder once (§7) beside SIFT and ORB, into ``RUNS/superpoint``;
3. prints the held-out tables, viewpoint and illumination (also in ``RUNS/superpoint/hpatches.md``).

``KEY=VALUE`` overrides go to the SuperPoint stage; each stage is an ordinary run (its report, resume, eval).
A stage whose run folder already holds a finished run (scored on its test split) is reused, so a chain stopped
after MagicPoint continues with SuperPoint; an unfinished run folder is refused with the `resume` command to run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from torchrepro.core.errors import ConfigError

__all__ = ["chain_main"]

REPO_CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="torchrepro tool superpoint-chain",
                                     description="shapes -> MagicPoint -> homographic adaptation -> SuperPoint -> "
                                                 "HPatches tables against SIFT and ORB")
    parser.add_argument("--runs", type=Path, default=Path("runs/superpoint_chain"), help="folder of the two runs")
    parser.add_argument("--magicpoint", type=Path, default=REPO_CONFIGS / "magicpoint_shapes.yaml")
    parser.add_argument("--superpoint", type=Path, default=REPO_CONFIGS / "superpoint_photos.yaml")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="overrides of the SuperPoint stage")
    return parser


def _finished(run_dir: Path) -> bool:
    """A run folder whose metrics.json records a finished training (a test score, or a last fit epoch)."""
    metrics = run_dir / "metrics.json"
    if not (run_dir / "checkpoints" / "best.ckpt").is_file() or not metrics.is_file():
        return False
    history = json.loads(metrics.read_text()).get("history", [])
    return any(h.get("stage") == "test" for h in history)


def _stage(name: str, config: Path, run_dir: Path, overrides: list[str]) -> Path:
    from torchrepro.cli import main

    if _finished(run_dir):
        print(f"== {name}: reusing the finished run {run_dir}", flush=True)
        return run_dir
    if run_dir.exists():
        raise ConfigError(f"'{run_dir}' holds an unfinished {name} run: finish it with `torchrepro resume {run_dir}` "
                          f"and run the chain again, or choose another --runs folder")
    print(f"== {name}: torchrepro train {config} {' '.join(overrides)}", flush=True)
    code = main(["train", str(config), f"run.dir={run_dir}", *overrides])
    if code != 0:
        raise ConfigError(f"the {name} stage failed (exit status {code}); its run folder is {run_dir}")
    return run_dir


def chain_main(argv: list[str]) -> int:
    """``torchrepro tool superpoint-chain`` (module docstring)."""
    args = _parser().parse_args(argv)
    for path in (args.magicpoint, args.superpoint):
        if not path.is_file():
            raise ConfigError(f"config '{path}' does not exist: pass --magicpoint / --superpoint CONFIG files")
    started = time.perf_counter()
    magicpoint = _stage("MagicPoint", args.magicpoint, args.runs / "magicpoint", [])
    labeler = magicpoint / "checkpoints" / "best.ckpt"
    superpoint = _stage("SuperPoint", args.superpoint, args.runs / "superpoint",
                        [f"data.labeler={labeler}", *args.overrides])
    table = superpoint / "hpatches.md"
    if table.is_file():
        print(table.read_text(), end="")
    print(f"chain wall time: {time.perf_counter() - started:.0f} s (MagicPoint: {magicpoint}, SuperPoint: "
          f"{superpoint})")
    return 0
