"""Tests for k-reciprocal re-ranking (torchrepro.retrieval.rerank; Zhong et al., CVPR 2017)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from torchrepro.core.errors import DataError
from torchrepro.retrieval.rank import evaluate_market1501
from torchrepro.retrieval.rerank import _stable_topk, re_rank


def euclidean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))


def loop_re_rank(q_g, q_q, g_g, k1, k2, lambda_value, square=True):
    """Straightforward per-element transcription of the definitions (pure Python lists and loops, float64).

    Notation of the paper. O[i][j] = A[j][i]^p / max_r A[r][i]^p (the reference's column normalisation
    followed by a transpose), neighbours sorted by (distance, index), Jaccard from its min / max definition.
    """
    num_q, num_g = len(q_g), len(q_g[0])
    num = num_q + num_g

    def stacked(r, c):
        if r < num_q:
            return q_q[r][c] if c < num_q else q_g[r][c - num_q]
        return q_g[c][r - num_q] if c < num_q else g_g[r - num_q][c - num_q]

    power = 2 if square else 1
    col_max = [max(float(stacked(r, c)) ** power for r in range(num)) for c in range(num)]
    orig = [[float(stacked(j, i)) ** power / col_max[i] for j in range(num)] for i in range(num)]
    rank = [sorted(range(num), key=lambda j, i=i: (orig[i][j], j)) for i in range(num)]

    def reciprocal(i, k):  # R(i, k)
        return [j for j in rank[i][: k + 1] if i in rank[j][: k + 1]]

    vec = [[0.0] * num for _ in range(num)]
    for i in range(num):
        base = reciprocal(i, k1)
        expanded = set(base)
        for cand in base:  # R*(i, k1)
            half = reciprocal(cand, round(k1 / 2))
            if len(set(half) & set(base)) > 2 / 3 * len(half):
                expanded |= set(half)
        total = sum(math.exp(-orig[i][j]) for j in expanded)
        for j in expanded:  # Gaussian-kernel encoding V
            vec[i][j] = math.exp(-orig[i][j]) / total
    if k2 != 1:  # local query expansion
        expanded_vec = []
        for i in range(num):
            nbrs = rank[i][:k2]
            expanded_vec.append([sum(vec[n][j] for n in nbrs) / len(nbrs) for j in range(num)])
        vec = expanded_vec
    out = np.zeros((num_q, num_g))
    for i in range(num_q):
        for j in range(num_g):
            a, b = vec[i], vec[num_q + j]
            low = sum(min(a[k], b[k]) for k in range(num))
            high = sum(max(a[k], b[k]) for k in range(num))
            jaccard = 1.0 - low / high  # d_J
            out[i, j] = (1 - lambda_value) * jaccard + lambda_value * orig[i][num_q + j]  # d*
    return out


def clustered(seed, num_q=6, num_g=25, dim=4, num_ids=5):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_ids, dim)) * 2
    ids = rng.integers(0, num_ids, num_q + num_g)
    feats = centres[ids] + rng.normal(size=(num_q + num_g, dim))
    q, g = feats[:num_q], feats[num_q:]
    return euclidean(q, g), euclidean(q, q), euclidean(g, g)


@pytest.mark.parametrize(
    "seed, k1, k2, lam",
    [
        (0, 20, 6, 0.3),  # the paper's setting
        (1, 5, 3, 0.2),  # odd k1: round(5 / 2) = 2 (half to even)
        (2, 7, 1, 0.5),  # no query expansion
        (3, 3, 2, 0.0),  # pure Jaccard distance
        (4, 2, 5, 0.7),  # k2 > k1 + 1
        (5, 1, 1, 0.3),
        (6, 40, 6, 0.3),  # k1 + 1 > number of items: every item is a neighbour
    ],
)
def test_matches_loop_reference(seed, k1, k2, lam):
    q_g, q_q, g_g = clustered(seed)
    out = re_rank(q_g, q_q, g_g, k1=k1, k2=k2, lambda_value=lam)
    ref = loop_re_rank(q_g.tolist(), q_q.tolist(), g_g.tolist(), k1, k2, lam)
    np.testing.assert_allclose(out, ref, atol=1e-6)


def test_matches_loop_reference_unsquared_and_asymmetric():
    q_g, q_q, g_g = clustered(7)
    out = re_rank(q_g, q_q, g_g, k1=6, k2=3, lambda_value=0.4, square=False)
    ref = loop_re_rank(q_g.tolist(), q_q.tolist(), g_g.tolist(), 6, 3, 0.4, square=False)
    np.testing.assert_allclose(out, ref, atol=1e-6)
    # Asymmetric query-query / gallery-gallery blocks: the reference's column normalisation + transpose.
    rng = np.random.default_rng(8)
    q_q = q_q + rng.random(q_q.shape) * 0.5
    g_g = g_g + rng.random(g_g.shape) * 0.5
    out = re_rank(q_g, q_q, g_g, k1=6, k2=3, lambda_value=0.4)
    ref = loop_re_rank(q_g.tolist(), q_q.tolist(), g_g.tolist(), 6, 3, 0.4)
    np.testing.assert_allclose(out, ref, atol=1e-6)


def test_shape_dtype_and_range():
    q_g, q_q, g_g = clustered(9, num_q=4, num_g=30)
    out = re_rank(q_g, q_q, g_g)
    assert out.shape == (4, 30) and out.dtype == np.float32
    jaccard = re_rank(q_g, q_q, g_g, lambda_value=0.0)
    assert (jaccard >= -1e-6).all() and (jaccard <= 1 + 1e-6).all()
    # Integer and float32 distances are accepted.
    out32 = re_rank(q_g.astype(np.float32), q_q.astype(np.float32), g_g.astype(np.float32))
    np.testing.assert_allclose(out32, out, atol=1e-5)
    re_rank(np.round(q_g * 10).astype(np.int64), np.round(q_q * 10).astype(np.int64), np.round(g_g * 10).astype(int))


def test_lambda_one_is_normalised_original_distance():
    # lambda = 1: final[i, j] = q_g[i, j]^2 / max(max_r q_q[r, i]^2, max_j' q_g[i, j']^2), i.e. for symmetric
    # inputs each query's squared distances divided by its largest squared distance to *any* item (queries
    # included), in float32.
    q_g, q_q, g_g = clustered(10)
    out = re_rank(q_g, q_q, g_g, lambda_value=1.0)
    row_max = np.maximum((q_q**2).max(axis=0), (q_g**2).max(axis=1))
    np.testing.assert_allclose(out, q_g**2 / row_max[:, None], rtol=1e-6)
    q_q_far = q_q.copy()
    q_q_far[0, 1] = q_q_far[1, 0] = 100.0  # a far-away other query sets query 0's and 1's normaliser
    out = re_rank(q_g, q_q_far, g_g, lambda_value=1.0)
    np.testing.assert_allclose(out[:2], q_g[:2] ** 2 / 100.0**2, rtol=1e-6)
    # Without squaring: the plain distances over the same maxima.
    out = re_rank(q_g, q_q, g_g, lambda_value=1.0, square=False)
    np.testing.assert_allclose(out, q_g / np.sqrt(row_max)[:, None], rtol=1e-6)


def test_clear_clusters_keep_a_perfect_ranking():
    rng = np.random.default_rng(11)
    ids = np.repeat([1, 2], 6)
    feats = np.where(ids[:, None] == 1, 0.0, 10.0) + rng.normal(scale=0.5, size=(12, 2))
    q, g = feats[[0, 6]], np.delete(feats, [0, 6], axis=0)
    q_pids, g_pids = ids[[0, 6]], np.delete(ids, [0, 6])
    q_cams, g_cams = np.zeros(2, int), np.ones(10, int)
    before = evaluate_market1501(euclidean(q, g), q_pids, g_pids, q_cams, g_cams)
    assert before["mAP"] == 1.0
    for k1, k2 in [(2, 1), (3, 2), (4, 2), (5, 3), (20, 6)]:
        out = re_rank(euclidean(q, g), euclidean(q, q), euclidean(g, g), k1=k1, k2=k2)
        after = evaluate_market1501(out, q_pids, g_pids, q_cams, g_cams)
        assert after["mAP"] == 1.0 and after["rank-1"] == 1.0


def test_hard_negative_that_is_not_reciprocal_is_pushed_down():
    # Identity 1: a loose cluster around x = -0.5; identity 2: a tight cluster around x = 2. The query (id 1,
    # x = 1.1) is nearest to the identity-2 sample at x = 1.9 (0.8 < 0.9), but that sample's 3 nearest
    # neighbours are its tight siblings, so the query is not among them: not a 3-reciprocal neighbour. The
    # identity-1 sample at x = 0.2 has the query among its 3 nearest, so it is, and re-ranking puts it first.
    gallery = np.array(
        [[0.2, 0], [-0.6, 0.5], [-0.6, -0.5], [-1.2, 0], [1.9, 0], [2.0, 0.1], [2.0, -0.1], [2.1, 0]]
    )
    g_pids = np.array([1, 1, 1, 1, 2, 2, 2, 2])
    query = np.array([[1.1, 0.0]])
    args = (np.array([1]), g_pids, np.array([0]), np.ones(8, int))
    q_g = euclidean(query, gallery)
    before = evaluate_market1501(q_g, *args)
    out = re_rank(q_g, euclidean(query, query), euclidean(gallery, gallery), k1=3, k2=1, lambda_value=0.3)
    after = evaluate_market1501(out, *args)
    assert np.argmin(q_g[0]) == 4 and np.argmin(out[0]) == 0
    assert before["rank-1"] == 0.0 and after["rank-1"] == 1.0
    assert after["mAP"] > before["mAP"]


def test_stable_topk_matches_stable_argsort_with_ties():
    rng = np.random.default_rng(12)
    dist = np.round(rng.random((50, 40)) * 6).astype(np.float32)  # many ties, also at the k-th value
    for k in (1, 3, 7, 40, 60):
        np.testing.assert_array_equal(
            _stable_topk(dist, k, block=16), np.argsort(dist, axis=1, kind="stable")[:, :k]
        )


@pytest.mark.parametrize(
    "shapes, pattern",
    [
        (((3, 5), (3, 3), (4, 4)), "g_g_dist must be square"),
        (((3, 5), (3, 3), (5, 4)), "g_g_dist must be square"),
        (((3, 5), (5, 5), (5, 5)), "q_q_dist must be square"),
        (((3, 5), (3, 2), (5, 5)), "q_q_dist must be square"),
        (((5,), (3, 3), (5, 5)), "q_g_dist must be a 2-D"),
        (((0, 5), (0, 0), (5, 5)), "empty"),
    ],
)
def test_bad_shapes_raise_data_error(shapes, pattern):
    q_g, q_q, g_g = (np.ones(s) for s in shapes)
    with pytest.raises(DataError, match=pattern) as info:
        re_rank(q_g, q_q, g_g)
    assert "\n" not in str(info.value)


def test_bad_values_raise_data_error():
    q_g, q_q, g_g = clustered(13, num_q=3, num_g=5)
    bad = q_g.copy()
    bad[0, 0] = np.nan
    with pytest.raises(DataError, match="q_g_dist contains NaN"):
        re_rank(bad, q_q, g_g)
    with pytest.raises(DataError, match="no positive distance"):
        re_rank(np.zeros((3, 5)), np.zeros((3, 3)), np.zeros((5, 5)))
    for kwargs, pattern in [({"k1": 0}, "k1"), ({"k2": 0}, "k2"), ({"lambda_value": 1.5}, "lambda_value")]:
        with pytest.raises(DataError, match=pattern):
            re_rank(q_g, q_q, g_g, **kwargs)
