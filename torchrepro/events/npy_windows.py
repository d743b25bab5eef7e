"""Reader for the seed's event layout: a folder of per-window ``<timestamp>.npy`` files plus a positions file.

Layout::

    windows/
        1504645177.123456.npy     # (N, 4) array, columns t (s), x, y, p; one event window
        1504645177.173456.npy
        ...
    positions.txt                 # rows (x, y, t): position in metres at time t (s); .npy/.txt/.csv

A window's timestamp is the number in its file name (the seed names files by float timestamps). Windows are
listed and sorted by that number, not by the file name's text ("10.npy" sorts after "9.npy").

:class:`NpyWindowFolder` validates every window it loads (shape, sensor bounds, time order, polarity) and
raises :class:`~torchrepro.core.errors.DataError` naming the file and what is wrong. Empty or near-empty
windows are returned by :meth:`NpyWindowFolder.load` as they are; drop them explicitly with
:meth:`NpyWindowFolder.drop_sparse`, which returns how many it dropped so the caller can log it (and logs it
itself at WARNING level): windows never disappear silently.

:func:`read_positions` reads the positions file; :func:`window_positions` interpolates it at the window
timestamps with :func:`torchrepro.events.mvsec.interpolate_positions`, which reports a positions file that
does not cover the windows' time range.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import numpy as np
import torch

from torchrepro.core.errors import DataError
from torchrepro.events.mvsec import interpolate_positions
from torchrepro.events.representations import _check_sensor, _check_xy

__all__ = ["NpyWindowFolder", "read_positions", "window_positions"]

log = logging.getLogger(__name__)


def _parse_timestamp(path: Path) -> float:
    """The window timestamp encoded in ``<timestamp>.npy``; DataError when the name is not a finite number."""
    try:
        value = float(path.stem)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise DataError(
            f"cannot parse a timestamp from the file name {path}: window files must be named "
            f"<timestamp>.npy (e.g. 1504645177.123456.npy); rename the file or move it (e.g. a positions "
            f"file) out of the window folder"
        )
    return value


def _read_npy_shape(path: Path) -> tuple[int, ...]:
    """Shape from the ``.npy`` header only (no data read); DataError for a corrupt or unreadable file."""
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, _ = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, _, _ = np.lib.format.read_array_header_2_0(fh)
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"cannot read the .npy header of {path} ({err}); the file is corrupt, regenerate it")
    return tuple(int(s) for s in shape)


def _validate_window(arr: np.ndarray, path: Path, height: int, width: int) -> np.ndarray:
    """Checks of :meth:`NpyWindowFolder.load`; returns the window as (N, 4) float64 with p in {0, 1}."""
    if arr.dtype.names is not None:
        missing = [name for name in ("t", "x", "y", "p") if name not in arr.dtype.names]
        if missing:
            raise DataError(f"event window {path} is a structured array without field(s) {missing}; "
                            f"save it as an (N, 4) array with columns t, x, y, p")
        arr = np.stack([arr[name] for name in ("t", "x", "y", "p")], axis=-1)
    if arr.size == 0:
        return np.zeros((0, 4), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise DataError(f"event window {path} has shape {arr.shape}; expected (N, 4) with columns t, x, y, p")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise DataError(f"event window {path} has dtype {arr.dtype}; expected numbers (columns t, x, y, p)")
    ev = np.array(arr, dtype=np.float64)  # a copy: the polarity conversion below must not touch a cache
    t = ev[:, 0]
    if not np.isfinite(t).all():
        first = int(np.flatnonzero(~np.isfinite(t))[0])
        raise DataError(f"event window {path} has a non-finite timestamp at row {first}; repair the file")
    _check_xy(torch.from_numpy(ev[:, 1]), torch.from_numpy(ev[:, 2]), height, width, str(path))
    decrease = np.flatnonzero(np.diff(t) < 0)
    if decrease.size:
        row = int(decrease[0]) + 1
        raise DataError(
            f"event window {path} is not sorted by time: row {row} (t={t[row]!r}) comes before row {row - 1} "
            f"(t={t[row - 1]!r}); sort the window by t"
        )
    values = np.unique(ev[:, 3])
    if np.isin(values, (0.0, 1.0)).all():
        return ev
    if np.isin(values, (-1.0, 1.0)).all():
        ev[:, 3] = (ev[:, 3] > 0).astype(np.float64)  # {-1, 1} -> {0, 1}, the house convention
        return ev
    raise DataError(
        f"event window {path} has polarity values {values[:6].tolist()}; expected {{0, 1}} or {{-1, 1}} "
        f"(is the column order t, x, y, p?)"
    )


class NpyWindowFolder:
    """Event windows stored as ``<timestamp>.npy`` files in one folder, sorted by timestamp.

    ``height``/``width`` are the sensor size (every event must lie in ``[0, width) x [0, height)``). The folder
    is listed once, at construction; windows are read lazily by :meth:`load`.
    """

    def __init__(self, folder: str | Path, height: int, width: int) -> None:
        _check_sensor(height, width)
        self.folder = Path(folder)
        self.height, self.width = int(height), int(width)
        if not self.folder.is_dir():
            what = "is not a folder" if self.folder.exists() else "does not exist"
            raise DataError(
                f"event window folder {self.folder} {what}; set the dataset path in the config to a folder of "
                f"<timestamp>.npy windows"
            )
        paths = [p for p in self.folder.iterdir() if p.suffix == ".npy" and p.is_file()]
        if not paths:
            raise DataError(f"event window folder {self.folder} holds no .npy windows; check the dataset path")
        stamps = np.array([_parse_timestamp(p) for p in paths], dtype=np.float64)
        order = np.argsort(stamps, kind="stable")
        self._set(np.asarray(paths, dtype=object)[order].tolist(), stamps[order])

    def _set(self, paths: list[Path], timestamps: np.ndarray) -> None:
        dup = np.flatnonzero(np.diff(timestamps) == 0)
        if dup.size:
            a, b = paths[int(dup[0])], paths[int(dup[0]) + 1]
            raise DataError(f"window files {a.name} and {b.name} in {self.folder} have the same timestamp; "
                            f"remove the duplicate")
        self.paths: list[Path] = paths
        self._timestamps = timestamps
        self._counts: dict[int, int] = {}

    @property
    def timestamps(self) -> np.ndarray:
        """Window timestamps (s) parsed from the file names, ascending, float64 (a copy)."""
        return self._timestamps.copy()

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        return f"NpyWindowFolder({str(self.folder)!r}, height={self.height}, width={self.width}, windows={len(self)})"

    def load(self, i: int) -> np.ndarray:
        """Window ``i`` as an (N, 4) float64 array ``t, x, y, p`` with p in {0, 1}; validated (see module doc)."""
        path = self.paths[i]
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as err:
            raise DataError(f"cannot load event window {path} ({err}); the file is corrupt, regenerate it")
        if not isinstance(arr, np.ndarray):  # e.g. an .npz archive saved under a .npy name
            arr.close()
            raise DataError(f"event window {path} is not a single .npy array; save an (N, 4) array t, x, y, p")
        return _validate_window(arr, path, self.height, self.width)

    __getitem__ = load

    def num_events(self, i: int) -> int:
        """Number of events in window ``i``, read from the ``.npy`` header (no event data is read)."""
        if i not in self._counts:
            shape = _read_npy_shape(self.paths[i])
            self._counts[i] = shape[0] if len(shape) == 2 else int(np.prod(shape, dtype=np.int64)) // 4
        return self._counts[i]

    def count_sparse(self, min_events: int) -> int:
        """How many windows hold fewer than ``min_events`` events."""
        return sum(self.num_events(i) < min_events for i in range(len(self)))

    def drop_sparse(self, min_events: int) -> tuple[NpyWindowFolder, int]:
        """A view of this folder without the windows that hold fewer than ``min_events`` events.

        Returns ``(kept, num_dropped)``, like :func:`torchrepro.events.mvsec.drop_sparse_windows`; a non-zero
        count is also logged at WARNING level. Raises DataError when no window would be left.
        """
        keep = [i for i in range(len(self)) if self.num_events(i) >= min_events]
        dropped = len(self) - len(keep)
        if not keep:
            raise DataError(
                f"all {len(self)} windows in {self.folder} hold fewer than {min_events} events; "
                f"lower min_events or check the windows"
            )
        if dropped:
            log.warning("dropped %d of %d windows in %s with fewer than %d events", dropped, len(self),
                        self.folder, min_events)
        kept = object.__new__(NpyWindowFolder)
        kept.folder, kept.height, kept.width = self.folder, self.height, self.width
        kept._set([self.paths[i] for i in keep], self._timestamps[keep])
        kept._counts = {j: self._counts[i] for j, i in enumerate(keep)}
        return kept, dropped


# -- positions ---------------------------------------------------------------------------------------------
_SPLIT = re.compile(r"[,\s]+")


def _read_text_rows(path: Path) -> np.ndarray:
    """Rows of numbers separated by commas and/or whitespace; the first line may be a header."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read positions file {path} ({err}); check the path and that it is text")
    rows: list[list[float]] = []
    first_line = True
    for number, line in enumerate(lines, start=1):
        fields = [f for f in _SPLIT.split(line.strip()) if f]
        if not fields:
            continue
        is_first, first_line = first_line, False
        try:
            rows.append([float(f) for f in fields])
        except ValueError:
            if is_first:
                continue  # a header line such as "x,y,t"
            raise DataError(
                f"positions file {path} line {number} is not numeric ({line.strip()[:60]!r}); expected rows "
                f"x y t (only the first line may be a header)"
            )
        if len(rows[-1]) != 3:
            raise DataError(
                f"positions file {path} line {number} has {len(rows[-1])} columns; expected 3 (x, y, t)"
            )
    return np.asarray(rows, dtype=np.float64).reshape(-1, 3)


def read_positions(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a positions file of rows ``(x, y, t)`` (metres, metres, seconds).

    ``.npy`` holds an (M, 3) array; ``.txt``/``.csv`` hold whitespace- or comma-separated rows with an optional
    header line. Returns ``(t (M,), xy (M, 2))``; ``t`` must be strictly increasing in the file (it is the
    abscissa of the interpolation), otherwise DataError names the first offending row.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"positions file not found: {path}; set the positions path in the config")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            rows = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as err:
            raise DataError(f"cannot load positions file {path} ({err}); the file is corrupt, regenerate it")
        if not isinstance(rows, np.ndarray):  # e.g. an .npz archive saved under a .npy name
            rows.close()
            raise DataError(f"positions file {path} is not a single .npy array; save an (M, 3) array x, y, t")
        if rows.ndim != 2 or rows.shape[1] != 3 or not np.issubdtype(rows.dtype, np.number):
            raise DataError(
                f"positions file {path} holds an array of shape {rows.shape} and dtype {rows.dtype}; expected "
                f"(M, 3) numbers with columns x, y, t"
            )
        rows = rows.astype(np.float64)
    elif suffix in (".txt", ".csv"):
        rows = _read_text_rows(path)
    else:
        raise DataError(f"positions file {path} has an unsupported extension; use .npy, .txt or .csv")
    if rows.shape[0] == 0:
        raise DataError(f"positions file {path} holds no rows; expected rows x, y, t")
    if not np.isfinite(rows).all():
        row = int(np.flatnonzero(~np.isfinite(rows).all(axis=1))[0])
        raise DataError(f"positions file {path} has a non-finite value in data row {row}; repair the file")
    t, xy = rows[:, 2].copy(), rows[:, :2].copy()
    bad = np.flatnonzero(np.diff(t) <= 0)
    if bad.size:
        row = int(bad[0]) + 1
        raise DataError(
            f"positions file {path}: t is not strictly increasing at data row {row} "
            f"(t={t[row]!r} after t={t[row - 1]!r}); sort the file by t and remove duplicate times "
            f"(columns must be x, y, t)"
        )
    return t, xy


def window_positions(folder: NpyWindowFolder, positions_path: str | Path) -> np.ndarray:
    """Position (M, 2) of every window of ``folder`` at its timestamp, linearly interpolated."""
    t, xy = read_positions(positions_path)
    return interpolate_positions(t, xy, folder.timestamps)
