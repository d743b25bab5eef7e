"""Live page of the event-camera place-recognition recipe (``torchrepro serve``): a query window of the validation
or the held-out test traversal → its polarity picture and the five nearest database places by descriptor distance,
each with its distance in metres from the query, the true places (within ``data.eval_m``) marked.

Queries and database are exactly the ones ``eval`` scores (:class:`~torchrepro.place_recognition.data.EvalSplit`),
their descriptors computed the way the recipe evaluates them (NetVLAD, then the PCA-whitening the checkpoint
carries, if any) and compared by Euclidean distance with FAISS (:func:`~torchrepro.retrieval.recall.knn_search`).
The model and data logic are plain functions; :func:`page` only renders.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st
import torch
from torch.utils.data import Dataset

from torchrepro.core.demo import LoadedModel
from torchrepro.core.demo_ui import cached, choose_model, reported
from torchrepro.core.distributed import compute_ordered
from torchrepro.place_recognition.data import EvalSplit, VPRDataModule
from torchrepro.place_recognition.plots import window_picture
from torchrepro.retrieval.plots import GREEN, GREY, RED, framed
from torchrepro.retrieval.recall import knn_search

RECIPE = "vpr_event"
SPLITS = {"val": "validation traversal", "test": "held-out test traversal"}
TOP_K = 5


@dataclass(frozen=True)
class Place:
    """One retrieved database window: its rank (1 = nearest descriptor), index in the split's database, descriptor
    distance, distance in metres from the query, and whether it is a true place (within ``data.eval_m``)."""

    rank: int
    index: int
    descriptor_distance: float
    metres: float
    true_place: bool


def prepared(loaded: LoadedModel) -> VPRDataModule:
    """The run's data module with its traversals and evaluation splits built (synthetic drives generated and input
    caches written when missing, as ``eval`` does)."""
    dm: VPRDataModule = loaded.datamodule
    dm.prepare_data()
    dm.setup("validate")
    return dm


@torch.no_grad()
def descriptors(loaded: LoadedModel, windows: Dataset) -> np.ndarray:
    """``[N, D]`` float32 descriptors of evaluation windows, as the recipe's evaluation computes them."""
    task, dm = loaded.module, loaded.datamodule
    out = compute_ordered(windows, lambda batch: task(batch).float(), loaded.cfg.data.eval_batch_size,
                          collate_fn=dm.eval_collate)
    if task.pca is not None and bool(task.pca.fitted):
        out = task.pca(out)
    return out.cpu().numpy()


def top_places(query_desc: np.ndarray, db_desc: np.ndarray, query_pos: np.ndarray, db_pos: np.ndarray,
               eval_m: float, k: int = TOP_K) -> list[Place]:
    """The ``k`` database windows nearest to one query descriptor ``[D]``, nearest first."""
    distances, indices = knn_search(np.asarray(query_desc)[None], db_desc, k)
    metres = np.linalg.norm(np.asarray(db_pos, np.float64)[indices[0]] - np.asarray(query_pos, np.float64), axis=1)
    return [Place(rank + 1, int(j), float(d), float(m), bool(m <= eval_m))
            for rank, (j, d, m) in enumerate(zip(indices[0], distances[0], metres))]


def nearest_place(query_pos: np.ndarray, db_pos: np.ndarray) -> tuple[int, float]:
    """The database window recorded nearest to the query: (index, metres)."""
    metres = np.linalg.norm(np.asarray(db_pos, np.float64) - np.asarray(query_pos, np.float64), axis=1)
    return int(metres.argmin()), float(metres.min())


def _split_descriptors(loaded: LoadedModel, ev: EvalSplit, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(query, database) descriptors of one evaluation split, cached per checkpoint."""
    return cached(f"{RECIPE}:descriptors:{split}:{loaded.key}",
                  lambda: (descriptors(loaded, ev.queries), descriptors(loaded, ev.database)))


def _show_places(loaded: LoadedModel, ev: EvalSplit, query: int, places: list[Place]) -> None:
    d = loaded.cfg.data
    truth, truth_m = nearest_place(ev.query_pos[query], ev.db_pos)
    hits = sum(p.true_place for p in places)
    verdict = st.success if places[0].true_place else (st.warning if hits else st.error)
    verdict(f"Nearest place by descriptor: database window {places[0].index}, {places[0].metres:.1f} m from the query "
            f"({'a true place' if places[0].true_place else f'not within {d.eval_m:g} m'}); {hits} of the top "
            f"{len(places)} are true places.")
    columns = st.columns(len(places) + 1)
    columns[0].image(framed(window_picture(ev.queries[query], d), GREY), caption=f"query {query}")
    for column, place in zip(columns[1:], places):
        mark = "✓ true place" if place.true_place else f"✗ > {d.eval_m:g} m"
        column.image(framed(window_picture(ev.database[place.index], d), GREEN if place.true_place else RED),
                     caption=f"#{place.rank}: window {place.index}, {place.metres:.1f} m, {mark}")
    st.dataframe([{"rank": p.rank, "database window": p.index, "descriptor distance": round(p.descriptor_distance, 4),
                   "metres from the query": round(p.metres, 1), f"true place (≤ {d.eval_m:g} m)": p.true_place}
                  for p in places], hide_index=True)
    st.caption(f"True place of this query: database window {truth}, recorded {truth_m:.1f} m away (the nearest by "
               f"position). Green: within data.eval_m = {d.eval_m:g} m of the query; red: farther.")


def page(runs_dir: Path) -> None:
    """Pick a run and a checkpoint, a traversal and a query window; see the five nearest database places."""
    loaded = choose_model(runs_dir, RECIPE)
    if loaded is None:
        return
    with reported():
        split = st.radio("Queries from", list(SPLITS), format_func=SPLITS.get, horizontal=True, key=f"{RECIPE}:split")
        with st.spinner("Preparing the traversals and computing their descriptors …"):
            ev = cached(f"{RECIPE}:data:{loaded.key}", lambda: prepared(loaded)).splits[split]
            query_desc, db_desc = _split_descriptors(loaded, ev, split)
        query = st.slider(f"Query window ({ev.source.name}: {len(ev.queries)} queries, {len(ev.database)} database "
                          f"windows)", 0, max(len(ev.queries) - 1, 1), 0, key=f"{RECIPE}:query")
        query = min(query, len(ev.queries) - 1)
        places = top_places(query_desc[query], db_desc, ev.query_pos[query], ev.db_pos, loaded.cfg.data.eval_m)
        _show_places(loaded, ev, query, places)
