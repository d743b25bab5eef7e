"""Tests for the batch-hard triplet loss (torchrepro.retrieval.losses; Hermans et al. 2017)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from torchrepro.retrieval.losses import (
    TripletLoss,
    batch_hard_triplet_loss,
    masked_batch_hard_triplet_loss,
    multi_similarity_loss,
)


def brute_force(x, y, margin, metric):
    """Triple loop: per anchor, the worst triplet over all (positive, negative) pairs; mean over anchors that
    have any triplet. relu / softplus are monotone, so the worst triplet is the batch-hard one."""
    n = len(y)

    def d(i, j):
        if metric == "euclidean":
            return torch.linalg.norm(x[i] - x[j]).item()
        return 1.0 - (torch.dot(x[i], x[j]) / (x[i].norm() * x[j].norm())).item()

    per_anchor = []
    for a in range(n):
        worst = None
        for p in range(n):
            if p == a or y[p] != y[a]:
                continue
            for q in range(n):
                if y[q] == y[a]:
                    continue
                z = d(a, p) - d(a, q)
                v = math.log1p(math.exp(z)) if margin is None else max(z + margin, 0.0)
                worst = v if worst is None else max(worst, v)
        if worst is not None:
            per_anchor.append(worst)
    return sum(per_anchor) / len(per_anchor) if per_anchor else 0.0


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("margin", [0.3, 1.0, None])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force(metric, margin, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(12, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (12,), generator=g)
    y[-1] = 99  # a singleton: no positive, excluded as an anchor (still a negative for others)
    got = batch_hard_triplet_loss(x, y, margin=margin, metric=metric)
    assert abs(got.item() - brute_force(x, y, margin, metric)) < 1e-6


def test_matches_brute_force_float32():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(16, 8, generator=g)
    y = torch.arange(16) // 4
    got = batch_hard_triplet_loss(x, y)
    assert abs(got.item() - brute_force(x.double(), y, 0.3, "euclidean")) < 1e-5


def test_hand_computed_1d():
    # points 0, 1 (class 0) and 3, 6 (class 1); distances:
    #   d01 = 1, d02 = 3, d03 = 6, d12 = 2, d13 = 5, d23 = 3
    # anchor 0: hardest pos d01 = 1, hardest neg min(3, 6) = 3 -> relu(1 - 3 + 0.3) = 0
    # anchor 1: pos d01 = 1, neg min(d12, d13) = 2            -> relu(1 - 2 + 0.3) = 0
    # anchor 2: pos d23 = 3, neg min(d02, d12) = 2            -> relu(3 - 2 + 0.3) = 1.3
    # anchor 3: pos d23 = 3, neg min(d03, d13) = 5            -> relu(3 - 5 + 0.3) = 0
    x = torch.tensor([[0.0], [1.0], [3.0], [6.0]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1])
    assert batch_hard_triplet_loss(x, y, margin=0.3).item() == pytest.approx(1.3 / 4, abs=1e-6)
    # soft margin: mean of softplus(1-3), softplus(1-2), softplus(3-2), softplus(3-5)
    soft = sum(math.log1p(math.exp(z)) for z in (-2.0, -1.0, 1.0, -2.0)) / 4
    assert batch_hard_triplet_loss(x, y, margin=None).item() == pytest.approx(soft, abs=1e-6)
    assert TripletLoss(margin=0.3)(x, y).item() == pytest.approx(1.3 / 4, abs=1e-6)


def test_zero_when_classes_far_apart():
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(4, 3, generator=g) * 0.01, torch.randn(4, 3, generator=g) * 0.01 + 100.0])
    y = torch.tensor([0] * 4 + [1] * 4)
    for metric in ("euclidean",):
        assert batch_hard_triplet_loss(x, y, margin=0.3, metric=metric).item() == 0.0
    xc = torch.tensor([[1.0, 0.0], [1.0, 0.01], [-1.0, 0.0], [-1.0, 0.01]])
    assert batch_hard_triplet_loss(xc, torch.tensor([0, 0, 1, 1]), margin=0.3, metric="cosine").item() == 0.0


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("margin", [0.3, None])
def test_gradient_finite_with_identical_features(metric, margin):
    x = torch.tensor([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0], [3.0, -1.0], [3.0, -1.0]], requires_grad=True)
    y = torch.tensor([0, 0, 1, 1, 2])  # identical positives (0, 1) and an identical negative (2 vs 0)
    loss = batch_hard_triplet_loss(x, y, margin=margin, metric=metric)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()


def test_anchors_without_positive_or_negative_excluded():
    x = torch.tensor([[0.0], [1.0], [3.0]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1])  # anchor 2 has no positive
    # anchor 0: relu(1 - 3 + 0.3) = 0; anchor 1: relu(1 - 2 + 0.3) = 0 -> use a larger margin
    got = batch_hard_triplet_loss(x, y, margin=2.5)
    assert got.item() == pytest.approx(((1 - 3 + 2.5) + (1 - 2 + 2.5)) / 2, abs=1e-9)
    # no triplet at all: all labels distinct, or all the same -> zero with a gradient
    for labels in (torch.tensor([0, 1, 2]), torch.tensor([5, 5, 5])):
        z = x.clone().requires_grad_(True)
        loss = batch_hard_triplet_loss(z, labels)
        assert loss.item() == 0.0 and loss.requires_grad
        loss.backward()
        assert torch.equal(z.grad, torch.zeros_like(z))


def test_gradient_matches_reference_autograd():
    """Gradient equals that of a direct (diff-norm) implementation where distances are non-zero."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(8, 4, generator=g, dtype=torch.float64)
    y = torch.arange(8) // 2
    a = x.clone().requires_grad_(True)
    batch_hard_triplet_loss(a, y, margin=0.5).backward()
    b = x.clone().requires_grad_(True)
    dist = (b[:, None] - b[None]).norm(dim=-1)
    same = y[:, None] == y[None]
    eye = torch.eye(8, dtype=torch.bool)
    d_ap = dist.masked_fill(~(same & ~eye), -1).max(1).values
    d_an = dist.masked_fill(same, float("inf")).min(1).values
    F.relu(d_ap - d_an + 0.5).mean().backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-8)


def test_bad_metric():
    with pytest.raises(ValueError):
        batch_hard_triplet_loss(torch.zeros(2, 2), torch.tensor([0, 1]), metric="manhattan")


# ---------------------------------------------------------------- tuple triplet loss (place recognition)
def _tuple_loss_loop(a, p, negs, margin, metric, reduction):
    import torch.nn.functional as F

    def d(x, y):
        return (1 - F.cosine_similarity(x, y, dim=0)) if metric == "cosine" else (x - y).norm()

    total = 0.0
    for i in range(len(a)):
        terms = [max(0.0, float(d(a[i], p[i]) - d(a[i], n) + margin)) for n in negs[i]]
        total += sum(terms) if reduction == "sum" else max(0.0, float(d(a[i], p[i]) - min(d(a[i], n) for n in negs[i]) + margin))
    return total / len(a)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("reduction", ["sum", "hardest"])
def test_tuple_triplet_loss_matches_loop(metric, reduction):
    from torchrepro.retrieval.losses import tuple_triplet_loss

    g = torch.Generator().manual_seed(0)
    a, p, n = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g), torch.randn(4, 5, 8, generator=g)
    got = tuple_triplet_loss(a, p, n, margin=0.5, metric=metric, reduction=reduction)
    assert float(got) == pytest.approx(_tuple_loss_loop(a, p, n, 0.5, metric, reduction), rel=1e-5)


def test_tuple_triplet_loss_gradients_reach_all_branches():
    from torchrepro.retrieval.losses import tuple_triplet_loss

    g = torch.Generator().manual_seed(1)
    a, p, n = (torch.randn(*s, generator=g, requires_grad=True) for s in [(3, 6), (3, 6), (3, 4, 6)])
    tuple_triplet_loss(a, p, n, margin=2.0).backward()  # large margin: every triplet active
    for t in (a, p, n):
        assert t.grad is not None and t.grad.abs().sum() > 0


def masked_brute_force(x, pos, neg, margin):
    """Per anchor, the worst (positive, negative) triplet over the explicit relations; mean over anchors."""
    per_anchor = []
    for a in range(len(x)):
        worst = None
        for p in range(len(x)):
            for q in range(len(x)):
                if pos[a, p] and neg[a, q]:
                    v = max((x[a] - x[p]).norm().item() - (x[a] - x[q]).norm().item() + margin, 0.0)
                    worst = v if worst is None else max(worst, v)
        if worst is not None:
            per_anchor.append(worst)
    return sum(per_anchor) / len(per_anchor) if per_anchor else 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_masked_batch_hard_matches_brute_force_with_ignored_pairs(seed):
    """Place recognition: points on a line, positives < 2 m, negatives > 5 m, pairs in between ignored."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(12, 4, generator=g, dtype=torch.float64)
    metres = torch.rand(12, generator=g, dtype=torch.float64) * 20
    gap = (metres[:, None] - metres[None, :]).abs()
    pos = (gap < 2) & ~torch.eye(12, dtype=torch.bool)
    neg = gap > 5
    got = masked_batch_hard_triplet_loss(x, pos, neg, margin=0.5, metric="euclidean")
    assert got.item() == pytest.approx(masked_brute_force(x, pos, neg, 0.5), rel=1e-9, abs=1e-12)


def test_masked_batch_hard_ignores_the_band_between_radii_by_hand():
    # 1-D features. Item 2 sits at 0.1, closest to anchor 0, but is neither its positive nor its negative.
    # Anchor 0: positive 1 (d 1), negative 3 (d 3) → relu(1 − 3 + m); anchor 1: positive 0 (d 1), negative 3
    # (d 2) → relu(1 − 2 + m). Items 2 and 3 have no positive. m = 0.5: 0 and 0; m = 2.5: 0.5 and 1.5, mean 1.0.
    x = torch.tensor([[0.0], [1.0], [0.1], [3.0]])
    pos = torch.zeros(4, 4, dtype=torch.bool)
    pos[0, 1] = pos[1, 0] = True
    neg = torch.zeros(4, 4, dtype=torch.bool)
    neg[0, 3] = neg[1, 3] = True
    assert masked_batch_hard_triplet_loss(x, pos, neg, 0.5).item() == pytest.approx(0.0)
    assert masked_batch_hard_triplet_loss(x, pos, neg, 2.5).item() == pytest.approx(1.0)


def batch_hard_loop(x, pos, neg, margin, metric):
    """Hermans et al. 2017, Eq. 5, one anchor at a time in plain Python: the hardest positive (largest
    distance) and the hardest negative (smallest distance) among the anchor's explicit relations, then
    [margin + d_ap - d_an]_+ (softplus(d_ap - d_an) when margin is None); mean over anchors having both."""
    rows = x.tolist()

    def d(i, j):
        a, b = rows[i], rows[j]
        if metric == "euclidean":
            return math.sqrt(sum((u - v) ** 2 for u, v in zip(a, b)))
        dot = sum(u * v for u, v in zip(a, b))
        return 1.0 - dot / (math.sqrt(sum(u * u for u in a)) * math.sqrt(sum(v * v for v in b)))

    losses = []
    for a in range(len(rows)):
        positives = [j for j in range(len(rows)) if pos[a, j]]
        negatives = [j for j in range(len(rows)) if neg[a, j]]
        if not positives or not negatives:
            continue
        z = max(d(a, j) for j in positives) - min(d(a, j) for j in negatives)
        losses.append(math.log1p(math.exp(z)) if margin is None else max(margin + z, 0.0))
    return sum(losses) / len(losses) if losses else 0.0


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("margin", [0.3, None])
@pytest.mark.parametrize("relations", ["labels", "radii"])
def test_masked_batch_hard_matches_per_anchor_loop(relations, margin, metric):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(10, 5, generator=g, dtype=torch.float64)
    eye = torch.eye(10, dtype=torch.bool)
    if relations == "labels":  # re-ID: same identity positive, any other identity negative
        y = torch.tensor([0, 0, 1, 1, 1, 2, 2, 3, 3, 9])  # 9: a singleton, never an anchor
        same = y[:, None] == y[None, :]
        pos, neg = same & ~eye, ~same
    else:  # place recognition: < 2 m positive, > 5 m negative, the band between ignored
        metres = torch.rand(10, generator=g, dtype=torch.float64) * 20
        gap = (metres[:, None] - metres[None, :]).abs()
        pos, neg = (gap < 2) & ~eye, gap > 5
    got = masked_batch_hard_triplet_loss(x, pos, neg, margin, metric)
    want = batch_hard_loop(x, pos, neg, margin, metric)
    assert want > 0 and got.item() == pytest.approx(want, rel=1e-9, abs=1e-9)
    if relations == "labels":  # the label form must agree with the same per-anchor loop
        assert batch_hard_triplet_loss(x, y, margin, metric).item() == pytest.approx(want, rel=1e-9, abs=1e-9)


def test_masked_batch_hard_rejects_contradictory_or_misshapen_masks():
    x = torch.randn(3, 2)
    both = torch.ones(3, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="both positive and negative"):
        masked_batch_hard_triplet_loss(x, both, both)
    with pytest.raises(ValueError, match=r"\[3, 3\]"):
        masked_batch_hard_triplet_loss(x, torch.zeros(2, 2, dtype=torch.bool), torch.zeros(3, 3, dtype=torch.bool))


def ms_loop(x, pos, neg, alpha, beta, base, eps):
    """Multi-Similarity loss written from the paper's equations, one anchor at a time, plain Python sums."""
    x = F.normalize(x, dim=1)
    n, total = len(x), 0.0
    for i in range(n):
        s = [float(torch.dot(x[i], x[j])) for j in range(n)]
        ps = [j for j in range(n) if pos[i, j]]
        ns = [j for j in range(n) if neg[i, j]]
        if eps is not None and ps and ns:
            kept_n = [k for k in ns if s[k] > min(s[j] for j in ps) - eps]
            kept_p = [j for j in ps if s[j] < max(s[k] for k in ns) + eps]
            ps, ns = kept_p, kept_n
        elif eps is not None:  # no positive: nothing mines any negative (and vice versa)
            ps, ns = ([], []) if not ps or not ns else (ps, ns)
        total += math.log1p(sum(math.exp(-alpha * (s[j] - base)) for j in ps)) / alpha
        total += math.log1p(sum(math.exp(beta * (s[k] - base)) for k in ns)) / beta
    return total / n


@pytest.mark.parametrize("eps", [0.1, None])
@pytest.mark.parametrize("seed", [0, 1])
def test_multi_similarity_matches_a_loop_over_the_paper_equations(seed, eps):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(10, 6, generator=g, dtype=torch.float64)
    metres = torch.rand(10, generator=g, dtype=torch.float64) * 30
    gap = (metres[:, None] - metres[None, :]).abs()
    pos = (gap < 5) & ~torch.eye(10, dtype=torch.bool)
    neg = gap > 10
    got = multi_similarity_loss(x, pos, neg, alpha=2.0, beta=40.0, base=0.5, mining_margin=eps)
    assert got.item() == pytest.approx(ms_loop(x, pos, neg, 2.0, 40.0, 0.5, eps), rel=1e-6)


def test_multi_similarity_by_hand_and_its_gradient_pulls_positives_together():
    # two unit vectors at 90°: S = 0 for the pair; as positives, each anchor gives log(1 + e^{-α·(0 − 0)}) / α
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    pos = torch.tensor([[False, True], [True, False]])
    none = torch.zeros(2, 2, dtype=torch.bool)
    loss = multi_similarity_loss(x, pos, none, alpha=1.0, beta=50.0, base=0.0, mining_margin=None)
    assert loss.item() == pytest.approx(math.log(2.0))
    loss.backward()
    assert x.grad[0, 1] < 0 and x.grad[1, 0] < 0  # descending the gradient turns each towards the other


def test_multi_similarity_mining_drops_easy_negatives():
    # anchor 0: positive 1 (S 0.8), negatives 2 (S 0.75, hard: > 0.8 − 0.1) and 3 (S −1, easy: dropped)
    x = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.75, 0.0, math.sqrt(1 - 0.75 ** 2)], [-1.0, 0.0, 0.0]])
    pos = torch.zeros(4, 4, dtype=torch.bool)
    pos[0, 1] = True
    neg = torch.zeros(4, 4, dtype=torch.bool)
    neg[0, 2] = neg[0, 3] = True
    only_hard = neg.clone()
    only_hard[0, 3] = False
    mined = multi_similarity_loss(x, pos, neg, mining_margin=0.1)
    assert mined.item() == pytest.approx(multi_similarity_loss(x, pos, only_hard, mining_margin=None).item())
    assert mined.item() < multi_similarity_loss(x, pos, neg, mining_margin=None).item() + 1e-12
