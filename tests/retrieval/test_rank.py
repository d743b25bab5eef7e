"""Tests for the Market-1501 CMC / mAP / mINP metric (torchrepro.retrieval.rank)."""

from __future__ import annotations

import numpy as np
import pytest

from torchrepro.core.errors import DataError
from torchrepro.retrieval.rank import evaluate_market1501, evaluate_market1501_loop


def reference_market1501(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """Per-query transcription of torchreid's eval_market1501 loop (+ fast-reid mINP), independent of the module."""
    num_q, num_g = distmat.shape
    max_rank = min(max_rank, num_g)
    all_cmc, all_ap, all_inp = [], [], []
    for q in range(num_q):
        order = np.argsort(distmat[q], kind="stable")
        same_pid = g_pids[order] == q_pids[q]
        keep = ~(same_pid & (g_camids[order] == q_camids[q]))
        raw = same_pid[keep].astype(np.int64)
        if raw.sum() == 0:
            continue
        cum = raw.cumsum()
        hits = np.where(raw == 1)[0]
        all_inp.append(cum[hits[-1]] / (hits[-1] + 1.0))
        cmc = np.minimum(cum, 1)
        padded = np.ones(max_rank)  # a valid query has its first hit inside the kept list
        padded[: min(max_rank, len(cmc))] = cmc[:max_rank]
        all_cmc.append(padded)
        precision = np.array([cum[i] / (i + 1.0) for i in range(len(raw))])
        all_ap.append((precision * raw).sum() / raw.sum())
    cmc = np.mean(all_cmc, axis=0)
    skipped = num_q - len(all_ap)
    return {"cmc": cmc, "mAP": float(np.mean(all_ap)), "mINP": float(np.mean(all_inp)), "num_skipped": skipped}


def market_like(seed, num_q=60, num_g=400, num_ids=30, num_cams=6, ties=True, dtype=np.float32):
    """Random Market-like fixture: pid 0 background/distractors in the gallery, absent ids, tied distances."""
    rng = np.random.default_rng(seed)
    q_pids = rng.integers(1, num_ids + 1, num_q)
    q_pids[:3] = num_ids + 5  # identities absent from the gallery -> skipped
    g_pids = rng.integers(1, num_ids + 1, num_g)
    g_pids[rng.random(num_g) < 0.15] = 0  # background / distractor items
    q_cams = rng.integers(0, num_cams, num_q)
    g_cams = rng.integers(0, num_cams, num_g)
    # Query 3: its identity is only seen by its own camera in the gallery -> skipped after removal.
    g_cams[g_pids == q_pids[3]] = q_cams[3]
    q_pids[4:] = np.where(q_pids[4:] == q_pids[3], q_pids[3] % num_ids + 1, q_pids[4:])
    dist = rng.random((num_q, num_g))
    # Make true matches closer on average, so ranks are spread out rather than uniform.
    dist -= 0.3 * (q_pids[:, None] == g_pids[None, :]) * rng.random((num_q, num_g))
    if ties:
        dist = np.round(dist * 20) / 20  # many exact ties (stable order matters)
    return dist.astype(dtype), q_pids, g_pids, q_cams, g_cams


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ties", [True, False])
def test_matches_reference(seed, dtype, ties):
    data = market_like(seed, ties=ties, dtype=dtype)
    ref = reference_market1501(*data)
    for chunk in (7, 256):
        out = evaluate_market1501(*data, chunk_size=chunk)
        np.testing.assert_allclose(out["cmc"], ref["cmc"], atol=1e-6)
        assert out["mAP"] == pytest.approx(ref["mAP"], abs=1e-6)
        assert out["mINP"] == pytest.approx(ref["mINP"], abs=1e-6)
        assert out["num_skipped"] == ref["num_skipped"] >= 4
        assert out["num_valid_queries"] + out["num_skipped"] == 60
        for k in (1, 5, 10, 20):
            assert out[f"rank-{k}"] == pytest.approx(ref["cmc"][k - 1], abs=1e-6)
    loop = evaluate_market1501_loop(*data)
    for key in ("mAP", "mINP", "rank-1", "rank-5", "num_skipped"):
        assert loop[key] == pytest.approx(out[key], abs=1e-6)
    np.testing.assert_allclose(loop["cmc"], ref["cmc"], atol=1e-6)


def test_negative_zero_inf_and_int_distances():
    dist, qp, gp, qc, gc = market_like(5, ties=True, dtype=np.float64)
    dist = dist - 0.5  # negative values and exact zeros
    dist[dist == 0] = -0.0
    dist[:, ::17] = np.inf
    dist[:, 1::23] = -np.inf
    for arr in (dist.astype(np.float32), dist.astype(np.float16), np.round(dist * 20).clip(-99, 99).astype(np.int16)):
        ref = reference_market1501(arr, qp, gp, qc, gc)
        out = evaluate_market1501(arr, qp, gp, qc, gc)
        np.testing.assert_allclose(out["cmc"], ref["cmc"], atol=1e-6)
        assert out["mAP"] == pytest.approx(ref["mAP"], abs=1e-6)
        assert out["mINP"] == pytest.approx(ref["mINP"], abs=1e-6)


def test_hand_computed_single_query():
    # Query pid 1 camera 0. Gallery (distance, pid, cam):
    #   g0 (0.1, 1, 1)  rank 1  hit
    #   g1 (0.2, 2, 1)  rank 2  miss
    #   g2 (0.3, 1, 2)  rank 3  hit
    #   g3 (0.4, 3, 0)  rank 4  miss
    #   g4 (0.5, 4, 2)  rank 5  miss
    # Listed in shuffled order to exercise the sort.
    perm = [3, 0, 4, 2, 1]
    d = np.array([[0.1, 0.2, 0.3, 0.4, 0.5]])[:, perm]
    g_pids = np.array([1, 2, 1, 3, 4])[perm]
    g_cams = np.array([1, 1, 2, 0, 2])[perm]
    out = evaluate_market1501(d, np.array([1]), g_pids, np.array([0]), g_cams, max_rank=5)
    # 2 relevant, hits at ranks 1 and 3: precisions 1/1 and 2/3 -> AP = (1 + 2/3) / 2 = 5/6.
    assert out["mAP"] == pytest.approx(5 / 6)
    # Hardest (last) hit at rank 3: INP = 2 / 3.
    assert out["mINP"] == pytest.approx(2 / 3)
    # First hit at rank 1: CMC = 1 from rank 1 on.
    np.testing.assert_array_equal(out["cmc"], [1, 1, 1, 1, 1])
    assert out["rank-1"] == 1.0 and out["num_valid_queries"] == 1 and out["num_skipped"] == 0


def test_hand_computed_first_hit_late():
    # One query (pid 7, cam 0); sorted gallery pids: [2, 7, 3, 3, 7, 7] all from camera 1.
    # Hits at ranks 2, 5, 6 of 3 relevant: AP = (1/2 + 2/5 + 3/6) / 3 = 1.4 / 3; INP = 3 / 6.
    # CMC (max_rank=4): [0, 1, 1, 1]; rank-1 = 0, rank-5 = 1.
    d = np.arange(6, dtype=np.float32)[None, :]
    out = evaluate_market1501(d, [7], [2, 7, 3, 3, 7, 7], [0], [1] * 6, max_rank=4)
    assert out["mAP"] == pytest.approx(1.4 / 3)
    assert out["mINP"] == pytest.approx(0.5)
    np.testing.assert_array_equal(out["cmc"], [0, 1, 1, 1])
    assert out["rank-1"] == 0.0 and out["rank-5"] == 1.0


def test_ties_keep_gallery_order():
    # All distances equal: the stable sort keeps gallery order, so the hit at index 2 is rank 3.
    d = np.zeros((1, 4), dtype=np.float32)
    out = evaluate_market1501(d, [1], [5, 6, 1, 7], [0], [1, 1, 1, 1], max_rank=4)
    np.testing.assert_array_equal(out["cmc"], [0, 0, 1, 1])
    assert out["mAP"] == pytest.approx(1 / 3) and out["mINP"] == pytest.approx(1 / 3)


def test_same_pid_same_camera_items_are_excluded():
    # The nearest gallery item is the query's own identity seen by the same camera (cam 0): it must be
    # removed, otherwise rank-1 would be 1. After removal: [pid 2, pid 1 cam 3] -> first hit at rank 2.
    d = np.array([[0.0, 0.5, 1.0]])
    g_pids, g_cams = np.array([1, 2, 1]), np.array([0, 1, 3])
    out = evaluate_market1501(d, [1], g_pids, [0], g_cams)
    assert out["rank-1"] == 0.0 and out["rank-5"] == 1.0
    assert out["mAP"] == pytest.approx(1 / 2) and out["mINP"] == pytest.approx(1 / 2)
    assert len(out["cmc"]) == 3  # max_rank clipped to the gallery size, as in torchreid
    np.testing.assert_array_equal(out["cmc"], [0, 1, 1])
    # Same pid from a different camera is kept: moving g0 to camera 2 makes it a rank-1 hit.
    out = evaluate_market1501(d, [1], g_pids, [0], np.array([2, 1, 3]))
    assert out["rank-1"] == 1.0 and out["mAP"] == pytest.approx((1 + 2 / 3) / 2)


def test_query_absent_from_gallery_is_skipped():
    d = np.array([[0.1, 0.2, 0.3], [0.3, 0.2, 0.1], [0.2, 0.1, 0.3]])
    q_pids, g_pids = np.array([1, 9, 2]), np.array([1, 2, 3])
    q_cams, g_cams = np.array([0, 0, 2]), np.array([1, 1, 2])
    # Query 1 (pid 9) has no match; query 2 (pid 2, cam 2) matches g1 (cam 1) at rank 1.
    out = evaluate_market1501(d, q_pids, g_pids, q_cams, g_cams)
    assert out["num_skipped"] == 1 and out["num_valid_queries"] == 2
    assert out["rank-1"] == 1.0 and out["mAP"] == 1.0 and out["mINP"] == 1.0


def test_no_valid_query_raises():
    d = np.ones((2, 3))
    with pytest.raises(DataError, match="no query has a valid match"):
        evaluate_market1501(d, [1, 2], [3, 4, 5], [0, 0], [1, 1, 1])
    # Only same-camera matches -> all removed -> no valid query either.
    with pytest.raises(DataError, match="no query has a valid match"):
        evaluate_market1501(d, [1, 2], [1, 2, 2], [0, 1], [0, 1, 1])
    with pytest.raises(DataError, match="no query has a valid match"):
        evaluate_market1501_loop(d, [1, 2], [3, 4, 5], [0, 0], [1, 1, 1])


@pytest.mark.parametrize(
    "args, pattern",
    [
        ((np.ones((2, 3)), [1, 2, 3], [1, 2, 3], [0, 0, 0], [1, 1, 1]), "does not match the id arrays"),
        ((np.ones((2, 3)), [1, 2], [1, 2], [0, 0], [1, 1]), "does not match the id arrays"),
        ((np.ones((2, 3)), [1, 2], [1, 2, 3], [0], [1, 1, 1]), "does not match the id arrays"),
        ((np.ones(3), [1], [1, 2, 3], [0], [1, 1, 1]), "2-D"),
        ((np.ones((0, 3)), [], [1, 2, 3], [], [1, 1, 1]), "empty"),
        ((np.full((1, 2), np.nan), [1], [1, 2], [0], [1, 1]), "NaN"),
    ],
)
def test_bad_inputs_raise_data_error(args, pattern):
    for fn in (evaluate_market1501, evaluate_market1501_loop):
        with pytest.raises(DataError, match=pattern) as info:
            fn(*args)
        assert "\n" not in str(info.value)
