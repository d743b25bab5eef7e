"""Round trip of write_mvsec_sequence through the MVSEC reader (torchrepro.events.mvsec)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from torchrepro.core.errors import DataError
from torchrepro.events.mvsec import MVSECEvents, read_mvsec_poses, write_mvsec_sequence


def _events(n: int = 5000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = 100.0 + np.cumsum(rng.exponential(1e-4, n))
    return np.stack([t, rng.integers(0, 346, n), rng.integers(0, 260, n), rng.integers(0, 2, n)], 1).astype(float)


def _poses(m: int = 20) -> tuple[np.ndarray, np.ndarray]:
    ts = np.linspace(99.0, 101.0, m)
    poses = np.tile(np.eye(4), (m, 1, 1))
    poses[:, 0, 3] = np.linspace(0.0, 30.0, m)
    poses[:, 1, 3] = -1.5
    return ts, poses


def test_round_trip_through_reader(tmp_path):
    ev = _events()
    ts, poses = _poses()
    data, gt = tmp_path / "x_data.hdf5", tmp_path / "x_gt.hdf5"
    write_mvsec_sequence(data, gt, ev, ts, poses)
    with MVSECEvents(data) as reader:
        assert len(reader) == len(ev)
        np.testing.assert_array_equal(reader.slice(0, len(ev)), ev)
        assert reader.time_range() == (ev[0, 0], ev[-1, 0])
    with h5py.File(data, "r") as f:  # on disk: MVSEC's (x, y, t, p) with p in {-1, +1}
        raw = f["davis/left/events"][:10]
    np.testing.assert_array_equal(raw[:, 2], ev[:10, 0])
    np.testing.assert_array_equal(raw[:, 3], np.where(ev[:10, 3] > 0, 1.0, -1.0))
    got_ts, xy = read_mvsec_poses(gt)
    np.testing.assert_array_equal(got_ts, ts)
    np.testing.assert_array_equal(xy, poses[:, 0:2, 3])
    with h5py.File(gt, "r") as f:
        np.testing.assert_array_equal(f["davis/left/pose"][()], poses)
    assert not list(tmp_path.glob(".*.tmp"))  # temporary files are gone


def test_overwrite_and_bad_inputs(tmp_path):
    ts, poses = _poses()
    data, gt = tmp_path / "d.hdf5", tmp_path / "g.hdf5"
    write_mvsec_sequence(data, gt, _events(100), ts, poses)
    write_mvsec_sequence(data, gt, _events(50, seed=1), ts, poses)  # replaced atomically
    assert len(MVSECEvents(data)) == 50
    with pytest.raises(DataError, match="sorted"):
        write_mvsec_sequence(data, gt, _events(100)[::-1], ts, poses)
    with pytest.raises(DataError, match="shape"):
        write_mvsec_sequence(data, gt, np.zeros((5, 3)), ts, poses)
    with pytest.raises(DataError, match="poses"):
        write_mvsec_sequence(data, gt, _events(10), ts[:-1], poses)
    assert len(MVSECEvents(data)) == 50  # failed writes left the published file alone
