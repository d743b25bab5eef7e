"""P×K identity sampler for metric learning (re-ID, VPR): every batch holds P identities × K images each.

Semantics follow torchreid's ``RandomIdentitySampler`` (torchreid/data/sampler.py):

* an identity's images are shuffled and cut into groups of ``K = num_instances`` (a remainder shorter than K is
  dropped); an identity with fewer than K images gives one group drawn **with replacement**;
* groups of different identities are interleaved so every batch has ``P = batch_size // K`` distinct identities.

Where this sampler differs, on purpose:

* **Deterministic.** The order of an epoch is a pure function of ``(seed, epoch)`` (a local
  ``numpy.random.Generator`` seeded by :func:`~torchrepro.core.seeding.derive_seed`); the global RNGs are
  never touched. ``set_epoch`` and a resume ``skip`` (in samples) work as in
  :class:`torchrepro.core.data.ResumableSampler`, so :class:`~torchrepro.core.data.ResumableLoader` can wrap it.
* **Exact, fixed epoch length, every identity used.** torchreid picks identities at random until fewer than P
  have groups left, so the epoch length is random (its ``__len__`` is only an estimate) and an identity can go
  unused. Here the groups are *dealt* instead: with ``G`` groups (after capping, below) and ``Q`` identities
  per step, an epoch has ``T = ceil(G / Q)`` steps. The identities are put in a random order, their groups
  concatenated (each identity's groups contiguous) and padded to ``T·Q`` with fresh groups of randomly chosen
  identities, and position ``i`` goes to step ``i mod T``. Because one identity's run is at most ``T`` long, its
  groups land in distinct steps, so each step has ``Q`` distinct identities; then the steps and the identities
  inside each step are shuffled. Every group is used (and hence every identity with ≥ 1 image), and ``T``
  depends only on the per-identity counts, so ``len()`` is the same every epoch and exact. An identity with
  more than ``T`` groups would need two slots in one step, so its surplus groups are dropped (as torchreid
  drops leftovers) and ``T`` recomputed until stable.
* **DDP: disjoint identities per step.** Under ``torch.distributed`` with ``W`` ranks the dealing above is done
  once for ``Q = W·P`` identities per step (the same on every rank, since it depends only on seed and epoch),
  and rank ``r`` takes identities ``r·P … (r+1)·P − 1`` of each step. So at every step the ranks hold disjoint
  identities, every rank has the same number of batches ``T``, and the union of the ranks' ``i``-th batches is
  exactly the ``i``-th batch of a single-process sampler with ``batch_size = W·P·K`` (the same promise as
  :class:`~torchrepro.core.data.ResumableSampler`). (Splitting ``W`` consecutive *single-rank* batches would
  not give disjointness: consecutive P-identity batches may share an identity.) It needs ``W·P`` identities.

Yielded indices are flat (``len = T·P·K`` per rank); use ``batch_size = P·K`` with ``drop_last=False`` and no
shuffling in the DataLoader, and each DataLoader batch is one P×K batch.
"""

from __future__ import annotations

import math
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler

from torchrepro.core.data import dist_rank_world
from torchrepro.core.seeding import derive_seed

__all__ = ["RandomIdentitySampler"]


class RandomIdentitySampler(Sampler[int]):
    """Seeded, DDP-aware P×K sampler (see module docstring).

    Args:
        pids: identity label of every dataset item (``pids[i]`` is the identity of item ``i``).
        batch_size: ``P·K`` items per batch (per rank under DDP).
        num_instances: ``K``, images per identity in a batch.
        seed: base seed; the order of an epoch is a pure function of ``(seed, epoch)``.
    """

    def __init__(self, pids: Sequence[int], batch_size: int, num_instances: int, seed: int = 0,
                 keyed: bool = False) -> None:
        if num_instances < 1:
            raise ValueError(f"num_instances must be >= 1, got {num_instances}")
        if batch_size < num_instances or batch_size % num_instances:
            raise ValueError(
                f"batch_size ({batch_size}) must be a positive multiple of num_instances ({num_instances})")
        labels = np.asarray(pids.cpu() if isinstance(pids, torch.Tensor) else pids).reshape(-1)
        self.batch_size = int(batch_size)
        self.num_instances = int(num_instances)
        self.num_pids_per_batch = self.batch_size // self.num_instances
        self.seed = int(seed)
        # keyed: yield (epoch, slot, index) so a Dataset can make augmentation a pure function of
        # (seed, epoch, slot); slot is unique per rank and position, as an index may repeat within an epoch.
        self.keyed = bool(keyed)
        self.epoch = 0
        self.skip = 0  # samples of this epoch already consumed before a resume (ResumableLoader sets it)
        self.pids = labels
        unique, inverse = np.unique(labels, return_inverse=True)
        self.unique_pids = unique
        # Item indices of each identity, in dataset order (sorted identities: independent of input order).
        order = np.argsort(inverse, kind="stable")
        counts = np.bincount(inverse, minlength=len(unique))
        self.index_lists: list[np.ndarray] = np.split(order, np.cumsum(counts)[:-1]) if len(unique) else []
        if len(unique) < self.num_pids_per_batch:
            raise ValueError(
                f"RandomIdentitySampler needs at least P = batch_size // num_instances = "
                f"{self.num_pids_per_batch} identities, but the data has {len(unique)}")
        self._plan_cache: tuple[tuple[int, int], list[list[np.ndarray]]] | None = None

    # ------------------------------------------------------------------------------------------------ sizing
    def _group_counts(self, world: int) -> tuple[np.ndarray, int]:
        """Groups kept per identity (after capping at the step count) and the number of steps ``T``."""
        q = self.num_pids_per_batch * world
        k = self.num_instances
        if len(self.unique_pids) < q:
            raise ValueError(
                f"RandomIdentitySampler under DDP needs world_size·P = {world}·{self.num_pids_per_batch} = {q} "
                f"identities (disjoint per rank), but the data has {len(self.unique_pids)}")
        groups = np.array([max(len(ix), k) // k for ix in self.index_lists], dtype=np.int64)
        steps = math.ceil(int(groups.sum()) / q)
        while True:  # an identity can take at most one slot per step: cap, recompute, until stable
            capped = np.minimum(groups, steps)
            new_steps = math.ceil(int(capped.sum()) / q)
            if new_steps == steps:
                return capped, steps
            steps = new_steps

    def num_steps(self) -> int:
        """Batches per rank in an epoch (the same for every epoch and every rank)."""
        return self._group_counts(dist_rank_world()[1])[1]

    def __len__(self) -> int:
        return self.num_steps() * self.batch_size

    def set_epoch(self, epoch: int) -> None:
        """Called at every epoch start; a new epoch forgets any pending resume skip."""
        if epoch != self.epoch:
            self.skip = 0
        self.epoch = epoch

    # -------------------------------------------------------------------------------------------- the plan
    def global_plan(self, world: int = 1) -> list[list[np.ndarray]]:
        """The epoch's steps; each a list of ``world·P`` groups (arrays of K item indices), distinct identities.

        A pure function of ``(seed, epoch, world)``; rank ``r`` uses groups ``r·P … (r+1)·P − 1`` of each step.
        """
        key = (self.epoch, world)
        if self._plan_cache is not None and self._plan_cache[0] == key:
            return self._plan_cache[1]
        counts, steps = self._group_counts(world)
        q = self.num_pids_per_batch * world
        k = self.num_instances
        rng = np.random.default_rng(derive_seed(self.seed, "random-identity-sampler", self.epoch))

        def fresh_group(ix: np.ndarray) -> np.ndarray:
            return rng.choice(ix, size=k, replace=len(ix) < k)

        groups_of: list[list[np.ndarray]] = []
        for ix, keep in zip(self.index_lists, counts):
            if len(ix) < k:
                groups_of.append([fresh_group(ix)])  # torchreid: too few images -> sample with replacement
            else:
                perm = rng.permutation(ix)
                groups_of.append([perm[j * k:(j + 1) * k] for j in range(int(keep))])
        # Pad to exactly T·Q slots with extra groups of random identities that still have room (< T groups).
        # Room suffices: sum(T − g) = N·T − G >= Q·T − G = number of pads, since N >= Q.
        for _ in range(steps * q - int(counts.sum())):
            room = np.flatnonzero(np.array([len(g) for g in groups_of]) < steps)
            p = int(rng.choice(room))
            groups_of[p].append(fresh_group(self.index_lists[p]))
        # Deal: identities in random order, runs contiguous, position i -> step i mod T.
        flat = [g for p in rng.permutation(len(groups_of)) for g in groups_of[p]]
        assert len(flat) == steps * q
        plan = [[flat[i] for i in range(t, steps * q, steps)] for t in range(steps)]
        plan = [plan[t] for t in rng.permutation(steps)]
        plan = [[step[j] for j in rng.permutation(q)] for step in plan]
        self._plan_cache = (key, plan)
        return plan

    def epoch_order(self) -> list[int]:
        """This rank's item indices for the current epoch (before skipping)."""
        rank, world = dist_rank_world()
        p = self.num_pids_per_batch
        order: list[int] = []
        for step in self.global_plan(world):
            for group in step[rank * p:(rank + 1) * p]:
                order.extend(int(i) for i in group)
        return order

    def __iter__(self) -> Iterator[int] | Iterator[tuple[int, int, int]]:
        start = self.skip
        order = self.epoch_order()[start:]
        self.skip = 0  # only the first pass after a resume skips
        if not self.keyed:
            return iter(order)
        rank, world = dist_rank_world()
        return iter((self.epoch, (start + j) * world + rank, index) for j, index in enumerate(order))
