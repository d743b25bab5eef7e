"""Shared fixtures: tiny data sets in the real on-disk formats, written into tmp paths."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("OMP_NUM_THREADS", "2")
REPO = Path(__file__).resolve().parents[1]


def write_csv_split(root: Path, n: int, seed: int = 0, size: int = 32, classes=("left", "right", "straight")) -> Path:
    """A split in the seed's CSV format: root/images/<name>.jpg + root/labels.csv (header, no extension)."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = ["image_name,label"]
    for i in range(n):
        label = classes[i % len(classes)]
        img = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        Image.fromarray(img).save(root / "images" / f"frame_{i:04d}.jpg", quality=90)
        rows.append(f"frame_{i:04d},{label}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def write_csv_dataset(root: Path, n_train: int, n_val: int, n_test: int = 6) -> Path:
    """A data root in the seed's CSV format with train/, val/ and test/ splits (seeds 1, 2, 3); returns ``root``."""
    for split, n, seed in (("train", n_train, 1), ("val", n_val, 2), ("test", n_test, 3)):
        write_csv_split(root / split, n, seed=seed)
    return root


def write_market(root: Path, layout: dict[str, list[str]], size: tuple[int, int] = (8, 16)) -> Path:
    """A re-ID data set in the Market-1501 layout: ``root/<folder>/<name>`` for every name of every folder of
    ``layout`` (``bounding_box_train``, ``query``, ``bounding_box_test``), each a black ``size`` (w, h) JPEG."""
    for folder, names in layout.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            Image.new("RGB", size).save(root / folder / name)
    return root


def write_mvsec(folder: Path, name: str, seed: int) -> tuple[Path, Path]:
    """A 40 m drive of random events on a 64×48 sensor in the exact MVSEC layout: (``*_data.hdf5``, ``*_gt.hdf5``)."""
    from torchrepro.events.mvsec import write_mvsec_sequence

    rng = np.random.default_rng(seed)
    n = 40 * 800
    t = np.sort(rng.uniform(0, 4.0, n))
    ev = np.stack([t, rng.integers(0, 64, n), rng.integers(0, 48, n), rng.integers(0, 2, n)], 1).astype(float)
    pose_ts = np.linspace(-0.1, 4.1, 50)
    poses = np.tile(np.eye(4), (50, 1, 1))
    poses[:, 0, 3] = pose_ts * 10.0  # 10 m/s along x
    data, gt = folder / f"{name}_data.hdf5", folder / f"{name}_gt.hdf5"
    write_mvsec_sequence(data, gt, ev, pose_ts, poses)
    return data, gt


#: sensor (height, width) and first timestamp of the ``.npy`` event windows below
NPY_H, NPY_W, NPY_T0 = 20, 30, 1504645177.0


def random_events(n: int, seed: int, height: int, width: int, t0: float = 0.0, span: float = 0.05) -> np.ndarray:
    """``n`` random events (N, 4) float64 t, x, y, p (p in {0, 1}) on a ``height`` × ``width`` sensor within ``span``
    seconds of ``t0``, sorted by t."""
    rng = np.random.default_rng(seed)
    t = np.sort(t0 + rng.uniform(0.0, span, size=n))
    x = rng.integers(0, width, size=n)
    y = rng.integers(0, height, size=n)
    p = rng.integers(0, 2, size=n)
    return np.stack([t, x, y, p], axis=1).astype(np.float64)


def make_event_window(n: int, seed: int, t_start: float) -> np.ndarray:
    """``n`` random events on the NPY_H × NPY_W sensor within 40 ms of ``t_start``, sorted by t."""
    return random_events(n, seed, NPY_H, NPY_W, t_start, span=0.04)


def write_npy_windows(root: Path, counts: list[int]) -> tuple[Path, list[float], list[np.ndarray]]:
    """The seed's layout: ``root/windows/<timestamp>.npy``, one window of ``counts[k]`` events every 50 ms (named
    like ``1504645177.123456.npy``), written in shuffled order. Returns (folder, timestamps, windows)."""
    folder = root / "windows"
    folder.mkdir(parents=True)
    stamps = [round(NPY_T0 + 0.05 * (k + 1) + 0.000123, 6) for k in range(len(counts))]
    windows = [make_event_window(n, k, s - 0.045) for k, (n, s) in enumerate(zip(counts, stamps))]
    for k in np.random.default_rng(0).permutation(len(counts)):
        np.save(folder / f"{stamps[k]:.6f}.npy", windows[k])
    return folder, stamps, windows


@pytest.fixture
def csv_data(tmp_path: Path) -> Path:
    """data root with train/, val/ and test/ in the CSV format."""
    root = tmp_path / "frames"
    write_csv_dataset(root, 24, 9)
    return root


@pytest.fixture(autouse=True)
def _restore_main_module():
    """Streamlit's ``AppTest`` runs a page as ``__main__`` and leaves that module in ``sys.modules``; a process
    started later in the same worker by ``spawn`` (the event-drive generator's pool) would then re-run the page's
    script and die. Every test gets the real ``__main__`` back."""
    main = sys.modules.get("__main__")
    yield
    if main is not None and sys.modules.get("__main__") is not main:
        sys.modules["__main__"] = main


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    """``tiny_runs(name) -> run directory``: a registered recipe's tiny run (:func:`tests.helpers.train_tiny_run`,
    the recipe contract's step 1), trained once per test session, on first use, and shared by the pytest-xdist
    workers (a file lock per recipe): the contract checks it, the live pages and tools use it. Read-only for its
    users (a test that needs to write beside it copies or links it)."""
    import fcntl
    import shutil

    from tests.helpers import train_tiny_run

    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "tiny_runs"
    root.mkdir(parents=True, exist_ok=True)

    def get(name: str) -> Path:
        run_dir = root / "runs" / name
        with open(root / f"{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (run_dir / "report.html").is_file():  # written last: the run is complete
                shutil.rmtree(run_dir, ignore_errors=True)
                train_tiny_run(name, root)
        return run_dir

    return get
