"""Re-ID data set readers on tiny fixtures in the real on-disk layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from tests.conftest import write_market
from torchrepro.core.errors import DataError
from torchrepro.reid.datasets import (
    ReidItem,
    ReidSplit,
    combine_sources,
    parse_market_name,
    read_cuhk03_new,
    read_dukemtmc,
    read_market1501,
)


MARKET = {
    "bounding_box_train": [
        "0007_c1s1_000151_01.jpg",
        "0007_c2s1_000301_01.jpg",
        "0002_c1s1_000451_03.jpg",
        "0002_c6s1_000501_01.jpg",
        "0011_c3s1_000601_02.jpg",
        "0000_c1s1_000001_01.jpg",  # background: never in train
        "-1_c1s1_000002_01.jpg",  # junk
    ],
    "query": [
        "0003_c1s1_000001_00.jpg",
        "0004_c5s1_000002_00.jpg",
        "0000_c2s1_000003_00.jpg",  # background: not a query
        "-1_c1s1_000004_00.jpg",
    ],
    "bounding_box_test": [
        "0003_c2s1_000010_01.jpg",
        "0004_c4s1_000011_01.jpg",
        "0000_c3s1_000012_01.jpg",  # background: kept in gallery
        "-1_c1s1_000013_01.jpg",  # junk: skipped
    ],
}


def _market(root: Path, layout: dict[str, list[str]] = MARKET) -> Path:
    return write_market(root, layout)


def test_parse_market_name() -> None:
    assert parse_market_name("0002_c1s1_000451_03.jpg") == (2, 0)
    assert parse_market_name("0001_c2_f0046182.jpg") == (1, 1)
    assert parse_market_name("-1_c3s2_000001_01.jpg") == (-1, 2)


def test_parse_market_name_bad() -> None:
    with pytest.raises(DataError, match=r"hello\.jpg.*pattern"):
        parse_market_name("hello.jpg")


def test_read_market1501_counts_and_relabel(tmp_path: Path) -> None:
    split = read_market1501(_market(tmp_path))
    assert len(split.train) == 5
    assert sorted({it.pid for it in split.train}) == [0, 1, 2]
    # sorted order: raw 2 -> 0, 7 -> 1, 11 -> 2
    by_name = {it.path.name: it for it in split.train}
    assert by_name["0002_c1s1_000451_03.jpg"].pid == 0
    assert by_name["0007_c2s1_000301_01.jpg"].pid == 1
    assert by_name["0011_c3s1_000601_02.jpg"].pid == 2
    assert by_name["0002_c6s1_000501_01.jpg"].camid == 5
    assert by_name["0007_c1s1_000151_01.jpg"].camid == 0
    # query keeps raw pids, no background or junk
    assert [(it.pid, it.camid) for it in split.query] == [(3, 0), (4, 4)]
    # gallery keeps background (pid 0), drops junk
    assert sorted((it.pid, it.camid) for it in split.gallery) == [(0, 2), (3, 1), (4, 3)]
    assert all(it.path.is_file() for it in split.train + split.query + split.gallery)
    assert all(isinstance(it, ReidItem) for it in split.train)


def test_read_market1501_sorted_and_deterministic(tmp_path: Path) -> None:
    root = _market(tmp_path)
    a, b = read_market1501(root), read_market1501(root)
    assert a == b
    for items in (a.train, a.query, a.gallery):
        names = [it.path.name for it in items]
        assert names == sorted(names)


def test_summary(tmp_path: Path) -> None:
    s = read_market1501(_market(tmp_path)).summary()
    lines = s.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("train") and "3 ids" in lines[0] and "5 images" in lines[0]
    assert lines[1].startswith("query") and "2 ids" in lines[1] and "2 images" in lines[1]
    assert lines[2].startswith("gallery") and "3 ids" in lines[2] and "3 images" in lines[2]


def test_market_camera_out_of_range(tmp_path: Path) -> None:
    layout = {k: list(v) for k, v in MARKET.items()}
    layout["bounding_box_test"].append("0005_c7s1_000001_01.jpg")
    with pytest.raises(DataError, match=r"0005_c7s1_000001_01\.jpg.*1\.\.6"):
        read_market1501(_market(tmp_path, layout))


def test_market_bad_filename(tmp_path: Path) -> None:
    layout = {k: list(v) for k, v in MARKET.items()}
    layout["query"].append("Thumbs_01.jpg")
    with pytest.raises(DataError, match=r"query/Thumbs_01\.jpg.*pattern"):
        read_market1501(_market(tmp_path, layout))


def test_market_missing_folder(tmp_path: Path) -> None:
    layout = {k: v for k, v in MARKET.items() if k != "query"}
    with pytest.raises(DataError, match=r"query"):
        read_market1501(_market(tmp_path, layout))


def test_dukemtmc_eight_cameras(tmp_path: Path) -> None:
    layout = {
        "bounding_box_train": ["0001_c2_f0046182.jpg", "0001_c8_f0046200.jpg", "0005_c1_f0000001.jpg"],
        "query": ["0010_c7_f0000010.jpg"],
        "bounding_box_test": ["0010_c8_f0000020.jpg", "0000_c1_f0000030.jpg"],
    }
    split = read_dukemtmc(_market(tmp_path, layout))
    assert [(it.pid, it.camid) for it in split.train] == [(0, 1), (0, 7), (1, 0)]
    assert [(it.pid, it.camid) for it in split.query] == [(10, 6)]
    assert [(it.pid, it.camid) for it in split.gallery] == [(0, 0), (10, 7)]
    # the same names are out of range for Market-1501 (6 cameras)
    with pytest.raises(DataError, match=r"c8"):
        read_market1501(tmp_path)


# --- CUHK03 new protocol -------------------------------------------------------------------------------------

CUHK_FILES = [
    # name, pid, camId (1-based)
    ("1_001_1_01.png", 1, 1),
    ("1_001_2_01.png", 1, 2),
    ("1_005_1_01.png", 5, 1),
    ("1_005_2_02.png", 5, 2),
    ("2_010_1_01.png", 10, 1),
    ("2_010_2_01.png", 10, 2),
    ("2_012_1_01.png", 12, 1),
    ("2_012_2_01.png", 12, 2),
]


def _cuhk03(root: Path, variant: str = "labeled", drop: str | None = None, **override: np.ndarray) -> Path:
    write_market(root, {f"images_{variant}": [name for name, _, _ in CUHK_FILES]})
    filelist = np.empty((len(CUHK_FILES), 1), dtype=object)
    filelist[:, 0] = [n for n, _, _ in CUHK_FILES]
    data = {
        "filelist": filelist,
        "labels": np.array([[p] for _, p, _ in CUHK_FILES], dtype=np.float64),
        "camId": np.array([[c] for _, _, c in CUHK_FILES], dtype=np.float64),
        "train_idx": np.array([[5], [6], [1], [2]], dtype=np.float64),  # pids 10, 1 (1-based indices)
        "query_idx": np.array([[3], [7]], dtype=np.float64),
        "gallery_idx": np.array([[4], [8]], dtype=np.float64),
    }
    data.update(override)
    if drop:
        del data[drop]
    scipy.io.savemat(str(root / f"cuhk03_new_protocol_config_{variant}.mat"), data)
    return root


def test_loadmat_shape_is_handled(tmp_path: Path) -> None:
    # sanity: savemat/loadmat gives a cell-like object array of 1-element string arrays
    root = _cuhk03(tmp_path)
    fl = scipy.io.loadmat(str(root / "cuhk03_new_protocol_config_labeled.mat"))["filelist"]
    assert fl.dtype == object and fl.shape == (8, 1)
    assert isinstance(fl[0, 0], np.ndarray)


@pytest.mark.parametrize("variant", ["labeled", "detected"])
def test_read_cuhk03_new(tmp_path: Path, variant: str) -> None:
    split = read_cuhk03_new(_cuhk03(tmp_path, variant), variant)  # type: ignore[arg-type]
    assert [(it.path.name, it.pid, it.camid) for it in split.train] == [
        ("2_010_1_01.png", 1, 0),
        ("2_010_2_01.png", 1, 1),
        ("1_001_1_01.png", 0, 0),
        ("1_001_2_01.png", 0, 1),
    ]
    assert [(it.path.name, it.pid, it.camid) for it in split.query] == [("1_005_1_01.png", 5, 0), ("2_012_1_01.png", 12, 0)]
    assert [(it.pid, it.camid) for it in split.gallery] == [(5, 1), (12, 1)]
    assert all(it.path.is_file() for it in split.train + split.query + split.gallery)
    assert all(it.path.parent.name == f"images_{variant}" for it in split.gallery)


def test_cuhk03_flat_filelist(tmp_path: Path) -> None:
    # a 1 x N cell row (as MATLAB often stores it) reads the same
    filelist = np.empty((1, len(CUHK_FILES)), dtype=object)
    filelist[0, :] = [n for n, _, _ in CUHK_FILES]
    split = read_cuhk03_new(_cuhk03(tmp_path, filelist=filelist), "labeled")
    assert split.query[0].path.name == "1_005_1_01.png"


def test_cuhk03_missing_mat(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"cuhk03_new_protocol_config_detected\.mat"):
        read_cuhk03_new(tmp_path, "detected")


def test_cuhk03_missing_key(tmp_path: Path) -> None:
    _cuhk03(tmp_path, drop="query_idx")
    with pytest.raises(DataError, match=r"cuhk03_new_protocol_config_labeled\.mat.*query_idx"):
        read_cuhk03_new(tmp_path, "labeled")


def test_cuhk03_index_out_of_range(tmp_path: Path) -> None:
    _cuhk03(tmp_path, gallery_idx=np.array([[4], [9]], dtype=np.float64))
    with pytest.raises(DataError, match=r"cuhk03_new_protocol_config_labeled\.mat.*gallery_idx.*9"):
        read_cuhk03_new(tmp_path, "labeled")
    _cuhk03(tmp_path, train_idx=np.array([[0]], dtype=np.float64))
    with pytest.raises(DataError, match=r"train_idx.*\b0\b"):
        read_cuhk03_new(tmp_path, "labeled")


def test_data_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        read_cuhk03_new(tmp_path, "labeled")
    assert "\n" not in str(info.value)


# --- combine_sources ------------------------------------------------------------------------------------------


def test_combine_sources_offsets(tmp_path: Path) -> None:
    a = read_market1501(_market(tmp_path / "market"))
    b = read_cuhk03_new(_cuhk03(tmp_path / "cuhk"), "labeled")
    merged = combine_sources([a, b])
    assert len(merged) == len(a.train) + len(b.train)
    assert [it.pid for it in merged[: len(a.train)]] == [it.pid for it in a.train]
    assert [it.pid for it in merged[len(a.train):]] == [it.pid + 3 for it in b.train]
    assert sorted({it.pid for it in merged}) == list(range(5))
    assert [it.camid for it in merged] == [it.camid for it in a.train + b.train]


def test_combine_sources_skips_empty() -> None:
    item = ReidItem(Path("x.jpg"), 0, 0)
    empty = ReidSplit([], [], [])
    one = ReidSplit([item, ReidItem(Path("y.jpg"), 1, 0)], [], [])
    assert [it.pid for it in combine_sources([empty, one, one])] == [0, 1, 2, 3]
    assert combine_sources([]) == []
