"""Re-ID ranking metrics: CMC, mAP and mINP under the Market-1501 protocol.

Protocol (Zheng et al., "Scalable Person Re-identification: A Benchmark", ICCV 2015), as implemented by
torchreid's ``eval_market1501`` (``torchreid/metrics/rank.py``): for each query the gallery is sorted by
distance (ascending; ties keep gallery order, i.e. a stable sort), gallery items with the same person id
*and* the same camera as the query are removed, and queries with no remaining correct match are skipped.
CMC is the cumulative "first hit within the top k" indicator averaged over the valid queries; AP is the mean
of the precision at each correct hit. mINP follows fast-reid (``fastreid/evaluation/rank.py``; Ye et al.,
"Deep Learning for Person Re-identification: A Survey and Outlook", TPAMI 2021): INP = number of correct
matches / (position of the hardest, i.e. last, correct match + 1), positions counted after the removal.

:func:`evaluate_market1501` is the fast, vectorised implementation. :func:`evaluate_market1501_loop` is a
direct per-query transcription of the torchreid/fast-reid Python loop; it is the slow *reference* used by
the tests and by ``benchmarks/reid_rank.py`` and should not be used for real evaluations.

:func:`evaluate_cuhk03_single_shot` is the classic CUHK03 single-gallery-shot protocol (torchreid's
``eval_cuhk03``): CMC averaged over random galleries holding one sample per identity; mAP as above.
"""

from __future__ import annotations

import numpy as np

from torchrepro.core.errors import DataError

__all__ = ["evaluate_cuhk03_single_shot", "evaluate_market1501", "evaluate_market1501_loop", "ranked_gallery"]

_RANKS = (1, 5, 10, 20)


def ranked_gallery(dist: np.ndarray, g_pids: np.ndarray, g_camids: np.ndarray, q_pid: int | None = None,
                   q_camid: int | None = None, k: int = 10) -> np.ndarray:
    """Indices of one query's ``k`` nearest gallery items (ascending ``dist``, ties in gallery order) after the
    protocol's removal of the items with the query's person id *and* camera; nothing is removed for a query without
    an identity (``q_pid`` None: a picture from elsewhere)."""
    order = np.argsort(np.asarray(dist), kind="stable")
    if q_pid is not None:
        order = order[~((np.asarray(g_pids)[order] == q_pid) & (np.asarray(g_camids)[order] == q_camid))]
    return order[:k]


def _check_inputs(
    distmat: np.ndarray, q_pids, g_pids, q_camids, g_camids, max_rank: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    distmat = np.asarray(distmat)
    arrays = [np.asarray(a) for a in (q_pids, g_pids, q_camids, g_camids)]
    arrays = [a.reshape(-1) if a.ndim == 0 else a for a in arrays]
    q_pids, g_pids, q_camids, g_camids = arrays
    names = ("q_pids", "g_pids", "q_camids", "g_camids")
    if distmat.ndim != 2:
        raise DataError(f"distmat must be a 2-D (num_query, num_gallery) array, got shape {distmat.shape}")
    for name, arr in zip(names, arrays):
        if arr.ndim != 1:
            raise DataError(f"{name} must be a 1-D array, got shape {arr.shape}")
    num_q, num_g = distmat.shape
    if len(q_pids) != num_q or len(q_camids) != num_q or len(g_pids) != num_g or len(g_camids) != num_g:
        raise DataError(
            f"distmat shape {distmat.shape} does not match the id arrays: expected ({len(q_pids)}, {len(g_pids)}) "
            f"from q_pids/g_pids (q_camids has {len(q_camids)}, g_camids has {len(g_camids)} entries)"
        )
    if num_q == 0 or num_g == 0:
        raise DataError(f"distmat is empty (shape {distmat.shape}): need at least one query and one gallery item")
    if not (np.issubdtype(distmat.dtype, np.integer) or np.issubdtype(distmat.dtype, np.floating)):
        raise DataError(f"distmat must hold real numbers, got dtype {distmat.dtype}")
    if np.issubdtype(distmat.dtype, np.floating) and np.isnan(distmat).any():
        raise DataError("distmat contains NaN distances; check the features for NaN/Inf before computing distances")
    if int(max_rank) < 1:
        raise DataError(f"max_rank must be >= 1, got {max_rank}")
    return distmat, q_pids, g_pids, q_camids, g_camids


def _no_valid_query_error() -> DataError:
    return DataError(
        "no query has a valid match in the gallery (every query's identity is absent or only seen by the same "
        "camera); check that the query/gallery split, pids and camids are the right way round"
    )


def _summarise(
    first_rank: np.ndarray, ap: np.ndarray, inp: np.ndarray, num_q: int, max_rank: int
) -> dict[str, float | int | np.ndarray]:
    num_valid = int(first_rank.size)
    hist = np.bincount(first_rank[first_rank < max_rank], minlength=max_rank)[:max_rank]
    cmc = hist.cumsum() / num_valid
    result: dict[str, float | int | np.ndarray] = {
        f"rank-{k}": float(np.count_nonzero(first_rank < k) / num_valid) for k in _RANKS
    }
    result.update(
        mAP=float(ap.mean()),
        mINP=float(inp.mean()),
        cmc=cmc.astype(np.float64),
        num_valid_queries=num_valid,
        num_skipped=int(num_q - num_valid),
    )
    return result


def _ordered_u32(values: np.ndarray) -> np.ndarray:
    """Map float32 values to uint32 keys whose unsigned order is the float order (-0.0 folded into +0.0)."""
    bits = (values + np.float32(0.0)).view(np.uint32)
    neg = (bits >> np.uint32(31)).astype(bool)
    return np.where(neg, ~bits, bits | np.uint32(0x80000000))


def _stable_positions(dist: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """0-based position of gallery item ``cols[i]`` in the stable ascending sort of ``dist[rows[i]]``.

    That position is ``#{g: d[g] < d[j]} + #{g < j: d[g] == d[j]}``. For float32 input only the row values are
    sorted (a plain value sort is several times faster than a stable argsort) and the counts come from one
    batched ``searchsorted``; other dtypes use a stable argsort and its inverse permutation.
    """
    num_rows, num_g = dist.shape
    if rows.size == 0:
        return np.zeros(0, dtype=np.int64)
    if dist.dtype != np.float32:
        order = np.argsort(dist, axis=1, kind="stable")
        inverse = np.empty_like(order)
        np.put_along_axis(inverse, order, np.broadcast_to(np.arange(num_g), order.shape), axis=1)
        return inverse[rows, cols]
    keys = _ordered_u32(dist)
    row_offset = np.arange(num_rows, dtype=np.int64)[:, None] << 32
    # Rows sorted independently, then tagged with their row index in the high bits: the flattened array is
    # globally sorted, so one searchsorted answers "how many smaller values in this row" for every pair.
    flat = (np.sort(keys, axis=1).astype(np.int64) | row_offset).ravel()
    needle = (keys[rows, cols].astype(np.int64)) | (rows.astype(np.int64) << 32)
    base = rows.astype(np.int64) * num_g
    less = np.searchsorted(flat, needle, side="left") - base
    equal = np.searchsorted(flat, needle, side="right") - base - less  # includes the item itself
    pos = less
    tied = np.flatnonzero(equal > 1)
    if tied.size:
        # Ties: add the number of equal values at a smaller gallery index (stable order). Done only for the
        # tied pairs, in blocks to bound memory.
        block = max(1, (1 << 22) // num_g)
        arange_g = np.arange(num_g)
        for start in range(0, tied.size, block):
            sel = tied[start : start + block]
            r, c = rows[sel], cols[sel]
            same = (keys[r] == keys[r, c][:, None]) & (arange_g[None, :] < c[:, None])
            pos[sel] += np.count_nonzero(same, axis=1)
    return pos


def evaluate_market1501(
    distmat: np.ndarray,
    q_pids,
    g_pids,
    q_camids,
    g_camids,
    max_rank: int = 50,
    chunk_size: int = 256,
) -> dict[str, float | int | np.ndarray]:
    """CMC, mAP and mINP under the Market-1501 protocol (Zheng et al. 2015), vectorised over queries.

    Results equal torchreid's ``eval_market1501`` (``torchreid/metrics/rank.py``) with a stable distance sort,
    plus fast-reid's mINP (``fastreid/evaluation/rank.py``; Ye et al. 2021): gallery items with the same pid
    and camera as the query are removed, queries with no remaining correct match are skipped and counted.

    Only the ranks of the gallery items sharing the query's pid matter, so instead of materialising full
    per-query rankings the function computes, chunk by chunk (``chunk_size`` queries at a time), the stable
    sort position of just those items and derives everything from them with flat array operations.

    Args:
        distmat: (num_query, num_gallery) distances, smaller = more similar.
        q_pids, g_pids, q_camids, g_camids: 1-D person / camera ids of queries and gallery items.
        max_rank: length of the returned CMC curve; clipped to the gallery size, as in torchreid.

    Returns:
        ``rank-1``, ``rank-5``, ``rank-10``, ``rank-20`` (floats in [0, 1], computed from the first-hit ranks,
        so available whatever ``max_rank`` is), ``mAP``, ``mINP`` (floats), ``cmc`` (float64 array of length
        ``min(max_rank, num_gallery)``), ``num_valid_queries`` and ``num_skipped`` (ints).

    Raises:
        DataError: when the shapes disagree, ``distmat`` holds NaN, or no query has a valid match.
    """
    distmat, q_pids, g_pids, q_camids, g_camids = _check_inputs(distmat, q_pids, g_pids, q_camids, g_camids, max_rank)
    num_q, num_g = distmat.shape
    max_rank = min(int(max_rank), num_g)
    if distmat.dtype == np.float16:
        distmat = distmat.astype(np.float32)  # exact
    chunk_size = max(1, int(chunk_size))

    first_ranks, aps, inps = [], [], []
    for start in range(0, num_q, chunk_size):
        stop = min(start + chunk_size, num_q)
        qp, qc = q_pids[start:stop], q_camids[start:stop]
        # All gallery items sharing the query's pid: the correct matches and the same-camera ones to remove.
        rows, cols = np.nonzero(g_pids[None, :] == qp[:, None])
        pos = _stable_positions(distmat[start:stop], rows, cols)
        removed = g_camids[cols] == qc[rows]
        # Sort the pairs by (query, position): np.nonzero already groups by row, so a lexsort suffices.
        order = np.lexsort((pos, rows))
        rows, pos, removed = rows[order], pos[order], removed[order]
        hit = ~removed
        num_rows = stop - start
        # Removed items ranked before each pair, within the same query -> position in the kept list.
        row_start = np.searchsorted(rows, np.arange(num_rows))
        cum_removed = np.cumsum(removed)
        cum_hit = np.cumsum(hit)
        before = np.concatenate(([0], cum_removed))[row_start][rows]
        hits_before = np.concatenate(([0], cum_hit))[row_start][rows]
        kept_pos = pos - (cum_removed - removed - before)  # 0-based position after removal
        hit_count = cum_hit - hits_before  # correct matches up to and including this one
        num_rel = np.bincount(rows[hit], minlength=num_rows)
        valid = num_rel > 0
        if not valid.any():
            continue
        h_rows, h_pos, h_count = rows[hit], kept_pos[hit], hit_count[hit]
        precision_sum = np.bincount(h_rows, weights=h_count / (h_pos + 1.0), minlength=num_rows)
        first = np.full(num_rows, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first, h_rows, h_pos)
        last = np.full(num_rows, -1, dtype=np.int64)
        np.maximum.at(last, h_rows, h_pos)
        first_ranks.append(first[valid])
        aps.append(precision_sum[valid] / num_rel[valid])
        inps.append(num_rel[valid] / (last[valid] + 1.0))

    if not first_ranks:
        raise _no_valid_query_error()
    return _summarise(np.concatenate(first_ranks), np.concatenate(aps), np.concatenate(inps), num_q, max_rank)


def evaluate_market1501_loop(
    distmat: np.ndarray, q_pids, g_pids, q_camids, g_camids, max_rank: int = 50
) -> dict[str, float | int | np.ndarray]:
    """Slow reference: torchreid's per-query Python ``eval_market1501`` loop, plus fast-reid's mINP.

    A direct transcription (stable argsort added so ties are deterministic), kept to check
    :func:`evaluate_market1501` in the tests and to time it in ``benchmarks/reid_rank.py``. Same return
    value and errors as :func:`evaluate_market1501`; use that one for real evaluations.
    """
    distmat, q_pids, g_pids, q_camids, g_camids = _check_inputs(distmat, q_pids, g_pids, q_camids, g_camids, max_rank)
    num_q, num_g = distmat.shape
    max_rank = min(int(max_rank), num_g)
    indices = np.argsort(distmat, axis=1, kind="stable")
    matches = (g_pids[indices] == q_pids[:, np.newaxis]).astype(np.int32)

    first_ranks, all_ap, all_inp = [], [], []
    for q_idx in range(num_q):
        q_pid, q_camid = q_pids[q_idx], q_camids[q_idx]
        order = indices[q_idx]
        remove = (g_pids[order] == q_pid) & (g_camids[order] == q_camid)
        keep = np.invert(remove)
        raw_cmc = matches[q_idx][keep]
        if not np.any(raw_cmc):
            continue  # query identity does not appear in the gallery (after removal)
        cmc = raw_cmc.cumsum()
        pos_idx = np.where(raw_cmc == 1)[0]
        max_pos_idx = np.max(pos_idx)
        all_inp.append(cmc[max_pos_idx] / (max_pos_idx + 1.0))
        first_ranks.append(int(pos_idx[0]))  # cmc[cmc > 1] = 1 is a step at the first hit
        num_rel = raw_cmc.sum()
        tmp_cmc = raw_cmc.cumsum()
        tmp_cmc = [x / (i + 1.0) for i, x in enumerate(tmp_cmc)]
        tmp_cmc = np.asarray(tmp_cmc) * raw_cmc
        all_ap.append(tmp_cmc.sum() / num_rel)

    if not first_ranks:
        raise _no_valid_query_error()
    return _summarise(
        np.asarray(first_ranks, dtype=np.int64), np.asarray(all_ap), np.asarray(all_inp), num_q, max_rank
    )


def _identity_groups(g_pids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Gallery identities (sorted unique pids) and their items: ``members[start[i] : start[i] + count[i]]``
    are the gallery indices of identity i in increasing order."""
    identities, g_ident, counts = np.unique(g_pids, return_inverse=True, return_counts=True)
    members = np.argsort(g_ident, kind="stable")
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    return identities, members, starts, counts


def _pick(uniform: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Uniform index in ``range(counts)`` from a uniform float in [0, 1): ``floor(u * count)``."""
    return np.minimum((uniform * counts).astype(np.int64), np.maximum(counts - 1, 0))


def _single_shot_first_hits(
    distmat: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    uniform: np.ndarray,
    groups: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """0-based rank of the single true match in each sampled single-shot gallery, for a block of queries.

    ``uniform`` is [n, repeats, num_identities]: ``uniform[q, r, i]`` picks identity i's gallery sample in
    repeat r of query q (among the items kept for the query, i.e. the query's own identity loses its
    same-camera items). Returns ``(valid, first)``: a bool [n] mask of queries with a kept true match and
    int [n_valid, repeats] ranks. The rank of the true match is the number of sampled items that come before
    it in the stable ascending distance order, so no sort is needed: only comparisons with its distance.
    """
    identities, members, starts, counts = groups
    n, repeats, _ = uniform.shape
    # Everyone else's sample: the floor(u * count)-th item of the identity, for every (query, repeat).
    chosen = members[starts + _pick(uniform, counts)]  # [n, repeats, num_identities]

    # The query's own identity: sample among its items seen by another camera.
    own = np.searchsorted(identities, q_pids)
    present = (own < len(identities)) & (identities[np.minimum(own, len(identities) - 1)] == q_pids)
    own = np.where(present, own, 0)
    width = int(counts.max())
    slot = np.arange(width)
    own_items = members[np.minimum(starts[own][:, None] + slot, len(members) - 1)]  # [n, width], padded
    kept = present[:, None] & (slot < counts[own][:, None]) & (g_camids[own_items] != q_camids[:, None])
    num_kept = kept.sum(axis=1)
    valid = num_kept > 0
    pick = _pick(uniform[np.arange(n), :, own], num_kept[:, None])  # [n, repeats]
    # Column of the pick-th kept item: the first slot where the running count of kept items exceeds pick.
    kept_before = np.cumsum(kept, axis=1)
    column = np.argmax(kept_before[:, None, :] > pick[:, :, None], axis=2)
    hit = np.take_along_axis(own_items, column, axis=1)  # [n, repeats]

    rows = np.arange(n)[:, None, None]
    d_chosen = distmat[rows, chosen]
    d_hit = distmat[np.arange(n)[:, None], hit][:, :, None]
    before = (d_chosen < d_hit) | ((d_chosen == d_hit) & (chosen < hit[:, :, None]))
    before[np.arange(n), :, own] = False  # the query's own identity is represented by `hit` itself
    first = np.count_nonzero(before, axis=2)
    return valid, first[valid]


def evaluate_cuhk03_single_shot(
    distmat: np.ndarray,
    q_pids,
    g_pids,
    q_camids,
    g_camids,
    max_rank: int = 20,
    repeats: int = 10,
    seed: int = 0,
    chunk_size: int = 256,
) -> dict[str, float | int | np.ndarray]:
    """CMC under the classic CUHK03 single-gallery-shot protocol, averaged over random gallery samples.

    As torchreid's ``eval_cuhk03`` (``torchreid/metrics/rank.py``; protocol of Li et al., "DeepReID: Deep
    Filter Pairing Neural Network for Person Re-identification", CVPR 2014): for each query, gallery items
    with the same pid and camera are removed, queries without a remaining true match are skipped and counted,
    and ``repeats`` times one gallery sample per identity is drawn at random; the CMC of each query is the
    mean over its repeats (exactly one true match remains in each sampled gallery, so CMC is the indicator
    "that match is within the top k"). As in torchreid, AP (and here also mINP) is computed on the whole kept
    gallery, not on the samples: ``mAP`` and ``mINP`` equal :func:`evaluate_market1501`'s.

    Sampling is deterministic: ``rng = np.random.default_rng(seed)`` draws ``rng.random((num_query, repeats,
    num_identities))`` (in query blocks, the same stream), one uniform u per (query, repeat, gallery identity
    in sorted pid order; skipped queries draw too). Identity i then contributes its ``floor(u * n_i)``-th
    gallery item in gallery index order, n_i counting for the query's own identity only its items kept after
    the same-camera removal. The samples therefore do not depend on the distances, so two distance matrices
    (e.g. before and after re-ranking) are scored on the same galleries. Ties keep gallery order.

    Args:
        distmat: (num_query, num_gallery) distances, smaller = more similar.
        q_pids, g_pids, q_camids, g_camids: 1-D person / camera ids of queries and gallery items.
        max_rank: length of the returned CMC curve; clipped to the gallery size, as in torchreid.
        repeats: number of random single-shot galleries per query (torchreid: 10).
        seed: seed of the NumPy generator drawing the galleries.
        chunk_size: queries processed at once (memory bound only; results do not depend on it).

    Returns:
        The keys of :func:`evaluate_market1501`: ``rank-1/5/10/20``, ``mAP``, ``mINP``, ``cmc`` (float64 array
        of length ``min(max_rank, num_gallery)``), ``num_valid_queries``, ``num_skipped``.

    Raises:
        DataError: when the shapes disagree, ``distmat`` holds NaN, ``repeats`` < 1, or no query has a valid
        match.
    """
    distmat, q_pids, g_pids, q_camids, g_camids = _check_inputs(distmat, q_pids, g_pids, q_camids, g_camids, max_rank)
    if int(repeats) != repeats or repeats < 1:
        raise DataError(f"repeats must be an integer >= 1, got {repeats}")
    num_q, num_g = distmat.shape
    max_rank = min(int(max_rank), num_g)
    repeats, chunk_size = int(repeats), max(1, int(chunk_size))
    # mAP / mINP over the whole kept gallery and the skipped queries, exactly as the Market-1501 protocol.
    full = evaluate_market1501(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=max_rank)

    groups = _identity_groups(g_pids)
    rng = np.random.default_rng(seed)
    firsts = []
    for start in range(0, num_q, chunk_size):
        stop = min(start + chunk_size, num_q)
        uniform = rng.random((stop - start, repeats, len(groups[0])))
        block = slice(start, stop)
        _, first = _single_shot_first_hits(
            distmat[block], q_pids[block], g_pids, q_camids[block], g_camids, uniform, groups
        )
        firsts.append(first)
    first = np.concatenate(firsts)  # [num_valid, repeats]
    assert len(first) == full["num_valid_queries"]  # the same queries are skipped by both protocols

    # Per query mean over repeats, then mean over queries == mean over all (query, repeat) pairs.
    result: dict[str, float | int | np.ndarray] = {f"rank-{k}": float(np.mean(first < k)) for k in _RANKS}
    hist = np.bincount(np.minimum(first.ravel(), max_rank), minlength=max_rank + 1)[:max_rank]
    cmc = hist.cumsum() / first.size
    result.update(
        mAP=full["mAP"],
        mINP=full["mINP"],
        cmc=cmc,
        num_valid_queries=full["num_valid_queries"],
        num_skipped=full["num_skipped"],
    )
    return result
