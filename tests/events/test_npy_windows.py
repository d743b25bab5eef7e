"""Folder of ``<timestamp>.npy`` windows and the positions file, on fixtures written in the seed's layout."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import NPY_H, NPY_T0, NPY_W, make_event_window, write_npy_windows
from torchrepro.core.errors import DataError
from torchrepro.events.npy_windows import NpyWindowFolder, read_positions, window_positions

H, W, T0 = NPY_H, NPY_W, NPY_T0


def test_lists_sorts_and_loads(tmp_path):
    folder, stamps, windows = write_npy_windows(tmp_path, [40, 25, 60, 33])
    ds = NpyWindowFolder(folder, H, W)
    assert len(ds) == 4
    np.testing.assert_array_equal(ds.timestamps, np.array(stamps))
    for i, ref in enumerate(windows):
        got = ds.load(i)
        assert got.dtype == np.float64 and got.shape == (len(ref), 4)
        np.testing.assert_array_equal(got, ref)
        assert ds.num_events(i) == len(ref)
    np.testing.assert_array_equal(ds[1], windows[1])


def test_sorted_numerically_not_by_name(tmp_path):
    for name in ("10.5", "9.25", "100", "1e1"):  # text order would be 10.5, 100, 1e1, 9.25
        np.save(tmp_path / f"{name}.npy", make_event_window(3, 1, float(name)))
    ds = NpyWindowFolder(tmp_path, H, W)
    np.testing.assert_array_equal(ds.timestamps, [9.25, 10.0, 10.5, 100.0])
    assert [p.name for p in ds.paths] == ["9.25.npy", "1e1.npy", "10.5.npy", "100.npy"]


def test_unparsable_name_names_the_file(tmp_path):
    folder, _, _ = write_npy_windows(tmp_path, [5, 5])
    np.save(folder / "positions.npy", np.zeros((3, 3)))
    with pytest.raises(DataError, match=r"positions\.npy.*<timestamp>\.npy"):
        NpyWindowFolder(folder, H, W)
    (folder / "positions.npy").unlink()
    np.save(folder / "nan.npy", np.zeros((0, 4)))
    with pytest.raises(DataError, match=r"nan\.npy"):
        NpyWindowFolder(folder, H, W)


def test_duplicate_timestamps_raise(tmp_path):
    np.save(tmp_path / "1.5.npy", make_event_window(3, 1, 1.0))
    np.save(tmp_path / "1.50.npy", make_event_window(3, 2, 1.0))
    with pytest.raises(DataError, match="same timestamp"):
        NpyWindowFolder(tmp_path, H, W)


def test_missing_or_empty_folder(tmp_path):
    with pytest.raises(DataError, match=r"does not exist; set the dataset path"):
        NpyWindowFolder(tmp_path / "nope", H, W)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(DataError, match="is not a folder"):
        NpyWindowFolder(tmp_path / "file.txt", H, W)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no .npy windows"):
        NpyWindowFolder(tmp_path / "empty", H, W)


def _single(tmp_path: Path, arr: np.ndarray, name: str = "1504645177.100000.npy") -> tuple[NpyWindowFolder, str]:
    np.save(tmp_path / name, arr)
    return NpyWindowFolder(tmp_path, H, W), name


def test_wrong_shape(tmp_path):
    ds, name = _single(tmp_path, np.zeros((5, 3)))
    with pytest.raises(DataError, match=rf"{name}.*shape \(5, 3\).*\(N, 4\)"):
        ds.load(0)


def test_out_of_sensor_names_file_and_range(tmp_path):
    ev = make_event_window(10, 3, T0)
    ev[4, 1] = W + 5
    ds, name = _single(tmp_path, ev)
    with pytest.raises(DataError, match=rf"{name} lie outside the sensor.*x spans \[\d+, 35\]"):
        ds.load(0)
    ev = make_event_window(10, 3, T0)
    ev[2, 2] = -2
    np.save(tmp_path / name, ev)
    with pytest.raises(DataError, match=r"y spans \[-2, "):
        ds.load(0)


def test_decreasing_time_names_file_and_row(tmp_path):
    ev = make_event_window(10, 4, T0)
    ev[[6, 7], 0] = ev[[7, 6], 0]
    ds, name = _single(tmp_path, ev)
    with pytest.raises(DataError, match=rf"{name} is not sorted by time: row 7 "):
        ds.load(0)


def test_non_finite_time(tmp_path):
    ev = make_event_window(10, 5, T0)
    ev[3, 0] = np.nan
    ds, name = _single(tmp_path, ev)
    with pytest.raises(DataError, match=rf"{name} has a non-finite timestamp at row 3"):
        ds.load(0)


def test_polarity_minus_one_is_converted_and_others_rejected(tmp_path):
    ev = make_event_window(10, 6, T0)
    signed = ev.copy()
    signed[:, 3] = np.where(ev[:, 3] > 0, 1.0, -1.0)
    ds, name = _single(tmp_path, signed)
    np.testing.assert_array_equal(ds.load(0), ev)
    bad = ev.copy()
    bad[0, 3] = 2.0
    np.save(tmp_path / name, bad)
    with pytest.raises(DataError, match=rf"{name} has polarity values \[0.0, 1.0, 2.0\]"):
        ds.load(0)
    mixed = ev.copy()
    mixed[0, 3] = -1.0  # {-1, 0, 1}: neither convention
    np.save(tmp_path / name, mixed)
    with pytest.raises(DataError, match="polarity"):
        ds.load(0)


@pytest.mark.parametrize("payload", [b"not a numpy file at all", b"\x93NUMPY\x01\x00garbage"])
def test_corrupt_npy_names_the_file(tmp_path, payload):
    name = "1504645177.200000.npy"
    (tmp_path / name).write_bytes(payload)
    ds = NpyWindowFolder(tmp_path, H, W)
    with pytest.raises(DataError, match=rf"{name}.*corrupt"):
        ds.load(0)
    with pytest.raises(DataError, match=rf"{name}.*corrupt"):
        ds.num_events(0)


def test_truncated_npy_names_the_file(tmp_path):
    name = "1504645177.300000.npy"
    np.save(tmp_path / name, make_event_window(100, 7, T0))
    data = (tmp_path / name).read_bytes()
    (tmp_path / name).write_bytes(data[: len(data) // 2])
    ds = NpyWindowFolder(tmp_path, H, W)
    with pytest.raises(DataError, match=rf"{name}.*corrupt"):
        ds.load(0)


def test_sparse_windows_are_loaded_then_dropped_with_a_count(tmp_path, caplog):
    folder, stamps, windows = write_npy_windows(tmp_path, [30, 0, 1, 12, 2])
    ds = NpyWindowFolder(folder, H, W)
    assert ds.load(1).shape == (0, 4) and ds.load(2).shape == (1, 4)
    assert ds.count_sparse(1) == 1 and ds.count_sparse(3) == 3
    with caplog.at_level(logging.WARNING, logger="torchrepro.events.npy_windows"):
        kept, dropped = ds.drop_sparse(3)
    assert dropped == 3 and len(kept) == 2 and len(ds) == 5
    assert "dropped 3 of 5 windows" in caplog.text
    np.testing.assert_array_equal(kept.timestamps, [stamps[0], stamps[3]])
    np.testing.assert_array_equal(kept.load(1), windows[3])
    assert ds.drop_sparse(0)[1] == 0
    with pytest.raises(DataError, match="all 5 windows"):
        ds.drop_sparse(1000)


# -- positions ---------------------------------------------------------------------------------------------
POS = np.array([[0.0, 0.0, T0], [1.0, 2.0, T0 + 0.1], [3.0, 2.0, T0 + 0.3]])  # rows x, y, t


@pytest.mark.parametrize(
    "name, text",
    [
        ("pos.txt", "\n".join(f"{x} {y} {t:.6f}" for x, y, t in POS) + "\n"),
        ("pos.csv", "x,y,t\n" + "\n".join(f"{x},{y},{t:.6f}" for x, y, t in POS) + "\n"),
        ("pos2.txt", "# x y t\n\n" + "\n".join(f"{x}\t{y}\t{t:.6f}" for x, y, t in POS)),
    ],
)
def test_read_positions_text(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    t, xy = read_positions(tmp_path / name)
    np.testing.assert_allclose(t, POS[:, 2])
    np.testing.assert_array_equal(xy, POS[:, :2])


def test_read_positions_npy_and_interpolation(tmp_path):
    np.save(tmp_path / "pos.npy", POS)
    t, xy = read_positions(tmp_path / "pos.npy")
    assert t.shape == (3,) and xy.shape == (3, 2)
    folder, stamps, _ = write_npy_windows(tmp_path, [5, 5, 5])  # at T0 + 0.05, 0.10, 0.15 (+ 0.000123)
    got = window_positions(NpyWindowFolder(folder, H, W), tmp_path / "pos.npy")
    expected = np.stack([np.interp(stamps, POS[:, 2], POS[:, k]) for k in range(2)], axis=1)
    np.testing.assert_allclose(got, expected)


def test_positions_shorter_than_windows(tmp_path):
    np.save(tmp_path / "pos.npy", POS[:2])
    folder, _, _ = write_npy_windows(tmp_path, [5, 5, 5])  # last window at T0 + 0.15 > T0 + 0.1
    with pytest.raises(DataError, match="positions file shorter than the event time range"):
        window_positions(NpyWindowFolder(folder, H, W), tmp_path / "pos.npy")


def test_positions_errors(tmp_path):
    with pytest.raises(DataError, match="positions file not found"):
        read_positions(tmp_path / "missing.txt")
    (tmp_path / "a.txt").write_text("0 0 1\n1 1 3\n2 2 2\n")
    with pytest.raises(DataError, match=r"a\.txt: t is not strictly increasing at data row 2"):
        read_positions(tmp_path / "a.txt")
    (tmp_path / "b.csv").write_text("x,y,t\n0,0,1\n1,1,1\n")
    with pytest.raises(DataError, match="not strictly increasing at data row 1"):
        read_positions(tmp_path / "b.csv")
    (tmp_path / "c.txt").write_text("0 0 1\n1 1\n")
    with pytest.raises(DataError, match=r"c\.txt line 2 has 2 columns; expected 3"):
        read_positions(tmp_path / "c.txt")
    (tmp_path / "d.csv").write_text("x,y,t\n0,0,1\nfoo,1,2\n")
    with pytest.raises(DataError, match=r"d\.csv line 3 is not numeric"):
        read_positions(tmp_path / "d.csv")
    np.save(tmp_path / "e.npy", np.zeros((4, 2)))
    with pytest.raises(DataError, match=r"e\.npy.*shape \(4, 2\).*\(M, 3\)"):
        read_positions(tmp_path / "e.npy")
    (tmp_path / "f.txt").write_text("x y t\n")
    with pytest.raises(DataError, match="holds no rows"):
        read_positions(tmp_path / "f.txt")
    (tmp_path / "g.json").write_text("[]")
    with pytest.raises(DataError, match="unsupported extension"):
        read_positions(tmp_path / "g.json")
    (tmp_path / "h.npy").write_bytes(b"junk")
    with pytest.raises(DataError, match=r"h\.npy.*corrupt"):
        read_positions(tmp_path / "h.npy")
