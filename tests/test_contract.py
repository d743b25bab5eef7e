"""The recipe contract (timm's ``test_models.py`` idea): every registered recipe, built from its shipped synthetic
config shrunk by its own ``tiny_overrides``, must

1. train through the CLI, print the untrained model's metrics (and its baseline, where it declares one) and one
   line per epoch with no library banners (the output is not a terminal), and leave a run directory with
   ``config.yaml``, ``metrics.json``, TensorBoard events and ``last``/``best`` checkpoints;
2. resume bit-identical after a SIGKILL mid-epoch (weights, optimiser state and step count);
3. ``eval`` its best checkpoint under a real 2-process ``torchrun`` (gloo) to every validation metric the
   single-process run recorded for that checkpoint: one command checks both that ``eval`` reproduces the recorded
   figures and that sharding the evaluation over ranks changes nothing (tests/test_eval.py covers one-process
   ``eval`` itself).

The killed run is a real process (SIGKILL); the ``resume`` that follows runs in-process through the same entry
point (``torchrepro.cli.main``), which spares the suite one interpreter start-up (~5 s of imports) per recipe.

Step 1's run is the session's tiny run of the recipe (the ``tiny_runs`` fixture, :func:`tests.helpers.train_tiny_run`):
trained once, through the CLI in a subprocess, it is both checked here and served to the live pages' and tools'
tests, which used to train a one-epoch run of their own.

A new recipe is covered by registering it (``torchrepro/recipes.py``) with ``synthetic_config`` and
``tiny_overrides``. One test per recipe runs the steps in order, so the parallel test runner never trains the
same reference twice. A recipe's own checks of such a tiny run are made on this run too (:data:`RUN_CHECKS`),
rather than on a second identical run in its test folder.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import torchrepro.recipes  # noqa: F401  (fills the registry)
from tests.helpers import REPO, ckpt_step, cli_env, cli_popen, contract_overrides, wait_for_step
from torchrepro.cli import main
from torchrepro.core import registry

pytest.register_assert_rewrite("tests.detection.contract_checks", "tests.superpoint.contract_checks",
                                "tests.nerf.contract_checks", "tests.reid.contract_checks")
from tests.detection.contract_checks import check_tiny_synthetic_run as check_detection_run  # noqa: E402
from tests.nerf.contract_checks import check_nerf_run  # noqa: E402
from tests.reid.contract_checks import check_reid_run  # noqa: E402
from tests.superpoint.contract_checks import check_magicpoint_run, check_superpoint_run  # noqa: E402

RECIPES = sorted(registry.recipes())
#: a recipe's own checks of the contract's tiny run, called after step 1 as ``check(config, overrides, cwd, run_dir,
#: stdout, stderr=...)``: the recipe's tests then need no tiny training run of their own
RUN_CHECKS = {"detection": check_detection_run, "magicpoint": check_magicpoint_run,
              "superpoint": check_superpoint_run, "nerf": check_nerf_run, "reid": check_reid_run}


def _train_killed(config: Path, overrides: list[str], cwd: Path, run_dir: Path, kill_at: int) -> int:
    """Start a training run, SIGKILL it once ``last.ckpt`` has reached step ``kill_at``; the saved step."""
    proc = cli_popen("train", config, *overrides, f"run.dir={run_dir}", log=run_dir.parent / "killed.log", cwd=cwd)
    wait_for_step(proc, run_dir / "checkpoints" / "last.ckpt", kill_at)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return ckpt_step(run_dir / "checkpoints" / "last.ckpt")


def _torchrun_eval(config: Path, ckpt: Path, overrides: list[str], cwd: Path, run_dir: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
           "torchrepro.cli", "eval", str(config), "--ckpt", str(ckpt), *overrides, f"run.dir={run_dir}"]
    return subprocess.run(cmd, cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=600)


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def _best_entry(history: list[dict], monitor: str, mode: str) -> dict:
    """The fit-stage validation that ``best.ckpt`` holds (ModelCheckpoint keeps the first of equal values)."""
    fit = [h for h in history if h["stage"] == "fit" and monitor in h]
    pick = max if mode == "max" else min
    best = pick(h[monitor] for h in fit)
    return next(h for h in fit if h[monitor] == best)


def _assert_same_training_state(reference: dict, resumed: dict, what: str) -> None:
    assert resumed["global_step"] == reference["global_step"], what
    differing = [k for k, v in reference["state_dict"].items() if not torch.equal(v, resumed["state_dict"][k])]
    assert not differing, f"{what}: {len(differing)} tensors differ, e.g. {differing[:3]}"
    for ref_opt, got_opt in zip(reference["optimizer_states"], resumed["optimizer_states"]):
        for a, b in zip(ref_opt["state"].values(), got_opt["state"].values()):
            for key in a:
                if torch.is_tensor(a[key]):
                    assert torch.equal(a[key], b[key]), f"{what}: optimiser state '{key}' differs"


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_contract(name: str, tiny_runs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = registry.get_recipe(name)
    assert recipe.synthetic_config and recipe.tiny_overrides, f"recipe '{name}' must declare its contract inputs"
    config = REPO / recipe.synthetic_config

    # 1. a short run through the CLI (in a subprocess: a non-terminal run), shared with the session's other tests
    full = tiny_runs(name)
    root = full.parent.parent
    overrides = contract_overrides(name, root)  # tiny_overrides, CONTRACT_COMMON, data folders under root/data
    work = root / "work" / name  # the run's working directory: any other relative path lands there
    monkeypatch.chdir(work)  # and so do those of in-process commands (resume, a recipe's tool checks)
    res = SimpleNamespace(stdout=(root / "logs" / f"{name}.out").read_text(),
                          stderr=(root / "logs" / f"{name}.err").read_text())
    assert "untrained model:" in res.stdout
    untrained = next(line for line in res.stdout.splitlines() if line.startswith("untrained model:"))
    assert recipe.default_monitor in untrained
    if recipe.baseline_metric:
        assert recipe.baseline_metric in untrained, untrained
    epochs = [line for line in res.stdout.splitlines() if line.startswith("epoch ")]
    assert [line.split(",")[0] for line in epochs] == ["epoch 1/2", "epoch 2/2"], res.stdout
    assert recipe.default_monitor in epochs[-1]
    for noise in ("\r", "GPU available", "Tip:", "was configured so", "faiss"):
        assert noise not in res.stdout + res.stderr, f"{noise!r} in the output of a non-terminal run"
    # validation chooses best.ckpt; the held-out test split is scored once, at the end, with it
    assert res.stdout.count("test (held-out, scored once with best.ckpt): ") == 1, res.stdout[-2000:]
    history = _metrics(full)["history"]
    assert [h["stage"] for h in history].count("test") == 1 and history[-1]["stage"] == "test"
    assert any(k.startswith("test/") and k.endswith(recipe.default_monitor) for k in history[-1]), history[-1]
    assert not any(k.startswith("test/") for h in history[:-1] for k in h), "the test split was scored before the end"
    for item in ("config.yaml", "metrics.json", "checkpoints/last.ckpt", "checkpoints/best.ckpt"):
        assert (full / item).is_file(), item
    assert any((full / "tensorboard").glob("events.out.tfevents.*"))
    reference = torch.load(full / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    total = reference["global_step"]
    assert total >= 4, f"the tiny run must take at least 4 steps to be killed mid-epoch (took {total})"
    if name in RUN_CHECKS:
        RUN_CHECKS[name](config, overrides, work, full, res.stdout, stderr=res.stderr)

    # 2. SIGKILL mid-epoch (second epoch of two), then resume: bit-identical to the uninterrupted run
    killed = tmp_path / "killed"
    saved = _train_killed(config, overrides, work, killed, kill_at=total // 2 + 1)
    assert 0 < saved < total, f"the kill must interrupt training (checkpoint at step {saved} of {total})"
    interrupted = torch.load(killed / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert any(not torch.equal(v, interrupted["state_dict"][k]) for k, v in reference["state_dict"].items()), \
        "the interrupted checkpoint already equals the final one: the resume check would be vacuous"
    assert main(["resume", str(killed)]) == 0
    resumed = torch.load(killed / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    _assert_same_training_state(reference, resumed, f"resumed from step {saved}")

    # 3. eval of best.ckpt on two ranks (contiguous shards, ordered gather) reproduces the validation recorded for it
    best = _best_entry(_metrics(full)["history"], recipe.default_monitor, recipe.default_mode)
    two = tmp_path / "eval2"
    res = _torchrun_eval(config, full / "checkpoints" / "best.ckpt", overrides, work, two)
    assert res.returncode == 0, res.stderr[-4000:]
    distributed = _metrics(two)["last"]
    shared = [k for k in best if k in distributed and k not in ("stage", "epoch", "step", "lr", "train_loss")]
    assert recipe.default_monitor in shared, sorted(distributed)
    for key in shared:
        assert distributed[key] == pytest.approx(best[key], rel=1e-5, abs=1e-6, nan_ok=True), key
