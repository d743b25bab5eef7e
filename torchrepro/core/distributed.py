"""Distributed helpers: "prepare once" on rank 0, ordered sharding and gathering, CPU-capable SyncBatchNorm.

Why these exist:

* :func:`rank_zero_first` — data preparation (generating a synthetic data set, unpacking an archive, building
  a cache) must happen once per machine, not once per rank: concurrent writers corrupt files. Rank 0 does the
  work first, the others wait at a barrier and then run the same body, which finds the work done.
* :func:`shard_bounds` / :func:`gather_ordered` / :func:`compute_ordered` — retrieval evaluation (VPR recall,
  re-ID CMC/mAP, SimCLR kNN) needs *every* embedding, in dataset order, on every rank. Lightning's
  ``DistributedSampler`` pads by repeating samples and interleaves ranks (rank ``r`` gets ``r, r+W, …``), so
  naively gathering its outputs duplicates items and scrambles the order. Here each rank takes a *contiguous*
  shard of equal length ``ceil(n / W)`` (only the last shards are shorter or empty), so after padding every
  shard to that length, ``all_gather`` and concatenating in rank order, the padding sits only at the very
  end and one truncation to ``n`` restores the exact single-process result (bit for bit when ``fn`` is
  row-wise deterministic).
* :class:`GlooSyncBatchNorm` / :class:`SyncBatchNormPlugin` — ``Trainer(sync_batchnorm=True)`` crashes under
  DDP on CPU/gloo (our default accelerator): ``torch.nn.SyncBatchNorm`` has CUDA-only kernels
  (``batch_norm_stats`` …), refuses CPU inputs, and DDP refuses to wrap a CPU module containing one. The plugin
  keeps torch's layer under nccl and otherwise converts BatchNorm layers to :class:`GlooSyncBatchNorm`, which
  all-reduces per-channel sums so that the statistics (and gradients) equal BatchNorm over the global batch.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Iterator

import torch
import torch.distributed as dist
from pytorch_lightning.plugins.layer_sync import TorchSyncBatchNorm, _BatchNormXd
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset


# ------------------------------------------------------------------------------------------------ basics
def is_distributed() -> bool:
    """True when a default process group with more than one rank is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_world() -> tuple[int, int]:
    """(rank, world size) of the default process group, or (0, 1) when not distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@contextlib.contextmanager
def rank_zero_first() -> Iterator[None]:
    """Run the body on rank 0 first; the other ranks wait at a barrier, then run it too.

    The "prepare once" pattern: the body should be idempotent (e.g. "generate the data set unless it exists"),
    so rank 0 does the work and the others find it done. Rank 0 reaches its barrier even when its body raises,
    so the others are never left waiting forever (they then run the body themselves, and fail or succeed on
    their own). A no-op wrapper when not distributed.
    """
    if not is_distributed():
        yield
        return
    rank, _ = rank_world()
    if rank != 0:
        dist.barrier()  # wait until rank 0 has finished the body
    try:
        yield
    finally:
        if rank == 0:
            dist.barrier()  # release the others


# ----------------------------------------------------------------------------------- ordered sharding
def shard_bounds(n: int, rank: int, world: int) -> tuple[int, int]:
    """Contiguous shard ``[start, stop)`` of ``range(n)`` for ``rank`` out of ``world``.

    Every shard has ``ceil(n / world)`` items except the last ones, which may be shorter or empty (n=13,
    world=2 → (0, 7), (7, 13); n=2, world=4 → (0, 1), (1, 2), (2, 2), (2, 2)). Equal lengths make the
    padded all-gather of :func:`gather_ordered` a plain concatenation with all padding at the end.
    """
    if n < 0:
        raise ValueError(f"shard_bounds: n must be >= 0, got {n}")
    if world < 1:
        raise ValueError(f"shard_bounds: world must be >= 1, got {world}")
    if not 0 <= rank < world:
        raise ValueError(f"shard_bounds: rank must be in [0, {world}), got {rank}")
    size = math.ceil(n / world)
    start = min(rank * size, n)
    return start, min(start + size, n)


def _check_local_length(length: int, n_total: int, what: str) -> tuple[int, int]:
    rank, world = rank_world()
    start, stop = shard_bounds(n_total, rank, world)
    if length != stop - start:
        raise ValueError(
            f"{what}: rank {rank} holds {length} items but its shard of n_total={n_total} over {world} ranks is "
            f"[{start}, {stop}) ({stop - start} items): compute the local part over shard_bounds(n_total, rank, world)"
        )
    return start, stop


def gather_ordered(local: torch.Tensor, n_total: int) -> torch.Tensor:
    """All ranks' contiguous shards (first dim), concatenated in rank order: the full ``[n_total, …]`` tensor.

    ``local`` holds this rank's rows ``shard_bounds(n_total, rank, world)``. Shards are padded to the common
    length ``ceil(n_total / world)``, ``all_gather``-ed (gloo and nccl; the tensor stays on its device),
    concatenated and truncated to ``n_total``. Ranks with an empty shard may pass any empty tensor: the
    trailing shape and dtype are agreed from the non-empty ranks. Returns ``local`` itself when not distributed.
    """
    _check_local_length(int(local.shape[0]) if local.dim() else -1, n_total, "gather_ordered")
    if not is_distributed():
        return local
    _, world = rank_world()
    size = math.ceil(n_total / world)
    # Agree on trailing shape and dtype (an empty shard cannot know them; a mismatch would crash all_gather).
    meta = (tuple(local.shape[1:]), local.dtype) if local.shape[0] > 0 else None
    metas: list[Any] = [None] * world
    dist.all_gather_object(metas, meta)
    known = {m for m in metas if m is not None}
    if len(known) > 1:
        raise ValueError(f"gather_ordered: ranks disagree on trailing shape/dtype: {sorted(map(str, known))}")
    if not known:  # n_total == 0
        return local
    tail, dtype = known.pop()
    # nccl only moves CUDA tensors (an empty shard's placeholder may sit on the CPU); gloo has no all_gather
    # for bool, so bool travels as uint8.
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else local.device
    wire = torch.uint8 if dtype == torch.bool else dtype
    padded = torch.zeros((size, *tail), dtype=wire, device=device)
    if local.shape[0] > 0:
        padded[: local.shape[0]] = local.to(device=device, dtype=wire)
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    out_device = local.device if local.shape[0] > 0 else device
    return torch.cat(parts, dim=0)[:n_total].to(device=out_device, dtype=dtype)


def gather_ordered_objects(local: list, n_total: int) -> list:
    """List version of :func:`gather_ordered` (via ``all_gather_object``): every rank gets all ``n_total`` items."""
    _check_local_length(len(local), n_total, "gather_ordered_objects")
    if not is_distributed():
        return list(local)
    _, world = rank_world()
    parts: list[Any] = [None] * world
    dist.all_gather_object(parts, list(local))
    return [item for part in parts for item in part]


def compute_ordered(dataset: Dataset, fn: Callable[[Any], torch.Tensor], batch_size: int,
                    num_workers: int = 0, collate_fn: Callable[[list], Any] | None = None) -> torch.Tensor:
    """``fn`` over the whole ``dataset`` in order, split across ranks; every rank returns the full result.

    The distributed evaluation helper for retrieval recipes: each rank runs ``fn(batch)`` (under
    ``torch.no_grad``, batches of its contiguous :func:`shard_bounds` shard, no shuffling), concatenates, and
    :func:`gather_ordered` assembles the ``[len(dataset), …]`` result. For a row-wise deterministic ``fn``
    the gathered result equals the single-process result exactly. Not distributed: runs everything locally.
    """
    n = len(dataset)  # type: ignore[arg-type]
    rank, world = rank_world()
    start, stop = shard_bounds(n, rank, world)
    loader = DataLoader(Subset(dataset, range(start, stop)), batch_size=batch_size, shuffle=False,
                        num_workers=num_workers, collate_fn=collate_fn)
    outputs: list[torch.Tensor] = []
    with torch.no_grad():
        for batch in loader:
            out = fn(batch)
            if not isinstance(out, torch.Tensor):
                raise TypeError(f"compute_ordered: fn must return a Tensor, got {type(out).__name__}")
            outputs.append(out)
    local = torch.cat(outputs, dim=0) if outputs else torch.empty(0)
    return gather_ordered(local, n)


# ------------------------------------------------------------------------------------ SyncBatchNorm
class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks whose backward sums the incoming gradients over ranks too.

    Every rank's loss depends on the shared statistics, so the gradient of a shared statistic is the sum of
    all ranks' contributions (as in ``torch.nn.SyncBatchNorm``'s backward).
    """

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor, group: Any) -> torch.Tensor:  # noqa: D102
        ctx.group = group
        out = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out, op=dist.ReduceOp.SUM, group=group)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: D102
        return _AllReduceSum.apply(grad, ctx.group), None


class GlooSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Synchronised BatchNorm (any input rank >= 2) that works on CPU with gloo, where torch's does not.

    Deliberately *not* an ``nn.SyncBatchNorm``: DDP refuses to wrap a CPU module containing one ("SyncBatchNorm
    layers only work with GPU modules"). In training mode under a multi-rank process group it uses two
    autograd-aware all-reduces: per-channel sums and counts (→ global mean), then per-channel sums of squared
    deviations (→ global biased variance, used to normalise); the running statistics get the unbiased variance,
    exactly as BatchNorm over the concatenated global batch. Otherwise it is plain BatchNorm.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, process_group: Any = None) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        self.process_group = process_group

    def _check_input_dim(self, input: torch.Tensor) -> None:  # noqa: A002 - torch's signature
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 - torch's signature
        if not self.training or not is_distributed():
            return super().forward(input)
        self._check_input_dim(input)
        group = self.process_group or dist.group.WORLD
        factor = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        dims = [0, *range(2, input.dim())]
        shape = [1, input.shape[1]] + [1] * (input.dim() - 2)
        count = torch.tensor([input.numel() // input.shape[1]], dtype=input.dtype, device=input.device)
        sums = _AllReduceSum.apply(torch.cat([input.sum(dims), count]), group)
        total = sums[-1]
        mean = sums[:-1] / total
        centred = input - mean.view(shape)
        var = _AllReduceSum.apply((centred * centred).sum(dims), group) / total
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.weight is not None:
            out = out * self.weight.view(shape)
        if self.bias is not None:
            out = out + self.bias.view(shape)
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                n = float(total)
                unbiased = var * (n / max(n - 1.0, 1.0))
                self.running_mean.mul_(1 - factor).add_(mean.detach(), alpha=factor)
                self.running_var.mul_(1 - factor).add_(unbiased.detach(), alpha=factor)
        return out


def _swap_batchnorm(module: nn.Module, convert: Callable[[nn.Module], nn.Module | None]) -> nn.Module:
    """Recursively replace the layers for which ``convert`` returns a new module (sharing their tensors)."""
    out = convert(module) or module
    if out is not module:
        if getattr(module, "affine", False):
            with torch.no_grad():
                out.weight = module.weight
                out.bias = module.bias
        out.running_mean = module.running_mean
        out.running_var = module.running_var
        out.num_batches_tracked = module.num_batches_tracked
        out.training = module.training
        if hasattr(module, "qconfig"):
            out.qconfig = module.qconfig
    for name, child in module.named_children():
        out.add_module(name, _swap_batchnorm(child, convert))
    return out


class SyncBatchNormPlugin(TorchSyncBatchNorm):
    """Lightning layer-sync plugin: torch's ``nn.SyncBatchNorm`` under nccl, :class:`GlooSyncBatchNorm` otherwise.

    ``trainer.sync_batchnorm=True`` with Lightning's default plugin crashes under DDP on CPU (torch's
    SyncBatchNorm has CUDA kernels only and DDP rejects it in CPU modules). Pass this instead:
    ``pl.Trainer(sync_batchnorm=True, plugins=[SyncBatchNormPlugin(), …])`` — Lightning accepts a
    ``TorchSyncBatchNorm`` subclass together with ``sync_batchnorm=True``. ``apply`` runs before the model is
    moved to its device, so the process-group backend (set by the engine from the accelerator) decides.
    """

    def apply(self, model: nn.Module) -> nn.Module:
        if dist.is_available() and dist.is_initialized() and dist.get_backend() == "nccl":
            return super().apply(model)

        def to_sync(m: nn.Module) -> nn.Module | None:
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and not isinstance(m, (GlooSyncBatchNorm, nn.SyncBatchNorm)):
                return GlooSyncBatchNorm(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats)
            return None

        return _swap_batchnorm(model, to_sync)

    def revert(self, model: nn.Module) -> nn.Module:
        def to_plain(m: nn.Module) -> nn.Module | None:
            if isinstance(m, GlooSyncBatchNorm):
                return _BatchNormXd(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats)
            return None

        return super().revert(_swap_batchnorm(model, to_plain))
