"""Weighted kNN classification (InstDisc protocol) against a brute-force loop over every query and bank item."""

from __future__ import annotations

import math

import torch

from torchrepro.retrieval.knn import knn_class_scores, knn_neighbours


def loop_scores(bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor, num_classes: int, k: int,
                tau: float) -> torch.Tensor:
    """For each query: cosine to every bank item, the k largest, vote exp(s/τ) for their classes."""
    out = torch.zeros(len(queries), num_classes, dtype=torch.float64)
    for q in range(len(queries)):
        sims = []
        for j in range(len(bank)):
            u, v = queries[q].double(), bank[j].double()
            sims.append((float(u @ v) / (float(u.norm()) * float(v.norm())), j))
        for s, j in sorted(sims, key=lambda t: (-t[0], t[1]))[:k]:
            out[q, int(bank_labels[j])] += math.exp(s / tau)
    return out


def test_matches_the_brute_force_loop():
    gen = torch.Generator().manual_seed(0)
    bank, queries = torch.randn(60, 5, generator=gen) * 4, torch.randn(12, 5, generator=gen)
    labels = torch.randint(0, 3, (60,), generator=gen)
    for k, tau in ((1, 0.1), (7, 0.1), (200, 0.5)):
        got = knn_class_scores(bank, labels, queries, 3, k, tau)
        assert torch.allclose(got, loop_scores(bank, labels, queries, 3, k, tau), rtol=1e-4)


def test_neighbours_are_ranked_by_cosine_similarity():
    bank = torch.tensor([[1.0, 0.0], [0.0, 5.0], [3.0, 3.1], [-1.0, 0.0]])
    sim, idx = knn_neighbours(bank, torch.tensor([[2.0, 0.1]]), 3)
    assert idx.tolist() == [[0, 2, 1]]
    assert torch.allclose(sim[0, 0], torch.tensor(2.0 / math.hypot(2.0, 0.1)), atol=1e-5)
