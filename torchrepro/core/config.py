"""Configuration: YAML files with ``base:`` inheritance (one file or a list), dotted ``key=value`` overrides,
typed validation.

The engine-level sections (``run``, ``trainer``, ``optim``, ``sched``, ``checkpoint``) are defined here; a
recipe contributes its own ``data`` and ``model`` dataclasses through the registry. Validation happens once,
before anything is written, so a bad config never leaves a half-created run directory behind.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from torchrepro.core.errors import ConfigError
from torchrepro.core.typed import from_dict, to_dict, unknown_key_error


@dataclass
class RunConfig:
    """Where the run directory goes: ``dir`` if given, else ``<root>/<recipe>/<timestamp>``."""

    dir: str | None = None
    root: str = "runs"


@dataclass
class TrainerConfig:
    """Arguments of the Lightning Trainer that a recipe user may want to change."""

    max_epochs: int = 10
    max_steps: int = -1
    accelerator: str = "cpu"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: Literal["auto", "ddp", "ddp_spawn"] = "auto"
    sync_batchnorm: bool = False
    accumulate_grad_batches: int = 1
    gradient_clip_val: float | None = None
    gradient_clip_algorithm: Literal["norm", "value"] = "norm"
    precision: Literal["32-true", "16-mixed", "bf16-mixed", "64-true"] = "32-true"
    val_check_interval: int | float = 1.0
    check_val_every_n_epoch: int = 1
    log_every_n_steps: int = 10
    limit_train_batches: int | float = 1.0
    limit_val_batches: int | float = 1.0
    deterministic: bool | Literal["warn"] = "warn"
    progress_bar: bool = True
    validate_before_fit: bool = False  # score the untrained model first (recorded as stage "untrained")

    def check(self, where: str) -> None:
        if self.accumulate_grad_batches < 1:
            raise ConfigError(f"config key '{where}.accumulate_grad_batches' must be >= 1, got {self.accumulate_grad_batches}")
        if self.max_epochs < 1 and self.max_steps < 1:
            raise ConfigError(f"set '{where}.max_epochs' or '{where}.max_steps' to a positive number")


@dataclass
class OptimConfig:
    """Optimiser. ``group_lr`` multiplies ``lr`` per named parameter group (e.g. backbone 0.1, head 1.0).

    ``lars``: SGD with momentum whose step of each weight tensor is scaled by ``trust_coefficient`` · ‖w‖ / ‖g‖
    (You et al. 2017), biases and normalisation weights left out of the scaling and of the weight decay — SimCLR's
    optimiser for batches of 1,024 and more (Chen et al., ICML 2020, §2.2). ``eps`` (Adam's ε; Instant-NGP uses
    1e-15) and ``fused`` (PyTorch's single-kernel Adam, several times faster on large embedding tables) apply to
    ``adam`` / ``adamw``.
    """

    name: Literal["sgd", "adam", "adamw", "lars"] = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    fused: bool = False
    group_lr: dict[str, float] = field(default_factory=dict)
    trust_coefficient: float = 0.001

    def check(self, where: str) -> None:
        if self.lr <= 0:
            raise ConfigError(f"config key '{where}.lr' must be positive, got {self.lr}")
        if len(self.betas) != 2:
            raise ConfigError(f"config key '{where}.betas' needs two numbers, got {self.betas}")
        if self.eps <= 0:
            raise ConfigError(f"config key '{where}.eps' must be positive, got {self.eps}")


@dataclass
class SchedConfig:
    """Learning-rate schedule plus an optional warm-up composed in front of it.

    ``interval`` says whether lengths (``step_size``, ``milestones``, ``t_max``, ``warmup_length``) count
    epochs or optimiser steps. Warm-up ``linear`` ramps from ``warmup_start_factor * lr`` to ``lr``;
    ``exponential`` multiplies the LR by a constant factor each interval over the same range (the re-ID
    practice, e.g. SAN's ExponentialLR(γ=1.259) from 8e-6 over 10 epochs).
    """

    name: Literal["none", "step", "multistep", "cosine"] = "none"
    interval: Literal["epoch", "step"] = "epoch"
    step_size: int = 7
    gamma: float = 0.1
    milestones: list[int] = field(default_factory=list)
    t_max: int | None = None
    eta_min: float = 0.0
    warmup: Literal["none", "linear", "exponential"] = "none"
    warmup_length: int = 0
    warmup_start_factor: float = 0.01

    def check(self, where: str) -> None:
        if self.warmup != "none" and self.warmup_length < 1:
            raise ConfigError(f"config key '{where}.warmup_length' must be >= 1 when warmup is '{self.warmup}'")
        if not 0 < self.warmup_start_factor <= 1:
            raise ConfigError(f"config key '{where}.warmup_start_factor' must be in (0, 1], got {self.warmup_start_factor}")
        if self.name == "multistep" and not self.milestones:
            raise ConfigError(f"config key '{where}.milestones' must list at least one milestone for 'multistep'")


@dataclass
class CheckpointConfig:
    """``last.ckpt`` every ``every_n_steps`` optimiser steps (0: epoch end only) and best-by-``monitor``.

    ``best.ckpt`` holds the weights only by default (``best_weights_only``): it is what ``eval`` and the final test
    score, and optimiser moments would double or triple its size. ``last.ckpt`` is the full training state that
    ``resume`` continues exactly; ``save_optimizer: false`` makes it weights-only too (a run that cannot be
    resumed, for when disk is short).
    """

    every_n_steps: int = 0
    monitor: str | None = None
    mode: Literal["max", "min"] = "max"
    best_weights_only: bool = True
    save_optimizer: bool = True


def check_data_root(root: str | None, where: str, source: str, example: str, fix: str) -> None:
    """A recipe's ``data.root`` for a source read from disk: given (else the error says ``set <where>.root=<example>``)
    and an existing folder (else ``fix`` says where to point it). The check every non-synthetic source starts with."""
    if not root:
        raise ConfigError(f"config key '{where}.root' is required for source '{source}': set {where}.root={example}")
    if not Path(root).is_dir():
        raise ConfigError(f"data root '{root}' ({where}.root) does not exist: {fix}")


ENGINE_SECTIONS: dict[str, type] = {
    "run": RunConfig,
    "trainer": TrainerConfig,
    "optim": OptimConfig,
    "sched": SchedConfig,
    "checkpoint": CheckpointConfig,
}
TOP_LEVEL_KEYS = ("recipe", "seed", *ENGINE_SECTIONS, "data", "model")


@dataclass
class Config:
    """A validated run configuration. ``data`` and ``model`` are the recipe's own dataclasses."""

    recipe: str
    seed: int
    run: RunConfig
    trainer: TrainerConfig
    optim: OptimConfig
    sched: SchedConfig
    checkpoint: CheckpointConfig
    data: Any
    model: Any

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


# ----------------------------------------------------------------------------------------------- loading
class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-4`` as a float (YAML 1.1 requires a dot: ``1.0e-4``), as users expect."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def yaml_load(text: str) -> Any:
    """Parse YAML text with :class:`_Loader`."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader


def read_yaml(path: Path) -> dict[str, Any]:
    """Read one YAML mapping, turning I/O and syntax problems into one-line ConfigErrors."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file '{path}' does not exist: check the path (see configs/ for examples)")
    try:
        data = yaml_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise ConfigError(f"config file '{path}' is not valid YAML{line}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{path}' must hold a mapping of keys, got {type(data).__name__}")
    return data


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge: mappings merge key by key, everything else is replaced."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_raw(path: Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Load a YAML config, resolving ``base:`` recursively.

    ``base`` is one path or a list of paths, each relative to the file that names it. A list is merged left to
    right (later files win), then the file itself is merged on top. ``configs/_base_/`` holds the shared blocks
    the shipped recipes combine this way.
    """
    path = Path(path).resolve()
    if path in _seen:
        chain = " -> ".join(f"'{p.name}'" for p in (*_seen[_seen.index(path):], path))
        raise ConfigError(f"config file '{path}' extends itself through 'base:' (cycle {chain}): remove the cycle")
    data = read_yaml(path)
    base = data.pop("base", None)
    if base is None:
        return data
    bases = [base] if isinstance(base, str) else base
    if not isinstance(bases, list) or not all(isinstance(item, str) and item.strip() for item in bases):
        raise ConfigError(f"config key 'base' in '{path}' must be a file path or a list of file paths, got {base!r}")
    merged: dict[str, Any] = {}
    for item in bases:
        parent = path.parent / item
        if not parent.is_file():
            raise ConfigError(f"config key 'base' in '{path}' names '{item}', which does not exist ('{parent}'): "
                              f"base paths are relative to the file that names them")
        merged = deep_merge(merged, load_raw(parent, (*_seen, path)))
    return deep_merge(merged, data)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` → (["a", "b", "c"], YAML-typed value)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key.sub=value (e.g. trainer.max_epochs=3)")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"override '{text}' has an empty key part: write it as key.sub=value")
    try:
        value = yaml_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw  # not YAML (e.g. "a: b: c"): keep it as a plain string
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply dotted overrides in order; validation of the keys happens later, in :func:`validate`."""
    out = copy.deepcopy(data)
    for text in overrides:
        parts, value = parse_override(text)
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override '{text}': '{'.'.join(parts[: i + 1])}' is a value, not a section")
            node = child
        node[parts[-1]] = value
    return out


def validate(raw: dict[str, Any], data_schema: type, model_schema: type) -> Config:
    """Turn a merged raw dict into a :class:`Config`, rejecting unknown keys and wrong types."""
    for key in raw:
        if key not in TOP_LEVEL_KEYS:
            raise unknown_key_error(str(key), "", TOP_LEVEL_KEYS)
    seed = raw.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"config key 'seed' expects int, got {seed!r} ({type(seed).__name__})")
    sections = {name: from_dict(cls, raw.get(name) or {}, name) for name, cls in ENGINE_SECTIONS.items()}
    data = from_dict(data_schema, raw.get("data") or {}, "data")
    workers = getattr(data, "num_workers", 0)  # every recipe's loaders take it; DataLoader would fail mid-run
    if isinstance(workers, int) and workers < 0:
        raise ConfigError(f"config key 'data.num_workers' must be >= 0 (0 loads in the main process), got {workers}")
    return Config(
        recipe=raw["recipe"],
        seed=seed,
        data=data,
        model=from_dict(model_schema, raw.get("model") or {}, "model"),
        **sections,
    )
