"""Weighted k-nearest-neighbour classification of embeddings, the protocol of Wu et al., "Unsupervised Feature
Learning via Non-Parametric Instance Discrimination" (CVPR 2018, §3.4 and Eq. 9–10), which self-supervised papers
use to score a representation without training anything (k = 200, τ = 0.1 in SimCLR-era benchmarks).

Features are L2-normalised; each query's ``k`` most similar bank items by cosine similarity s (FAISS exact search:
on unit vectors the Euclidean ranking is the cosine ranking, s = 1 − d²/2) vote for their class with weight
exp(s / τ); the prediction is the class with the largest total.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from torchrepro.retrieval.recall import knn_search

__all__ = ["knn_class_scores", "knn_neighbours"]


def knn_neighbours(bank: torch.Tensor, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine similarities ``[Q, k']`` and indices of each query's ``k' = min(k, len(bank))`` nearest bank rows."""
    b = F.normalize(bank.float(), dim=1).cpu().numpy()
    q = F.normalize(queries.float(), dim=1).cpu().numpy()
    dist, idx = knn_search(q, b, k)
    return torch.from_numpy(1.0 - dist.astype(np.float32) ** 2 / 2), torch.from_numpy(idx.astype(np.int64))


def knn_class_scores(bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor, num_classes: int,
                     k: int = 200, temperature: float = 0.1) -> torch.Tensor:
    """``[Q, num_classes]`` summed vote weights exp(s/τ) of each query's k nearest bank items (see module docstring);
    ``argmax(dim=1)`` is the prediction."""
    sim, idx = knn_neighbours(bank, queries, k)
    labels = bank_labels.cpu().long()[idx]
    weights = torch.exp(sim.double() / temperature)
    return torch.zeros(len(queries), num_classes, dtype=torch.float64).scatter_add_(1, labels, weights)
