"""``torchrepro serve``: the command (one-line errors, the server's command line), the recipe-free helpers (runs
found, their rows), the runs page and the app's pages under Streamlit's headless AppTest, and every bad input a
live page can meet (no run, no checkpoint, a corrupt checkpoint, another recipe's checkpoint), each shown as one
message in the page, never as a traceback."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest

import torchrepro.recipes  # noqa: F401  (fills the registry)
from tests.helpers import assert_no_exception, assert_one_line_error, page_app, run_main
from torchrepro.core import registry, serve
from torchrepro.core.demo import SUMMARY_COLUMNS, find_runs, summary
from torchrepro.core.serve_app import RUNS_DIR_VARIABLE

APP = Path(serve.app_script())


def iframes(at) -> list[str]:
    """The HTML documents the page embeds (st.iframe)."""
    return [el.proto.srcdoc for el in at.main if getattr(el, "type", None) == "iframe"]


@pytest.fixture
def runs(tiny_runs, tmp_path: Path) -> Path:
    """A runs folder: a tiny driving run and a tiny re-ID run (links), a run without report.html, a folder whose
    config.yaml is unreadable, and a run in a hidden folder (not listed)."""
    root = tmp_path / "runs"
    (root / "driving").mkdir(parents=True)
    driving, reid = tiny_runs("driving"), tiny_runs("reid")
    (root / "driving" / "tiny").symlink_to(driving)
    (root / "reid").symlink_to(reid)
    bare = root / "driving" / "no-report"
    bare.mkdir()
    for name in ("config.yaml", "metrics.json"):
        shutil.copy(driving / name, bare / name)
    (root / "broken").mkdir()
    (root / "broken" / "config.yaml").write_text("recipe: [unclosed\n")
    (root / ".trash" / "old").mkdir(parents=True)  # hidden folders are not searched
    shutil.copy(driving / "config.yaml", root / ".trash" / "old" / "config.yaml")
    return root


def test_find_runs_and_their_rows(runs: Path) -> None:
    entries = find_runs(runs)
    assert [e.label for e in entries] == ["broken", "driving/no-report", "driving/tiny", "reid"]
    rows = {e.label: summary(e) for e in entries}
    assert all(list(row) == list(SUMMARY_COLUMNS) for row in rows.values())
    assert rows["broken"]["monitor"].startswith("unreadable: cannot read")
    tiny = rows["driving/tiny"]
    assert tiny["monitor"] == "accuracy (max)" and tiny["checkpoints"] == "best.ckpt, last.ckpt"
    fit = [h for h in json.loads((runs / "driving" / "tiny" / "metrics.json").read_text())["history"]
           if h["stage"] == "fit"]
    best = max(fit, key=lambda h: h["accuracy"])  # the first of equal values, as ModelCheckpoint keeps
    assert tiny["validation: best (epoch)"].endswith(f"(epoch {best['epoch'] + 1})")
    assert tiny["held-out test (scored once)"] != "—"
    assert tiny["report.html"] == "yes" and rows["driving/no-report"]["report.html"] == "not written"
    assert rows["driving/no-report"]["checkpoints"] == "none"
    assert rows["reid"]["monitor"] == "rank-1 (max)"


def test_runs_page_table_report_and_comparison(runs: Path, monkeypatch) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv(RUNS_DIR_VARIABLE, str(runs))
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert_no_exception(at)
    assert at.title[0].value == "Runs"
    table = at.dataframe[0].value
    assert list(table["run"]) == ["broken", "driving/no-report", "driving/tiny", "reid"]
    assert "held-out test (scored once)" in table.columns
    # the first run's config is unreadable: its report is one message
    assert len(at.error) == 1 and "cannot read" in at.error[0].value and not iframes(at)
    at.selectbox(key="runs:report").set_value("driving/tiny").run()
    assert iframes(at) == [(runs / "driving" / "tiny" / "report.html").read_text()]
    at.selectbox(key="runs:report").set_value("driving/no-report").run()
    assert "torchrepro report" in at.info[0].value and "<h1>driving: no-report</h1>" in iframes(at)[0]
    at.multiselect(key="runs:compare").set_value(["driving/tiny", "reid"]).run()
    assert_no_exception(at)
    compare = iframes(at)[-1]
    assert "2 runs compared" in compare and "A: tiny" in compare and "B: reid" in compare


def _pages_script(runs_dir: str) -> None:
    from pathlib import Path

    import streamlit as st

    from torchrepro.core.serve_app import pages

    for p in pages(Path(runs_dir)):
        st.write(f"{p.title} -> /{p.url_path}")


def test_app_has_the_runs_page_and_one_live_page_per_recipe(tmp_path: Path) -> None:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_pages_script, args=(str(tmp_path),)).run()
    assert_no_exception(at)
    demos = sorted(name for name, recipe in registry.recipes().items() if recipe.demo)
    assert demos == ["detection", "driving", "ffn", "lipnet", "magicpoint", "nerf", "reid", "superpoint", "vpr_event"]
    assert [m.value for m in at.markdown] == ["Runs -> /"] + [f"Live: {n} -> /{n}" for n in demos]
    for name in demos:
        assert callable(registry.get_recipe(name).demo_page())


def test_runs_page_without_runs_says_how_to_make_one(tmp_path: Path, monkeypatch) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv(RUNS_DIR_VARIABLE, str(tmp_path / "missing"))
    at = AppTest.from_file(str(APP)).run()
    assert "does not exist" in at.error[0].value
    monkeypatch.setenv(RUNS_DIR_VARIABLE, str(tmp_path))
    at = AppTest.from_file(str(APP)).run()
    assert_no_exception(at)
    assert "torchrepro train" in at.info[0].value


@pytest.fixture
def bad_runs(tiny_runs, tmp_path: Path) -> Path:
    """Driving runs that cannot be served: no checkpoint, a truncated one, another recipe's, a last.ckpt only."""
    driving, reid = tiny_runs("driving"), tiny_runs("reid")
    root = tmp_path / "bad"
    for name in ("1-no-checkpoints", "2-corrupt", "3-other-recipe", "4-last-only"):
        (root / name / "checkpoints").mkdir(parents=True)
        shutil.copy(driving / "config.yaml", root / name / "config.yaml")
    best = (driving / "checkpoints" / "best.ckpt").read_bytes()
    (root / "2-corrupt" / "checkpoints" / "best.ckpt").write_bytes(best[: len(best) // 3])
    (root / "3-other-recipe" / "checkpoints" / "best.ckpt").symlink_to(reid / "checkpoints" / "best.ckpt")
    (root / "4-last-only" / "checkpoints" / "last.ckpt").symlink_to(driving / "checkpoints" / "last.ckpt")
    return root


@pytest.mark.parametrize("run, checkpoint, needles", [
    ("1-no-checkpoints", "best.ckpt", ("has no checkpoint", "torchrepro resume", "pick another run")),
    ("2-corrupt", "best.ckpt", ("is not a readable checkpoint", "pass a .ckpt written by torchrepro")),
    ("3-other-recipe", "best.ckpt", ("does not fit recipe 'driving'", "written by a 'driving' run")),
    ("4-last-only", "best.ckpt", ("has no best.ckpt: pick last.ckpt",)),
])
def test_bad_runs_show_one_message(bad_runs: Path, run: str, checkpoint: str, needles: tuple[str, ...]) -> None:
    at = page_app(bad_runs, "driving").run()
    at.selectbox(key="driving:run").set_value(run).run()
    at.radio(key="driving:checkpoint").set_value(checkpoint).run()
    assert_no_exception(at)
    assert len(at.error) == 1, [e.value for e in at.error]
    for needle in needles:
        assert needle in at.error[0].value, at.error[0].value
    assert not at.success  # no prediction from a model that is not there


def test_last_only_run_serves_its_last_checkpoint(bad_runs: Path) -> None:
    at = page_app(bad_runs, "driving").run()
    at.selectbox(key="driving:run").set_value("4-last-only").run()
    at.radio(key="driving:checkpoint").set_value("last.ckpt").run()
    assert_no_exception(at)
    assert not at.error and at.success[0].value.startswith("Predicted direction")


def test_page_of_a_recipe_without_runs_says_how_to_train_one(tiny_runs, tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "reid").symlink_to(tiny_runs("reid"))
    at = page_app(tmp_path / "runs", "vpr_event").run()
    assert_no_exception(at)
    assert len(at.error) == 1 and "No 'vpr_event' run under" in at.error[0].value
    assert "torchrepro train configs/vpr_event_sim.yaml" in at.error[0].value


# ------------------------------------------------------------------------------------------------ the command
def test_serve_refuses_a_missing_folder_missing_streamlit_and_a_busy_port(tmp_path: Path, capsys, monkeypatch):
    code, _, err = run_main(capsys, "serve", tmp_path / "nowhere")
    assert_one_line_error(code, err, "runs folder", "does not exist", "torchrepro train")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        code, _, err = run_main(capsys, "serve", tmp_path, "--port", busy.getsockname()[1])
        assert_one_line_error(code, err, "cannot listen on 127.0.0.1:", "--port")
    real = serve.importlib.util.find_spec
    monkeypatch.setattr(serve.importlib.util, "find_spec", lambda name, *a: None if name == "streamlit" else real(name))
    code, _, err = run_main(capsys, "serve", tmp_path)
    assert_one_line_error(code, err, "streamlit is not installed", "pip install")


def test_serve_prints_the_url_and_becomes_streamlit(tmp_path: Path, capsys, monkeypatch) -> None:
    started: list[list[str]] = []
    monkeypatch.setattr(serve.os, "execv", lambda path, argv: started.append(argv))
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    code, out, _ = run_main(capsys, "serve", tmp_path, "--port", port)
    assert code == 0 and out.startswith(f"torchrepro serve: http://127.0.0.1:{port} ")
    (command,) = started
    assert command[1:5] == ["-m", "streamlit", "run", str(APP)] and Path(command[4]).is_file()
    options = dict(zip(command[5:-2:2], command[6:-2:2]))
    assert options == {"--server.address": "127.0.0.1", "--server.port": str(port), "--server.headless": "true",
                       "--browser.gatherUsageStats": "false", "--server.fileWatcherType": "none",
                       "--client.toolbarMode": "viewer"}
    assert command[-2:] == ["--", str(tmp_path)]
