"""Live page of the person re-ID recipe (``torchrepro serve``): a query of the held-out test split, or an uploaded
person picture → the ten nearest gallery images, the correct matches (same person, another camera) marked.

Features are the BNNeck feature the recipe evaluates (``f_i``, BoT §3.4) of the images through its test transform,
compared as ``model.distance`` says (:func:`~torchrepro.reid.task.feature_distances`; re-ranking, a whole-split
operation, is left out); a test query's ranking leaves out the gallery images of its own person from its own
camera, as the Market-1501 protocol does (:func:`~torchrepro.retrieval.rank.ranked_gallery`). The model and data
logic are plain functions; :func:`page` only renders.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st
import torch
from PIL import Image

from torchrepro.core.demo import LoadedModel
from torchrepro.core.demo_ui import cached, choose_model, reported, upload_image
from torchrepro.core.distributed import compute_ordered
from torchrepro.core.images import load_rgb
from torchrepro.reid.data import ReidDataModule, TargetSet, build_transforms, target_ids
from torchrepro.reid.task import feature_distances
from torchrepro.retrieval.plots import GREEN, GREY, RED, framed
from torchrepro.retrieval.rank import ranked_gallery

RECIPE = "reid"
TOP_K = 10
SOURCES = ("a query of the test split", "upload a person picture")


@dataclass(frozen=True)
class Match:
    """One ranked gallery image: rank (1 = nearest), index in the gallery, feature distance, its person id and
    camera, and whether it is a correct match (same person, another camera; None for a query without identity)."""

    rank: int
    index: int
    distance: float
    pid: int
    camid: int
    correct: bool | None


def target_sets(loaded: LoadedModel) -> list[TargetSet]:
    """The held-out test split's query/gallery sets (one per ``data.targets``)."""
    dm: ReidDataModule = loaded.datamodule  # the recipe's build() set it up
    return dm.splits["test"]


@torch.no_grad()
def set_features(loaded: LoadedModel, target: int) -> torch.Tensor:
    """``[queries + gallery, D]`` BNNeck features of one test set, in its query-then-gallery order."""
    dm: ReidDataModule = loaded.datamodule
    encoder = loaded.module.encoder
    return compute_ordered(dm.eval_sets["test"][target], lambda batch: encoder(batch[0])["f_i"].float(),
                           loaded.cfg.data.test_batch_size)


@torch.no_grad()
def image_feature(loaded: LoadedModel, image: Image.Image) -> torch.Tensor:
    """``[D]`` BNNeck feature of one RGB picture through the recipe's test transform."""
    d = loaded.cfg.data
    x = build_transforms(d.height, d.width, train=False)(image.convert("RGB"))[None]
    return loaded.module.encoder(x)["f_i"].float()[0]


def rank_gallery(query: torch.Tensor, gallery: torch.Tensor, target: TargetSet, distance: str,
                 query_index: int | None = None, k: int = TOP_K) -> list[Match]:
    """The ``k`` gallery images nearest to one query feature ``[D]``; ``query_index``: the query's place in
    ``target.query`` (its identity and camera decide the protocol's removal and the correct matches), None for a
    picture from elsewhere."""
    dist = feature_distances(query[None], gallery, distance)[0]
    _, g_pids, _, g_camids = target_ids(target)
    q = target.query[query_index] if query_index is not None else None
    order = ranked_gallery(dist, g_pids, g_camids, q.pid if q else None, q.camid if q else None, k)
    return [Match(rank + 1, int(j), float(dist[j]), int(g_pids[j]), int(g_camids[j]),
                  None if q is None else bool(g_pids[j] == q.pid and g_camids[j] != q.camid))
            for rank, j in enumerate(order)]


def _picture(path: Path) -> np.ndarray:
    return np.asarray(load_rgb(path))


def _choose_query(loaded: LoadedModel, target: TargetSet, features: torch.Tensor
                  ) -> tuple[torch.Tensor, int | None, np.ndarray] | None:
    """(query feature, index in the query set or None, picture), or None when nothing is uploaded yet."""
    source = st.radio("Query", SOURCES, horizontal=True, key=f"{RECIPE}:source")
    if source == SOURCES[1]:
        got = upload_image("A person picture (PNG or JPEG; a standing person, cropped)", key=f"{RECIPE}:upload")
        return None if got is None else (image_feature(loaded, got[1]), None, np.asarray(got[1]))
    index = st.selectbox(f"Query of the test split ({target.name}: {len(target.query)} queries, "
                         f"{len(target.gallery)} gallery images)", range(len(target.query)), key=f"{RECIPE}:query",
                         format_func=lambda i: f"{i}: person {target.query[i].pid}, camera {target.query[i].camid}")
    return features[index], index, _picture(target.query[index].path)


def _show_matches(target: TargetSet, picture: np.ndarray, query_index: int | None, matches: list[Match]) -> None:
    if query_index is not None:
        q = target.query[query_index]
        found = sum(bool(m.correct) for m in matches)
        (st.success if matches and matches[0].correct else st.warning)(
            f"Rank-1 {'is' if matches and matches[0].correct else 'is not'} a correct match; {found} of the top "
            f"{len(matches)} show person {q.pid} from another camera than {q.camid}.")
    else:
        st.info("An uploaded picture has no identity: the gallery is ranked by distance only, no match is marked.")
    columns = st.columns(len(matches) + 1)
    columns[0].image(framed(picture, GREY), caption="query")
    for column, m in zip(columns[1:], matches):
        colour, mark = {True: (GREEN, "✓"), False: (RED, "✗"), None: (GREY, "")}[m.correct]
        column.image(framed(_picture(target.gallery[m.index].path), colour),
                     caption=f"#{m.rank} {mark} person {m.pid}, cam {m.camid}, d={m.distance:.3f}")


def page(runs_dir: Path) -> None:
    """Pick a run and a checkpoint, a test query or an upload; see the ranked gallery."""
    loaded = choose_model(runs_dir, RECIPE)
    if loaded is None:
        return
    with reported():
        sets = target_sets(loaded)
        pick = 0 if len(sets) == 1 else st.selectbox("Test set", range(len(sets)), format_func=lambda i: sets[i].name,
                                                      key=f"{RECIPE}:set")
        with st.spinner("Computing the features of the test split …"):
            features = cached(f"{RECIPE}:features:{pick}:{loaded.key}", lambda: set_features(loaded, pick))
        target = sets[pick]
        chosen = _choose_query(loaded, target, features)
        if chosen is None:
            st.caption("Upload a person picture to rank the gallery.")
            return
        feature, index, picture = chosen
        matches = rank_gallery(feature, features[len(target.query):], target, loaded.cfg.model.distance, index)
        _show_matches(target, picture, index, matches)
