"""Recipe registry: a recipe registers its name, schemas and task module; the CLI looks it up by name.

``core`` never imports a system package. The explicit table in :mod:`torchrepro.recipes` imports each system's
``config`` module (schemas only: no torch), whose :func:`register` call fills the registry. The heavy part of a
recipe, its ``task`` module (model, data, Lightning), is imported only when a command builds the recipe, so
``torchrepro list`` and ``torchrepro config`` answer in a fraction of a second.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Callable

from torchrepro.core import config as cfgmod
from torchrepro.core.errors import ConfigError
from torchrepro.core.typed import closest

if TYPE_CHECKING:
    import pytorch_lightning as pl


@dataclass(frozen=True)
class Recipe:
    """What the engine and the contract test need to know about a recipe.

    * ``task``: the module that defines ``build(cfg)``, returning ``(LightningModule, LightningDataModule)``,
      and optionally ``callbacks(cfg)``, the recipe's Lightning callbacks (plots and other artefacts, usually
      :class:`~torchrepro.core.callbacks.RunArtefacts` subclasses) that the engine adds to every trainer. It is
      imported on first use. A recipe defined in one file (tests, plug-ins) may give ``builder`` instead.
    * ``default_monitor`` / ``default_mode``: the validation metric that picks ``best.ckpt``.
    * ``baseline_metric``: a non-learned reference the recipe logs beside its metric (printed with the untrained
      model's line), or None.
    * ``synthetic_config``: the shipped config (relative to the repository) that runs offline on generated data;
      ``tiny_overrides``: overrides that shrink it to a few seconds of data and steps. The contract test
      (``tests/test_contract.py``) trains, kills, resumes, evaluates and runs every registered recipe under
      ``torchrun`` with them.
    * ``report_figures``: the recipe's section of ``report.html`` (:mod:`torchrepro.core.report`): ``(file name,
      caption)`` of each PNG its artefact callbacks write into the run directory, in the order the report shows
      them. PNGs of the run directory not listed here follow them, under their file names.
    * ``demo``: the module that defines the recipe's live page of ``torchrepro serve``, ``page(runs_dir: Path)``
      (a Streamlit page, see :mod:`torchrepro.core.serve_app`), or ``"module:function"`` when one module holds
      the pages of several recipes, or None (no live page). Imported on first use, like ``task``.
    """

    name: str
    description: str
    data_schema: type
    model_schema: type
    task: str | None = None
    default_monitor: str | None = None
    default_mode: str = "max"
    baseline_metric: str | None = None
    synthetic_config: str | None = None
    tiny_overrides: tuple[str, ...] = ()
    report_figures: tuple[tuple[str, str], ...] = ()
    demo: str | None = None
    builder: Callable[[cfgmod.Config], tuple["pl.LightningModule", "pl.LightningDataModule"]] | None = None

    def __post_init__(self) -> None:
        if (self.task is None) == (self.builder is None):
            raise ValueError(f"recipe '{self.name}': give exactly one of task (a module name) and builder")

    def _task(self) -> ModuleType:
        assert self.task is not None
        return importlib.import_module(self.task)

    def build(self, cfg: cfgmod.Config) -> tuple["pl.LightningModule", "pl.LightningDataModule"]:
        """The recipe's (LightningModule, LightningDataModule) for a validated config."""
        return self.builder(cfg) if self.builder is not None else self._task().build(cfg)

    def callbacks(self, cfg: cfgmod.Config) -> list["pl.Callback"]:
        """The recipe's own Lightning callbacks (none unless its task module defines ``callbacks(cfg)``)."""
        if self.builder is not None:
            return []
        make = getattr(self._task(), "callbacks", None)
        return list(make(cfg)) if make is not None else []

    def best_metric(self, cfg: cfgmod.Config) -> tuple[str | None, str]:
        """(metric, mode) that chooses ``best.ckpt``: ``checkpoint.monitor`` and ``mode`` when set, else the recipe's
        defaults."""
        c = cfg.checkpoint
        return (c.monitor, c.mode) if c.monitor else (self.default_monitor, self.default_mode)

    def demo_page(self) -> Callable[[Path], None] | None:
        """The recipe's live page ``page(runs_dir)`` of ``torchrepro serve`` (None: the recipe has none): the
        function named after ``:`` in ``demo``, else the module's ``page``."""
        if self.demo is None:
            return None
        module, _, function = self.demo.partition(":")
        return getattr(importlib.import_module(module), function or "page")


_RECIPES: dict[str, Recipe] = {}


def register(recipe: Recipe) -> Recipe:
    """Add a recipe; registering the same name twice is a programming error."""
    if recipe.name in _RECIPES and _RECIPES[recipe.name] is not recipe:
        raise RuntimeError(f"recipe '{recipe.name}' registered twice")
    _RECIPES[recipe.name] = recipe
    return recipe


@dataclass(frozen=True)
class Tool:
    """A recipe-specific command (``torchrepro tool NAME ARGS…``): ``module.entry(argv)`` parses its own arguments
    and returns an exit status. The module is imported only when the tool runs."""

    name: str
    description: str
    module: str
    entry: str

    def run(self, argv: list[str]) -> int:
        return getattr(importlib.import_module(self.module), self.entry)(argv)


_TOOLS: dict[str, Tool] = {}


def register_tool(tool: Tool) -> Tool:
    if tool.name in _TOOLS and _TOOLS[tool.name] is not tool:
        raise RuntimeError(f"tool '{tool.name}' registered twice")
    _TOOLS[tool.name] = tool
    return tool


def tools() -> dict[str, Tool]:
    return dict(_TOOLS)


def get_tool(name: str) -> Tool:
    if name not in _TOOLS:
        hint = closest(name, _TOOLS)
        tail = f"did you mean '{hint}'?" if hint else f"known tools: {', '.join(sorted(_TOOLS)) or 'none'}"
        raise ConfigError(f"unknown tool '{name}': {tail}")
    return _TOOLS[name]


def recipes() -> dict[str, Recipe]:
    """All registered recipes by name."""
    return dict(_RECIPES)


def get_recipe(name: object) -> Recipe:
    """Look a recipe up by name, with a "did you mean" hint for typos."""
    if not isinstance(name, str) or name not in _RECIPES:
        hint = closest(str(name), _RECIPES) if isinstance(name, str) else None
        tail = f"did you mean '{hint}'?" if hint else f"known recipes: {', '.join(sorted(_RECIPES))}"
        raise ConfigError(f"unknown recipe '{name}' in config key 'recipe': {tail}")
    return _RECIPES[name]


def resolve_config(path: Path | None, overrides: list[str], raw: dict | None = None) -> cfgmod.Config:
    """Load YAML (or take ``raw``), apply overrides, find the recipe and validate against its schemas."""
    data = cfgmod.load_raw(Path(path)) if raw is None else raw
    data = cfgmod.apply_overrides(data, overrides)
    if "recipe" not in data:
        raise ConfigError("config has no 'recipe' key: add e.g. 'recipe: driving' (see `torchrepro list`)")
    recipe = get_recipe(data["recipe"])
    return cfgmod.validate(data, recipe.data_schema, recipe.model_schema)


def checkpoint_config(ckpt: Path, config: Path | None, recipes: tuple[str, ...]) -> cfgmod.Config:
    """The config a checkpoint was trained with, for a tool that runs it: ``config`` when given, else the
    ``config.yaml`` of the run whose ``checkpoints/`` folder holds ``ckpt``. A config of a recipe not in
    ``recipes`` is refused in one line (a tool of one recipe handed another's checkpoint)."""
    from torchrepro.core.rundir import CKPT_DIR, CONFIG_NAME, run_dir_of

    run = run_dir_of(ckpt)
    if config is None and run is None:
        raise ConfigError(f"checkpoint '{ckpt}' is not in a run's {CKPT_DIR}/ folder, so its config is unknown: pass "
                          f"--config CONFIG, the config it was trained with")
    path = config if config is not None else run / CONFIG_NAME
    cfg = resolve_config(path, [])
    if cfg.recipe not in recipes:
        wanted = " or ".join(recipes)
        raise ConfigError(f"'{path}' is a '{cfg.recipe}' config, not a {wanted} one: pass a checkpoint of a {wanted} "
                          f"run (or its --config)")
    return cfg
