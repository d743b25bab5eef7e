"""Event traversals → windows with positions → cached network inputs → (anchor, positive, negatives) tuples.

A *traversal* is one recording of a route: MVSEC HDF5 (``*_data.hdf5`` + ``*_gt.hdf5``), the seed's folder of
``<timestamp>.npy`` windows + a positions file, or the simulated event drive (written in the MVSEC layout and
read back through the MVSEC reader). Each window gets the position of the trajectory interpolated at its
timestamp.

The seed re-read and re-voxelised 12 ``.npy`` files for every training item (anchor, positive, 10 negatives).
Here every window is turned into its network input once — voxel grid, centre crop, resize, normalisation —
and stored in a float16 ``.npy`` cache (memory-mapped), so a training item is 12 array reads. The cache file
name is a hash of the sources and every parameter that shapes the input, so a changed config never reuses a
stale cache. ``benchmarks/vpr_pipeline.py`` measures the gain.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from torchrepro.core.errors import DataError
from torchrepro.core.seeding import derive_seed
from torchrepro.events.mvsec import (
    MVSECEvents,
    drop_sparse_windows,
    fixed_count_windows,
    fixed_duration_windows,
    interpolate_positions,
    read_mvsec_poses,
)
from torchrepro.events.denoise import background_activity_filter
from torchrepro.events.representations import event_histogram, voxel_grid
from torchrepro.place_recognition.config import InputSpec
from torchrepro.place_recognition.model import centre_crop_resize

log = logging.getLogger(__name__)

BASELINE_SCALE = 4  # the non-learned baseline's count images are the full sensor down-sampled 4x (65x87 on DAVIS346)


# --------------------------------------------------------------------------------------------- sources
class WindowSource(Protocol):
    """A traversal cut into event windows, each with a timestamp and an interpolated (x, y) position."""

    name: str
    timestamps: np.ndarray
    positions: np.ndarray

    def __len__(self) -> int: ...
    def events(self, i: int) -> np.ndarray: ...
    def fingerprint(self) -> dict: ...


def _file_stamp(path: Path) -> list:
    st = Path(path).stat()
    return [str(Path(path).resolve()), st.st_size, st.st_mtime_ns]


class MVSECTraversal:
    """MVSEC HDF5 recording windowed by event count (seed: 15,000) or duration; events read lazily."""

    def __init__(self, data_path: Path, gt_path: Path, window: Literal["count", "duration"] = "count",
                 events_per_window: int = 15_000, window_s: float = 0.05, min_events: int = 1000) -> None:
        self.name = Path(data_path).name
        self.data_path, self.gt_path = Path(data_path), Path(gt_path)
        self.reader = MVSECEvents(self.data_path)
        if window == "count":
            windows = fixed_count_windows(len(self.reader), events_per_window)
        else:
            windows = fixed_duration_windows(self.reader, window_s)
        self.windows, dropped = drop_sparse_windows(windows, max(min_events, 1))
        if dropped:
            log.info("%s: dropped %d of %d windows with fewer than %d events", self.name, dropped, len(windows),
                     max(min_events, 1))
        if not self.windows:
            raise DataError(f"{self.data_path}: no window holds at least {min_events} events; lower "
                            f"data.min_events or check the recording")
        self.timestamps = self.reader.window_timestamps(self.windows)
        pose_ts, xy = read_mvsec_poses(self.gt_path)
        self.positions = interpolate_positions(pose_ts, xy, self.timestamps)
        self._params = [window, events_per_window, window_s, min_events]

    def __len__(self) -> int:
        return len(self.windows)

    def events(self, i: int) -> np.ndarray:
        start, stop = self.windows[i]
        return self.reader.slice(start, stop)

    def fingerprint(self) -> dict:
        return {"mvsec": [_file_stamp(self.data_path), _file_stamp(self.gt_path)], "windows": self._params}


class NpyTraversal:
    """The seed's layout: ``<timestamp>.npy`` windows (columns t, x, y, p) + a positions file (x, y, t)."""

    def __init__(self, folder: Path, positions_path: Path, height: int, width: int, min_events: int = 1000) -> None:
        from torchrepro.events.npy_windows import NpyWindowFolder, window_positions

        self.name = Path(folder).name
        full = NpyWindowFolder(folder, height, width)
        self.folder, dropped = full.drop_sparse(max(min_events, 1))  # logs the dropped count itself
        if len(self.folder) == 0:
            raise DataError(f"{folder}: no window holds at least {min_events} events; lower data.min_events")
        self.timestamps = np.asarray(self.folder.timestamps)
        self.positions = window_positions(self.folder, positions_path)
        self._stamp = [str(Path(folder).resolve()), len(full), _file_stamp(Path(positions_path)), min_events]

    def __len__(self) -> int:
        return len(self.folder)

    def events(self, i: int) -> np.ndarray:
        return self.folder.load(i)

    def fingerprint(self) -> dict:
        return {"npy": self._stamp}


class ConcatTraversal:
    """Several traversals of one route as one window index: ``[0, n_0)`` are the first's windows, then the next…

    Used when training anchors come from another recording than the database (``train_protocol: cross``):
    one index space lets a tuple name windows of both, and one descriptor cache cover both for mining.
    Positions must share one metric frame (the same GPS/route coordinates).
    """

    def __init__(self, sources: list[WindowSource]) -> None:
        if not sources:
            raise ValueError("ConcatTraversal needs at least one traversal")
        self.sources = list(sources)
        self.name = "+".join(s.name for s in self.sources)
        self.offsets = np.cumsum([0] + [len(s) for s in self.sources])
        self.timestamps = np.concatenate([s.timestamps for s in self.sources])
        self.positions = np.concatenate([s.positions for s in self.sources])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def part(self, k: int) -> np.ndarray:
        """Window indices of the ``k``-th traversal."""
        return np.arange(self.offsets[k], self.offsets[k + 1])

    def events(self, i: int) -> np.ndarray:
        k = int(np.searchsorted(self.offsets, i, side="right")) - 1
        return self.sources[k].events(int(i - self.offsets[k]))

    def fingerprint(self) -> dict:
        return {"concat": [s.fingerprint() for s in self.sources]}


class StackedInputs:
    """Read-only view of several ``[n_i, …]`` arrays (memory-mapped caches) as one ``[Σ n_i, …]`` array.

    Supports what the datasets need, ``x[i]`` and ``x[index_array]``, without copying the caches (at the seed's
    224×224 a day of MVSEC windows is many gigabytes).
    """

    def __init__(self, arrays: list[np.ndarray]) -> None:
        if not arrays or any(a.shape[1:] != arrays[0].shape[1:] for a in arrays):
            raise ValueError("StackedInputs needs arrays of one item shape")
        self.arrays = list(arrays)
        self.offsets = np.cumsum([0] + [len(a) for a in self.arrays])
        self.shape = (int(self.offsets[-1]), *arrays[0].shape[1:])
        self.dtype = arrays[0].dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: int | np.ndarray) -> np.ndarray:
        idx = np.asarray(index, dtype=np.int64)
        if np.any((idx < 0) | (idx >= len(self))):
            raise IndexError(f"index out of range for {len(self)} windows")
        part = np.searchsorted(self.offsets, idx, side="right") - 1
        if idx.ndim == 0:
            return self.arrays[int(part)][int(idx - self.offsets[part])]
        out = np.empty((idx.size, *self.shape[1:]), dtype=self.dtype)
        for k in np.unique(part):
            sel = np.flatnonzero(part == k)
            out[sel] = self.arrays[int(k)][idx[sel] - self.offsets[k]]
        return out


# --------------------------------------------------------------------------------------------- inputs
def normalise_nonzero(grid: torch.Tensor) -> torch.Tensor:
    """rpg_e2vid's voxel-grid normalisation: zero mean, unit std over the non-zero cells; zeros stay zero.

    Makes windows of different event density comparable without letting the empty background dominate.
    """
    mask = grid != 0
    if int(mask.sum()) < 2:
        return grid
    values = grid[mask]
    std = values.std()
    grid = grid.clone()
    grid[mask] = (values - values.mean()) / (std if std > 0 else 1.0)
    return grid


def window_input(events: np.ndarray, spec: InputSpec, source: str) -> torch.Tensor:
    """One window → ``[C, size, size]`` float32 network input (voxel grid or 2-channel histogram), after the
    background-activity filter when ``spec.denoise_s`` > 0."""
    if spec.denoise_s > 0:
        events = events[background_activity_filter(events, spec.height, spec.width, spec.denoise_s)]
    if spec.representation == "voxel":
        grid = voxel_grid(events, spec.num_bins, spec.height, spec.width, source=source)
    elif spec.representation == "histogram":
        grid = event_histogram(events, spec.height, spec.width, source=source)
    else:
        raise ValueError("the EST representation is computed inside the network, not cached")
    if spec.normalize:
        grid = normalise_nonzero(grid)
    return centre_crop_resize(grid, spec.size)


def count_shape(spec: InputSpec) -> tuple[int, int]:
    return max(1, round(spec.height / BASELINE_SCALE)), max(1, round(spec.width / BASELINE_SCALE))


def count_image(events: np.ndarray, spec: InputSpec, source: str) -> torch.Tensor:
    """The baseline's raw event-count image: events per pixel (both polarities) over the whole sensor (no crop:
    the baseline keeps every event the learned model could see), area-averaged down 4×."""
    hist = event_histogram(events, spec.height, spec.width, source=source).sum(dim=0)
    return F.interpolate(hist[None, None], size=count_shape(spec), mode="area")[0, 0]


#: bump when the cached values change for the same sources and spec (3: the voxel grid's last event lands exactly
#: in bin B-1, no ~1e-16 leak into bin B-2 that the non-zero normalisation then scaled up)
CACHE_VERSION = 3


def _cache_key(source: WindowSource, spec: InputSpec, what: str) -> str:
    blob = json.dumps({"source": source.fingerprint(), "spec": spec.__dict__, "what": what, "v": CACHE_VERSION},
                      sort_keys=True, default=str)
    return hashlib.blake2b(blob.encode(), digest_size=10).hexdigest()


def window_label(source: WindowSource, i: int) -> str:
    """Where window ``i`` comes from, for error messages: the recording's file (MVSEC) or the traversal's name."""
    if isinstance(source, ConcatTraversal):
        k = int(np.searchsorted(source.offsets, i, side="right")) - 1
        return window_label(source.sources[k], int(i - source.offsets[k]))
    return f"{getattr(source, 'data_path', source.name)} window {i}"


def _build_array(source: WindowSource, shape: tuple[int, ...], fn, path: Path) -> np.ndarray:
    """Compute ``fn(events, source_name)`` for every window into a float16 ``.npy`` at ``path`` (atomic)."""
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(len(source), *shape))
        for i in range(len(source)):
            out[i] = fn(source.events(i), window_label(source, i)).numpy().astype(np.float16)
        out.flush()
        del out
        os.replace(tmp, path)
    finally:  # a bad window (events off the sensor…) leaves no half-written cache behind
        tmp.unlink(missing_ok=True)
    return np.load(path, mmap_mode="r")


def cached_inputs(source: WindowSource, spec: InputSpec, cache_dir: Path, what: Literal["inputs", "counts"]) -> np.ndarray:
    """The ``[n, C, S, S]`` inputs (``what="inputs"``) or ``[n, H/4, W/4]`` count images of every window, cached."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"{what}-{_cache_key(source, spec, what)}.npy"
    if path.is_file():
        return np.load(path, mmap_mode="r")
    log.info("%s: computing %s of %d windows into %s", source.name, what, len(source), path)
    if what == "inputs":
        shape = (spec.channels, spec.size, spec.size)
        return _build_array(source, shape, lambda ev, name: window_input(ev, spec, name), path)
    return _build_array(source, count_shape(spec), lambda ev, name: count_image(ev, spec, name), path)


def check_window_events(source: WindowSource, spec: InputSpec) -> None:
    """Read every window of ``source`` and check its events as building a cache does (a readable file, events on
    the sensor and in time order), writing nothing: for the EST representation, which caches no inputs, so that
    its training windows are not first read mid-epoch. Raises the reader's or the representation's DataError."""
    for i in range(len(source)):
        event_histogram(source.events(i), spec.height, spec.width, source=window_label(source, i))


# --------------------------------------------------------------------------------------------- geometry
def split_query_database(n: int, query_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded shuffle of ``n`` windows into query (``query_fraction``, seed: 30 %) and database indices (sorted)."""
    if not 0.0 < query_fraction < 1.0:
        raise DataError(f"data.query_fraction must be in (0, 1), got {query_fraction}")
    perm = np.random.default_rng(derive_seed(seed, "vpr-split")).permutation(n)
    n_query = int(round(n * query_fraction))
    if n_query == 0 or n_query == n:
        raise DataError(f"{n} windows cannot be split into queries and database with query_fraction={query_fraction}")
    return np.sort(perm[:n_query]), np.sort(perm[n_query:])


def within_radius(query_pos: np.ndarray, db_pos: np.ndarray, radius: float) -> list[np.ndarray]:
    """For each query, the (sorted) database indices closer than ``radius`` metres: real distances, not squared
    (the seed compared *squared* distances with 10 and 25, a bug: those are 3.2 m and 5 m)."""
    out: list[np.ndarray] = []
    chunk = max(1, 4_000_000 // max(len(db_pos), 1))
    for s in range(0, len(query_pos), chunk):
        d = np.sqrt(((query_pos[s : s + chunk, None, :] - db_pos[None, :, :]) ** 2).sum(-1))
        out.extend(np.flatnonzero(row < radius) for row in d)
    return out


# --------------------------------------------------------------------------------------------- datasets
class MiningCache:
    """The hard-mining descriptor cache of a training data set (NetVLAD §4: descriptors refreshed periodically by
    the task, for the windows the epoch's items can use): ``descriptors[k]`` belongs to window ``rows[k]``.

    Kept in float16, the form checkpoints store, so a resumed run mines from exactly the same values.
    """

    descriptors: torch.Tensor | None = None  # [n_rows, D] float16
    descriptor_rows: np.ndarray | None = None  # window index of each row
    _row_of: np.ndarray | None = None  # row of each window index (-1: not cached)

    def set_descriptors(self, descriptors: torch.Tensor, rows: np.ndarray | None = None) -> None:
        """Replace the cache (``rows`` default: every window in order)."""
        rows = np.arange(len(descriptors)) if rows is None else np.asarray(rows, dtype=np.int64)
        if len(rows) != len(descriptors):
            raise ValueError(f"{len(descriptors)} descriptors for {len(rows)} windows")
        self.descriptors, self.descriptor_rows = descriptors.detach().cpu().half(), rows
        self._row_of = np.full(int(rows.max(initial=-1)) + 1, -1, dtype=np.int64)
        self._row_of[rows] = np.arange(len(rows))

    def cached_descriptors(self, windows: np.ndarray | int) -> torch.Tensor:
        """float32 descriptors of ``windows``; every one must be in the cache."""
        windows = np.atleast_1d(windows)
        rows = self._row_of[np.minimum(windows, len(self._row_of) - 1)]
        if (rows < 0).any() or (windows >= len(self._row_of)).any():
            raise RuntimeError("hard mining consulted a window whose descriptor was not refreshed")
        return self.descriptors[torch.from_numpy(rows)].float()


class TupleDataset(MiningCache, Dataset):
    """Training tuples of one traversal: anchor (a query window), one positive, ``n_negatives`` negatives.

    Indexed by ``(epoch, i)`` keys (:class:`~torchrepro.core.data.ResumableSampler` with ``keyed=True``): every
    random choice comes from a generator seeded by ``(seed, epoch, i)``, so items do not depend on worker
    count, order or resume point. Returns ``[2 + n, C, S, S]`` float32 (anchor, positive, negatives).

    Mining:
    * ``random`` (seed): a uniformly random positive within ``pos_m`` and random negatives beyond ``neg_m``.
    * ``hard`` (NetVLAD §4 / pytorch-NetVlad): with a descriptor cache set (:meth:`set_descriptors`, refreshed
      by the task for the windows of :meth:`mining_windows`), the positive is the one closest in descriptor
      space (the best-matching view of the place, NetVLAD's weak-supervision rule) and the negatives are the
      ``n`` closest among ``mining_candidates`` random windows beyond ``neg_m``. Before the first refresh it
      samples randomly.
    """

    def __init__(self, inputs: np.ndarray, positions: np.ndarray, query_idx: np.ndarray, db_idx: np.ndarray, *,
                 pos_m: float, neg_m: float, n_negatives: int, seed: int,
                 mining: Literal["random", "hard"] = "random", mining_candidates: int = 100,
                 augment: "WindowAugment | None" = None, anchors_per_epoch: int | None = None) -> None:
        self.inputs = inputs
        self.augment = augment or WindowAugment()
        self.seed, self.n_negatives, self.mining = seed, int(n_negatives), mining
        self.mining_candidates = int(mining_candidates)
        self.db_idx = np.asarray(db_idx)
        q_pos, db_pos = positions[query_idx], positions[db_idx]
        positives = within_radius(q_pos, db_pos, pos_m)
        near = within_radius(q_pos, db_pos, neg_m)
        has_pos = np.array([len(p) > 0 for p in positives], dtype=bool)
        n_neg_avail = np.array([len(db_idx) - len(nr) for nr in near])
        usable = has_pos & (n_neg_avail >= self.n_negatives)
        if (~usable).any():
            log.info("training split: %d of %d queries have no positive within %.1f m or fewer than %d negatives "
                     "beyond %.1f m; they are not used as anchors", int((~usable).sum()), len(query_idx), pos_m,
                     self.n_negatives, neg_m)
        if not usable.any():
            raise DataError(f"no training query has a database window within data.pos_m={pos_m} m and "
                            f"{self.n_negatives} beyond data.neg_m={neg_m} m; check positions/units or the radii")
        keep = np.flatnonzero(usable)
        self.query_idx = np.asarray(query_idx)[keep]
        self.positives = [positives[k] for k in keep]  # positions within db_idx
        self.near = [near[k] for k in keep]
        self.anchors_per_epoch = anchors_per_epoch

    def __len__(self) -> int:
        if self.anchors_per_epoch is None:
            return len(self.query_idx)
        return min(int(self.anchors_per_epoch), len(self.query_idx))

    def mining_windows(self, epoch: int) -> np.ndarray:
        """Sorted windows whose descriptors the tuples of ``epoch`` can consult: its anchors and the database."""
        anchors = self.query_idx[[self.anchor_of(epoch, i) for i in range(len(self))]]
        return np.union1d(anchors, self.db_idx)

    def anchor_of(self, epoch: int, i: int) -> int:
        """Which usable query item ``i`` of ``epoch`` trains on: all of them each epoch, or, with
        ``anchors_per_epoch``, a fresh seeded subset per epoch (windows by event count make busy recordings
        hold many more windows per metre; the subset keeps an epoch's length fixed)."""
        if len(self) == len(self.query_idx):
            return i
        perm = np.random.default_rng(derive_seed(self.seed, "vpr-anchors", epoch)).permutation(len(self.query_idx))
        return int(perm[i])

    def _load(self, windows: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self.inputs[windows])).float()

    def choose(self, epoch: int, i: int) -> np.ndarray:
        """Window indices ``[anchor, positive, negatives…]`` of item ``i`` in ``epoch`` (pure function of the key
        and of :attr:`descriptors`)."""
        rng = np.random.default_rng(derive_seed(self.seed, "vpr-tuple", epoch, i))
        i = self.anchor_of(epoch, i)
        anchor = int(self.query_idx[i])
        negative_pool = np.ones(len(self.db_idx), dtype=bool)
        negative_pool[self.near[i]] = False
        pool = np.flatnonzero(negative_pool)
        if self.mining == "hard" and self.descriptors is not None:
            cand = pool[rng.choice(len(pool), size=min(self.mining_candidates, len(pool)), replace=False)]
            pos_windows = self.db_idx[self.positives[i]]
            d_pos = torch.cdist(self.cached_descriptors(anchor), self.cached_descriptors(pos_windows))[0]
            positive = int(pos_windows[int(d_pos.argmin())])
            d_neg = torch.cdist(self.cached_descriptors(anchor), self.cached_descriptors(self.db_idx[cand]))[0]
            order = torch.argsort(d_neg, stable=True)[: self.n_negatives].numpy()
            negatives = self.db_idx[cand[order]]
        else:
            positive = int(self.db_idx[rng.choice(self.positives[i])])
            negatives = self.db_idx[pool[rng.choice(len(pool), size=self.n_negatives, replace=False)]]
        return np.concatenate([[anchor, positive], negatives]).astype(np.int64)

    def __getitem__(self, key: tuple[int, int]) -> torch.Tensor:
        epoch, i = key
        item = self._load(self.choose(epoch, i))
        if self.augment:
            item = self.augment(item, torch.Generator().manual_seed(derive_seed(self.seed, "vpr-augment", epoch, i)))
        return item


def random_affine(grids: torch.Tensor, shift: float, scale: float, gen: torch.Generator) -> torch.Tensor:
    """Independent random translation (± ``shift`` of the side) and zoom (1 ± ``scale``) of each ``[C, S, S]`` grid.

    The two traversals of a street never see a place from exactly the same spot (lane, camera mounting, where
    a window starts); training windows of one traversal all share one viewpoint per place. Jittering each
    window's framing teaches the network that a small image shift or zoom does not change the place.
    Bilinear resampling with zero padding (zero = no event).
    """
    n = grids.shape[0]
    zoom = 1.0 + (torch.rand(n, generator=gen) * 2 - 1) * scale
    offset = (torch.rand(n, 2, generator=gen) * 2 - 1) * shift * 2  # normalised coordinates span 2
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0 / zoom
    theta[:, :, 2] = offset
    grid = torch.nn.functional.affine_grid(theta, list(grids.shape), align_corners=False)
    return torch.nn.functional.grid_sample(grids, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_side_zoom(grids: torch.Tensor, amount: float, gen: torch.Generator) -> torch.Tensor:
    """Zoom the left and right halves of each ``[C, S, S]`` grid horizontally by independent factors in
    ``1 ± amount``, about the centre column (near a forward camera's vanishing point).

    Why: moving the camera sideways by Δ in a street of façades at lateral distances d_L and d_R maps a façade
    point at image column x (measured from the vanishing point) to x·(d ± Δ)/d, the same for all its rows: one
    side of the image stretches while the other shrinks (Δ = 1.3 m, d = 5-12 m gives factors of 0.85-1.3).
    A shift or isotropic zoom cannot produce that; a change of lane does. Bilinear, zero padding (no events).
    """
    n, _, h, w = grids.shape
    factors = 1.0 + (torch.rand(n, 2, generator=gen) * 2 - 1) * amount  # [left, right]
    xs = torch.linspace(-1.0, 1.0, w).expand(n, w)
    side = (xs >= 0).long()  # 0: left half, 1: right half
    source_x = xs / factors.gather(1, side)  # output column x shows the input at x / factor
    ys = torch.linspace(-1.0, 1.0, h)
    grid = torch.stack([source_x[:, None, :].expand(n, h, w), ys[None, :, None].expand(n, h, w)], dim=-1)
    return torch.nn.functional.grid_sample(grids, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def random_erasing(grids: torch.Tensor, probability: float, gen: torch.Generator,
                   area: tuple[float, float] = (0.02, 0.25), aspect: tuple[float, float] = (0.3, 3.3)) -> torch.Tensor:
    """Random Erasing (Zhong et al., AAAI 2020) of each ``[C, S, S]`` grid with ``probability``: one rectangle of
    ``area`` (fraction of the grid) and ``aspect`` (height/width, log-uniform) is set to zero, i.e. no events.

    Two drives past one place rarely see the same occluders (parked cars, vans, pedestrians); erasing teaches the
    descriptor not to rest on any one region of the window.
    """
    n, _, h, w = grids.shape
    out = grids.clone()
    draws = torch.rand(n, 5, generator=gen)  # apply?, area, log-aspect, top, left: fixed count per grid
    for k in range(n):
        if draws[k, 0] >= probability:
            continue
        a = (area[0] + (area[1] - area[0]) * draws[k, 1]) * h * w
        ratio = math.exp(math.log(aspect[0]) + (math.log(aspect[1]) - math.log(aspect[0])) * float(draws[k, 2]))
        eh, ew = min(h, max(1, round(math.sqrt(a * ratio)))), min(w, max(1, round(math.sqrt(a / ratio))))
        top, left = int(draws[k, 3] * (h - eh + 1)), int(draws[k, 4] * (w - ew + 1))
        out[k, :, top : top + eh, left : left + ew] = 0
    return out


def random_cell_drop(grids: torch.Tensor, max_fraction: float, gen: torch.Generator) -> torch.Tensor:
    """EventDrop-style random drop (Gu et al., IJCAI 2021) on cached grids: each ``[C, S, S]`` grid loses a random
    fraction ``U(0, max_fraction)`` of its pixels (all time bins of a pixel together, as if its events were not
    fired), mimicking a sparser sensor (higher contrast threshold, lower contrast light) in another recording."""
    n, _, h, w = grids.shape
    fraction = torch.rand(n, 1, 1, 1, generator=gen) * max_fraction
    keep = torch.rand(n, 1, h, w, generator=gen) >= fraction
    return grids * keep


@dataclass(frozen=True)
class WindowAugment:
    """The training-only augmentations of a stack of windows ``[T, C, S, S]``, applied in a fixed order from one
    keyed generator (so an item is the same whatever the worker count or resume point)."""

    shift: float = 0.0
    scale: float = 0.0
    lateral: float = 0.0
    erase: float = 0.0
    drop: float = 0.0

    def __bool__(self) -> bool:
        return any(v > 0 for v in (self.shift, self.scale, self.lateral, self.erase, self.drop))

    def __call__(self, item: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        if self.shift > 0 or self.scale > 0:
            item = random_affine(item, self.shift, self.scale, gen)
        if self.lateral > 0:
            item = random_side_zoom(item, self.lateral, gen)
        if self.erase > 0:
            item = random_erasing(item, self.erase, gen)
        if self.drop > 0:
            item = random_cell_drop(item, self.drop, gen)
        return item


class WindowDataset(Dataset):
    """Cached inputs of selected windows, in order (evaluation and descriptor extraction)."""

    def __init__(self, inputs: np.ndarray, indices: np.ndarray | None = None) -> None:
        self.inputs = inputs
        self.indices = np.arange(len(inputs)) if indices is None else np.asarray(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.inputs[self.indices[i]], dtype=np.float32))


# --------------------------------------------------------------------------------------------- raw events (EST)
class EventTupleDataset(TupleDataset):
    """:class:`TupleDataset` for the learnable EST representation: items are the raw event windows (lists of
    ``(N_i, 4)`` arrays) read from the source; the network quantises them (collate with
    :func:`collate_event_tuples`)."""

    def __init__(self, source: WindowSource, *args, **kwargs) -> None:
        super().__init__(None, *args, **kwargs)
        self.source = source

    def _load(self, windows: np.ndarray) -> list[np.ndarray]:  # type: ignore[override]
        return [self.source.events(int(w)) for w in windows]


class EventWindowDataset(Dataset):
    """Raw event windows of selected windows, in order (EST evaluation); collate with :func:`collate_event_windows`."""

    def __init__(self, source: WindowSource, indices: np.ndarray | None = None) -> None:
        self.source = source
        self.indices = np.arange(len(source)) if indices is None else np.asarray(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.source.events(int(self.indices[i]))


def collate_event_windows(windows: list[np.ndarray]) -> tuple[torch.Tensor, int]:
    """Windows → ``([N, 5]`` events with batch index, number of windows``)`` for :class:`EventSpikeTensor`."""
    from torchrepro.events.est import collate_events

    return collate_events(windows), len(windows)


def collate_event_tuples(items: list[list[np.ndarray]]) -> tuple[torch.Tensor, int, int]:
    """Tuples of windows → ``(events [N, 5], B, T)``; window ``j`` of tuple ``b`` has batch index ``b·T + j``."""
    flat = [w for item in items for w in item]
    events, n = collate_event_windows(flat)
    return events, len(items), n // max(len(items), 1)
