"""``torchrepro report RUN_A RUN_B … --out compare.html``: several runs side by side on one self-contained page.

The page holds the config keys whose values differ between the runs (flattened to dotted keys), the headline
figures of each run (best validation value of its monitor and the epoch, last epoch, untrained model, baselines,
the held-out test figures, wall time) and the per-epoch curves of all runs overlaid. Built with the helpers of
:mod:`torchrepro.core.report`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from torchrepro.core.report import (
    NOT_SHOWN,
    ImageBudget,
    Run,
    best_entry,
    curves_png,
    format_seconds,
    format_value,
    image_html,
    is_baseline,
    load_run,
    metric_items,
    note,
    page,
    section,
    table,
    write_html,
)

#: a key one run's config has and another's lacks
MISSING = object()


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys (``optim.lr``); lists and scalars are values."""
    if not isinstance(tree, dict) or (prefix and not tree):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def config_differences(configs: Sequence[dict[str, Any]]) -> list[tuple[str, list[Any]]]:
    """(dotted key, value per config) for every key whose value is not the same in all configs, sorted by key."""
    flat = [flatten(c) for c in configs]
    keys = sorted({k for f in flat for k in f})
    rows = []
    for key in keys:
        values = [f.get(key, MISSING) for f in flat]
        if any(_same_text(v) != _same_text(values[0]) for v in values[1:]):
            rows.append((key, values))
    return rows


def _same_text(value: Any) -> str:
    return "\0missing" if value is MISSING else json.dumps(value, sort_keys=True, default=str)


def show_value(value: Any) -> str:
    """A config value as the page shows it (YAML-like: null, true, [1, 2])."""
    return "(not set)" if value is MISSING else json.dumps(value, default=str)


def labels_for(runs: Sequence[Run]) -> list[str]:
    """Short, distinct labels: ``A: <folder name>``, ``B: …``."""
    letters = [chr(ord("A") + i) if i < 26 else f"R{i + 1}" for i in range(len(runs))]
    return [f"{letter}: {run.path.name}" for letter, run in zip(letters, runs)]


def headline(run: Run) -> dict[str, str]:
    """A run's headline figures by row name: monitor, best validation value and epoch, last epoch, untrained model,
    baselines of the monitor, every held-out test figure, epochs trained, wall time."""
    monitor, mode = run.monitor()
    fit, untrained = run.entries("fit"), run.entries("untrained")
    out = {"recipe": str(run.config.get("recipe", "?")), "monitor": f"{monitor} ({mode})" if monitor else NOT_SHOWN}
    if monitor:
        best = best_entry(fit, monitor, mode)
        out[f"best validation {monitor}"] = format_value(best[monitor]) if best else NOT_SHOWN
        out[f"epoch of best {monitor}"] = str(best["epoch"] + 1) if best else NOT_SHOWN
        out[f"last epoch {monitor}"] = format_value(fit[-1].get(monitor)) if fit else NOT_SHOWN
        out[f"untrained {monitor}"] = format_value(untrained[0].get(monitor)) if untrained else NOT_SHOWN
    first = (untrained or fit or [{}])[0]
    out.update({k: format_value(v) for k, v in metric_items(first).items() if is_baseline(k)})
    for entry in run.entries("validate"):
        out.update({f"evaluated {k}": format_value(v) for k, v in metric_items(entry).items()})
    tests = run.entries("test")
    out.update({k: format_value(v) for k, v in (metric_items(tests[-1]) if tests else {}).items()})
    out["epochs trained"] = str(fit[-1]["epoch"] + 1) if fit else NOT_SHOWN
    out["wall time"] = format_seconds(run.wall_seconds())
    return out


def _row_rank(name: str) -> int:
    """Where a headline row goes: the monitor's figures, baselines, evaluations, test figures, then time."""
    if name in ("recipe", "monitor"):
        return 0
    if is_baseline(name) and not name.startswith("test/"):
        return 2
    for rank, start in ((3, "evaluated "), (4, "test/"), (5, "epochs trained"), (6, "wall time")):
        if name.startswith(start):
            return rank
    return 1


def _runs_section(runs: Sequence[Run], labels: list[str]) -> str:
    rows = [[label, str(run.path), run.commands[-1].get("command", "") if run.commands else "not recorded"]
            for label, run in zip(labels, runs)]
    return section("Runs", table(["run", "folder", "last command"], rows, "kv"))


def _differences_section(runs: Sequence[Run], labels: list[str]) -> str:
    diffs = config_differences([r.config for r in runs])
    if not diffs:
        return section("Config differences", note("The configs are identical."))
    rows = [[key, *(show_value(v) for v in values)] for key, values in diffs]
    return section("Config differences", table(["key", *labels], rows)
                   + note("Only the keys whose values differ; every other key is the same in all runs."))


def _metrics_section(runs: Sequence[Run], labels: list[str]) -> str:
    figures = [headline(r) for r in runs]
    names = sorted(dict.fromkeys(k for f in figures for k in f), key=_row_rank)  # stable: first seen first
    rows = [[name, *(f.get(name, NOT_SHOWN) for f in figures)] for name in names]
    text = ("Best validation value of each run's monitor (the metric that chose best.ckpt); test/… figures are the "
            "held-out test split, scored once per run with that checkpoint.")
    return section("Metrics side by side", table(["", *labels], rows) + note(text))


def _curves_section(runs: Sequence[Run], labels: list[str]) -> str:
    monitors = {r.monitor()[0] for r in runs}
    png = curves_png([(label, r.history) for label, r in zip(labels, runs)],
                     first=monitors.pop() if len(monitors) == 1 else None)
    if png is None:
        return ""
    return section("Per-epoch curves, overlaid", image_html(png, "per-epoch curves of all runs", ImageBudget())
                   + note("Drawn from each run's metrics.json: epoch 0 is the untrained model."))


def render_compare(runs: Sequence[Run]) -> str:
    """The HTML of the comparison page."""
    labels = labels_for(runs)
    parts = [f"<h1>torchrepro: {len(runs)} runs compared</h1>", _runs_section(runs, labels),
             _metrics_section(runs, labels), _differences_section(runs, labels), _curves_section(runs, labels)]
    return page(f"torchrepro comparison of {len(runs)} runs", parts)


def write_compare(run_dirs: Sequence[Path], out: Path) -> Path:
    """Read every run (a one-line error names a folder that is not a run directory) and write the page to ``out``."""
    runs = [load_run(Path(d)) for d in run_dirs]
    return write_html(Path(out), render_compare(runs))
