"""Resumable, DDP-aware data loading.

Exact resume needs the loader to restart mid-epoch at the batch after the last one trained. Lightning (≥2.2)
saves and restores a training loader's state when the loader has ``state_dict``/``load_state_dict``; these
classes provide that without any RNG state inside the loader:

* :class:`ResumableSampler` — the order of an epoch is a pure function of ``(seed, epoch)``; under DDP the
  permutation is padded and interleaved across ranks (rank ``r`` takes positions ``r, r+W, …``), so the
  union of the ranks' ``i``-th batches of size ``b`` is exactly the ``i``-th batch of size ``W·b`` of a single
  process. Optionally it yields ``(epoch, index)`` keys so a Dataset can make augmentation a pure function of
  ``(seed, epoch, index)`` (see :func:`keyed_rng`), and worker processes carry no RNG state.
* :class:`ResumableLoader` — a DataLoader that counts the batches it has handed to the training loop and
  saves ``{epoch, batches}``; on load the sampler skips exactly that many samples.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Iterator, Sized

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Sampler

from torchrepro.core.seeding import derive_seed


def dist_rank_world() -> tuple[int, int]:
    """(rank, world size) of the default process group, or (0, 1) when not distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class ResumableSampler(Sampler):
    """Seeded, shardable, skippable sampler (see module docstring)."""

    def __init__(self, data: Sized | int, seed: int, shuffle: bool = True, keyed: bool = False,
                 pad: bool = True) -> None:
        self.n = data if isinstance(data, int) else len(data)
        self.seed = seed
        self.shuffle = shuffle
        self.keyed = keyed
        # Training pads so every rank takes the same number of steps (DDP needs it); evaluation must not,
        # or the padded duplicates would be counted twice in the metric.
        self.pad = pad
        self.epoch = 0
        self.skip = 0  # samples of this epoch already consumed before a resume

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at every epoch start; a new epoch forgets any pending resume skip."""
        if epoch != self.epoch:
            self.skip = 0
        self.epoch = epoch

    def __len__(self) -> int:
        rank, world = dist_rank_world()
        return math.ceil(self.n / world) if self.pad else len(range(rank, self.n, world))

    def epoch_order(self) -> list[int]:
        """This rank's indices for the current epoch (before skipping)."""
        rank, world = dist_rank_world()
        if self.shuffle:
            gen = torch.Generator().manual_seed(derive_seed(self.seed, "order", self.epoch))
            order = torch.randperm(self.n, generator=gen).tolist()
        else:
            order = list(range(self.n))
        if self.pad:
            total = math.ceil(self.n / world) * world
            order += order[: total - self.n]  # pad by wrapping, as DistributedSampler does
        return order[rank::world]

    def __iter__(self) -> Iterator[Any]:
        order = self.epoch_order()[self.skip:]
        self.skip = 0  # only the first pass after a resume skips
        for index in order:
            yield (self.epoch, index) if self.keyed else index


class ResumableLoader(DataLoader):
    """DataLoader over a :class:`ResumableSampler` whose position survives a checkpoint."""

    def __init__(self, dataset: Any, sampler: ResumableSampler, batch_size: int, **kwargs: Any) -> None:
        # A private generator: creating an iterator draws a base seed, which must not disturb the global RNG
        # (a resumed run would otherwise draw it at a different point of the global stream).
        gen = torch.Generator().manual_seed(derive_seed(sampler.seed, "loader"))
        super().__init__(dataset, batch_size=batch_size, sampler=sampler, generator=gen, **kwargs)
        self._batches = 0

    def __iter__(self) -> Iterator[Any]:
        # A generator, so the underlying iterator (and the sampler's order) is created at the first next():
        # after Lightning has called set_epoch, not when it calls iter() during setup.
        return self._counting_iter()

    def _counting_iter(self) -> Iterator[Any]:
        sampler: ResumableSampler = self.sampler  # type: ignore[assignment]
        self._batches = sampler.skip // self.batch_size
        for batch in super().__iter__():
            self._batches += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.sampler.epoch, "batches": self._batches}  # type: ignore[attr-defined]

    def load_state_dict(self, state: dict[str, int]) -> None:
        sampler: ResumableSampler = self.sampler  # type: ignore[assignment]
        sampler.epoch = int(state["epoch"])
        sampler.skip = int(state["batches"]) * int(self.batch_size)
        self._batches = int(state["batches"])


@contextlib.contextmanager
def keyed_rng(seed: int, *key: int | str) -> Iterator[torch.Generator]:
    """Seed torch's global CPU RNG from ``(seed, *key)`` for one sample, usually ``(seed, epoch, index)`` (a tag may
    lead the key to keep two draws of one sample apart), then restore it.

    torchvision's random transforms draw from the global RNG; forking it per sample makes augmentation a pure
    function of the sample key, independent of worker count, order and resume point.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, *key))
        yield torch.default_generator
