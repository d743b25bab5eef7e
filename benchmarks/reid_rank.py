"""Re-ID ranking metric: vectorised ``evaluate_market1501`` vs torchreid's per-query Python loop.

Market-1501-sized problem: a random float32 distance matrix of 3,368 queries x 15,913 gallery items,
751 test identities, 6 cameras, gallery with pid-0 distractors (no junk), true matches closer on average.
The vectorised function runs on all queries; the loop (``evaluate_market1501_loop``, the transcription of
torchreid's Python fallback used as the tests' reference) runs on a subset of queries and its time is
scaled linearly to the full query set. Results are checked to agree on the subset.

    python benchmarks/reid_rank.py [--loop-queries 400] [--repeats 3] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from torchrepro.retrieval.rank import evaluate_market1501, evaluate_market1501_loop

NUM_Q, NUM_G, NUM_IDS, NUM_CAMS, NUM_DISTRACTORS = 3368, 15913, 751, 6, 2798


def make_problem(seed: int):
    rng = np.random.default_rng(seed)
    q_pids = np.repeat(np.arange(1, NUM_IDS + 1), int(np.ceil(NUM_Q / NUM_IDS)))[:NUM_Q]
    g_pids = np.concatenate(
        [np.zeros(NUM_DISTRACTORS, dtype=np.int64), rng.integers(1, NUM_IDS + 1, NUM_G - NUM_DISTRACTORS)]
    )
    q_cams = rng.integers(0, NUM_CAMS, NUM_Q)
    g_cams = rng.integers(0, NUM_CAMS, NUM_G)
    perm = rng.permutation(NUM_G)
    g_pids, g_cams = g_pids[perm], g_cams[perm]
    dist = rng.random((NUM_Q, NUM_G), dtype=np.float32)
    same = q_pids[:, None] == g_pids[None, :]
    dist[same] -= 0.5 * rng.random(int(same.sum()), dtype=np.float32)
    return dist, q_pids, g_pids, q_cams, g_cams


def best_time(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop-queries", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    dist, q_pids, g_pids, q_cams, g_cams = make_problem(args.seed)
    print(f"problem: {NUM_Q} queries x {NUM_G} gallery (float32), {NUM_IDS} ids, {NUM_CAMS} cameras, "
          f"{NUM_DISTRACTORS} pid-0 distractors")

    t_vec, full = best_time(lambda: evaluate_market1501(dist, q_pids, g_pids, q_cams, g_cams), args.repeats)
    print(f"vectorised, all {NUM_Q} queries: {t_vec:.3f} s (best of {args.repeats})  "
          f"rank-1 {full['rank-1']:.4f} mAP {full['mAP']:.4f} mINP {full['mINP']:.4f} skipped {full['num_skipped']}")

    n = min(args.loop_queries, NUM_Q)
    sub = (dist[:n], q_pids[:n], g_pids, q_cams[:n], g_cams)
    t_loop_sub, ref = best_time(lambda: evaluate_market1501_loop(*sub), 1)
    vec_sub = evaluate_market1501(*sub)
    for key in ("rank-1", "rank-5", "rank-10", "rank-20", "mAP", "mINP"):
        assert abs(ref[key] - vec_sub[key]) < 1e-6, (key, ref[key], vec_sub[key])
    assert np.allclose(ref["cmc"], vec_sub["cmc"], atol=1e-6)
    assert ref["num_skipped"] == vec_sub["num_skipped"]
    print(f"results agree on the first {n} queries (CMC, mAP, mINP to 1e-6; skipped counts equal)")

    t_loop = t_loop_sub * NUM_Q / n
    print(f"per-query loop (torchreid algorithm), {n} queries: {t_loop_sub:.3f} s "
          f"-> scaled linearly to {NUM_Q} queries: {t_loop:.2f} s (loop timed on a subset, not all queries)")
    print(f"speed-up: {t_loop / t_vec:.1f}x (target >= 20x)")


if __name__ == "__main__":
    main()
