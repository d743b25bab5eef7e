"""recall@N with geographic positives: hand-computed cases and a brute-force NumPy reference."""

import numpy as np
import pytest

from torchrepro.core.errors import DataError
from torchrepro.retrieval.recall import (
    knn_search,
    nearest_distance,
    recall_at_n,
    recall_at_n_bruteforce,
    recall_curve,
)


def test_hand_computed_case():
    # database on a line every 10 m; descriptors chosen so that the retrieval order is known
    db_pos = np.array([[0.0, 0], [10, 0], [100, 0], [200, 0]])
    db_desc = np.eye(4, dtype=np.float32)
    q_pos = np.array([[5.0, 0], [100, 0], [205, 0], [1000, 0]])
    q_desc = np.array([
        [0.0, 0.9, 0.1, 0],   # nearest db 1 (10 m away, 5 m) -> correct at 1
        [0.9, 0.5, 0.4, 0],   # order 0, 1, 2 -> first hit (db 2) at rank 3
        [0.5, 0.4, 0.3, 0.2], # order 0, 1, 2, 3 -> db 3 at rank 4
        [1.0, 0, 0, 0],       # no database item within 25 m -> left out
    ], dtype=np.float32)
    metrics, topk = recall_at_n(q_desc, db_desc, q_pos, db_pos, ns=(1, 2, 3, 4), threshold_m=25.0)
    assert metrics["recall@1"] == pytest.approx(1 / 3)
    assert metrics["recall@2"] == pytest.approx(1 / 3)
    assert metrics["recall@3"] == pytest.approx(2 / 3)
    assert metrics["recall@4"] == pytest.approx(1.0)
    assert metrics["queries"] == 3 and metrics["queries_without_positive"] == 1
    assert topk[0, 0] == 1 and topk.shape == (4, 4)


def test_recall_curve_hand_computed():
    """recall@N for every N from a ranked list: queries whose first hit is at rank 1, 3 and never; a query with
    nothing in range is left out."""
    db_pos = np.array([[0.0, 0], [10, 0], [100, 0], [200, 0]])
    q_pos = np.array([[5.0, 0], [100, 0], [400, 0], [200, 0]])
    topk = np.array([[1, 0, 2], [0, 1, 2], [0, 1, 2], [0, 1, 2]])  # q0: hit at 1; q1: db 2 at rank 3; q3: no hit
    curve = recall_curve(topk, q_pos, db_pos, threshold_m=25.0)
    assert curve == pytest.approx([1 / 3, 1 / 3, 2 / 3])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_bruteforce(seed):
    rng = np.random.default_rng(seed)
    db_pos = np.cumsum(rng.uniform(0, 3, size=(300, 2)), axis=0)
    q_pos = db_pos[rng.choice(300, 80)] + rng.normal(0, 15, size=(80, 2))
    q_desc = rng.normal(size=(80, 16)).astype(np.float32)
    db_desc = rng.normal(size=(300, 16)).astype(np.float32)
    fast, _ = recall_at_n(q_desc, db_desc, q_pos, db_pos, ns=(1, 5, 10, 20), threshold_m=25.0)
    ref = recall_at_n_bruteforce(q_desc, db_desc, q_pos, db_pos, ns=(1, 5, 10, 20), threshold_m=25.0)
    for key, value in ref.items():
        assert fast[key] == pytest.approx(value, abs=1e-12)


def test_knn_returns_euclidean_distances():
    rng = np.random.default_rng(0)
    q, db = rng.normal(size=(5, 8)), rng.normal(size=(20, 8))
    dist, idx = knn_search(q, db, 3)
    full = np.linalg.norm(q[:, None] - db[None], axis=2)
    np.testing.assert_array_equal(idx, np.argsort(full, axis=1)[:, :3])
    np.testing.assert_allclose(dist, np.sort(full, axis=1)[:, :3], rtol=1e-4)


def test_nearest_distance_chunked_equals_direct():
    rng = np.random.default_rng(1)
    q, db = rng.normal(size=(50, 2)) * 100, rng.normal(size=(70_000, 2)) * 100
    direct = np.array([np.linalg.norm(db - p, axis=1).min() for p in q])
    np.testing.assert_allclose(nearest_distance(q, db), direct)


def test_bad_inputs_name_the_problem():
    d = np.zeros((3, 4), np.float32)
    with pytest.raises(DataError, match="database is empty"):
        recall_at_n(d, np.zeros((0, 4), np.float32), np.zeros((3, 2)), np.zeros((0, 2)))
    with pytest.raises(DataError, match="positions"):
        recall_at_n(d, d, np.zeros((2, 2)), np.zeros((3, 2)))
    with pytest.raises(DataError, match="NaN"):
        recall_at_n(np.full((3, 4), np.nan, np.float32), d, np.zeros((3, 2)), np.zeros((3, 2)))
    with pytest.raises(DataError, match="within 25"):
        recall_at_n(d, d, np.zeros((3, 2)), np.full((3, 2), 1e4))
