"""Tests for the lazy MVSEC HDF5 reader and event windowing (torchrepro.events.mvsec)."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest

from torchrepro.core.errors import DataError
from torchrepro.events.mvsec import (
    MVSECEvents,
    drop_sparse_windows,
    fixed_count_windows,
    fixed_duration_windows,
    interpolate_positions,
    read_mvsec_poses,
)

N_EVENTS = 10_000
N_POSES = 50


def _make_events(n: int = N_EVENTS, seed: int = 0) -> np.ndarray:
    """Rows in the MVSEC on-disk layout (x, y, t, p) with p in {-1, +1}; t increasing with some ties."""
    rng = np.random.default_rng(seed)
    t = 1_500_000_000.0 + np.cumsum(rng.exponential(1e-4, n))
    if n > 110:
        t[100:110] = t[100]  # ties: several events with the same timestamp
    x = rng.integers(0, 346, n).astype(np.float64)
    y = rng.integers(0, 260, n).astype(np.float64)
    p = rng.choice([-1.0, 1.0], n)
    return np.stack([x, y, t, p], axis=1)


@pytest.fixture()
def events_file(tmp_path):
    rows = _make_events()
    path = tmp_path / "outdoor_day1_data.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("davis/left/events", data=rows, chunks=(1024, 4))
    return path, rows


@pytest.fixture()
def gt_file(tmp_path, events_file):
    _, rows = events_file
    ts = np.linspace(rows[0, 2] - 0.01, rows[-1, 2] + 0.01, N_POSES)
    rng = np.random.default_rng(1)
    poses = np.tile(np.eye(4), (N_POSES, 1, 1))
    poses[:, 0:3, 3] = np.cumsum(rng.normal(0, 0.5, (N_POSES, 3)), axis=0)
    path = tmp_path / "outdoor_day1_gt.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("davis/left/pose", data=poses)
        f.create_dataset("davis/left/pose_ts", data=ts)
    return path, ts, poses


def _expected(rows: np.ndarray) -> np.ndarray:
    return np.stack([rows[:, 2], rows[:, 0], rows[:, 1], (rows[:, 3] > 0).astype(np.float64)], axis=1)


# -- reading -----------------------------------------------------------------------------------------------
def test_len_time_range_and_slices(events_file):
    path, rows = events_file
    reader = MVSECEvents(path)
    assert len(reader) == N_EVENTS
    assert reader.time_range() == (rows[0, 2], rows[-1, 2])
    full = reader.slice(0, N_EVENTS)
    assert full.dtype == np.float64 and full.shape == (N_EVENTS, 4)
    np.testing.assert_array_equal(full, _expected(rows))
    assert set(np.unique(full[:, 3])) == {0.0, 1.0}
    for start, stop in [(0, 1), (123, 4567), (9_990, 10_000), (5000, 5000), (9_999, 20_000)]:
        np.testing.assert_array_equal(reader.slice(start, stop), _expected(rows[start:stop]))
    assert reader.slice(10, 5).shape == (0, 4)
    reader.close()


def test_construction_reads_no_events_and_pickles(events_file):
    path, rows = events_file
    reader = MVSECEvents(path)
    assert reader.elements_read == 0
    clone = pickle.loads(pickle.dumps(reader))  # handle is dropped and reopened lazily (DataLoader workers)
    np.testing.assert_array_equal(clone.slice(0, 3), _expected(rows[:3]))
    clone.close()
    reader.close()


def test_index_at_time_matches_searchsorted(events_file):
    path, rows = events_file
    t = rows[:, 2]
    reader = MVSECEvents(path)
    rng = np.random.default_rng(2)
    queries = np.concatenate(
        [
            rng.uniform(t[0] - 1.0, t[-1] + 1.0, 300),
            t[rng.integers(0, N_EVENTS, 100)],  # exact hits
            [t[0] - 5.0, t[0], t[-1], t[-1] + 5.0, t[100]],  # before start, ends, after end, tied value
        ]
    )
    for q in queries:
        assert reader.index_at_time(q) == np.searchsorted(t, q, side="left")
        assert reader.index_at_time(q, side="right") == np.searchsorted(t, q, side="right")
    assert reader.index_at_time(t[0] - 5.0) == 0
    assert reader.index_at_time(t[-1] + 5.0) == N_EVENTS


class _SpyDataset:
    """Thin wrapper around an h5py dataset that records the number of elements of every read."""

    def __init__(self, ds):
        self._ds = ds
        self.read_sizes: list[int] = []

    def __getitem__(self, item):
        out = np.asarray(self._ds[item])
        self.read_sizes.append(int(out.size))
        return out

    def __getattr__(self, name):
        return getattr(self._ds, name)


def test_index_at_time_is_lazy(events_file, monkeypatch):
    path, rows = events_file
    reader = MVSECEvents(path)
    spy = _SpyDataset(reader._dataset())
    monkeypatch.setattr(reader, "_dataset", lambda: spy)
    bound = int(np.ceil(np.log2(N_EVENTS + 1))) + 1
    for q in np.random.default_rng(3).uniform(rows[0, 2], rows[-1, 2], 50):
        before_reads, before_elems = len(spy.read_sizes), reader.elements_read
        reader.index_at_time(q)
        sizes = spy.read_sizes[before_reads:]
        assert 0 < len(sizes) <= bound  # O(log N) reads ...
        assert all(s == 1 for s in sizes)  # ... of one timestamp each
        assert reader.elements_read - before_elems == sum(sizes)
    # time_range reads exactly the two ends; fixed-duration windowing never loads events
    before = reader.elements_read
    reader.time_range()
    assert reader.elements_read - before == 2
    before = reader.elements_read
    windows = fixed_duration_windows(reader, 0.1)
    assert reader.elements_read - before <= 2 + (len(windows) - 1) * bound
    assert max(spy.read_sizes) == 1
    reader.close()


def test_non_monotonic_timestamps_raise(tmp_path):
    rows = _make_events(1000)
    rows[700, 2] = rows[600, 2]  # goes back in time at row 700
    path = tmp_path / "bad_data.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("davis/left/events", data=rows)
    reader = MVSECEvents(path)
    reader.slice(0, 700)  # fine up to the bad row
    with pytest.raises(DataError) as err:
        reader.slice(500, 900)
    msg = str(err.value)
    assert str(path) in msg and "row 700" in msg and "\n" not in msg
    reader.close()


# -- errors ------------------------------------------------------------------------------------------------
def test_missing_events_file(tmp_path):
    path = tmp_path / "nope_data.hdf5"
    with pytest.raises(DataError, match="nope_data.hdf5"):
        MVSECEvents(path)


def test_missing_events_key(tmp_path):
    path = tmp_path / "wrong_data.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("davis/right/events", data=_make_events(10))
    with pytest.raises(DataError) as err:
        MVSECEvents(path)
    assert "davis/left/events" in str(err.value) and str(path) in str(err.value)


def test_missing_gt_file(tmp_path):
    with pytest.raises(DataError, match="missing_gt.hdf5"):
        read_mvsec_poses(tmp_path / "missing_gt.hdf5")


@pytest.mark.parametrize("missing", ["davis/left/pose_ts", "davis/left/pose"])
def test_missing_pose_keys(tmp_path, missing):
    path = tmp_path / "partial_gt.hdf5"
    with h5py.File(path, "w") as f:
        if missing != "davis/left/pose":
            f.create_dataset("davis/left/pose", data=np.tile(np.eye(4), (5, 1, 1)))
        if missing != "davis/left/pose_ts":
            f.create_dataset("davis/left/pose_ts", data=np.arange(5.0))
    with pytest.raises(DataError) as err:
        read_mvsec_poses(path)
    assert f"'{missing}'" in str(err.value) and str(path) in str(err.value)


# -- poses and interpolation -------------------------------------------------------------------------------
def test_read_poses_and_interpolate(gt_file, events_file):
    path, ts, poses = gt_file
    got_ts, xy = read_mvsec_poses(path)
    np.testing.assert_array_equal(got_ts, ts)
    np.testing.assert_array_equal(xy, poses[:, 0:2, 3])
    q = np.random.default_rng(4).uniform(ts[0], ts[-1], 200)
    q = np.concatenate([q, [ts[0], ts[-1], ts[7]]])
    out = interpolate_positions(got_ts, xy, q)
    assert out.shape == (q.size, 2)
    np.testing.assert_allclose(out[:, 0], np.interp(q, ts, xy[:, 0]), rtol=0, atol=0)
    np.testing.assert_allclose(out[:, 1], np.interp(q, ts, xy[:, 1]), rtol=0, atol=0)
    # window timestamps (time of the last event) of the event file lie within the gt range
    reader = MVSECEvents(events_file[0])
    windows = fixed_count_windows(len(reader), 1000)
    wts = reader.window_timestamps(windows)
    np.testing.assert_array_equal(wts, events_file[1][[e - 1 for _, e in windows], 2])
    assert interpolate_positions(got_ts, xy, wts).shape == (len(windows), 2)
    reader.close()


def test_interpolate_out_of_range_raises():
    ts = np.array([10.0, 11.0, 12.0])
    xy = np.zeros((3, 2))
    with pytest.raises(DataError) as err:
        interpolate_positions(ts, xy, np.array([9.0, 10.5, 12.5, 13.0]))
    msg = str(err.value)
    assert "positions file shorter than the event time range" in msg
    assert "3 of 4 windows" in msg and "10.000000" in msg and "12.000000" in msg and "13.000000" in msg


# -- windowing ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,count", [(10_000, 1000), (10_000, 3000), (7, 7), (5, 10), (0, 4), (1, 1)])
def test_fixed_count_windows_cover_all_events_once(n, count):
    windows = fixed_count_windows(n, count)
    covered = np.zeros(n, dtype=int)
    for s, e in windows:
        assert 0 <= s < e <= n
        covered[s:e] += 1
    assert np.all(covered == 1)
    assert all(e - s == count for s, e in windows[:-1])
    if n % count:  # the last partial window is kept, and drop_sparse_windows(count) removes exactly it
        assert windows[-1][1] - windows[-1][0] == n % count
        kept, dropped = drop_sparse_windows(windows, count)
        assert dropped == 1 and kept == windows[:-1]
    with pytest.raises(ValueError):
        fixed_count_windows(n, 0)


@pytest.mark.parametrize("duration", [0.05, 0.1, 0.3333, 5.0])
def test_fixed_duration_windows_match_brute_force(events_file, duration):
    path, rows = events_file
    t = rows[:, 2]
    reader = MVSECEvents(path)
    windows = fixed_duration_windows(reader, duration)
    n_windows = int(np.floor((t[-1] - t[0]) / duration)) + 1
    bounds = np.searchsorted(t, t[0] + np.arange(1, n_windows) * duration, side="left")
    expected = list(zip([0, *bounds.tolist()], [*bounds.tolist(), N_EVENTS]))
    assert windows == expected
    # every event in exactly one window, and each window's events fall in its time bin
    assert windows[0][0] == 0 and windows[-1][1] == N_EVENTS
    assert all(a[1] == b[0] for a, b in zip(windows, windows[1:]))
    for k, (s, e) in enumerate(windows):
        if e > s:
            assert t[s] >= t[0] + k * duration and (k == n_windows - 1 or t[e - 1] < t[0] + (k + 1) * duration)
    reader.close()


def test_drop_sparse_windows_counts():
    windows = [(0, 10), (10, 12), (12, 12), (12, 30), (30, 31)]
    kept, dropped = drop_sparse_windows(windows, 5)
    assert kept == [(0, 10), (12, 30)] and dropped == 3
    kept, dropped = drop_sparse_windows(windows, 1)
    assert dropped == 1 and (12, 12) not in kept
    assert drop_sparse_windows([], 3) == ([], 0)
