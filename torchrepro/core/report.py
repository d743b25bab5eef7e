"""Run reports: ``report.html``, one self-contained page per run directory.

The CLI writes it at the end of every ``train``, ``eval`` and ``resume`` (rank 0), and ``torchrepro report RUN_DIR``
writes it again from the files alone. The page holds the resolved config, the environment, the commands that made
the run with their wall times, the results table (untrained model, non-learned baselines, trained model at its best
validation epoch and at its last epoch, the held-out test scored once), the per-epoch curves drawn from
``metrics.json`` and the recipe's figures. Images are inlined as base64 PNG data URIs, so the file needs no network
and no other file; it stays under :data:`MAX_REPORT_BYTES`.

The CLI also appends each command to the run's ``commands.json`` (:func:`record_command`): the command line, its
wall time and the environment it ran in, so that a report written later still shows them.

``core`` knows no recipe: a recipe's figures and their captions come from its registration
(:attr:`~torchrepro.core.registry.Recipe.report_figures`). Only the standard library, PyYAML, matplotlib and
Pillow (matplotlib's own dependency) are used; torch is never imported here.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import importlib.metadata
import io
import json
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml

import torchrepro
from torchrepro.core import registry
from torchrepro.core.errors import DataError
from torchrepro.core.rundir import CONFIG_NAME, METRICS_NAME, write_json_atomic, write_text_atomic

REPORT_NAME = "report.html"
COMMANDS_NAME = "commands.json"
EVAL_NAME = "eval.json"
#: the promise of a report: one file below this size
MAX_REPORT_BYTES = 5_000_000
#: base64 bytes of all inlined images together; the text of a page is a few tens of kB
IMAGE_BUDGET_BYTES = 4_400_000
#: a figure larger than this (bytes) or wider/taller than MAX_IMAGE_SIDE (pixels) is scaled down before inlining
LARGE_IMAGE_BYTES = 1_200_000
MAX_IMAGE_SIDE = 1600
#: fields of a metrics.json entry that are not metrics
BOOKKEEPING = ("stage", "epoch", "step")
#: training statistics: shown after the evaluation metrics
TRAINING_STATS = ("loss", "train_loss", "lr")
PACKAGES = ("torch", "torchvision", "pytorch-lightning")
MAX_CURVE_PANELS = 12
NOT_SHOWN = "—"
#: labelled rows of a results table: (row label, {metric: value})
Rows = list[tuple[str, dict[str, float]]]


# ------------------------------------------------------------------------------------------- the run's files
@dataclass
class Run:
    """What a report reads from a run directory (or an evaluation folder)."""

    path: Path
    config: dict[str, Any]
    config_text: str
    history: list[dict[str, Any]]
    commands: list[dict[str, Any]]
    evaluation: dict[str, Any] | None

    @property
    def recipe(self) -> registry.Recipe | None:
        """The run's registered recipe (None for a recipe this installation does not know)."""
        return registry.recipes().get(str(self.config.get("recipe")))

    def entries(self, stage: str) -> list[dict[str, Any]]:
        """The metrics.json entries of one stage ("untrained", "fit", "validate", "test"), oldest first."""
        return [e for e in self.history if e.get("stage") == stage]

    def monitor(self) -> tuple[str | None, str]:
        """(metric, mode) that chose ``best.ckpt``: ``checkpoint.monitor``, else the recipe's default."""
        ckpt = self.config.get("checkpoint") or {}
        if ckpt.get("monitor"):
            return str(ckpt["monitor"]), str(ckpt.get("mode", "max"))
        recipe = self.recipe
        return (recipe.default_monitor, recipe.default_mode) if recipe else (None, "max")

    def wall_seconds(self) -> float | None:
        """Total wall time of the commands that trained (or evaluated) this run, when recorded."""
        times = [c["wall_s"] for c in self.commands if isinstance(c.get("wall_s"), (int, float))]
        return float(sum(times)) if times else None


def _read_json(path: Path, default: Any) -> Any:
    """A JSON file's content, ``default`` when it does not exist; a one-line DataError when it is unreadable."""
    if not path.is_file():
        return default
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise DataError(f"cannot read '{path}' ({type(err).__name__}: {err}): restore it or remove it") from None


def load_run(run_dir: Path) -> Run:
    """Read a run directory: config.yaml (required), metrics.json, commands.json and eval.json (optional)."""
    run_dir = Path(run_dir)
    config_path = run_dir / CONFIG_NAME
    if not config_path.is_file():
        why = "no such folder" if not run_dir.exists() else f"no {CONFIG_NAME} in it"
        raise DataError(f"'{run_dir}' is not a run directory ({why}): pass a folder made by `torchrepro train` "
                        f"or `torchrepro eval`")
    try:
        text = config_path.read_text()
        config = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise DataError(f"cannot read '{config_path}' ({type(err).__name__}): restore the run's config") from None
    if not isinstance(config, dict):
        raise DataError(f"'{config_path}' is not a torchrepro config (no mapping): restore the run's config")
    metrics = _read_json(run_dir / METRICS_NAME, {})
    history = [e for e in metrics.get("history", []) if isinstance(e, dict)] if isinstance(metrics, dict) else []
    commands = _read_json(run_dir / COMMANDS_NAME, [])
    evaluation = _read_json(run_dir / EVAL_NAME, None)
    return Run(run_dir, config, text, history, commands if isinstance(commands, list) else [],
               evaluation if isinstance(evaluation, dict) else None)


# ----------------------------------------------------------------------------------------------- environment
def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _git_dir(start: Path) -> tuple[Path, Path] | None:
    """(git dir, common git dir) of the repository holding ``start``, or None (no ``.git`` above it)."""
    for folder in (start, *start.parents):
        dot = folder / ".git"
        if dot.is_dir():
            return dot, dot
        if dot.is_file():  # a worktree or submodule: "gitdir: <path>"
            text = dot.read_text().strip()
            if not text.startswith("gitdir:"):
                return None
            gitdir = (folder / text[len("gitdir:"):].strip()).resolve()
            common = gitdir / "commondir"
            return gitdir, (gitdir / common.read_text().strip()).resolve() if common.is_file() else gitdir
    return None


def git_commit(start: Path | None = None) -> str | None:
    """The commit checked out in the repository that holds ``start`` (default: this package), read from the files
    under ``.git`` (no ``git`` executable needed); None when there is no repository or it cannot be read."""
    start = Path(start) if start is not None else Path(torchrepro.__file__).resolve().parent
    try:
        found = _git_dir(start)
        if found is None:
            return None
        gitdir, common = found
        head = (gitdir / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head or None  # detached HEAD: the commit itself
        ref = head[len("ref:"):].strip()
        for base in (gitdir, common):
            if (base / ref).is_file():
                return (base / ref).read_text().strip() or None
        packed = common / "packed-refs"
        if packed.is_file():
            for line in packed.read_text().splitlines():
                if line.endswith(" " + ref):
                    return line.split()[0]
    except (OSError, UnicodeDecodeError):
        return None
    return None


def describe_device(config: dict[str, Any]) -> str:
    """The hardware a command ran on: the CUDA device's name when torch (already imported by the command) uses it,
    else the CPU; plus the process count under torchrun."""
    trainer = config.get("trainer") or {}
    accelerator = str(trainer.get("accelerator", "auto"))
    torch = sys.modules.get("torch")  # never imported here: only a command that trained or evaluated has it
    if torch is not None and accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        text = f"cuda: {torch.cuda.get_device_name(torch.cuda.current_device())}"
    else:
        text = f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return text + (f"; {world} processes (torchrun)" if world > 1 else "")


def environment(config: dict[str, Any]) -> dict[str, str]:
    """Python, torch, torchvision and Lightning versions, the device, the project's git commit and the seed."""
    env = {"python": platform.python_version()}
    env.update({name: _version(name) for name in PACKAGES})
    env["torchrepro"] = torchrepro.__version__
    env["device"] = describe_device(config)
    env["git commit"] = git_commit() or "unknown (no readable .git above the installed package)"
    env["seed"] = str(config.get("seed"))
    env["platform"] = platform.platform()
    return env


def record_command(run_dir: Path, command: str, wall_s: float) -> None:
    """Append a finished command (its line, wall time and environment) to the run's ``commands.json``."""
    run = load_run(run_dir)
    entry = {"command": command, "cwd": os.getcwd(),
             "finished": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
             "wall_s": round(float(wall_s), 3), "environment": environment(run.config)}
    write_json_atomic(Path(run_dir) / COMMANDS_NAME, [*run.commands, entry])


# ------------------------------------------------------------------------------------------------- results
def is_baseline(name: str) -> bool:
    """A non-learned reference: ``baseline_*``, possibly under a set or split prefix (``test/market/baseline_…``)."""
    return name.rsplit("/", 1)[-1].startswith("baseline_")


def metric_items(entry: dict[str, Any]) -> dict[str, float]:
    """The numeric metrics of a metrics.json entry (bookkeeping fields dropped)."""
    return {k: float(v) for k, v in entry.items()
            if k not in BOOKKEEPING and isinstance(v, (int, float)) and not isinstance(v, bool)}


def format_value(value: float | None) -> str:
    """A metric as the report shows it: four significant digits (``0.9483``, ``2.437e-08``)."""
    return NOT_SHOWN if value is None else f"{value:.4g}"


def format_seconds(seconds: float | None) -> str:
    """``12.3 s``, ``7 min 5 s``, ``2 h 3 min``."""
    if seconds is None:
        return "not recorded"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{seconds:.1f} s"


def best_entry(entries: Sequence[dict[str, Any]], monitor: str | None, mode: str) -> dict[str, Any] | None:
    """The entry with the best ``monitor`` value (the earliest on ties, as Lightning's ModelCheckpoint keeps)."""
    best = None
    for entry in entries:
        value = entry.get(monitor) if monitor else None
        if not isinstance(value, (int, float)):
            continue
        if best is None or (value > best[monitor] if mode == "max" else value < best[monitor]):
            best = entry
    return best


def order_columns(names: Iterable[str], first: str | None = None) -> list[str]:
    """Unique metric names: the monitor first, evaluation metrics by name, training statistics last."""
    unique = sorted(set(names))
    training = [n for n in unique if n in TRAINING_STATS or n.startswith("loss_")]
    rest = [n for n in unique if n not in training and n != first]
    return ([first] if first in unique else []) + rest + training


def baseline_rows(values: dict[str, float], columns: list[str]) -> tuple[Rows, list[str]]:
    """Rows of the non-learned baselines, each value under the metric it is a baseline of.

    ``baseline_count_recall@1`` goes under ``recall@1`` in the row "baseline: count"; ``test/baseline_colour_mAP``
    under ``test/mAP``. A baseline without such a column gets a column of its own (returned second)."""
    rows: dict[str, dict[str, float]] = {}
    extra: list[str] = []
    for name, value in sorted(values.items()):
        prefix = name.rsplit("/", 1)[0] + "/" if "/" in name else ""
        rest = name[len(prefix) + len("baseline_"):]
        match = next((c for c in columns if c.startswith(prefix) and rest.endswith("_" + c[len(prefix):])), None)
        label = rest[: len(rest) - len(match) + len(prefix) - 1] if match else rest
        rows.setdefault(f"baseline: {label} (non-learned)", {})[match or name] = value
        if match is None:
            extra.append(name)
    return list(rows.items()), extra


def results_table(entries: list[tuple[str, dict[str, Any]]], monitor: str | None) -> tuple[list[str], Rows]:
    """(columns, rows) of labelled metrics.json entries, with the baselines they carry as rows of their own."""
    metrics = [(label, metric_items(e)) for label, e in entries]
    columns = order_columns([k for _, m in metrics for k in m if not is_baseline(k)], first=monitor)
    baselines = {k: v for _, m in metrics for k, v in m.items() if is_baseline(k)}
    extra_rows, extra_columns = baseline_rows(baselines, columns)
    rows = [(label, {k: v for k, v in m.items() if not is_baseline(k)}) for label, m in metrics]
    at = 1 if entries and entries[0][1].get("stage") == "untrained" else 0  # baselines after the untrained model
    return columns + extra_columns, rows[:at] + extra_rows + rows[at:]


def validation_entries(run: Run) -> list[tuple[str, dict[str, Any]]]:
    """Labelled rows of the validation table: untrained model, trained at its best and at its last epoch, and any
    standalone evaluation of a checkpoint."""
    monitor, mode = run.monitor()
    out: list[tuple[str, dict[str, Any]]] = []
    untrained = run.entries("untrained")
    if untrained:
        out.append(("untrained model (epoch 0)", untrained[0]))
    fit = run.entries("fit")
    best = best_entry(fit, monitor, mode)
    if best is not None:
        out.append((f"trained, best validation epoch: epoch {best['epoch'] + 1} ({monitor}, {mode})", best))
    if fit:
        out.append((f"trained, last epoch: epoch {fit[-1]['epoch'] + 1}", fit[-1]))
    for entry in run.entries("validate"):
        out.append(("evaluated checkpoint, validation split", entry))
    return out


def test_entries(run: Run) -> list[tuple[str, dict[str, Any]]]:
    """Labelled rows of the held-out test table: one per scoring (one per training command that finished)."""
    if run.evaluation is not None:
        return [("evaluated checkpoint, held-out test split", e) for e in run.entries("test")]
    return [(f"trained (checkpoint chosen on validation), after epoch {e.get('epoch', 0)}", e)
            for e in run.entries("test")]


# -------------------------------------------------------------------------------------------------- curves
def _curve_metrics(histories: Sequence[list[dict[str, Any]]], first: str | None) -> list[str]:
    names = [k for h in histories for e in h if e.get("stage") in ("untrained", "fit")
             for k in metric_items(e) if not is_baseline(k) and not k.startswith("test/")]
    return order_columns(names, first=first)[:MAX_CURVE_PANELS]


def _matching_baselines(entry: dict[str, Any], metric: str) -> list[float]:
    """The values of the baselines of ``metric`` in an entry (``baseline_count_recall@1`` for ``recall@1``)."""
    rows, _ = baseline_rows({k: v for k, v in metric_items(entry).items() if is_baseline(k)}, [metric])
    return [values[metric] for _, values in rows if metric in values]


def _plot_run(ax: Any, history: list[dict[str, Any]], metric: str, colour: str) -> None:
    """One run on one panel: untrained (epoch 0) and per-epoch values, the test star and baseline lines."""
    points = [(0, e[metric]) for e in history if e.get("stage") == "untrained" and metric in e][:1]
    points += [(e["epoch"] + 1, e[metric]) for e in history if e.get("stage") == "fit" and metric in e]
    if points:
        ax.plot(*zip(*points), marker="o", ms=3, color=colour)
    tests = [(e.get("epoch", 0), e[f"test/{metric}"]) for e in history
             if e.get("stage") == "test" and f"test/{metric}" in e]
    if tests:
        ax.plot(*zip(*tests), linestyle="none", marker="*", ms=11, color=colour)
    first = next((e for e in history if e.get("stage") in ("untrained", "fit") and any(map(is_baseline, e))), None)
    for value in _matching_baselines(first, metric) if first else []:
        ax.axhline(value, linestyle=":", linewidth=1.2, color=colour)


def _legend_handles(labels: Sequence[str], colours: Sequence[str], test: bool, baseline: bool) -> list[Any]:
    """One entry per run, then the held-out test star and the baseline line when a panel shows them."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, marker="o", ms=3, label=l) for l, c in zip(labels, colours)]
    if test:
        handles.append(Line2D([], [], color="0.3", linestyle="none", marker="*", ms=11,
                              label="held-out test (scored once)"))
    if baseline:
        handles.append(Line2D([], [], color="0.3", linestyle=":", label="non-learned baseline"))
    return handles


def _style_panel(ax: Any, metric: str) -> None:
    from matplotlib.ticker import MaxNLocator

    values = [v for line in ax.get_lines() for v in line.get_ydata()]
    if metric == "lr" and values and min(values) > 0:
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(metric, fontsize=10)
    ax.set_xlabel("epoch", fontsize=8)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)


def curves_png(runs: Sequence[tuple[str, list[dict[str, Any]]]], first: str | None = None) -> bytes | None:
    """Per-epoch curves of one or several runs (overlaid, one colour each) from metrics.json histories: one panel per
    metric, the untrained model at epoch 0, the held-out test as a star, baselines dotted. None without any
    per-epoch entry."""
    metrics = _curve_metrics([h for _, h in runs], first)
    if not metrics or not any(e.get("stage") == "fit" for _, h in runs for e in h):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = [f"C{i % 10}" for i in range(len(runs))]
    labels = [label for label, _ in runs] if len(runs) > 1 else ["this run (epoch 0: untrained)"]
    cols = min(4, len(metrics))
    rows = -(-len(metrics) // cols)
    legend_rows = -(-(len(labels) + 2) // 4)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.7 * rows + 0.3 * legend_rows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        for (_, history), colour in zip(runs, colours):
            _plot_run(ax, history, metric, colour)
        _style_panel(ax, metric)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    test = any(l.get_marker() == "*" for ax in axes.flat for l in ax.get_lines())
    baseline = any(l.get_linestyle() == ":" for ax in axes.flat for l in ax.get_lines())
    fig.legend(handles=_legend_handles(labels, colours, test, baseline), loc="lower center", ncol=4, fontsize=8,
               frameon=False)
    fig.tight_layout(rect=(0, 0.3 * legend_rows / fig.get_figheight(), 1, 1))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return buffer.getvalue()


# -------------------------------------------------------------------------------------------- images + html
class ImageBudget:
    """How many base64 bytes of images a page may still inline (keeps the page under MAX_REPORT_BYTES)."""

    def __init__(self, total: int | None = None) -> None:
        self.left = IMAGE_BUDGET_BYTES if total is None else total

    def take(self, size: int) -> bool:
        if size > self.left:
            return False
        self.left -= size
        return True


def _fitted_png(data: bytes) -> bytes:
    """A PNG re-encoded smaller when it is large (at most MAX_IMAGE_SIDE pixels a side); raises on a non-PNG."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        if img.format != "PNG":
            raise ValueError(f"a {img.format} image, not a PNG")
        img.load()
        if len(data) <= LARGE_IMAGE_BYTES and max(img.size) <= MAX_IMAGE_SIDE:
            return data
        small = img.copy()
    small.thumbnail((MAX_IMAGE_SIDE, MAX_IMAGE_SIDE))
    out = io.BytesIO()
    small.save(out, format="PNG", optimize=True)
    return out.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def image_html(png: bytes, alt: str, budget: ImageBudget) -> str:
    """An ``<img>`` with the PNG inlined, or a note saying why it was left out."""
    uri = data_uri(png)
    if not budget.take(len(uri)):
        return f'<p class="note">{esc(alt)}: left out, the report would exceed {MAX_REPORT_BYTES // 1_000_000} MB.</p>'
    return f'<img src="{uri}" alt="{esc(alt)}">'


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], cls: str = "") -> str:
    """An HTML table; every cell escaped."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def metrics_table(columns: list[str], rows: Rows) -> str:
    return table(["", *columns], [[label, *(format_value(m.get(c)) for c in columns)] for label, m in rows])


def section(title: str, body: str, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<section{attr}><h2>{esc(title)}</h2>\n{body}\n</section>"


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>' if text else ""


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1250px;margin:1.5em auto;padding:0 1em;
color:#222;line-height:1.4}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right;vertical-align:top}
th:first-child,td:first-child{text-align:left}thead th{background:#f3f3f3}
table.kv td{text-align:left}
pre{background:#f6f6f6;padding:.8em;overflow:auto;font-size:.85em}
img{max-width:100%;height:auto}figure{margin:1em 0}figcaption{color:#444;font-size:.9em}
.note{color:#555;font-size:.9em}
section.test{border-left:4px solid #c60;padding-left:.9em}
"""


def page(title: str, parts: Sequence[str]) -> str:
    """A complete HTML document: inline style, no external resource."""
    body = "\n".join(p for p in parts if p)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{esc(title)}</title>\n'
            f"<style>{CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


# ------------------------------------------------------------------------------------------------ sections
def _header(run: Run) -> str:
    recipe = run.recipe
    kind = "evaluation folder" if run.evaluation is not None else "run directory"
    lines = [f"<h1>{esc(run.config.get('recipe', '?'))}: {esc(run.path.name)}</h1>",
             f"<p>{esc(kind)} <code>{esc(run.path)}</code>"
             + (f"<br>{esc(recipe.description)}" if recipe else "") + "</p>",
             note(f"written {dt.datetime.now().astimezone().isoformat(timespec='seconds')} by torchrepro "
                  f"{torchrepro.__version__}")]
    return "\n".join(lines)


def _commands_section(run: Run) -> str:
    if not run.commands:
        return section("Commands and wall time", note("This run recorded no commands (it was made before run "
                                                      "reports existed): wall time not recorded."))
    rows = [[c.get("finished", ""), c.get("command", ""), c.get("cwd", ""), format_seconds(c.get("wall_s"))]
            for c in run.commands]
    total = f"total wall time: {format_seconds(run.wall_seconds())}" if len(rows) > 1 else ""
    header = ["finished", "command", "run in", "wall time"]
    return section("Commands and wall time", table(header, rows, "kv") + note(total))


def _environment_section(run: Run) -> str:
    if run.commands:
        env = run.commands[-1].get("environment") or {}
        text = f"Recorded when `{run.commands[-1].get('command', '')}` finished."
        others = {json.dumps(c.get("environment"), sort_keys=True) for c in run.commands}
        if len(others) > 1:
            text += " Earlier commands of this run ran in another environment: see commands.json."
    else:
        env = environment(run.config)
        env["device"] = "not recorded"
        text = "The run recorded no environment; these are the versions installed where this report was written."
    return section("Environment", table(["", ""], sorted(env.items(), key=lambda kv: _env_order(kv[0])), "kv")
                   + note(text))


def _env_order(key: str) -> tuple[int, str]:
    order = ("python", *PACKAGES, "torchrepro", "device", "git commit", "seed", "platform")
    return (order.index(key) if key in order else len(order), key)


def _evaluation_section(run: Run) -> str:
    if run.evaluation is None:
        return ""
    ev = run.evaluation
    rows = [["checkpoint", ev.get("checkpoint", "?")], ["sha256", ev.get("sha256", "?")],
            ["split", ev.get("split", "?")]]
    return section("Evaluated checkpoint", table(["", ""], rows, "kv"))


def _validation_section(run: Run) -> str:
    entries = validation_entries(run)
    if not entries:
        return "" if run.entries("test") else section("Results", note("No results recorded (metrics.json has none)."))
    monitor, mode = run.monitor()
    columns, rows = results_table(entries, monitor)
    text = (f"best.ckpt is chosen on the validation metric {monitor} ({mode})." if monitor else "")
    return section("Results: validation", metrics_table(columns, rows) + note(text))


def _test_section(run: Run) -> str:
    entries = test_entries(run)
    if not entries:
        return ""
    columns, rows = results_table(entries, None)
    if run.evaluation is not None:
        title = "Results: held-out test split"
        text = ("Held-out test split, scored by `torchrepro eval --split test` with the checkpoint above; "
                "metrics named test/….")
    else:
        title = "Results: held-out test (scored once)"
        text = ("Held-out test split, scored once when training ended, with the checkpoint chosen on validation "
                "(best.ckpt, else last.ckpt); no setting was chosen on it. Metrics named test/….")
    return section(title, metrics_table(columns, rows) + note(text), cls="test")


def _curves_section(run: Run, budget: ImageBudget) -> str:
    png = curves_png([(run.path.name, run.history)], first=run.monitor()[0])
    if png is None:
        return ""
    return section("Per-epoch curves", image_html(png, "per-epoch curves from metrics.json", budget)
                   + note("Drawn from metrics.json: epoch 0 is the untrained model."))


def figure_files(run_dir: Path, recipe: registry.Recipe | None) -> list[tuple[Path, str]]:
    """The recipe's registered figures present in the run directory (in its order, with captions), then any other
    PNG of the directory (by name, no caption)."""
    registered = recipe.report_figures if recipe else ()
    out = [(run_dir / name, caption) for name, caption in registered if (run_dir / name).is_file()]
    known = {name for name, _ in registered}
    out += [(p, "") for p in sorted(run_dir.glob("*.png")) if p.name not in known and p.is_file()]
    return out


def _figure_html(path: Path, caption: str, budget: ImageBudget) -> str:
    try:
        png = _fitted_png(path.read_bytes())
    except Exception as err:  # noqa: BLE001 - any unreadable image: the report says so and goes on
        return note(f"{path.name}: not shown ({type(err).__name__}: {err}).")
    text = f"<b>{esc(path.name)}</b>" + (f": {esc(caption)}" if caption else "")
    return f"<figure>{image_html(png, path.name, budget)}<figcaption>{text}</figcaption></figure>"


def _figures_section(run: Run, budget: ImageBudget) -> str:
    files = figure_files(run.path, run.recipe)
    if not files:
        return ""
    return section("Figures", "\n".join(_figure_html(p, c, budget) for p, c in files))


def _links_section(run: Run) -> str:
    """Relative links to the reports of this run's evaluations, or from an evaluation to its run."""
    links = [(f"eval/{p.parent.name}/{REPORT_NAME}", f"evaluation {p.parent.name}")
             for p in sorted(run.path.glob(f"eval/*/{REPORT_NAME}"))]
    if run.path.parent.name == "eval" and (run.path.parent.parent / REPORT_NAME).is_file():
        links.append((f"../../{REPORT_NAME}", "the run this checkpoint came from"))
    if not links:
        return ""
    return section("Related reports", "<ul>" + "".join(f'<li><a href="{esc(h)}">{esc(t)}</a></li>' for h, t in links)
                   + "</ul>")


def _config_section(run: Run) -> str:
    return section("Resolved config (config.yaml)", f"<pre>{esc(run.config_text)}</pre>")


def render_report(run: Run, links: bool = True) -> str:
    """The HTML of a run's report (``links``: relative links to related reports, for a page inside the run)."""
    budget = ImageBudget()
    parts = [_header(run), _commands_section(run), _evaluation_section(run), _validation_section(run),
             _test_section(run), _curves_section(run, budget), _figures_section(run, budget),
             _links_section(run) if links else "", _environment_section(run), _config_section(run)]
    return page(f"torchrepro report: {run.config.get('recipe', '?')} {run.path.name}", parts)


def write_html(path: Path, text: str) -> Path:
    """Write a report atomically, refusing (as a bug) a page over the size promise."""
    size = len(text.encode("utf-8"))
    if size >= MAX_REPORT_BYTES:
        raise RuntimeError(f"report {path} would be {size} bytes, over the {MAX_REPORT_BYTES} promised")
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(Path(path), text)
    except OSError as err:
        raise DataError(f"cannot write the report '{path}' ({err.strerror or type(err).__name__}): choose a "
                        f"folder you can write with --out") from None
    return Path(path)


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write ``report.html`` into ``run_dir`` (or to ``out``); returns its path."""
    run = load_run(run_dir)
    inside = run.path / REPORT_NAME
    path = Path(out) if out is not None else inside
    return write_html(path, render_report(run, links=path.resolve() == inside.resolve()))
