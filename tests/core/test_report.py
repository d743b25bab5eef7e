"""Run reports (``report.html``) and the comparison page: built from hand-made run directories in the real format
(config.yaml, metrics.json as MetricsFileCallback writes it, eval.json, the recipe's PNGs), parsed back with the
standard library's HTML parser; plus one short real ``train`` that must leave a report."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402
from PIL import Image  # noqa: E402

import torchrepro.recipes  # noqa: E402, F401  (registers the recipes: their report figures)
from tests.conftest import write_csv_split  # noqa: E402
from tests.helpers import assert_one_line_error, run_main, tiny_config  # noqa: E402
from torchrepro.core import report  # noqa: E402
from torchrepro.core.report_compare import config_differences, flatten, write_compare  # noqa: E402

CONFIG = {
    "recipe": "driving",
    "seed": 3,
    "run": {"dir": None, "root": "runs"},
    "trainer": {"max_epochs": 2, "accelerator": "cpu", "devices": 1},
    "optim": {"name": "sgd", "lr": 0.01, "betas": [0.9, 0.999]},
    "checkpoint": {"every_n_steps": 0, "monitor": None, "mode": "max"},
    "data": {"source": "csv", "root": "/data/frames", "classes": ["left", "right", "straight"]},
    "model": {"arch": "resnet18"},
}

#: metrics.json as MetricsFileCallback writes it: the untrained model, two epochs (the best is the first), the test
HISTORY = [
    {"stage": "untrained", "epoch": 0, "step": 0, "val_loss": 1.0952082872390747, "accuracy": 0.3333333432674408,
     "baseline_hand_accuracy": 0.4122},
    {"stage": "fit", "epoch": 0, "step": 3, "loss": 1.537600040435791, "lr": 0.009999999776482582,
     "val_loss": 0.9089786291122437, "accuracy": 0.6111111640930176, "train_loss": 1.4133480787277222},
    {"stage": "fit", "epoch": 1, "step": 6, "loss": 1.352346658706665, "lr": 2.436929413818234e-08,
     "val_loss": 1.0811797380447388, "accuracy": 0.5555555820465088, "train_loss": 1.3500066995620728},
    {"stage": "test", "epoch": 2, "step": 6, "test/val_loss": 1.1003345251083374, "test/accuracy": 0.7333333432674408,
     "test/baseline_hand_accuracy": 0.3876},
]


class Page(HTMLParser):
    """What the tests read of a page: images, links and resources, each table's rows, each section's text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.images: list[str] = []
        self.references: list[str] = []
        self.tables: list[list[list[str]]] = []
        self.sections: list[dict] = []
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        self.references += [v for k, v in attrs.items() if k in ("src", "href") and v]
        if tag == "img":
            self.images.append(attrs["src"])
        elif tag == "section":
            self.sections.append({"class": attrs.get("class", ""), "text": "", "tables": []})
        elif tag == "table":
            self.tables.append([])
            if self.sections:
                self.sections[-1]["tables"].append(self.tables[-1])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self.sections:
            self.sections[-1]["text"] += data

    def section(self, heading_start: str) -> dict:
        (found,) = [s for s in self.sections if s["text"].startswith(heading_start)]
        return found


def row(table: list[list[str]], label_start: str) -> dict[str, str]:
    """A table row as {column header: cell}, found by the start of its first cell."""
    header = table[0]
    (cells,) = [r for r in table[1:] if r and r[0].startswith(label_start)]
    return dict(zip(header, cells))


def tiny_png(path: Path, kind: str = "plot") -> Path:
    if kind == "plot":
        fig, ax = plt.subplots(figsize=(1.5, 1))
        ax.plot([0, 1], [1, 0])
        fig.savefig(path, dpi=40)
        plt.close(fig)
    else:
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (12, 20, 3), dtype=np.uint8)).save(path)
    return path


def make_run(folder: Path, config: dict | None = None, history: list | None = None,
             figures: tuple[str, ...] = ("curves.png", "extra_figure.png", "confusion_matrix.png")) -> Path:
    """A run directory in the real format, written by hand."""
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config or CONFIG, sort_keys=False))
    history = HISTORY if history is None else history
    (folder / "metrics.json").write_text(json.dumps({"history": history, "last": history[-1]}, indent=2))
    for i, name in enumerate(figures):
        tiny_png(folder / name, "plot" if i % 2 == 0 else "photo")
    return folder


def values(entry: dict) -> dict[str, float]:
    return {k: v for k, v in entry.items() if k not in ("stage", "epoch", "step")}


def test_report_holds_config_results_test_curves_and_figures_in_one_self_contained_file(tmp_path):
    run = make_run(tmp_path / "run")
    path = report.write_report(run)
    text = path.read_text()
    page = Page(text)

    assert path == run / "report.html" and path.stat().st_size < 5_000_000
    assert "http://" not in text and "https://" not in text
    assert all(ref.startswith("data:image/png;base64,") for ref in page.references), page.references
    assert len(page.images) == 4  # the curves and the three PNGs of the run
    for uri in page.images:
        with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1], validate=True))) as img:
            assert img.format == "PNG"
            img.verify()

    validation = page.section("Results: validation")["tables"][0]
    last = row(validation, "trained, last epoch: epoch 2")
    best = row(validation, "trained, best validation epoch: epoch 1")
    for name, value in values(HISTORY[2]).items():
        assert last[name] == f"{value:.4g}", name
    assert best["accuracy"] == "0.6111" and row(validation, "untrained model")["accuracy"] == "0.3333"
    assert row(validation, "baseline: hand")["accuracy"] == "0.4122"

    test = page.section("Results: held-out test (scored once)")
    assert test["class"] == "test" and "scored once" in test["text"]
    test_row = row(test["tables"][0], "trained")
    for name, value in values(HISTORY[3]).items():
        if "baseline" not in name:
            assert test_row[name] == f"{value:.4g}", name
    assert row(test["tables"][0], "baseline: hand")["test/accuracy"] == "0.3876"

    figures = page.section("Figures")["text"]
    order = [figures.index(n) for n in ("confusion_matrix.png", "curves.png", "extra_figure.png")]
    assert order == sorted(order), "registered figures in the recipe's order, then the others"
    assert "Confusion matrix of the last validation" in figures  # the caption the recipe registered

    config_text = page.section("Resolved config")["text"]
    for key in flatten(CONFIG):
        assert all(f"{part}:" in config_text for part in key.split(".")), key
    environment = dict(page.section("Environment")["tables"][0][1:])
    assert {"python", "torch", "torchvision", "pytorch-lightning", "git commit", "seed"} <= environment.keys()
    assert environment["seed"] == "3"


def test_config_values_are_escaped(tmp_path):
    config = {**CONFIG, "data": {**CONFIG["data"], "root": "/data/<script>alert(1)</script>&"}}
    text = report.write_report(make_run(tmp_path / "run", config=config)).read_text()
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;&amp;" in text


def test_eval_folder_report_names_the_checkpoint_and_its_sha256(tmp_path):
    history = [{"stage": "validate", "epoch": 0, "step": 0, "val_loss": 0.9, "accuracy": 0.625}]
    folder = make_run(tmp_path / "run" / "eval" / "20261201-101010", history=history, figures=("curves.png",))
    ckpt = str(tmp_path / "run" / "checkpoints" / "best.ckpt")
    (folder / "eval.json").write_text(json.dumps({"checkpoint": ckpt, "split": "val", "sha256": "ab" * 32,
                                                  "metrics": values(history[0])}))
    page = Page(report.write_report(folder).read_text())
    checkpoint = dict(page.section("Evaluated checkpoint")["tables"][0][1:])
    assert checkpoint == {"checkpoint": ckpt, "sha256": "ab" * 32, "split": "val"}
    assert row(page.section("Results: validation")["tables"][0], "evaluated checkpoint")["accuracy"] == "0.625"


def test_eval_of_the_test_split_is_labelled_test_and_shows_no_validation_table(tmp_path):
    history = [{"stage": "test", "epoch": 0, "step": 0, "test/val_loss": 0.8, "test/accuracy": 0.6875}]
    folder = make_run(tmp_path / "eval", history=history, figures=())
    (folder / "eval.json").write_text(json.dumps({"checkpoint": "/x/best.ckpt", "split": "test", "sha256": "0" * 64,
                                                  "metrics": values(history[0])}))
    page = Page(report.write_report(folder).read_text())
    test = page.section("Results: held-out test split")
    assert test["class"] == "test" and row(test["tables"][0], "evaluated checkpoint")["test/accuracy"] == "0.6875"
    assert not [s for s in page.sections if s["text"].startswith("Results: validation")]


def test_every_command_of_a_run_is_recorded_with_its_wall_time(tmp_path):
    run = make_run(tmp_path / "run", figures=())
    report.record_command(run, "torchrepro train tiny.yaml", 61.5)
    report.record_command(run, "torchrepro resume run trainer.max_epochs=4", 30.0)
    commands = Page(report.write_report(run).read_text()).section("Commands and wall time")
    assert [r[1] for r in commands["tables"][0][1:]] == ["torchrepro train tiny.yaml",
                                                         "torchrepro resume run trainer.max_epochs=4"]
    assert "1 min 2 s" in commands["text"] and "total wall time: 1 min 32 s" in commands["text"]


def test_an_oversized_figure_is_scaled_down_and_the_budget_is_kept(tmp_path, monkeypatch):
    run = make_run(tmp_path / "run", figures=())
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (90, 150, 3), dtype=np.uint8)).save(run / "big.png")
    monkeypatch.setattr(report, "MAX_IMAGE_SIDE", 50)
    page = Page(report.write_report(run).read_text())
    with Image.open(io.BytesIO(base64.b64decode(page.images[-1].split(",", 1)[1]))) as img:
        assert img.size == (50, 30)
    monkeypatch.setattr(report, "IMAGE_BUDGET_BYTES", 100)  # no room for any image: named, left out
    text = report.write_report(run).read_text()
    assert Page(text).images == [] and "big.png: left out" in text


def test_git_commit_is_read_from_the_files_and_absent_git_is_no_error(tmp_path):
    sha = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "repo"
    (repo / ".git" / "refs" / "heads").mkdir(parents=True)
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (repo / ".git" / "refs" / "heads" / "main").write_text(sha + "\n")
    (repo / "pkg").mkdir()
    assert report.git_commit(repo / "pkg") == sha
    (repo / ".git" / "refs" / "heads" / "main").unlink()  # after `git gc`: packed refs
    (repo / ".git" / "packed-refs").write_text(f"# pack-refs with: peeled\n{sha} refs/heads/main\n")
    assert report.git_commit(repo / "pkg") == sha
    worktree = tmp_path / "worktree"
    (worktree / "gitdir").mkdir(parents=True)
    (worktree / ".git").write_text(f"gitdir: {worktree / 'gitdir'}\n")
    (worktree / "gitdir" / "HEAD").write_text(sha[::-1] + "\n")  # detached
    assert report.git_commit(worktree) == sha[::-1]
    assert report.git_commit(Path("/")) is None  # no .git anywhere above


def test_compare_shows_only_the_differing_keys_and_both_runs_metrics(tmp_path):
    other = [dict(e) for e in HISTORY]
    other[1]["accuracy"], other[3]["test/accuracy"] = 0.7777, 0.8125
    a = make_run(tmp_path / "a", figures=())
    b = make_run(tmp_path / "b", config={**CONFIG, "optim": {**CONFIG["optim"], "lr": 0.1}}, history=other,
                 figures=())
    assert config_differences([CONFIG, yaml.safe_load((b / "config.yaml").read_text())]) == [("optim.lr", [0.01, 0.1])]
    out = write_compare([a, b], tmp_path / "compare.html")
    text = out.read_text()
    page = Page(text)
    differences = page.section("Config differences")["tables"][0]
    assert [r[0] for r in differences[1:]] == ["optim.lr"] and differences[1][1:] == ["0.01", "0.1"]
    metrics = page.section("Metrics side by side")["tables"][0]
    assert row(metrics, "best validation accuracy")[metrics[0][1]] == "0.6111"
    assert row(metrics, "best validation accuracy")[metrics[0][2]] == "0.7777"
    assert list(row(metrics, "test/accuracy").values())[1:] == ["0.7333", "0.8125"]
    assert len(page.images) == 1 and page.images[0].startswith("data:image/png;base64,")
    assert "https://" not in text and "http://" not in text and out.stat().st_size < 5_000_000


@pytest.mark.parametrize("make", ["missing", "no_config"])
def test_report_of_a_folder_that_is_not_a_run_is_one_line(tmp_path, capsys, make):
    folder = tmp_path / "not_a_run"
    if make == "no_config":
        folder.mkdir()
    code, _, err = run_main(capsys, "report", folder)
    assert_one_line_error(code, err, str(folder), "not a run directory")
    code, _, err = run_main(capsys, "report", make_run(tmp_path / "fine"), folder, "--out", tmp_path / "c.html")
    assert_one_line_error(code, err, str(folder))
    assert not (tmp_path / "c.html").exists()


def test_report_module_imports_no_torch():
    code = "import sys, torchrepro.core.report_compare; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60).returncode == 0


def test_train_writes_report_with_the_test_result_and_report_rewrites_it(tmp_path, capsys):
    data = tmp_path / "frames"
    for split, n, seed in (("train", 16, 1), ("val", 6, 2), ("test", 6, 3)):
        write_csv_split(data / split, n, seed=seed)
    run = tmp_path / "run"
    code, out, err = run_main(capsys, "train", tiny_config(tmp_path, data), f"run.dir={run}", "trainer.max_epochs=1")
    assert code == 0, err
    text = (run / "report.html").read_text()
    assert f"report: {run / 'report.html'}" in out and "test/accuracy" in text
    (command,) = json.loads((run / "commands.json").read_text())
    assert command["command"].startswith("torchrepro train ") and command["wall_s"] > 0
    assert command["environment"]["device"].startswith("cpu")
    assert len(text.encode()) < 5_000_000
    (run / "report.html").unlink()
    code, out, _ = run_main(capsys, "report", run)
    assert code == 0 and (run / "report.html").is_file() and "test/accuracy" in (run / "report.html").read_text()
    assert len(json.loads((run / "commands.json").read_text())) == 1  # `report` records no command
