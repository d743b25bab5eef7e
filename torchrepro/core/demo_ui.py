"""Streamlit pieces every live page of ``torchrepro serve`` shares: pick a run and a checkpoint, keep the model (and
what a page derives from it) in Streamlit's resource cache, read an uploaded picture, and show a user's mistake as
one message in the page.

A page never lets a :class:`~torchrepro.core.errors.UserError` reach Streamlit (which would print a traceback in
the page): :func:`choose_model` and :func:`upload_image` show it with ``st.error`` and return None, and
:func:`reported` does the same for a block of page code.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import streamlit as st

from torchrepro.core import registry
from torchrepro.core.demo import CHECKPOINTS, LoadedModel, checkpoint_key, checkpoint_path, find_runs, load_model, \
    open_image
from torchrepro.core.errors import UserError

T = TypeVar("T")


@st.cache_resource(max_entries=24, show_spinner=False)
def _cache(key: str, _build: Callable[[], Any]) -> Any:
    return _build()


def cached(key: str, build: Callable[[], T]) -> T:
    """``build()`` once per ``key`` for the server's lifetime (all sessions share it; an exception is not cached).
    Keys built from :attr:`LoadedModel.key` change when the checkpoint file is replaced."""
    return _cache(key, build)


def show_error(err: UserError) -> None:
    """One message naming the problem and the fix (the text of a UserError)."""
    st.error(str(err), icon=":material/error:")


@contextlib.contextmanager
def reported() -> Iterator[None]:
    """Run a block of page code; a UserError inside it ends the block and is shown as one message."""
    try:
        yield
    except UserError as err:
        show_error(err)


def choose_model(runs_dir: Path, recipe: str) -> LoadedModel | None:
    """A run of ``recipe`` under ``runs_dir`` and one of its checkpoints, chosen in the page; the restored model
    (cached), or None after showing why there is none."""
    entries = [e for e in find_runs(runs_dir) if e.recipe == recipe]
    if not entries:
        config = registry.get_recipe(recipe).synthetic_config or "CONFIG"
        st.error(f"No '{recipe}' run under '{runs_dir}': train one with `torchrepro train {config} "
                 f"run.root={runs_dir}`, then reload this page.", icon=":material/error:")
        return None
    left, right = st.columns([3, 2])
    label = left.selectbox("Run", [e.label for e in entries], key=f"{recipe}:run")
    entry = next(e for e in entries if e.label == label)
    name = right.radio("Checkpoint", CHECKPOINTS, horizontal=True, key=f"{recipe}:checkpoint",
                       help="best.ckpt: the epoch chosen on the validation split; last.ckpt: the last epoch")
    try:
        key = f"model:{recipe}:{checkpoint_key(checkpoint_path(entry.path, name))}"
        with st.spinner(f"Loading {entry.label}/{name} …"):
            loaded = cached(key, lambda: load_model(entry.path, name, recipe))
    except UserError as err:
        show_error(err)
        return None
    st.caption(f"Model: `{loaded.checkpoint.resolve()}`")
    return loaded


def upload_image(label: str, key: str) -> tuple[str, Any] | None:
    """A picture uploaded in the page: ``(file name, RGB PIL image)``; None when nothing was uploaded, or after
    showing that the file is not a readable image."""
    uploaded = st.file_uploader(label, key=key, help="a PNG or JPEG picture")
    if uploaded is None:
        return None
    with reported():
        return uploaded.name, open_image(uploaded.getvalue(), uploaded.name)
    return None
