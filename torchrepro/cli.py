"""``torchrepro`` command line: train, eval, resume, report, serve, list, config, data, tool.

Every user mistake (bad YAML, unknown key, wrong type, missing path, corrupt file …) ends as one line on
stderr and exit status 2; tracebacks are kept for bugs in torchrepro itself.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
import warnings
from pathlib import Path

import yaml

from torchrepro.core.errors import UserError

EPILOG = "Overrides are dotted keys with YAML-typed values, e.g. trainer.max_epochs=3 optim.lr=1e-4 data.root=/path"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="torchrepro", description="Reproduce vision papers end to end.", epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a recipe from a config", epilog=EPILOG)
    p.add_argument("config", type=Path, help="YAML config (see configs/)")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides")

    p = sub.add_parser("eval", help="evaluate a checkpoint with a config's data and protocol", epilog=EPILOG)
    p.add_argument("config", type=Path)
    p.add_argument("--ckpt", type=Path, required=True, help="a .ckpt file written by torchrepro")
    p.add_argument("--out", type=Path, default=None,
                   help="folder for the results (default: RUN_DIR/eval/<timestamp> for a run's checkpoint)")
    p.add_argument("--split", choices=("val", "test"), default="val",
                   help="the validation split (default) or the held-out test split (metrics named test/...)")
    p.add_argument("overrides", nargs="*")

    p = sub.add_parser("resume", help="continue a run exactly where its last checkpoint stopped (optionally for "
                                      "longer: trainer.max_epochs=N)", epilog=EPILOG)
    p.add_argument("run_dir", type=Path, help="a run directory made by `torchrepro train`")
    p.add_argument("overrides", nargs="*", help="trainer.max_epochs / max_steps / validation and logging intervals")

    p = sub.add_parser("report", help="write a run's report.html again, or compare several runs on one page")
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR",
                   help="run directories (or eval folders); two or more: a comparison page")
    p.add_argument("--out", type=Path, default=None,
                   help="where to write (default: RUN_DIR/report.html for one run, compare.html for several)")

    p = sub.add_parser("serve", help="web demo (Streamlit): the runs and their reports, and a live page per recipe "
                                     "that runs a checkpoint on a picture or a query")
    p.add_argument("runs_dir", nargs="?", type=Path, default=Path("runs"), metavar="RUNS_DIR",
                   help="the folder the runs are in (default: runs)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8501, help="port to listen on (default: 8501)")

    sub.add_parser("list", help="list the recipes with a one-line description")

    p = sub.add_parser("config", help="print the resolved, validated config", epilog=EPILOG)
    p.add_argument("config", type=Path)
    p.add_argument("overrides", nargs="*")

    p = sub.add_parser("data", help="generate or check a config's data and caches, and count its items",
                       epilog=EPILOG)
    p.add_argument("config", type=Path)
    p.add_argument("overrides", nargs="*")

    p = sub.add_parser("tool", help="run a recipe-specific command (`torchrepro list` shows them)",
                       add_help=False)
    p.add_argument("tool_name", metavar="NAME")
    p.add_argument("tool_args", nargs=argparse.REMAINDER)
    return parser


def _print_metrics(run_dir: Path, metrics: dict[str, float], started: float, command: str = "") -> None:
    """Rank 0: the run directory, the final metrics and the wall time; then record the command and write the
    run's report.html."""
    from torchrepro.core.engine import global_rank

    if global_rank() != 0:
        return
    wall = time.perf_counter() - started
    shown = {k: float(f"{v:.4g}") for k, v in sorted(metrics.items())}
    print(f"run directory: {run_dir}")
    print("metrics: " + json.dumps(shown))
    print(f"wall time: {wall:.0f} s")
    _write_report(run_dir, command, wall)


def _write_report(run_dir: Path, command: str, wall: float) -> None:
    """Append the command to the run's commands.json and write report.html; a failure to write (full disk, …)
    does not fail the command that trained: it says so in one line."""
    from torchrepro.core import report

    try:
        report.record_command(run_dir, command, wall)
        print(f"report: {report.write_report(run_dir)}", flush=True)
    except (OSError, UserError) as err:
        print(f"torchrepro: warning: report.html not written ({err}); write it with `torchrepro report {run_dir}`",
              file=sys.stderr)


def _report(run_dirs: list[Path], out: Path | None) -> None:
    """``torchrepro report RUN_DIR`` (its report.html again) or ``report RUN_A RUN_B … [--out compare.html]``."""
    if len(run_dirs) == 1:
        from torchrepro.core.report import write_report

        path = write_report(run_dirs[0], out)
    else:
        from torchrepro.core.report_compare import write_compare

        path = write_compare(run_dirs, out if out is not None else Path("compare.html"))
    print(f"report: {path} ({path.stat().st_size / 1e6:.2f} MB)")


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    command = "torchrepro " + shlex.join(getattr(args, "argv", None) or [args.command])
    import torchrepro.recipes  # noqa: F401  (fills the registry; imports no torch)
    from torchrepro.core import registry

    if args.command in ("data", "train", "resume", "eval"):
        from torchrepro.core import engine  # torch and Lightning: seconds, so only for commands that run them

    if args.command == "list":
        for name, recipe in sorted(registry.recipes().items()):
            print(f"{name:<20} {recipe.description}")
        for name, tool in sorted(registry.tools().items()):
            print(f"tool {name:<15} {tool.description}")
    elif args.command == "report":
        _report(args.run_dirs, args.out)
    elif args.command == "serve":
        from torchrepro.core.serve import serve

        serve(args.runs_dir, args.host, args.port)  # becomes the server: returns only by raising a UserError
    elif args.command == "tool":
        return registry.get_tool(args.tool_name).run(list(args.tool_args))
    elif args.command == "config":
        cfg = registry.resolve_config(args.config, args.overrides)
        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
    elif args.command == "data":
        counts = engine.prepare_data(args.config, args.overrides)
        for split in ("train", "val", "test"):
            if f"{split}_items" in counts:
                print(f"{split}: {counts[f'{split}_items']} items in {counts[f'{split}_batches']} batches")
        print(f"wall time: {time.perf_counter() - started:.0f} s")
    elif args.command == "train":
        _print_metrics(*engine.train(args.config, args.overrides), started, command)
    elif args.command == "resume":
        _print_metrics(*engine.resume(args.run_dir, args.overrides), started, command)
    elif args.command == "eval":
        _print_metrics(*engine.evaluate(args.config, args.ckpt, args.overrides, args.out, args.split), started,
                       command)
    return 0


def main(argv: list[str] | None = None) -> int:
    # a deprecation inside Lightning's own code, printed on every run: nothing a user can act on
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    # printed on every resume: the run directory's checkpoints are exactly what a resume continues from
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
    parser = build_parser()
    # parse_known_args: argparse does not collect positionals given after an option
    # (`eval CONFIG --ckpt X key=value`), so such trailing overrides arrive as "unknown" and are kept here.
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["tool"]:  # a tool parses its own arguments, options included
        args, rest = parser.parse_args(argv[:2]), []
        args.tool_args = argv[2:]
    else:
        args, rest = parser.parse_known_args(argv)
    stray = [a for a in rest if a.startswith("-") or "=" not in a]
    if stray or (rest and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or rest)}")
    if rest:
        args.overrides = list(args.overrides) + rest
    args.argv = argv  # recorded in the run's commands.json and report
    try:
        return run(args)
    except UserError as err:
        print(f"torchrepro: error: {err}", file=sys.stderr)
        return err.exit_code


if __name__ == "__main__":
    sys.exit(main())
