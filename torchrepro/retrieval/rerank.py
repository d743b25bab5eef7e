"""k-reciprocal re-ranking (Zhong et al., "Re-ranking Person Re-identification with k-reciprocal Encoding", CVPR 2017).

Faithful to the widely used reference implementation that works on distance matrices (the authors'
``python-version/re_ranking_ranklist.py``, copied as torchreid's ``torchreid/utils/rerank.py``):

1. ``A`` = the (Q+G) x (Q+G) matrix ``[[q_q, q_g], [q_g^T, g_g]]``, squared elementwise (the paper's original
   distance is a squared Mahalanobis / Euclidean distance; the reference squares the distances it is given),
   divided by its *column* maxima and transposed: ``O[i, j] = A[j, i]^2 / max_r A[r, i]^2``.
2. ``R(i, k)``: the k-reciprocal neighbours of i among its k+1 nearest ones (i itself included),
   with k = k1.
3. ``R*(i, k)``, the robust set: for every candidate c in ``R(i, k1)`` whose ``R(c, round(k1/2))`` shares
   more than 2/3 of its members with ``R(i, k1)``, add ``R(c, round(k1/2))``.
4. ``V[i, j] = exp(-O[i, j])`` on ``R*(i, k1)``, normalised to sum 1 over the row (Gaussian-kernel encoding).
5. Local query expansion: ``V[i] <- mean of V over i's k2 nearest neighbours`` (skipped when k2 == 1).
6. Jaccard distance: ``d_J(i, j) = 1 - sum_k min(V[i,k], V[j,k]) / sum_k max(V[i,k], V[j,k])``; since
   each row sums to 1, ``sum max = 2 - sum min``.
7. ``d* = (1 - lambda) d_J + lambda O``, restricted to the query rows and gallery columns.

Deviations, all harmless: neighbours come from a *stable* sort (ties keep index order; the reference uses
NumPy's default, unstable sort), and V and the Jaccard sums are accumulated in float64 (the reference uses
float32), so results agree with the reference to about 1e-6. ``O`` is float32 exactly as in the reference, so
the neighbour lists agree too. The Jaccard step touches only non-zero entries of V (as the reference's
inverted index does), vectorised over whole blocks of queries.
"""

from __future__ import annotations

import numpy as np

from torchrepro.core.errors import DataError

__all__ = ["re_rank"]

# Bound on the number of (query entry, gallery entry) pairs held at once in the Jaccard step.
_PAIR_BLOCK = 1 << 22


def _check_distances(q_g_dist, q_q_dist, g_g_dist) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    q_g, q_q, g_g = (np.asarray(d) for d in (q_g_dist, q_q_dist, g_g_dist))
    for name, d in (("q_g_dist", q_g), ("q_q_dist", q_q), ("g_g_dist", g_g)):
        if d.ndim != 2:
            raise DataError(f"{name} must be a 2-D distance matrix, got shape {d.shape}")
        if not (np.issubdtype(d.dtype, np.integer) or np.issubdtype(d.dtype, np.floating)):
            raise DataError(f"{name} must hold real numbers, got dtype {d.dtype}")
        if not np.isfinite(d).all():
            raise DataError(f"{name} contains NaN or Inf; check the features before computing distances")
    num_q, num_g = q_g.shape
    if num_q == 0 or num_g == 0:
        raise DataError(f"q_g_dist is empty (shape {q_g.shape}): need at least one query and one gallery item")
    if q_q.shape != (num_q, num_q):
        raise DataError(
            f"q_q_dist must be square (num_query, num_query) = ({num_q}, {num_q}) to match q_g_dist {q_g.shape}, "
            f"got {q_q.shape}"
        )
    if g_g.shape != (num_g, num_g):
        raise DataError(
            f"g_g_dist must be square (num_gallery, num_gallery) = ({num_g}, {num_g}) to match q_g_dist "
            f"{q_g.shape}, got {g_g.shape}"
        )
    return q_g, q_q, g_g


def _check_params(k1: int, k2: int, lambda_value: float) -> None:
    if int(k1) != k1 or k1 < 1:
        raise DataError(f"k1 must be an integer >= 1, got {k1}")
    if int(k2) != k2 or k2 < 1:
        raise DataError(f"k2 must be an integer >= 1, got {k2}")
    if not 0.0 <= float(lambda_value) <= 1.0:
        raise DataError(f"lambda_value must be in [0, 1], got {lambda_value}")


def _original_distance(q_g_dist, q_q_dist, g_g_dist, square: bool = True) -> np.ndarray:
    """The reference's normalised "original distance" ``O`` over queries then gallery items, float32 (step 1).

    ``O[i, j] = A[j, i]^p / max_r A[r, i]^p`` with ``A = [[q_q, q_g], [q_g^T, g_g]]`` and p = 2 (or 1 when
    ``square`` is False). For symmetric ``q_q``/``g_g`` this is row i of ``A^p`` divided by its maximum.
    """
    q_g, q_q, g_g = (np.asarray(d) for d in (q_g_dist, q_q_dist, g_g_dist))
    num_q, num_g = q_g.shape
    full = np.empty((num_q + num_g, num_q + num_g), dtype=np.float32)
    blocks = ((q_q, 0, 0), (q_g, 0, num_q), (q_g.T, num_q, 0), (g_g, num_q, num_q))
    for block, row0, col0 in blocks:
        # Square in float64 then round to float32 (the reference squares in the input precision); row chunks
        # keep the float64 temporaries small for large galleries.
        for start in range(0, block.shape[0], 1024):
            part = np.asarray(block[start : start + 1024], dtype=np.float64)
            rows = slice(row0 + start, row0 + start + part.shape[0])
            full[rows, col0 : col0 + part.shape[1]] = np.square(part) if square else part
    col_max = full.max(axis=0)
    if not (col_max > 0).all():
        bad = int(np.flatnonzero(~(col_max > 0))[0])
        raise DataError(
            f"item {bad} of the stacked query+gallery set has no positive distance to any item; re-ranking "
            "normalises by each item's largest distance, so it needs distinct features"
        )
    # Divide by column maxima then transpose, as the reference does (matters only for asymmetric inputs).
    full /= col_max
    return np.ascontiguousarray(full.T)


def _stable_topk(dist: np.ndarray, k: int, block: int = 1024) -> np.ndarray:
    """Indices of the k smallest entries of each row, in stable ascending order (ties by column index).

    Equals ``np.argsort(dist, axis=1, kind="stable")[:, :k]`` without sorting whole rows: argpartition picks
    the k smallest, a lexsort orders them; rows where a tie straddles the k-th value fall back to the full
    stable sort, because argpartition may pick any of the tied items.
    """
    num_rows, num_cols = dist.shape
    k = min(k, num_cols)
    out = np.empty((num_rows, k), dtype=np.int64)
    for start in range(0, num_rows, block):
        rows = dist[start : start + block]
        if k == num_cols:
            out[start : start + len(rows)] = np.argsort(rows, axis=1, kind="stable")
            continue
        part = np.argpartition(rows, k - 1, axis=1)[:, :k]
        vals = np.take_along_axis(rows, part, axis=1)
        order = np.lexsort((part, vals), axis=1)
        top = np.take_along_axis(part, order, axis=1)
        kth = vals.max(axis=1)
        tied = np.flatnonzero(np.count_nonzero(rows <= kth[:, None], axis=1) > k)
        if tied.size:
            top[tied] = np.argsort(rows[tied], axis=1, kind="stable")[:, :k]
        out[start : start + len(rows)] = top
    return out


def _reciprocal_mask(ranks: np.ndarray) -> np.ndarray:
    """``mask[i, a]``: is i among the neighbours of its neighbour ``ranks[i, a]``, i.e. is that one in R(i, k)?

    ``ranks`` is [N, k+1]: each item's k+1 nearest items, nearest first.
    """
    own = np.arange(len(ranks))[:, None, None]
    return (ranks[ranks] == own).any(axis=2)


def _expanded_neighbours(ranks: np.ndarray, k1: int, num: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the pairs (i, j), j in R*(i, k1), sorted by (i, j), without duplicates."""
    ranks_k1 = ranks[:, : k1 + 1]
    recip = _reciprocal_mask(ranks_k1)
    # R(c, k1/2) for every item c; np.around rounds half to even, as in the reference (k1=5 -> 2).
    half = int(np.around(k1 / 2.0))
    ranks_half = ranks[:, : half + 1]
    half_recip = _reciprocal_mask(ranks_half)

    # Membership of (i, m) in R(i, k1) through sorted flat keys i * num + m.
    rows = np.broadcast_to(np.arange(num)[:, None], ranks_k1.shape)
    recip_keys = np.sort(rows[recip] * num + ranks_k1[recip])

    # For each candidate c = ranks_k1[i, a] and each member m of R(c, k1/2): is m in R(i, k1)?
    cand_members = ranks_half[ranks_k1]  # [N, k1+1, half+1]
    cand_valid = half_recip[ranks_k1]
    keys = np.arange(num)[:, None, None] * num + cand_members
    pos = np.minimum(np.searchsorted(recip_keys, keys), max(len(recip_keys) - 1, 0))
    in_recip = (recip_keys[pos] == keys) & cand_valid if len(recip_keys) else np.zeros_like(cand_valid)
    overlap = in_recip.sum(axis=2)
    size = cand_valid.sum(axis=2)
    # Same float expression as the reference: |R(c, k1/2) ∩ R(i, k1)| > 2/3 |R(c, k1/2)|.
    accept = recip & (overlap > 2.0 / 3.0 * size)

    add = accept[:, :, None] & cand_valid
    all_rows = np.concatenate([rows[recip], np.broadcast_to(np.arange(num)[:, None, None], add.shape)[add]])
    all_cols = np.concatenate([ranks_k1[recip], cand_members[add]])
    unique = np.unique(all_rows * num + all_cols)
    return unique // num, unique % num


def _encode(dist: np.ndarray, rows: np.ndarray, cols: np.ndarray, num: int) -> np.ndarray:
    """Gaussian-kernel weights ``exp(-d)`` on the given (row-sorted) pairs, normalised per row."""
    weight = np.exp(-dist[rows, cols].astype(np.float64))
    return weight / np.bincount(rows, weights=weight, minlength=num)[rows]


def _query_expansion(
    rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, ranks: np.ndarray, k2: int, num: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sparse ``V_qe[i] = mean_{n in first k2 neighbours of i} V[n]``, as sorted COO triples."""
    k2 = min(k2, ranks.shape[1])
    row_ptr = np.concatenate(([0], np.cumsum(np.bincount(rows, minlength=num))))
    # Every (i, neighbour n) pair copies row n of V into row i.
    src = ranks[:, :k2].ravel()
    dst = np.repeat(np.arange(num), k2)
    counts = row_ptr[src + 1] - row_ptr[src]
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    entries = np.repeat(row_ptr[src], counts) + offsets
    keys = np.repeat(dst, counts) * num + cols[entries]
    unique, inverse = np.unique(keys, return_inverse=True)
    summed = np.bincount(inverse, weights=vals[entries], minlength=len(unique))
    return unique // num, unique % num, summed / k2


def _jaccard(
    rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, num_q: int, num: int
) -> np.ndarray:
    """Jaccard distance between each query row of V and each gallery row of V, [Q, G] float64.

    ``sum_k min(V[i,k], V[j,k])`` is accumulated only over shared non-zero columns k: the gallery entries
    are grouped by column, and every query entry (i, k) is paired with the gallery entries of column k.
    """
    num_g = num - num_q
    gallery = rows >= num_q
    g_rows, g_cols, g_vals = rows[gallery] - num_q, cols[gallery], vals[gallery]
    by_col = np.argsort(g_cols, kind="stable")
    g_rows, g_vals = g_rows[by_col], g_vals[by_col]
    col_ptr = np.concatenate(([0], np.cumsum(np.bincount(g_cols, minlength=num))))

    query = np.flatnonzero(rows < num_q)  # rows are sorted: the query entries come first
    q_rows, q_cols, q_vals = rows[query], cols[query], vals[query]
    pair_counts = col_ptr[q_cols + 1] - col_ptr[q_cols]
    min_sum = np.zeros(num_q * num_g, dtype=np.float64)
    # Blocks of query entries keep the number of pairs held at once bounded.
    ends = np.cumsum(pair_counts)
    start = 0
    while start < len(query):
        stop = max(start + 1, int(np.searchsorted(ends, ends[start] - pair_counts[start] + _PAIR_BLOCK, "right")))
        counts = pair_counts[start:stop]
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        partner = np.repeat(col_ptr[q_cols[start:stop]], counts) + offsets
        flat = np.repeat(q_rows[start:stop], counts) * num_g + g_rows[partner]
        contrib = np.minimum(np.repeat(q_vals[start:stop], counts), g_vals[partner])
        min_sum += np.bincount(flat, weights=contrib, minlength=num_q * num_g)
        start = stop
    min_sum = min_sum.reshape(num_q, num_g)
    return 1.0 - min_sum / (2.0 - min_sum)


def re_rank(
    q_g_dist: np.ndarray,
    q_q_dist: np.ndarray,
    g_g_dist: np.ndarray,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    *,
    square: bool = True,
) -> np.ndarray:
    """k-reciprocal re-ranking of a query-gallery distance matrix (Zhong et al., CVPR 2017).

    Same result (to ~1e-6) as the reference ``re_ranking`` in ``torchreid/utils/rerank.py`` / the authors'
    ``re_ranking_ranklist.py``, see the module docstring for the steps and equations.

    Args:
        q_g_dist: [Q, G] query-gallery distances, smaller = more similar.
        q_q_dist: [Q, Q] query-query distances.
        g_g_dist: [G, G] gallery-gallery distances.
        k1: size of the k-reciprocal neighbourhood (paper: 20).
        k2: size of the local query expansion (paper: 6); 1 disables it.
        lambda_value: weight of the original distance in the final one (paper: 0.3).
        square: square the given distances first, as the reference does. The paper's original distance is a
            squared Euclidean one, so pass plain Euclidean distances with the default; for distances that are
            already squared (FAISS ``IndexFlatL2``), ``square=False`` uses them as they are (torchreid passes
            squared distances with squaring on, i.e. 4th powers).

    Returns:
        [Q, G] float32 re-ranked distances. With ``lambda_value=1`` this is the normalised original distance
        ``q_g^2[i, j] / max(max_r q_q^2[r, i], max_j' q_g^2[i, j'])`` (without the squares if ``square`` is
        False): each query's distances divided by its largest distance to any query or gallery item.

    Raises:
        DataError: on inconsistent shapes, non-finite distances, an item at distance 0 from everything, or
            parameters out of range.
    """
    q_g, q_q, g_g = _check_distances(q_g_dist, q_q_dist, g_g_dist)
    _check_params(k1, k2, lambda_value)
    k1, k2, lambda_value = int(k1), int(k2), float(lambda_value)
    num_q = q_g.shape[0]

    dist = _original_distance(q_g, q_q, g_g, square=square)
    num = dist.shape[0]
    ranks = _stable_topk(dist, max(k1 + 1, k2))
    rows, cols = _expanded_neighbours(ranks, k1, num)
    vals = _encode(dist, rows, cols, num)
    if k2 != 1:
        rows, cols, vals = _query_expansion(rows, cols, vals, ranks, k2, num)
    jaccard = _jaccard(rows, cols, vals, num_q, num)
    final = jaccard * (1.0 - lambda_value) + dist[:num_q, num_q:].astype(np.float64) * lambda_value
    return final.astype(np.float32)
