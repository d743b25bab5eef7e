"""Place-grouped training batches for cross-traversal place recognition (``data.batching: places``).

NetVLAD's tuples (anchor, positive, n negatives) spend most of each forward pass on windows that serve one
anchor once. GSV-Cities (Ali-bey et al., Neurocomputing 2022, §3-4) instead fills a batch with P *places*,
each seen in K images, and mines every anchor's hardest positive and negative inside the batch: with the same
number of images per step, every image is an anchor and every other place is a candidate negative.

Here a *place* is a window of the reference traversal (the map, e.g. drive1) together with one window of
each other recording within ``member_m`` metres of it (a random one per item, so the place is seen from
varying spots), K = number of recordings. A training item is two places: a random one and, once a
descriptor cache is set (:meth:`PlacePairDataset.set_descriptors`, refreshed every epoch by the task), the
place beyond ``neg_m`` most easily confused with it among ``mining_candidates`` random ones (NetVLAD's hard
negatives, at the level of places). Items carry their windows' positions: the loss decides positives
(< ``pos_m``) and negatives (> ``neg_m``) from metres, so two items that happen to show nearby places never
count as negatives of each other.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch.utils.data import Dataset

from torchrepro.core.errors import DataError
from torchrepro.core.seeding import derive_seed
from torchrepro.place_recognition.windows import MiningCache, WindowAugment

log = logging.getLogger(__name__)


def group_places(positions: np.ndarray, recordings: np.ndarray, reference: int, others: list, member_m: float,
                 ) -> tuple[np.ndarray, list[list[np.ndarray]]]:
    """Places = the reference recording's windows that every other recording passed within ``member_m``.

    Returns the kept centres (window indices) and, per centre, per other recording, its windows near the centre.
    Centres some recording never came near (it started later, took a detour) are left out with a count in the log.
    """
    centres = np.flatnonzero(recordings == reference)
    windows_of = [np.flatnonzero(recordings == r) for r in others]
    members: list[list[np.ndarray]] = []
    keep = []
    for c in centres:
        near = [idx[np.linalg.norm(positions[idx] - positions[c], axis=1) < member_m] for idx in windows_of]
        if all(len(n) for n in near):
            keep.append(c)
            members.append(near)
    if not keep:
        raise DataError(f"no reference window has a window of every other recording within {member_m} m; "
                        f"check that the recordings cover the same route (positions/units)")
    if len(keep) < len(centres):
        log.info("place batches: %d of %d reference windows lack a window of every recording within %.1f m; "
                 "they are not used as places", len(centres) - len(keep), len(centres), member_m)
    return np.asarray(keep), members


class PlacePairDataset(MiningCache, Dataset):
    """Items keyed ``(epoch, i)``: ``{"x": [2K, C, S, S], "pos": [2K, 2]}``, two places × K recordings (the map's
    window first).

    Args:
        inputs: cached network inputs of every window of every training recording (one index space).
        positions: ``[N, 2]`` metres, same index space.
        recordings: ``[N]`` recording id of each window; ``reference`` is the map's id (place centres).
        member_m: a recording's window joins a place when it lies within this distance of the centre.
        neg_m: the confusable place of an item lies beyond this distance.
        places_per_epoch: items per epoch (fresh seeded permutation of the centres, repeated if needed).
        recordings_per_place: K, the recordings showing each place in an item: the map and K − 1 of the others,
            drawn per place (None: all of them). More recordings than K widen the conditions seen per epoch at
            the same cost per step.
    """

    def __init__(self, inputs: np.ndarray, positions: np.ndarray, recordings: np.ndarray, *, reference: int,
                 member_m: float, neg_m: float, seed: int, places_per_epoch: int | None = None,
                 mining: str = "random", mining_candidates: int = 100,
                 augment: WindowAugment | None = None, recordings_per_place: int | None = None) -> None:
        self.inputs, self.positions = inputs, np.asarray(positions, dtype=np.float64)
        self.recordings = np.asarray(recordings)
        self.seed, self.neg_m, self.mining = seed, float(neg_m), mining
        self.mining_candidates = int(mining_candidates)
        self.augment = augment or WindowAugment()
        others = [r for r in np.unique(self.recordings) if r != reference]
        if not others:
            raise DataError("place batches need at least one recording besides the reference traversal")
        self.centres, self.members = group_places(self.positions, self.recordings, reference, others, member_m)
        if recordings_per_place is not None and not 2 <= recordings_per_place <= 1 + len(others):
            raise ValueError(f"recordings_per_place must be in [2, {1 + len(others)}], got {recordings_per_place}")
        self.k = recordings_per_place or 1 + len(others)
        centre_pos = self.positions[self.centres]
        dist = np.linalg.norm(centre_pos[:, None] - centre_pos[None], axis=2)
        self.far = [np.flatnonzero(row > self.neg_m) for row in dist]  # candidate confusable places
        if any(len(f) == 0 for f in self.far):
            raise DataError(f"a place has no other place beyond data.neg_m={neg_m} m: the route is too short")
        self.places_per_epoch = int(places_per_epoch or len(self.centres))

    def __len__(self) -> int:
        return self.places_per_epoch

    # -- mining cache (same contract as TupleDataset)
    def mining_windows(self, epoch: int) -> np.ndarray:
        """Windows whose descriptors mining consults: the place centres (the map's windows)."""
        return np.sort(self.centres)

    # -- items
    def place_of(self, epoch: int, i: int) -> int:
        n = len(self.centres)
        rounds = i // n
        perm = np.random.default_rng(derive_seed(self.seed, "vpr-places", epoch, rounds)).permutation(n)
        return int(perm[i % n])

    def choose(self, epoch: int, i: int) -> np.ndarray:
        """Window indices ``[K of place a, K of place b]`` of item ``i`` in ``epoch``."""
        rng = np.random.default_rng(derive_seed(self.seed, "vpr-place-item", epoch, i))
        a = self.place_of(epoch, i)
        far = self.far[a]
        if self.mining == "hard" and self.descriptors is not None:
            cand = far[rng.choice(len(far), size=min(self.mining_candidates, len(far)), replace=False)]
            d = torch.cdist(self.cached_descriptors(self.centres[a]), self.cached_descriptors(self.centres[cand]))[0]
            b = int(cand[int(torch.argmin(d))])
        else:
            b = int(far[rng.integers(len(far))])
        out = []
        n_other = len(self.members[a])
        for p in (a, b):
            # the map's window, then K - 1 of the other recordings (all of them, or a random subset per place)
            which = np.sort(rng.choice(n_other, size=self.k - 1, replace=False)) if self.k - 1 < n_other else \
                range(n_other)
            out.append(self.centres[p])
            out.extend(int(self.members[p][r][rng.integers(len(self.members[p][r]))]) for r in which)
        return np.asarray(out, dtype=np.int64)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        epoch, i = key
        windows = self.choose(epoch, i)
        x = torch.from_numpy(np.ascontiguousarray(self.inputs[windows])).float()
        gen = torch.Generator().manual_seed(derive_seed(self.seed, "vpr-augment", epoch, i))
        return {"x": self.augment(x, gen), "pos": torch.from_numpy(self.positions[windows]).float()}
