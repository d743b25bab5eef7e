"""``torchrepro tool ffn-table CONFIG [--out DIR] [key=value …]``: FFN's comparison table (Zhang et al., CVPR 2023,
Table 1) by one command.

From the same config and seed it trains, each as an ordinary run under ``DIR``:

1. TSM trained at the most frames of ``model.train_frames`` only (the practice FFN starts from), tested at every
   frame count: the temporal frequency deviation;
2. separated training: one TSM per frame count (run 1 is the one for the most frames); each frame count is tested
   on its own model, so the row holds three models' weights;
3. mixed sampling: one network with shared batch norms, a random frame count per batch;
4. FFN: private batch norms + weight alterations + the distillation loss, one set of shared weights.

Every run's checkpoint is chosen on its validation split; ``table.md`` / ``table.json`` give the test accuracy of
that checkpoint at every frame count of ``model.eval_frames`` (scored once, when the run ended), the parameters a
deployment must store, each run's wall time, and the paper's figures on Something-Something V2 beside them.
``accuracy_vs_frames.png`` plots the rows.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from torchrepro.core.config import Config
from torchrepro.core.errors import ConfigError

__all__ = ["PAPER_SSV2", "table_main"]

#: FFN's Table 1, Something-Something V2, TSM ResNet-50, top-1 (%) at 4 / 8 / 16 frames
PAPER_SSV2: dict[str, dict[int, float]] = {
    "trained at the most frames": {4: 31.5, 8: 51.6, 16: 61.0},
    "separated training": {4: 53.4, 8: 59.3, 16: 61.0},
    "FFN": {4: 56.1, 8: 61.9, 16: 63.6},
}


def plan(cfg: Config) -> list[tuple[str, list[str]]]:
    """(run folder, overrides) of every training run, in order: one TSM per frame count (the most frames first),
    mixed sampling, FFN."""
    frames = sorted(cfg.model.train_frames)
    if len(frames) < 2:
        raise ConfigError(f"the table compares frame counts: model.train_frames needs at least two, got {frames}")
    listed = f"[{','.join(map(str, frames))}]"
    runs = [(f"single_{f}", ["model.regime=single", f"model.train_frames=[{f}]"]) for f in reversed(frames)]
    return runs + [("mixed", ["model.regime=mixed", f"model.train_frames={listed}"]),
                   ("ffn", ["model.regime=ffn", f"model.train_frames={listed}"])]


def _parameters(run_dir: Path) -> int:
    """Parameters of the network a run trained (rebuilt from its config; no data is read)."""
    from torchrepro.core.registry import resolve_config
    from torchrepro.frame_flexible.data import FFNDataModule
    from torchrepro.frame_flexible.model import network_for

    cfg = resolve_config(run_dir / "config.yaml", [])
    net = network_for(cfg.model, len(FFNDataModule(cfg).class_names()))
    return sum(p.numel() for p in net.parameters())


def assemble(runs: dict[str, dict], frames: list[int], eval_frames: list[int]) -> list[dict]:
    """Table rows from the finished runs (folder → {"test": {F: acc}, "val": {F: acc}, "params", "seconds"})."""
    top = f"single_{frames[-1]}"
    separated = {f: runs[f"single_{f}"] for f in frames}
    rows = [{"row": f"trained at {frames[-1]} frames", "runs": [top], **_figures(runs[top], eval_frames),
             "params": runs[top]["params"], "seconds": runs[top]["seconds"]}]
    rows.append({"row": "separated training (one model per frame count)", "runs": [f"single_{f}" for f in frames],
                 "test": {f: separated[f]["test"].get(f) for f in frames},
                 "val": {f: separated[f]["val"].get(f) for f in frames},
                 "params": sum(r["params"] for r in separated.values()),
                 "seconds": sum(r["seconds"] for r in separated.values())})
    for name, folder in (("mixed sampling", "mixed"), ("FFN", "ffn")):
        rows.append({"row": name, "runs": [folder], **_figures(runs[folder], eval_frames),
                     "params": runs[folder]["params"], "seconds": runs[folder]["seconds"]})
    return rows


def _figures(run: dict, eval_frames: list[int]) -> dict:
    return {"test": {f: run["test"].get(f) for f in eval_frames}, "val": {f: run["val"].get(f) for f in eval_frames}}


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def write_table(rows: list[dict], eval_frames: list[int], out: Path) -> None:
    """``table.md`` (test accuracy per frame count, parameters, time; the paper's figures below), ``table.json``
    and ``accuracy_vs_frames.png``."""
    from torchrepro.frame_flexible.plots import plot_accuracy_vs_frames

    head = " | ".join(f"test acc @{f}" for f in eval_frames)
    lines = [f"| regime | {head} | parameters | training time |", "|---|" + "---|" * (len(eval_frames) + 2)]
    for r in rows:
        accs = " | ".join(_pct(r["test"].get(f)) for f in eval_frames)
        lines.append(f"| {r['row']} | {accs} | {r['params'] / 1e6:.2f} M | {r['seconds'] / 60:.1f} min |")
    lines += ["", "Validation accuracy of the chosen checkpoints (they chose the epoch):", "",
              f"| regime | {' | '.join(f'val acc @{f}' for f in eval_frames)} |",
              "|---|" + "---|" * len(eval_frames)]
    lines += [f"| {r['row']} | {' | '.join(_pct(r['val'].get(f)) for f in eval_frames)} |" for r in rows]
    lines += ["", "FFN's Table 1 (Something-Something V2, TSM ResNet-50, top-1 % at 4 / 8 / 16 frames):", "",
              "| regime | 4 | 8 | 16 |", "|---|---|---|---|"]
    lines += [f"| {name} | {v[4]} | {v[8]} | {v[16]} |" for name, v in PAPER_SSV2.items()]
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text("\n".join(lines) + "\n")
    (out / "table.json").write_text(json.dumps({"rows": rows, "paper_ssv2": PAPER_SSV2}, indent=2) + "\n")
    curves = {r["row"]: {f: v for f, v in r["test"].items() if v is not None} for r in rows}
    plot_accuracy_vs_frames(curves, out / "accuracy_vs_frames.png", "test accuracy against frame count")


def table_main(argv: list[str]) -> int:
    from torchrepro.core import engine
    from torchrepro.core.registry import get_recipe, resolve_config
    from torchrepro.core.rundir import chosen_validation
    from torchrepro.core.study import parse_study_args
    from torchrepro.frame_flexible.plots import accuracy_at_frames

    args = parse_study_args(argv, "torchrepro tool ffn-table", __doc__.splitlines()[0], Path("runs/ffn_table"))
    cfg = resolve_config(args.config, args.overrides)  # checked before the first run trains
    if cfg.recipe != "ffn":
        raise ConfigError(f"'{args.config}' is a '{cfg.recipe}' config: ffn-table needs an ffn config")
    monitor, mode = get_recipe(cfg.recipe).best_metric(cfg)
    frames, eval_frames = sorted(cfg.model.train_frames), sorted(cfg.model.eval_frames)
    runs = {}
    for folder, overrides in plan(cfg):
        start = time.perf_counter()
        run_dir, metrics = engine.train(args.config, [*args.overrides, *overrides, f"run.dir={args.out / folder}"])
        runs[folder] = {"test": accuracy_at_frames(metrics, "test/"),
                        "val": accuracy_at_frames(chosen_validation(run_dir, monitor, mode)),
                        "params": _parameters(run_dir), "seconds": time.perf_counter() - start}
    write_table(assemble(runs, frames, eval_frames), eval_frames, args.out)
    print((args.out / "table.md").read_text())
    return 0
