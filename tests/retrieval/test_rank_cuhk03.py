"""Tests for the CUHK03 single-gallery-shot CMC (torchrepro.retrieval.rank.evaluate_cuhk03_single_shot)."""

from __future__ import annotations

import numpy as np
import pytest

from torchrepro.core.errors import DataError
from torchrepro.retrieval.rank import evaluate_cuhk03_single_shot, evaluate_market1501


def reference_cuhk03(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=20, repeats=10, seed=0):
    """Per-query loop in the style of torchreid's eval_cuhk03, with the documented sampling stream.

    Each query (skipped ones too) draws ``rng.random((repeats, num_identities))``; identity i (sorted pids)
    keeps its ``floor(u * n_i)``-th candidate in gallery order, candidates being the items left after removing
    the query's same-pid-same-camera ones. AP on the whole kept gallery, as torchreid.
    """
    num_q, num_g = distmat.shape
    max_rank = min(max_rank, num_g)
    identities = sorted(set(g_pids.tolist()))
    rng = np.random.default_rng(seed)
    all_cmc, all_ap, all_inp = [], [], []
    for q in range(num_q):
        uniform = rng.random((repeats, len(identities)))
        keep = ~((g_pids == q_pids[q]) & (g_camids == q_camids[q]))
        if not np.any(keep & (g_pids == q_pids[q])):
            continue
        order = np.argsort(distmat[q], kind="stable")
        cmc = np.zeros(max_rank)
        for r in range(repeats):
            sampled = np.zeros(num_g, dtype=bool)
            for i, pid in enumerate(identities):
                candidates = [g for g in range(num_g) if g_pids[g] == pid and keep[g]]
                if candidates:
                    sampled[candidates[int(uniform[r, i] * len(candidates))]] = True
            raw = (g_pids[order] == q_pids[q])[sampled[order]]
            assert raw.sum() == 1  # single shot: exactly one true match per sampled gallery
            curve = np.minimum(raw.cumsum(), 1)
            padded = np.ones(max_rank)
            padded[: min(max_rank, len(curve))] = curve[:max_rank]
            cmc += padded
        all_cmc.append(cmc / repeats)
        raw = (g_pids[order] == q_pids[q])[keep[order]]
        precision = raw.cumsum() / np.arange(1, len(raw) + 1)
        all_ap.append((precision * raw).sum() / raw.sum())
        hits = [i for i in range(len(raw)) if raw[i]]  # positions in the kept gallery, 0-based
        all_inp.append(len(hits) / (hits[-1] + 1))  # INP: correct matches / position of the last one
    return {
        "cmc": np.mean(all_cmc, axis=0),
        "mAP": float(np.mean(all_ap)),
        "mINP": float(np.mean(all_inp)),
        "num_skipped": num_q - len(all_ap),
    }


def cuhk03_like(seed, num_q=40, num_g=150, num_ids=20, ties=True, dtype=np.float64):
    """Random CUHK03-like fixture: two cameras, several samples per identity, absent and same-camera-only ids."""
    rng = np.random.default_rng(seed)
    q_pids = rng.integers(1, num_ids + 1, num_q)
    q_pids[:2] = num_ids + 3  # absent from the gallery -> skipped
    g_pids = rng.integers(1, num_ids + 1, num_g)
    q_cams = rng.integers(0, 2, num_q)
    g_cams = rng.integers(0, 2, num_g)
    # Query 2's identity is only seen by its own camera in the gallery -> skipped after removal.
    g_cams[g_pids == q_pids[2]] = q_cams[2]
    q_pids[3:] = np.where(q_pids[3:] == q_pids[2], q_pids[2] % num_ids + 1, q_pids[3:])
    dist = rng.random((num_q, num_g))
    dist -= 0.4 * (q_pids[:, None] == g_pids[None, :]) * rng.random((num_q, num_g))
    if ties:
        dist = np.round(dist * 10) / 10
    return dist.astype(dtype), q_pids, g_pids, q_cams, g_cams


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("ties, dtype", [(True, np.float32), (False, np.float64), (True, np.float16)])
def test_matches_loop_reference(seed, ties, dtype):
    data = cuhk03_like(seed, ties=ties, dtype=dtype)
    ref = reference_cuhk03(*data, max_rank=20, repeats=5, seed=seed)
    for chunk in (7, 256):
        out = evaluate_cuhk03_single_shot(*data, max_rank=20, repeats=5, seed=seed, chunk_size=chunk)
        np.testing.assert_allclose(out["cmc"], ref["cmc"], atol=1e-9)
        for k in (1, 5, 10, 20):
            assert out[f"rank-{k}"] == pytest.approx(ref["cmc"][k - 1], abs=1e-9)
        assert out["mAP"] == pytest.approx(ref["mAP"], abs=1e-9)
        assert out["mINP"] == pytest.approx(ref["mINP"], abs=1e-9)
        assert out["num_skipped"] == ref["num_skipped"] >= 3
        assert out["num_valid_queries"] + out["num_skipped"] == 40


def test_map_and_minp_hand_computed_on_the_kept_gallery():
    # Gallery: g0 pid 1 cam 0, g1 pid 2 cam 0, g2 pid 1 cam 1, g3 pid 3 cam 1, g4 pid 1 cam 1, g5 pid 2 cam 1.
    # Query A (pid 1, cam 0): by distance g0 g2 g1 g3 g4 g5; g0 is removed (same pid and camera), so the kept
    #   ranking is g2 g1 g3 g4 g5 with hits at ranks 1 and 4: AP = (1/1 + 2/4) / 2 = 3/4, INP = 2/4.
    # Query B (pid 2, cam 1): by distance g5 g2 g3 g0 g1 g4; g5 is removed, kept g2 g3 g0 g1 g4, one hit at
    #   rank 4: AP = 1/4, INP = 1/4.
    # Query C (pid 3, cam 1): its only match g3 has the same camera -> skipped. Query D (pid 9): absent -> skipped.
    # mAP = (3/4 + 1/4) / 2 = 1/2, mINP = (1/2 + 1/4) / 2 = 3/8, over the gallery as a whole (not the samples).
    dist = np.array(
        [
            [0.0, 0.2, 0.1, 0.3, 0.4, 0.5],
            [0.3, 0.35, 0.1, 0.2, 0.4, 0.05],
            [0.6, 0.5, 0.4, 0.3, 0.2, 0.1],
            [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
        ]
    )
    g_pids, g_cams = [1, 2, 1, 3, 1, 2], [0, 0, 1, 1, 1, 1]
    out = evaluate_cuhk03_single_shot(dist, [1, 2, 3, 9], g_pids, [0, 1, 1, 0], g_cams, max_rank=6, repeats=7)
    assert out["mAP"] == pytest.approx(0.5) and out["mINP"] == pytest.approx(0.375)
    assert out["num_valid_queries"] == 2 and out["num_skipped"] == 2
    assert set(out) == {"rank-1", "rank-5", "rank-10", "rank-20", "mAP", "mINP", "cmc", "num_valid_queries",
                        "num_skipped"}
    assert len(out["cmc"]) == 6 and out["cmc"].dtype == np.float64
    # B's single kept match g1 (0.35) always follows g3 (0.2), so B is never at rank 1 and is within rank 3.
    assert out["rank-1"] <= 0.5 and out["cmc"][2] == 1.0


def test_one_sample_per_identity_equals_market_cmc():
    # With a single gallery item per identity there is nothing to sample: the CMC is Market-1501's.
    rng = np.random.default_rng(4)
    dist = rng.random((12, 30))
    q_pids, g_pids = rng.integers(0, 30, 12), np.arange(30)
    q_cams, g_cams = np.zeros(12, int), np.ones(30, int)
    out = evaluate_cuhk03_single_shot(dist, q_pids, g_pids, q_cams, g_cams, max_rank=10)
    market = evaluate_market1501(dist, q_pids, g_pids, q_cams, g_cams, max_rank=10)
    np.testing.assert_allclose(out["cmc"], market["cmc"])
    assert out["rank-20"] == market["rank-20"]


def test_hand_computed_deterministic():
    # Query pid 1 camera 0; gallery (sorted by distance) pid 2, pid 1 (cam 1), pid 3: one item per identity,
    # so every repeat ranks the true match 2nd. Full-gallery AP: one hit at rank 2 -> 1/2.
    out = evaluate_cuhk03_single_shot(np.array([[0.1, 0.2, 0.3]]), [1], [2, 1, 3], [0], [1, 1, 1], max_rank=3)
    np.testing.assert_array_equal(out["cmc"], [0, 1, 1])
    assert out["rank-1"] == 0.0 and out["rank-5"] == 1.0 and out["mAP"] == 0.5


def test_hand_computed_sampling():
    # Query pid 1 camera 0. Gallery by distance: A0 (pid 1, cam 0: removed), B (pid 2), A1 (pid 1, cam 1),
    # C (pid 3), A2 (pid 1, cam 1). Each repeat keeps A1 or A2: A1 -> rank 2 (after B), A2 -> rank 3 (after B
    # and C). Per the documented stream, identity pid 1 (sorted position 0) picks the floor(u * 2)-th kept item:
    # A1 iff u < 1/2. Full-gallery AP: hits at ranks 2 and 4 of 4 kept -> (1/2 + 2/4) / 2 = 1/2.
    dist = np.array([[0.0, 0.1, 0.2, 0.3, 0.4]])
    g_pids, g_cams = [1, 2, 1, 3, 1], [0, 1, 1, 1, 1]
    out = evaluate_cuhk03_single_shot(dist, [1], g_pids, [0], g_cams, max_rank=5, repeats=1000, seed=7)
    u = np.random.default_rng(7).random((1, 1000, 3))[0, :, 0]
    assert out["rank-1"] == 0.0
    assert out["cmc"][1] == pytest.approx(np.mean(u < 0.5))
    assert abs(out["cmc"][1] - 0.5) < 0.06  # and it is a fair coin
    np.testing.assert_array_equal(out["cmc"][2:], [1, 1, 1])
    assert out["mAP"] == pytest.approx(0.5)


def test_deterministic_and_seed_dependent():
    data = cuhk03_like(5, ties=False)
    a = evaluate_cuhk03_single_shot(*data, seed=3)
    b = evaluate_cuhk03_single_shot(*data, seed=3)
    c = evaluate_cuhk03_single_shot(*data, seed=4)
    np.testing.assert_array_equal(a["cmc"], b["cmc"])
    assert not np.array_equal(a["cmc"], c["cmc"])


def test_skips_and_errors():
    with pytest.raises(DataError, match="no query has a valid match"):
        evaluate_cuhk03_single_shot(np.ones((2, 3)), [1, 2], [1, 4, 5], [0, 0], [0, 1, 1])
    with pytest.raises(DataError, match="repeats"):
        evaluate_cuhk03_single_shot(np.ones((1, 2)), [1], [1, 2], [0], [1, 1], repeats=0)
    with pytest.raises(DataError, match="does not match the id arrays"):
        evaluate_cuhk03_single_shot(np.ones((2, 3)), [1], [1, 2, 3], [0], [1, 1, 1])
    out = evaluate_cuhk03_single_shot(np.array([[0.1, 0.2], [0.2, 0.1]]), [1, 9], [1, 2], [0, 0], [1, 1])
    assert out["num_skipped"] == 1 and out["num_valid_queries"] == 1 and out["rank-1"] == 1.0
