"""Arguments of the tools that train several runs from one config into one output folder (the SAN ablation, FFN's
regime table): ``CONFIG [--out DIR] [key=value …]``, overrides accepted before or after ``--out``, and a folder
that already holds something refused before any run trains (nothing is overwritten)."""

from __future__ import annotations

import argparse
from pathlib import Path

from torchrepro.core.errors import ConfigError

__all__ = ["parse_study_args"]


def parse_study_args(argv: list[str], prog: str, description: str, default_out: Path) -> argparse.Namespace:
    """``config``, ``out`` and ``overrides`` of a study tool's command line; a non-empty ``out`` is a ConfigError."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("config", type=Path)
    parser.add_argument("--out", type=Path, default=default_out)
    parser.add_argument("overrides", nargs="*")
    args, rest = parser.parse_known_args(argv)  # overrides may follow --out (argparse leaves them unparsed)
    stray = [a for a in rest if a.startswith("-") or "=" not in a]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    args.overrides = [*args.overrides, *rest]
    if args.out.exists() and any(args.out.iterdir()):
        raise ConfigError(f"output folder {args.out} is not empty; choose another --out (nothing is overwritten)")
    return args
