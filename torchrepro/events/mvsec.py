"""MVSEC HDF5 events and ground-truth poses, read lazily; event windowing helpers.

MVSEC layout (see DESIGN.md, "MVSEC HDF5"):

- ``*_data.hdf5``: dataset ``davis/left/events`` of shape (N, 4), float64 rows ``(x, y, t, p)`` with
  ``p`` in {-1, +1}, sorted by ``t`` (seconds).
- ``*_gt.hdf5``: ``davis/left/pose`` (N, 4, 4) homogeneous camera poses and ``davis/left/pose_ts`` (N,).

Our convention (DESIGN.md, "Events") is an (N, 4) float64 array with columns ``t, x, y, p`` and ``p`` in
{0, 1}; :meth:`MVSECEvents.slice` converts on the fly. A recording holds tens of millions of events, so the
reader never loads the whole dataset: lengths and time ranges come from the dataset's shape and its two ends,
and :meth:`MVSECEvents.index_at_time` is a binary search that reads one timestamp per step (O(log N) reads).

Windows are half-open row ranges ``(start, stop)``. A window's timestamp is the time of its **last** event
(row ``stop - 1``): that is the moment at which all of the window's events have been observed, so a model fed
the window could be run at that time without looking into the future. Empty windows have no timestamp; drop
them first with :func:`drop_sparse_windows` (``min_events >= 1``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from torchrepro.core.errors import DataError

EVENTS_KEY = "davis/left/events"
POSE_KEY = "davis/left/pose"
POSE_TS_KEY = "davis/left/pose_ts"

# Column order on disk in MVSEC: x, y, t, p.
_X, _Y, _T, _P = 0, 1, 2, 3


def _open_h5(path: Path) -> Any:
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DataError(f"MVSEC file not found: {path}; check the dataset path in the config")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise DataError(f"cannot open MVSEC HDF5 file {path} ({err}); the file may be corrupt, re-download it")


def _require_key(handle: Any, key: str, path: Path) -> Any:
    if key not in handle:
        raise DataError(
            f"MVSEC file {path} has no dataset '{key}'; expected the MVSEC layout "
            f"(is this the right *_data.hdf5 / *_gt.hdf5 file?)"
        )
    return handle[key]


class MVSECEvents:
    """Lazy reader for ``davis/left/events`` of an MVSEC ``*_data.hdf5`` file.

    All dataset reads go through :meth:`_read`, which counts the elements it reads in
    :attr:`elements_read` (used by tests to check laziness). The HDF5 handle is opened on first use and is
    not pickled, so a reader can be handed to DataLoader workers; each worker reopens the file.
    """

    def __init__(self, path: str | Path, key: str = EVENTS_KEY) -> None:
        self.path = Path(path)
        self.key = key
        self.elements_read = 0
        self._file: Any = None
        self._ds: Any = None
        ds = self._dataset()  # validate eagerly: missing file / key are reported at construction
        if ds.ndim != 2 or ds.shape[1] != 4:
            raise DataError(
                f"MVSEC dataset '{key}' in {self.path} has shape {ds.shape}; expected (N, 4) rows (x, y, t, p)"
            )
        self._len = int(ds.shape[0])

    # -- file handling -----------------------------------------------------------------------------------
    def _dataset(self) -> Any:
        if self._ds is None:
            handle = _open_h5(self.path)
            try:
                self._ds = _require_key(handle, self.key, self.path)
            except DataError:
                handle.close()
                raise
            self._file = handle
        return self._ds

    def _read(self, rows: Any, cols: Any = slice(None)) -> np.ndarray:
        """Read ``dataset[rows, cols]`` as float64, counting the elements read."""
        out = np.asarray(self._dataset()[rows, cols], dtype=np.float64)
        self.elements_read += int(out.size)
        return out

    def _t_at(self, i: int) -> float:
        return float(self._read(i, _T))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file = None
        self._ds = None

    def __enter__(self) -> MVSECEvents:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_file"] = None
        state["_ds"] = None
        return state

    # -- queries -----------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._len

    def _require_nonempty(self) -> None:
        if self._len == 0:
            raise DataError(f"MVSEC dataset '{self.key}' in {self.path} holds no events; use a non-empty recording")

    def time_range(self) -> tuple[float, float]:
        """(first, last) event timestamp, read from the two ends of the dataset."""
        self._require_nonempty()
        return self._t_at(0), self._t_at(self._len - 1)

    def slice(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` as an (N, 4) float64 array with columns t, x, y, p (p in {0, 1}).

        Raises DataError if timestamps in the slice decrease (naming the file and the first offending row).
        """
        start, stop, _ = slice(start, stop).indices(self._len)
        if stop <= start:
            return np.empty((0, 4), dtype=np.float64)
        raw = self._read(slice(start, stop))
        out = np.empty_like(raw)
        out[:, 0] = raw[:, _T]
        out[:, 1] = raw[:, _X]
        out[:, 2] = raw[:, _Y]
        out[:, 3] = (raw[:, _P] > 0).astype(np.float64)
        bad = np.flatnonzero(np.diff(out[:, 0]) < 0)
        if bad.size:
            row = start + int(bad[0]) + 1
            raise DataError(
                f"MVSEC events in {self.path} ('{self.key}') are not sorted by time: row {row} "
                f"(t={out[bad[0] + 1, 0]!r}) comes before the previous row (t={out[bad[0], 0]!r}); "
                f"the file is corrupt or not an MVSEC recording"
            )
        return out

    def index_at_time(self, t: float, side: str = "left") -> int:
        """Index where ``t`` would be inserted to keep the timestamps sorted, like ``np.searchsorted``.

        ``side="left"``: first row with timestamp >= t; ``side="right"``: first row with timestamp > t.
        Binary search over the HDF5 dataset reading one timestamp per step (about log2(N) reads).
        """
        if side not in ("left", "right"):
            raise ValueError(f"side must be 'left' or 'right', got {side!r}")
        lo, hi = 0, self._len
        t = float(t)
        while lo < hi:
            mid = (lo + hi) // 2
            tm = self._t_at(mid)
            if tm < t or (side == "right" and tm == t):
                lo = mid + 1
            else:
                hi = mid
        return lo

    def window_timestamps(self, windows: list[tuple[int, int]]) -> np.ndarray:
        """Timestamp of each window = time of its last event (row ``stop - 1``); one read per window."""
        out = np.empty(len(windows), dtype=np.float64)
        for i, (start, stop) in enumerate(windows):
            if stop <= start:
                raise ValueError(f"window {i} ({start}, {stop}) is empty and has no timestamp; drop it first")
            out[i] = self._t_at(stop - 1)
        return out


# -- ground truth ------------------------------------------------------------------------------------------
def read_mvsec_poses(gt_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read ``davis/left/pose_ts`` and the x, y translation of ``davis/left/pose`` from an ``*_gt.hdf5``.

    Returns ``(timestamps (N,), xy (N, 2))`` in seconds and metres (translation column ``pose[:, 0:2, 3]``).
    """
    gt_path = Path(gt_path)
    with _open_h5(gt_path) as handle:
        pose_ds = _require_key(handle, POSE_KEY, gt_path)
        ts_ds = _require_key(handle, POSE_TS_KEY, gt_path)
        if pose_ds.ndim != 3 or pose_ds.shape[1:] != (4, 4):
            raise DataError(
                f"MVSEC dataset '{POSE_KEY}' in {gt_path} has shape {pose_ds.shape}; expected (N, 4, 4) poses"
            )
        xy = np.asarray(pose_ds[:, 0:2, 3], dtype=np.float64)
        ts = np.asarray(ts_ds[()], dtype=np.float64).reshape(-1)
    if ts.shape[0] != xy.shape[0]:
        raise DataError(
            f"MVSEC ground truth {gt_path}: '{POSE_TS_KEY}' has {ts.shape[0]} entries but '{POSE_KEY}' has "
            f"{xy.shape[0]}; the file is corrupt"
        )
    if ts.size == 0:
        raise DataError(f"MVSEC ground truth {gt_path} holds no poses; use a non-empty *_gt.hdf5")
    bad = np.flatnonzero(np.diff(ts) <= 0)
    if bad.size:
        raise DataError(
            f"MVSEC ground truth {gt_path}: '{POSE_TS_KEY}' is not strictly increasing at row {int(bad[0]) + 1}; "
            f"the file is corrupt"
        )
    return ts, xy


def interpolate_positions(pose_ts: np.ndarray, xy: np.ndarray, query_ts: np.ndarray) -> np.ndarray:
    """Linearly interpolate (N, 2) positions at ``query_ts``; every query must lie within ``pose_ts``' range."""
    pose_ts = np.asarray(pose_ts, dtype=np.float64)
    xy = np.asarray(xy, dtype=np.float64)
    query_ts = np.asarray(query_ts, dtype=np.float64).reshape(-1)
    outside = (query_ts < pose_ts[0]) | (query_ts > pose_ts[-1])
    if outside.any():
        raise DataError(
            f"positions file shorter than the event time range: {int(outside.sum())} of {query_ts.size} windows "
            f"fall outside the ground-truth time range [{pose_ts[0]:.6f}, {pose_ts[-1]:.6f}] s "
            f"(window times span [{query_ts.min():.6f}, {query_ts.max():.6f}] s); trim the event range or use "
            f"the matching *_gt.hdf5"
        )
    return np.stack([np.interp(query_ts, pose_ts, xy[:, k]) for k in range(2)], axis=1)


# -- windowing ---------------------------------------------------------------------------------------------
def fixed_count_windows(n_events: int, count: int) -> list[tuple[int, int]]:
    """Consecutive windows of ``count`` events covering ``[0, n_events)`` exactly once.

    The last window is kept even when it holds fewer than ``count`` events (so no event is lost); callers who
    want only full windows pass the result through ``drop_sparse_windows(windows, count)`` and log the count.
    """
    if count <= 0:
        raise ValueError(f"count must be positive, got {count}")
    return [(s, min(s + count, n_events)) for s in range(0, max(n_events, 0), count)]


def fixed_duration_windows(reader: MVSECEvents, duration: float) -> list[tuple[int, int]]:
    """Windows of ``duration`` seconds: window k holds events with t in ``[t0 + k*d, t0 + (k+1)*d)``.

    ``t0`` is the first event's time; there are ``floor((t_last - t0) / d) + 1`` windows, so the last event is
    always covered (the last window may be shorter in practice). Boundaries are found with
    :meth:`MVSECEvents.index_at_time` (no events are loaded). Windows may be empty; drop them with
    :func:`drop_sparse_windows`.
    """
    if not duration > 0:
        raise ValueError(f"duration must be positive, got {duration}")
    if len(reader) == 0:
        return []
    t0, t1 = reader.time_range()
    n_windows = int(np.floor((t1 - t0) / duration)) + 1
    bounds = [0] + [reader.index_at_time(t0 + k * duration) for k in range(1, n_windows)] + [len(reader)]
    return [(bounds[k], bounds[k + 1]) for k in range(n_windows)]


def drop_sparse_windows(
    windows: list[tuple[int, int]], min_events: int
) -> tuple[list[tuple[int, int]], int]:
    """Drop windows with fewer than ``min_events`` events; returns ``(kept, num_dropped)`` for the caller to log."""
    kept = [(s, e) for s, e in windows if e - s >= min_events]
    return kept, len(windows) - len(kept)


# -- writing -----------------------------------------------------------------------------------------------
def write_mvsec_sequence(
    data_path: Path, gt_path: Path, events_txyp: np.ndarray, pose_ts: np.ndarray, poses: np.ndarray
) -> None:
    """Write a recording in the MVSEC layout: ``data_path`` (events) and ``gt_path`` (poses).

    ``events_txyp`` is our (N, 4) convention (columns t, x, y, p with p in {0, 1}, sorted by t); on disk the rows
    become MVSEC's ``(x, y, t, p)`` float64 with ``p`` in {-1, +1} under ``davis/left/events``. ``poses`` (M, 4, 4)
    and ``pose_ts`` (M,) go to ``davis/left/pose`` / ``davis/left/pose_ts``. Each file is written to a temporary
    sibling and moved into place with ``os.replace``, so a reader never sees a half-written file.
    """
    import os
    import tempfile

    import h5py

    events = np.asarray(events_txyp, dtype=np.float64)
    poses = np.asarray(poses, dtype=np.float64)
    pose_ts = np.asarray(pose_ts, dtype=np.float64).reshape(-1)
    if events.ndim != 2 or events.shape[1] != 4:
        raise DataError(f"events to write have shape {events.shape}; expected (N, 4) columns t, x, y, p")
    if events.shape[0] > 1 and bool(np.any(np.diff(events[:, 0]) < 0)):
        raise DataError("events to write are not sorted by time; sort them by the t column first")
    if poses.ndim != 3 or poses.shape[1:] != (4, 4) or poses.shape[0] != pose_ts.shape[0]:
        raise DataError(
            f"poses to write have shape {poses.shape} with {pose_ts.shape[0]} timestamps; expected (M, 4, 4) "
            f"poses and M timestamps"
        )

    def _atomic(path: Path, fill: Any) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            with h5py.File(tmp, "w") as handle:
                fill(handle)
            os.chmod(tmp, 0o644)  # mkstemp creates 0o600; published data should be readable
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    def _fill_events(handle: Any) -> None:
        n = events.shape[0]
        ds = handle.create_dataset(EVENTS_KEY, shape=(n, 4), dtype=np.float64)
        chunk = 1 << 20  # convert in slices: no second full-size copy of a multi-million-event array
        for start in range(0, n, chunk):
            part = events[start : start + chunk]
            rows = np.empty_like(part)
            rows[:, _X], rows[:, _Y], rows[:, _T] = part[:, 1], part[:, 2], part[:, 0]
            rows[:, _P] = np.where(part[:, 3] > 0, 1.0, -1.0)
            ds[start : start + part.shape[0]] = rows

    def _fill_gt(handle: Any) -> None:
        handle.create_dataset(POSE_KEY, data=poses)
        handle.create_dataset(POSE_TS_KEY, data=pose_ts)

    _atomic(Path(data_path), _fill_events)
    _atomic(Path(gt_path), _fill_gt)
