"""Helpers shared by tests that drive the real CLI."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import torch

REPO = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def scratch_dir(request: Any, factory: Any, name: str) -> Iterator[Path]:
    """A folder for a module-scoped fixture, removed once its tests are done unless a test has failed.

    Each tiny run keeps its checkpoints (tens to hundreds of MB): kept until the session ends, the suite's runs
    would fill a small disk (CI ran out of space once). pytest's own ``tmp_path_retention_policy = "failed"``
    covers the per-test folders; a failure keeps everything for inspection."""
    path = factory.mktemp(name)
    yield path
    if request.session.testsfailed == 0:
        shutil.rmtree(path, ignore_errors=True)


def tiny_config(tmp_path: Path, data_root: Path, **extra: str) -> Path:
    """A fast CSV-format driving config (ResNet18, 32×32) writing under tmp_path."""
    lines = [
        f"base: {REPO / 'configs' / 'driving_csv.yaml'}",
        "trainer: {max_epochs: 3, progress_bar: false, log_every_n_steps: 1}",
        "optim: {lr: 0.01}",
        "checkpoint: {every_n_steps: 1}",
        f"data: {{root: {data_root}, image_size: 32, batch_size: 8, val_batch_size: 16}}",
        "model: {arch: resnet18}",
    ]
    path = tmp_path / "tiny.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_main(capsys, *args) -> tuple[int, str, str]:
    """The CLI entry point in-process: (exit status, stdout, stderr)."""
    from torchrepro.cli import main

    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    """Exit status 2, exactly one ``torchrepro: error:`` line holding every needle, no traceback."""
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.startswith("torchrepro: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


TORCHRUN_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def cli_env() -> dict[str, str]:
    """The environment of a CLI subprocess: one BLAS thread, no Python warnings, no inherited torchrun variables."""
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARS}
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def cli(*args: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run `python -m torchrepro.cli ARGS` in a subprocess (real exit codes, real stderr)."""
    return subprocess.run([sys.executable, "-m", "torchrepro.cli", *map(str, args)], cwd=cwd, env=cli_env(),
                          capture_output=True, text=True, timeout=timeout)


def cli_popen(*args: str, log: Path, cwd: Path | None = None) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "torchrepro.cli", *map(str, args)], cwd=cwd, env=cli_env(),
                                stdout=out, stderr=subprocess.STDOUT)


def wait_for_step(proc: subprocess.Popen, ckpt: Path, min_step: int, timeout: float = 300) -> int:
    """Poll ``ckpt`` until it holds ``min_step`` or later (or ``proc`` ends); its step then (-1: none yet).

    The checkpoint is re-read only when its file was replaced, so polling does not slow the run down."""
    deadline, seen, step = time.time() + timeout, None, -1
    while step < min_step and proc.poll() is None and time.time() < deadline:
        stamp = ckpt.stat().st_mtime_ns if ckpt.is_file() else None
        if stamp != seen:
            seen, step = stamp, ckpt_step(ckpt)
        time.sleep(0.01)
    return step


def ckpt_step(path: Path) -> int:
    """global_step stored in a checkpoint, or -1 while it does not exist / is being replaced."""
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])
    except Exception:  # noqa: BLE001 - absent or mid-rename: not there yet
        return -1


#: what the recipe contract (tests/test_contract.py) adds to a recipe's ``tiny_overrides``: the untrained model scored
#: first, a log line and a checkpoint every step (so a SIGKILL lands mid-epoch)
CONTRACT_COMMON = ("trainer.progress_bar=false", "trainer.validate_before_fit=true", "trainer.log_every_n_steps=1",
                   "checkpoint.every_n_steps=1")


def contract_overrides(name: str, root: Path) -> list[str]:
    """The overrides of recipe ``name``'s tiny run: its ``tiny_overrides`` (two epochs), :data:`CONTRACT_COMMON`, and
    every data folder of its ``data:`` block (``*_dir`` keys) under ``root/data/<name>`` as an absolute path (the
    run's config.yaml then finds its data from any working directory: the live pages read it)."""
    import dataclasses

    import torchrepro.recipes  # noqa: F401  (fills the registry)
    from torchrepro.core import registry

    recipe = registry.get_recipe(name)
    folders = [f"data.{f.name}={root / 'data' / name / f.name}" for f in dataclasses.fields(recipe.data_schema)
               if f.name.endswith("_dir")]
    return [*recipe.tiny_overrides, *CONTRACT_COMMON, *folders]


def train_tiny_run(name: str, root: Path) -> Path:
    """Step 1 of the recipe contract: train a registered recipe's tiny variant (its synthetic config,
    :func:`contract_overrides`) through the CLI in a subprocess (a non-terminal run, as the contract checks its
    output), working in ``root/work/<name>``, into ``root/runs/<name>``; its stdout and stderr are kept as
    ``root/logs/<name>.out`` / ``.err``. Returns the run directory (with report.html, written last)."""
    import torchrepro.recipes  # noqa: F401  (fills the registry)
    from torchrepro.core import registry

    recipe = registry.get_recipe(name)
    run_dir, work, logs = root / "runs" / name, root / "work" / name, root / "logs"
    work.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    res = cli("train", REPO / recipe.synthetic_config, *contract_overrides(name, root), f"run.dir={run_dir}", cwd=work,
              timeout=600)
    (logs / f"{name}.out").write_text(res.stdout)
    (logs / f"{name}.err").write_text(res.stderr)
    assert res.returncode == 0, f"the tiny '{name}' run failed: {res.stderr[-3000:]}"
    return run_dir


def _recipe_page(runs_dir: str, recipe: str) -> None:
    """The script of :func:`page_app`: self-contained, as AppTest runs its source."""
    from pathlib import Path

    import torchrepro.recipes  # noqa: F401
    from torchrepro.core import registry

    registry.get_recipe(recipe).demo_page()(Path(runs_dir))


def page_app(runs_dir: Path, recipe: str, timeout: float = 120):
    """A recipe's live page of ``torchrepro serve`` under Streamlit's headless ``AppTest`` (not yet run)."""
    from streamlit.testing.v1 import AppTest

    return AppTest.from_function(_recipe_page, args=(str(runs_dir), recipe), default_timeout=timeout)


def assert_no_exception(at) -> None:
    """No exception reached Streamlit (it would show a traceback in the page)."""
    assert not at.exception, [e.value for e in at.exception]


# ------------------------------------------------------------------------------ the web demo in a real browser
CHROMIUM = Path("/usr/bin/chromium")
#: headless, and none of Chromium's background connections (the machine's closed network refuses them, slowly)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serving(runs_dir: Path, log: Path, timeout: float = 90, cwd: Path | None = None) -> Iterator[str]:
    """``torchrepro serve RUNS_DIR --port <free>`` in a subprocess (its own session, working in ``cwd``) until it
    answers; yields its URL and always stops it (SIGTERM, then SIGKILL), so no server outlives the block."""
    import signal
    import urllib.request

    port = free_port()
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "torchrepro.cli", "serve", str(runs_dir), "--port", str(port)],
                                env=cli_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=cwd)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            assert proc.poll() is None, f"the server stopped (exit {proc.returncode}): {log.read_text()[-2000:]}"
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                assert time.time() < deadline, f"no answer from {url} in {timeout} s: {log.read_text()[-2000:]}"
                time.sleep(0.3)
        yield url
    finally:
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 15)):
            if proc.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=wait)


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium (``make browser``) driven by Playwright; nothing is downloaded."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def drawn(page: Any, timeout_ms: int = 90_000) -> None:
    """Wait until a Playwright page's Streamlit script run has finished, its pictures are decoded and its charts
    drawn (before a screenshot)."""
    page.wait_for_function("!document.querySelector('[data-testid=stStatusWidget]')", timeout=timeout_ms)
    page.wait_for_function("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)",
                           timeout=timeout_ms)
    page.wait_for_function("Array.from(document.querySelectorAll('.vega-embed')).every(e => e.querySelector("
                           "'canvas, svg'))", timeout=timeout_ms)
    page.wait_for_timeout(500)  # the last paint
