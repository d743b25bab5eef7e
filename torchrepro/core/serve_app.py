"""The Streamlit script that ``torchrepro serve`` runs: ``streamlit run serve_app.py -- RUNS_DIR``.

The web demo uses **Streamlit**, the seed's choice (its LipNet write-up serves its model with Streamlit): a page is
a plain Python function, widgets rerun it, ``st.cache_resource`` keeps models between reruns and sessions, and
``streamlit.testing.v1.AppTest`` runs every page headless in the test suite.

Pages (``st.navigation``): the runs page (:mod:`torchrepro.core.serve_runs`), then one live page per registered
recipe that names a ``demo`` module (:attr:`torchrepro.core.registry.Recipe.demo`), at ``/<recipe name>``. The
recipe's module is imported when its page is opened; a new recipe adds its page by registering it.

The runs folder is the first argument after ``--`` (``streamlit run serve_app.py -- RUNS_DIR``), else the
environment variable ``TORCHREPRO_RUNS_DIR`` (the tests), else ``runs``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable

import streamlit as st

import torchrepro.recipes  # noqa: F401  (fills the registry; imports no torch)
from torchrepro.core import registry, serve_runs

RUNS_DIR_VARIABLE = "TORCHREPRO_RUNS_DIR"


def runs_dir_argument() -> Path:
    """The runs folder this app shows (see the module docstring)."""
    if Path(sys.argv[0]).name == Path(__file__).name and len(sys.argv) > 1:
        return Path(sys.argv[1])
    return Path(os.environ.get(RUNS_DIR_VARIABLE, "runs"))


def recipe_page(recipe: registry.Recipe, runs_dir: Path) -> Callable[[], None]:
    """The recipe's live page as a Streamlit page function (its module imported when the page runs)."""

    def show() -> None:
        st.title(f"Live: {recipe.name}")
        st.caption(recipe.description)
        page = recipe.demo_page()
        assert page is not None
        page(runs_dir)

    show.__name__ = f"live_{recipe.name}"
    return show


def pages(runs_dir: Path) -> list[st.Page]:
    """The runs page (the default), then the recipes' live pages in name order."""
    out = [st.Page(lambda: serve_runs.page(runs_dir), title="Runs", icon=":material/table_chart:", url_path="runs",
                   default=True)]
    for name, recipe in sorted(registry.recipes().items()):
        if recipe.demo is not None:
            out.append(st.Page(recipe_page(recipe, runs_dir), title=f"Live: {name}", icon=":material/play_circle:",
                               url_path=name))
    return out


def main(runs_dir: Path) -> None:
    st.set_page_config(page_title="torchrepro", page_icon=":material/science:", layout="wide")
    st.navigation(pages(runs_dir)).run()


if __name__ == "__main__":
    main(runs_dir_argument())
