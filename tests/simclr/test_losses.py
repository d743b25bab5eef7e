"""NT-Xent against two independent implementations (an explicit loop over anchors written from the paper's Eq. 1,
and lightly's ``NTXentLoss``), broken variants it must tell apart, and the DDP equivalence: 2 ranks × b images give
the loss and the gradients of 1 process × 2b (negatives gathered with their gradients)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import REPO
from tests.simclr import ddp_nt_xent
from torchrepro.simclr.losses import nt_xent_loss


def eq1_loop(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> float:
    """Chen et al. 2020, Eq. 1, term by term: views z_1 … z_2N with z_{2k-1}, z_{2k} the pair of image k;
    ℓ(i, j) = −log exp(s_ij/τ) / Σ_{k≠i} exp(s_ik/τ) with cosine s; L = 1/2N Σ_k [ℓ(2k−1, 2k) + ℓ(2k, 2k−1)]."""
    views = [v for pair in zip(z1.tolist(), z2.tolist()) for v in pair]

    def sim(u: list[float], v: list[float]) -> float:
        dot = sum(a * b for a, b in zip(u, v))
        return dot / (math.sqrt(sum(a * a for a in u)) * math.sqrt(sum(b * b for b in v)))

    def ell(i: int, j: int) -> float:
        denominator = sum(math.exp(sim(views[i], views[k]) / tau) for k in range(len(views)) if k != i)
        return -math.log(math.exp(sim(views[i], views[j]) / tau) / denominator)

    n = len(z1)
    return sum(ell(2 * k, 2 * k + 1) + ell(2 * k + 1, 2 * k) for k in range(n)) / (2 * n)


def unmasked_self_similarity(z1, z2, tau):
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    b = len(z1)
    return F.cross_entropy(z @ z.t() / tau, (torch.arange(2 * b) + b) % (2 * b))


def normalised_over_batch_axis(z1, z2, tau):
    z = F.normalize(torch.cat([z1, z2]), dim=0)
    b = len(z1)
    logits = (z @ z.t() / tau).fill_diagonal_(float("-inf"))
    return F.cross_entropy(logits, (torch.arange(2 * b) + b) % (2 * b))


def _pairs(b: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    z1 = torch.randn(b, d, generator=gen, dtype=torch.float64) * 3 + 1  # not unit length, not centred
    return z1, z1 + 0.8 * torch.randn(b, d, generator=gen, dtype=torch.float64)


@pytest.mark.parametrize("b, d, tau", [(2, 3, 0.5), (5, 8, 0.1), (16, 32, 0.2), (7, 4, 2.0)])
def test_matches_the_paper_loop_and_lightly(b: int, d: int, tau: float):
    from lightly.loss import NTXentLoss

    z1, z2 = _pairs(b, d, seed=b)
    ours = float(nt_xent_loss(z1, z2, tau))
    assert ours == pytest.approx(eq1_loop(z1, z2, tau), rel=1e-5)
    assert ours == pytest.approx(float(NTXentLoss(temperature=tau)(z1.float(), z2.float())), rel=1e-4)


@pytest.mark.parametrize("broken", [unmasked_self_similarity, normalised_over_batch_axis])
def test_the_references_catch_a_broken_loss(broken):
    z1, z2 = _pairs(16, 32, seed=1)
    assert float(broken(z1, z2, 0.2)) != pytest.approx(eq1_loop(z1, z2, 0.2), rel=1e-2)


def test_gradients_match_autograd_of_the_loop_definition():
    z1, z2 = (t.requires_grad_(True) for t in _pairs(6, 5, seed=3))
    nt_xent_loss(z1, z2, 0.3).backward()
    ref1, ref2 = (t.detach().clone().requires_grad_(True) for t in (z1, z2))
    z = F.normalize(torch.cat([ref1, ref2]), dim=1)
    sim = (z @ z.t() / 0.3).masked_fill(torch.eye(12, dtype=torch.bool), float("-inf"))
    pos = torch.cat([torch.arange(6, 12), torch.arange(6)])
    (-(sim[torch.arange(12), pos] - torch.logsumexp(sim, dim=1)).mean()).backward()
    assert torch.allclose(z1.grad, ref1.grad, atol=1e-6) and torch.allclose(z2.grad, ref2.grad, atol=1e-6)


def test_a_single_image_has_no_negatives():
    z = torch.randn(1, 4)
    with pytest.raises(ValueError, match="at least two images"):
        nt_xent_loss(z, z + 1, 0.5)
    with pytest.raises(ValueError, match="temperature > 0"):
        nt_xent_loss(torch.randn(3, 4), torch.randn(3, 4), 0.0)


def _single_process() -> dict[str, torch.Tensor]:
    x1, x2, w = ddp_nt_xent.inputs()
    x1.requires_grad_(True)
    w.requires_grad_(True)
    loss = nt_xent_loss(x1 @ w, x2 @ w, ddp_nt_xent.TAU)
    loss.backward()
    return {"loss": loss.detach(), "grad_w": w.grad, "grad_x1": x1.grad}


def test_two_ranks_equal_one_process_with_the_whole_batch(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          str(REPO / "tests" / "simclr" / "ddp_nt_xent.py"), str(tmp_path)],
                         env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    single = _single_process()
    b = ddp_nt_xent.B
    for r, got in enumerate(ranks):
        real = got["real"]
        assert torch.allclose(real["loss"], single["loss"], atol=1e-12)
        assert torch.allclose(real["grad_w"], single["grad_w"], atol=1e-12)
        assert torch.allclose(real["grad_x1"], single["grad_x1"][r * b:(r + 1) * b], atol=1e-12)
        # a plain all_gather gives the same loss but loses the gradients sent to the other ranks' projections
        plain = got["plain_gather"]
        assert torch.allclose(plain["loss"], single["loss"], atol=1e-12)
        assert not torch.allclose(plain["grad_w"], single["grad_w"], atol=1e-6)
        # masks not shifted by the rank's offset: rank 1 masks and pairs rank 0's views
        assert not torch.allclose(got["misaligned"]["loss"], single["loss"], atol=1e-6)
