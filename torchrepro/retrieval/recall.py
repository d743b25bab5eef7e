"""Visual place recognition recall@N with geographic positives.

The protocol of NetVLAD (Arandjelović et al., CVPR 2016, §5.1 "Evaluation metric") and of the event-VPR seed:
every query retrieves its N nearest database descriptors; it is *correct at N* when at least one of them was
recorded within ``threshold_m`` metres (25 m) of the query. recall@N is the fraction of correct queries.

Queries with no database item within ``threshold_m`` at all cannot be answered correctly by any method; the
benchmarks (Pittsburgh, Tokyo 24/7) leave such queries out of the denominator and report how many there were.
We do the same and return the count as ``queries_without_positive``.

Descriptors are compared by Euclidean distance (FAISS ``IndexFlatL2``; for L2-normalised descriptors this is the
same ranking as cosine similarity). Positions are 2-D metric coordinates (metres, not degrees).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from torchrepro.core.errors import DataError

__all__ = ["DEFAULT_NS", "first_hit_rank", "knn_search", "nearest_distance", "recall_at_n", "recall_at_n_bruteforce"]

DEFAULT_NS: tuple[int, ...] = (1, 5, 10, 20)


def _as_f32(a: np.ndarray, name: str) -> np.ndarray:
    arr = np.ascontiguousarray(np.asarray(a, dtype=np.float32))
    if arr.ndim != 2:
        raise DataError(f"{name} must be a 2-D array [n, d], got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise DataError(f"{name} contains NaN or Inf values (a diverged model?)")
    return arr


def knn_search(queries: np.ndarray, database: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest database rows of each query row by Euclidean distance (FAISS flat index).

    Returns ``(distances [Q, k], indices [Q, k])``; distances are Euclidean (FAISS returns squared ones). Ties are
    broken by FAISS in index order.
    """
    import faiss

    q = _as_f32(queries, "query descriptors")
    db = _as_f32(database, "database descriptors")
    if q.shape[1] != db.shape[1]:
        raise DataError(f"query descriptors have dimension {q.shape[1]} but database ones {db.shape[1]}")
    k = min(int(k), db.shape[0])
    index = faiss.IndexFlatL2(db.shape[1])
    index.add(db)
    d2, idx = index.search(q, k)
    return np.sqrt(np.maximum(d2, 0.0)), idx


def nearest_distance(query_pos: np.ndarray, db_pos: np.ndarray) -> np.ndarray:
    """Metric distance from each query position to its nearest database position (float64 exact, chunked)."""
    qp = np.asarray(query_pos, dtype=np.float64)
    dp = np.asarray(db_pos, dtype=np.float64)
    out = np.empty(len(qp))
    chunk = max(1, 2_000_000 // max(len(dp), 1))  # bounds the temporary [chunk, M] matrix
    for s in range(0, len(qp), chunk):
        diff = qp[s : s + chunk, None, :] - dp[None, :, :]
        out[s : s + chunk] = np.sqrt((diff**2).sum(-1)).min(axis=1)
    return out


def _check_positions(pos: np.ndarray, n: int, name: str) -> np.ndarray:
    arr = np.asarray(pos, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] != n:
        raise DataError(f"{name} must be [{n}, 2] metric (x, y) positions, got shape {arr.shape}")
    return arr


def first_hit_rank(topk: np.ndarray, query_pos: np.ndarray, db_pos: np.ndarray, threshold_m: float) -> np.ndarray:
    """0-based rank of the first retrieved item within ``threshold_m`` of each query (``topk.shape[1]`` if none).

    A query is correct at N exactly when its first hit rank is < N, so one pass gives every recall@N.
    """
    qp, dp = np.asarray(query_pos, np.float64), np.asarray(db_pos, np.float64)
    hit = np.sqrt(((qp[:, None, :] - dp[topk]) ** 2).sum(-1)) <= threshold_m
    return np.where(hit.any(axis=1), hit.argmax(axis=1), topk.shape[1])


def recall_curve(topk: np.ndarray, query_pos: np.ndarray, db_pos: np.ndarray, threshold_m: float) -> np.ndarray:
    """recall@N for N = 1 … ``topk.shape[1]``, over the queries that have a database item within range (the
    others cannot be answered and are left out, as in :func:`recall_at_n`)."""
    answerable = nearest_distance(query_pos, db_pos) <= threshold_m
    first = first_hit_rank(topk, query_pos, db_pos, threshold_m)[answerable]
    return np.array([(first < n).mean() for n in range(1, topk.shape[1] + 1)])


def recall_at_n(
    query_desc: np.ndarray,
    db_desc: np.ndarray,
    query_pos: np.ndarray,
    db_pos: np.ndarray,
    ns: Sequence[int] = DEFAULT_NS,
    threshold_m: float = 25.0,
) -> tuple[dict[str, float], np.ndarray]:
    """recall@N for each N in ``ns`` (see module docstring).

    Returns ``(metrics, topk)``: ``metrics`` has ``recall@N`` for each N plus ``queries`` (evaluated),
    ``queries_without_positive`` (left out) and ``database``; ``topk`` is the ``[Q, max(ns)]`` array of retrieved
    database indices for every query (for plots).

    Raises:
        DataError: on shape mismatches, non-finite descriptors, an empty database or when no query has a
            database item within ``threshold_m``.
    """
    if len(db_desc) == 0:
        raise DataError("recall@N: the database is empty; check the database traversal and its windows")
    qp = _check_positions(query_pos, len(query_desc), "query positions")
    dp = _check_positions(db_pos, len(db_desc), "database positions")
    ns = sorted({int(n) for n in ns})
    if ns[0] < 1:
        raise ValueError(f"recall@N needs N >= 1, got {ns}")
    _, topk = knn_search(query_desc, db_desc, ns[-1])
    answerable = nearest_distance(qp, dp) <= threshold_m
    if not answerable.any():
        raise DataError(
            f"recall@N: none of the {len(qp)} queries has a database item within {threshold_m} m; the query and "
            f"database traversals do not overlap (check positions and units)"
        )
    first_hit = first_hit_rank(topk, qp, dp, threshold_m)
    metrics = {f"recall@{n}": float((first_hit[answerable] < n).mean()) for n in ns}
    metrics["queries"] = float(answerable.sum())
    metrics["queries_without_positive"] = float((~answerable).sum())
    metrics["database"] = float(len(dp))
    return metrics, topk


def recall_at_n_bruteforce(
    query_desc: np.ndarray, db_desc: np.ndarray, query_pos: np.ndarray, db_pos: np.ndarray,
    ns: Sequence[int] = DEFAULT_NS, threshold_m: float = 25.0,
) -> dict[str, float]:
    """Straightforward per-query NumPy reference of :func:`recall_at_n` (tests compare the two)."""
    correct = {int(n): 0 for n in ns}
    evaluated = 0
    for i in range(len(query_desc)):
        geo = np.linalg.norm(np.asarray(db_pos, np.float64) - np.asarray(query_pos[i], np.float64), axis=1)
        if not (geo <= threshold_m).any():
            continue
        evaluated += 1
        desc_dist = np.linalg.norm(np.asarray(db_desc, np.float64) - np.asarray(query_desc[i], np.float64), axis=1)
        order = np.argsort(desc_dist, kind="stable")
        for n in correct:
            if (geo[order[:n]] <= threshold_m).any():
                correct[n] += 1
    return {f"recall@{n}": correct[n] / evaluated for n in sorted(correct)}
