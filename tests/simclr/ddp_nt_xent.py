"""Worker of tests/simclr/test_losses.py: NT-Xent on 2 ranks × b images (gloo, CPU), run under
``torchrun --standalone --nproc_per_node=2 tests/simclr/ddp_nt_xent.py OUT_DIR``.

Every rank builds the same inputs (2·b pairs of 8-d vectors and a shared 8×6 linear projection W), takes its own b
pairs, computes the loss and backpropagates; the loss and W's gradient are then averaged over ranks as DDP does.
Besides :func:`nt_xent_loss` it runs two broken variants the test must tell apart: a plain ``all_gather`` (no
gradient reaches the other ranks' projections) and masks not shifted by the rank's offset after the gather.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from torchrepro.simclr.losses import nt_xent_loss

B, D_IN, D_OUT, TAU = 4, 8, 6, 0.3


def inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x1, x2, W) of the whole batch of 2·B pairs, identical on every rank and in the test process."""
    gen = torch.Generator().manual_seed(7)
    return (torch.randn(2 * B, D_IN, generator=gen, dtype=torch.float64),
            torch.randn(2 * B, D_IN, generator=gen, dtype=torch.float64),
            torch.randn(D_IN, D_OUT, generator=gen, dtype=torch.float64))


def _broken(z1: torch.Tensor, z2: torch.Tensor, plain_gather: bool) -> torch.Tensor:
    b = z1.shape[0]
    local = F.normalize(torch.cat([z1, z2]), dim=1)
    if plain_gather:  # other ranks' rows arrive without autograd history
        parts = [torch.empty_like(local) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, local.detach())
        parts[dist.get_rank()] = local
        everyone, offset = torch.cat(parts), dist.get_rank() * 2 * b
    else:  # masks misaligned after the gather: every rank masks and pairs as if it were rank 0
        from torch.distributed.nn.functional import all_gather

        everyone, offset = torch.cat(all_gather(local)), 0
    logits = local @ everyone.t() / TAU
    rows = torch.arange(2 * b)
    logits[rows, offset + rows] = float("-inf")
    return F.cross_entropy(logits, offset + (rows + b) % (2 * b))


def run(variant: str) -> dict[str, torch.Tensor]:
    rank, world = dist.get_rank(), dist.get_world_size()
    x1, x2, w = inputs()
    mine = slice(rank * B, (rank + 1) * B)
    x1 = x1[mine].clone().requires_grad_(True)
    w = w.clone().requires_grad_(True)
    z1, z2 = x1 @ w, x2[mine] @ w
    loss = nt_xent_loss(z1, z2, TAU) if variant == "real" else _broken(z1, z2, variant == "plain_gather")
    loss.backward()
    grad_w, mean_loss = w.grad.clone(), loss.detach().clone()
    dist.all_reduce(grad_w)
    dist.all_reduce(mean_loss)
    return {"loss": mean_loss / world, "grad_w": grad_w / world, "grad_x1": x1.grad / world}


def main() -> None:
    dist.init_process_group("gloo")
    out = Path(sys.argv[1])
    results = {v: run(v) for v in ("real", "plain_gather", "misaligned")}
    torch.save(results, out / f"rank{dist.get_rank()}.pt")
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
