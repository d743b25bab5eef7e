"""The bad-input corpus (issue 14): every broken input a researcher is likely to hand torchrepro, run through the
CLI entry point in-process. Each must end with exit status 2 and exactly one ``torchrepro: error:`` line naming
the key or file, with no traceback; once the input is fixed, the very same command must succeed with no manual
clean-up (no half-made run or eval folder, cache or generated set in the way).

A case is a family (writes a good input in the real format and returns the command) plus a break and a fix. The
command's arguments stay the same unless the input *is* an argument (an override, a resume override). Config
breaks go into the YAML file the command runs (``user.yaml``: ``base:`` the family's config plus the case's
lines); data breaks change the files. Fixed re-runs are tiny: one training step each (12 driving images at 32 px,
a 5-identity Market-1501 folder, 40-window event drives), or ``torchrepro data`` where only it reads the broken
file (an image that no step of a tiny run would reach, the EST representation's training windows).
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import h5py
import numpy as np
import pytest
import torch

from tests.conftest import (
    NPY_H,
    NPY_T0,
    NPY_W,
    make_event_window,
    write_csv_dataset,
    write_market,
    write_mvsec,
    write_npy_windows,
)
from tests.helpers import REPO, assert_one_line_error, run_main, scratch_dir, tiny_config
from tests.simclr.fixtures import idx_bytes, write_cifar10, write_fashion_mnist, write_image_folder

ROOT = os.geteuid() == 0  # permission bits do not stop root: a file where a folder should be fails for everyone


@dataclass
class Input:
    """A good input under ``tmp`` and the command that uses it (``cmd``: strings, changed only by a case whose
    input is an argument). ``config``: the YAML ``cmd`` runs; ``data``: the family's data root."""

    tmp: Path
    cmd: list[str]
    base: Path
    data: Path | None = None
    extra: dict[str, Path] = field(default_factory=dict)

    @property
    def config(self) -> Path:
        return self.tmp / "user.yaml"

    def write_config(self, lines: str = "", base: Path | None = None) -> None:
        self.config.write_text(f"base: {base or self.base}\n{lines}")


# ------------------------------------------------------------------------------------------------ families
def _driving_data(tmp: Path) -> Path:
    data = tmp / "data"
    write_csv_dataset(data, 12, 6)
    return data


#: one step (then the test split is scored once); checkpoints at the epoch end only
DRIVING_TRAIN = ["trainer.max_steps=1", "trainer.validate_before_fit=false", "checkpoint.every_n_steps=0"]


def driving(tmp: Path, command: str = "train") -> Input:
    """The seed's CSV format (tests/helpers.tiny_config: ResNet18 at 32 px)."""
    data = _driving_data(tmp)
    inp = Input(tmp, [], tiny_config(tmp, data), data)
    inp.write_config()
    run = [] if command == "data" else [f"run.dir={tmp / 'runs' / 'run'}", *DRIVING_TRAIN]
    inp.cmd = [command, str(inp.config), *run]
    return inp


def driving_data(tmp: Path) -> Input:
    return driving(tmp, "data")


def driving_two_steps(tmp: Path) -> Input:
    """Two steps (a loss gone NaN after the first update is seen at the second), no checkpoint written before."""
    inp = driving(tmp)
    inp.cmd[inp.cmd.index("trainer.max_steps=1")] = "trainer.max_steps=2"
    return inp


def imagefolder(tmp: Path) -> Input:
    """torchvision's ImageFolder layout, made from the CSV fixture: ``root/<split>/<class>/<image>``."""
    inp = driving(tmp)
    classes = ("left", "right", "straight")
    for split in ("train", "val", "test"):
        csv_split = inp.data / split
        for line in (csv_split / "labels.csv").read_text().splitlines()[1:]:
            name, label = line.split(",")
            (inp.data / "folders" / split / label).mkdir(parents=True, exist_ok=True)
            shutil.move(csv_split / "images" / f"{name}.jpg", inp.data / "folders" / split / label / f"{name}.jpg")
        shutil.rmtree(csv_split)
    for split in ("train", "val", "test"):
        assert sorted(p.name for p in (inp.data / "folders" / split).iterdir()) == list(classes)
    inp.data = inp.data / "folders"
    inp.base = tmp / "imagefolder.yaml"
    inp.base.write_text(f"base: {tmp / 'tiny.yaml'}\ndata: {{source: imagefolder, root: {inp.data}}}\n")
    inp.write_config()
    return inp


def driving_synthetic(tmp: Path) -> Input:
    """Generated road scenes (written in the CSV format under data.synthetic_dir): `torchrepro data` generates them."""
    inp = Input(tmp, [], REPO / "configs" / "driving_synthetic.yaml", extra={"synth": tmp / "gen" / "driving"})
    inp.write_config()
    inp.cmd = ["data", str(inp.config), f"data.synthetic_dir={inp.extra['synth']}", "data.synthetic_train=6",
               "data.synthetic_val=3", "data.synthetic_test=3", "data.synthetic_size=32"]
    return inp


#: Market-1501 layout: 5 training identities (each 2 images from camera 1, 1 from camera 2: every one can be held
#: out for validation), 2 test identities queried from camera 1 and found in the gallery from camera 2
MARKET = {
    "bounding_box_train": [f"{pid:04d}_c{c}s1_{k:06d}_01.jpg" for pid in range(1, 6)
                           for k, c in enumerate((1, 1, 2))],
    "query": ["0101_c1s1_000001_00.jpg", "0102_c1s1_000002_00.jpg"],
    "bounding_box_test": ["0101_c2s1_000010_01.jpg", "0102_c2s1_000011_01.jpg", "0103_c3s1_000012_01.jpg",
                          "0000_c3s1_000013_01.jpg"],
}
REID_TINY = ["data.val_ids=1", "data.height=32", "data.width=16", "data.pad=2", "data.batch_size=4",
             "data.num_instances=2", "data.test_batch_size=64", "data.num_workers=0", "model.arch=resnet18",
             "trainer.accelerator=cpu", "trainer.max_steps=1", "trainer.progress_bar=false",
             "trainer.log_every_n_steps=1"]


def reid(tmp: Path, command: str = "train") -> Input:
    """Bag of Tricks on a Market-1501 folder (configs/reid_market_bot.yaml at 32×16, one step)."""
    data = write_market(tmp / "market", MARKET)
    inp = Input(tmp, [], tmp / "reid.yaml", data)
    inp.base.write_text(f"base: {REPO / 'configs' / 'reid_market_bot.yaml'}\ndata: {{roots: {{market1501: {data}}}}}\n")
    inp.write_config()
    run = [] if command == "data" else [f"run.dir={tmp / 'runs' / 'run'}"]
    inp.cmd = [command, str(inp.config), *REID_TINY, *run]
    return inp


def reid_data(tmp: Path) -> Input:
    return reid(tmp, "data")


VPR_TINY = ["trainer.max_steps=1", "trainer.validate_before_fit=false", "trainer.progress_bar=false",
            "trainer.accelerator=cpu", "checkpoint.every_n_steps=0", "data.input_size=32", "data.n_negatives=2",
            "data.batch_size=2", "data.eval_batch_size=64", "data.mining=random", "data.mining_candidates=8",
            "data.num_workers=0", "model.arch=resnet18", "model.num_clusters=4", "model.netvlad_init_windows=8",
            "trainer.log_every_n_steps=1"]


def _vpr(tmp: Path, paths: dict[str, Path], lines: str, command: str) -> Input:
    """configs/vpr_event_mvsec.yaml on the recordings ``paths`` (data.<split>_events/_poses) and the data ``lines``."""
    inp = Input(tmp, [], tmp / "vpr.yaml", extra=paths)
    files = ", ".join(f"{key}: {path}" for key, path in paths.items())
    inp.base.write_text(f"base: {REPO / 'configs' / 'vpr_event_mvsec.yaml'}\ndata: {{{files}, {lines}}}\n")
    inp.write_config()
    run = [] if command == "data" else [f"run.dir={tmp / 'runs' / 'run'}"]
    inp.cmd = [command, str(inp.config), f"data.cache_dir={tmp / 'cache'}", *VPR_TINY, *run]
    return inp


def vpr_mvsec(tmp: Path, command: str = "train") -> Input:
    """Event VPR on MVSEC HDF5 recordings (40 m drives of random events on a 64×48 sensor, 800-event windows)."""
    paths = {}
    for split, seed in (("train", 0), ("val", 3), ("test", 1)):
        paths[f"{split}_events"], paths[f"{split}_poses"] = write_mvsec(tmp / "mvsec", f"drive_{split}", seed)
    return _vpr(tmp, paths, "sensor_height: 48, sensor_width: 64, events_per_window: 800, min_events: 800", command)


def vpr_mvsec_data(tmp: Path) -> Input:
    return vpr_mvsec(tmp, "data")


def vpr_mvsec_est_data(tmp: Path) -> Input:
    """`torchrepro data` with the learnable EST representation: no input cache, so the training windows are read by
    the data module's check_files()."""
    inp = vpr_mvsec(tmp, "data")
    inp.cmd.append("data.representation=est")
    return inp


def _write_positions(path: Path, stamps: list[float], metres_per_s: float = 100.0) -> Path:
    """A positions file (rows x, y, t) covering ``stamps``: straight along x, 5 m between 50 ms windows."""
    t = np.array([stamps[0] - 0.1, stamps[-1] + 0.1])
    np.savetxt(path, np.stack([(t - t[0]) * metres_per_s, np.zeros(2), t], axis=1), header="x y t", comments="")
    return path


def vpr_npy(tmp: Path) -> Input:
    """Event VPR on the seed's layout: folders of ``<timestamp>.npy`` windows (20×30 sensor) + positions files."""
    paths = {}
    for split in ("train", "val", "test"):
        folder, stamps, _ = write_npy_windows(tmp / split, [60] * 20)
        paths[f"{split}_events"] = folder
        paths[f"{split}_poses"] = _write_positions(tmp / split / "positions.txt", stamps)
    return _vpr(tmp, paths, f"source: npy, sensor_height: {NPY_H}, sensor_width: {NPY_W}, min_events: 10", "train")


#: SimCLR at 16 px with a 4-channel-wide ResNet-18, one step (then the validation and test splits are scored once)
SIMCLR_TINY = ["data.val_size=10", "data.val_bank=null", "data.batch_size=8", "data.eval_batch_size=64",
               "data.image_size=16", "model.width=4", "model.channels_last=false", "model.proj_hidden=16", "model.proj_dim=8", "model.knn_k=10",
               "model.linear_steps=5", "trainer.max_steps=1", "trainer.validate_before_fit=false",
               "trainer.progress_bar=false", "checkpoint.every_n_steps=0", "trainer.log_every_n_steps=1"]


def _simclr(tmp: Path, source: str, data: Path) -> Input:
    """configs/simclr_fashion_mnist.yaml with ``data.source`` and ``data.root`` set, at :data:`SIMCLR_TINY`."""
    inp = Input(tmp, [], tmp / "simclr.yaml", data)
    inp.base.write_text(f"base: {REPO / 'configs' / 'simclr_fashion_mnist.yaml'}\ndata: {{source: {source}, root: {data}}}\n")
    inp.write_config()
    inp.cmd = ["train", str(inp.config), *SIMCLR_TINY, f"run.dir={tmp / 'runs' / 'run'}"]
    return inp


def simclr_idx(tmp: Path) -> Input:
    """SimCLR on Fashion-MNIST's IDX files (gzipped; 60 training and 20 test images)."""
    return _simclr(tmp, "fashion_mnist", write_fashion_mnist(tmp / "fmnist", 60, 20))


def simclr_cifar(tmp: Path) -> Input:
    """SimCLR on CIFAR-10 python batches (5 × 12 training and 20 test images)."""
    return _simclr(tmp, "cifar10", write_cifar10(tmp / "cifar", per_batch=12, n_test=20))


def simclr_imagefolder(tmp: Path) -> Input:
    """SimCLR on an ImageFolder tree (2 classes × 12 training images, 2 × 4 test images)."""
    return _simclr(tmp, "imagefolder", write_image_folder(tmp / "folders", per_class=12, n_test=4))


def _idx(name: str) -> Callable[[Input], Path]:
    return lambda inp: inp.data / f"{name}.gz"


def _gz_idx(array: np.ndarray) -> bytes:
    return gzip.compress(idx_bytes(array))


@pytest.fixture(scope="module")
def trained(request, tmp_path_factory) -> Iterator[dict[str, Path]]:
    """A finished tiny driving run (ResNet18) and the checkpoint of another model (the same recipe with ResNet34)."""
    with scratch_dir(request, tmp_path_factory, "trained") as tmp:
        yield _trained_runs(tmp)


def _trained_runs(tmp: Path) -> dict[str, Path]:
    from torchrepro.cli import main

    data = _driving_data(tmp)
    config = tiny_config(tmp, data)
    runs = {"run": tmp / "run", "other": tmp / "other"}
    assert main(["train", str(config), f"run.dir={runs['run']}", *DRIVING_TRAIN]) == 0
    assert main(["train", str(config), f"run.dir={runs['other']}", "model.arch=resnet34", *DRIVING_TRAIN]) == 0
    return {"config": config, "run": runs["run"], "ckpt": runs["run"] / "checkpoints" / "last.ckpt",
            "other_ckpt": runs["other"] / "checkpoints" / "last.ckpt"}


# -------------------------------------------------------------------------------------------- break helpers
def _setting(lines: str) -> tuple[Callable[[Input], None], Callable[[Input], None]]:
    """(break, fix) of a config mistake: ``lines`` added to the YAML the command runs, then taken out."""
    return (lambda inp: inp.write_config(lines)), (lambda inp: inp.write_config())


def _rewrite(path_of: Callable[[Input], Path], new: bytes | Callable[[bytes], bytes]):
    """(break, fix): the file's bytes replaced by ``new`` (or ``new(old bytes)``), then put back."""
    saved: dict[Path, bytes] = {}

    def brk(inp: Input) -> None:
        path = path_of(inp)
        saved[path] = path.read_bytes()
        path.write_bytes(new(saved[path]) if callable(new) else new)

    def fix(inp: Input) -> None:
        path = path_of(inp)
        path.write_bytes(saved.pop(path))

    return brk, fix


def _move_away(path_of: Callable[[Input], Path]):
    """(break, fix): a file or folder moved out of the data set, then moved back."""
    def brk(inp: Input) -> None:
        path_of(inp).rename(inp.tmp / "moved_away")

    def fix(inp: Input) -> None:
        (inp.tmp / "moved_away").rename(path_of(inp))

    return brk, fix


def _add_file(path_of: Callable[[Input], Path], content: bytes):
    """(break, fix): a stray file added, then removed."""
    def brk(inp: Input) -> None:
        path_of(inp).parent.mkdir(parents=True, exist_ok=True)
        path_of(inp).write_bytes(content)

    def fix(inp: Input) -> None:
        path_of(inp).unlink()

    return brk, fix


def _hide_images(folder: str, names: list[str] | None = None):
    """(break, fix): images of a Market-1501 folder (``names``, default all) moved out, then back."""
    def brk(inp: Input) -> None:
        (inp.tmp / "hidden").mkdir()
        for image in (inp.data / folder).iterdir():
            if names is None or image.name in names:
                image.rename(inp.tmp / "hidden" / image.name)

    def fix(inp: Input) -> None:
        for image in (inp.tmp / "hidden").iterdir():
            image.rename(inp.data / folder / image.name)

    return brk, fix


def _unwritable(where: Callable[[Input], Path]):
    """(break, fix): the parent folder of a path the command writes made read-only (for root, for whom permission
    bits change nothing: a file in its place), then restored."""
    def brk(inp: Input) -> None:
        parent = where(inp)
        if ROOT:
            parent.write_text("a file, not a folder")
        else:
            parent.mkdir(parents=True)
            parent.chmod(0o500)

    def fix(inp: Input) -> None:
        parent = where(inp)
        if ROOT:
            parent.unlink()
        else:
            parent.chmod(0o700)

    return brk, fix


def _argument(old: str, new: str):
    """(break, fix) of a command-line mistake: argument ``old`` replaced by ``new``, then put back."""
    def brk(inp: Input) -> None:
        inp.cmd[inp.cmd.index(old)] = new

    def fix(inp: Input) -> None:
        inp.cmd[inp.cmd.index(new)] = old

    return brk, fix


def _rewrite_mvsec(split: str, seed: int, events: Callable[[np.ndarray], np.ndarray] | None = None,
                   drop: str | None = None):
    """(break, fix) of an MVSEC recording: ``drop`` a dataset or change its events; fixed by writing it anew."""
    def brk(inp: Input) -> None:
        path = inp.extra[f"{split}_events"]
        with h5py.File(path, "a") as f:
            if drop:
                del f[drop]
            if events:
                rows = events(np.array(f["davis/left/events"]))
                del f["davis/left/events"]
                f.create_dataset("davis/left/events", data=rows)

    def fix(inp: Input) -> None:
        write_mvsec(inp.tmp / "mvsec", f"drive_{split}", seed)

    return brk, fix


def _off_sensor(rows: np.ndarray) -> np.ndarray:
    rows[len(rows) // 2, 0] = 500  # MVSEC columns x, y, t, p: one event far right of a 64-pixel-wide sensor
    return rows


def _npy_window(inp: Input, k: int = 3) -> Path:
    return sorted(inp.extra["train_events"].glob("*.npy"))[k]


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _eval_input(tmp: Path, trained: dict[str, Path]) -> Input:
    """``eval`` of a checkpoint at ``tmp/model.ckpt`` (a copy of the trained run's) with the run's config, ``--out``."""
    inp = Input(tmp, [], trained["config"], extra=dict(trained))
    inp.write_config()
    shutil.copy(trained["ckpt"], tmp / "model.ckpt")
    inp.cmd = ["eval", str(inp.config), "--ckpt", str(tmp / "model.ckpt"), "--out", str(tmp / "eval")]
    return inp


def _checkpoint(new: str | None):
    """(break, fix) of ``tmp/model.ckpt``: a copy of the trained checkpoint ``new`` (None: a dict saved by torch that
    is not a Lightning checkpoint), then the trained run's own again."""
    def brk(inp: Input) -> None:
        if new is None:
            torch.save({"weights": torch.zeros(2)}, inp.tmp / "model.ckpt")
        else:
            shutil.copy(inp.extra[new], inp.tmp / "model.ckpt")

    def fix(inp: Input) -> None:
        shutil.copy(inp.extra["ckpt"], inp.tmp / "model.ckpt")

    return brk, fix


def _resume_input(tmp: Path, trained: dict[str, Path]) -> Input:
    """``resume`` of a copy of the trained run (finished: nothing more to train), with an allowed override."""
    inp = Input(tmp, [], trained["config"], extra=dict(trained))
    shutil.copytree(trained["run"], tmp / "run")
    inp.cmd = ["resume", str(tmp / "run"), "trainer.max_epochs=1"]
    return inp


def _not_a_run(tmp: Path, trained: dict[str, Path]) -> Input:
    """``resume`` of a folder that is not (yet) a run: the break makes it, the fix copies the trained run in."""
    inp = _resume_input(tmp, trained)
    shutil.rmtree(tmp / "run")
    return inp


def _make_run_folder(inp: Input) -> None:
    (inp.tmp / "run").mkdir()


def _copy_run_in(inp: Input) -> None:
    shutil.copytree(inp.extra["run"], inp.tmp / "run", dirs_exist_ok=True)


@dataclass(frozen=True)
class Case:
    """``family(tmp)`` (or ``family(tmp, trained)`` with ``needs_run``) writes a good input and returns it;
    ``brk`` breaks it, ``fix`` repairs it; the error line must hold every needle (``{tmp}`` is formatted)."""

    name: str
    family: Callable
    brk: Callable[[Input], None]
    fix: Callable[[Input], None]
    needles: tuple[str, ...]
    needs_run: bool = False


def _case(name, family, pair, *needles, needs_run=False) -> Case:
    return Case(name, family, pair[0], pair[1], needles, needs_run)


CASES = [
    # --- configuration (the YAML file the command runs, or the command line)
    _case("unknown_key", driving, _setting("colour: red\n"), "unknown config key 'colour'"),
    _case("misspelt_key", driving, _setting("data: {image_sise: 32}\n"), "did you mean 'data.image_size'?"),
    _case("wrong_type", driving, _setting("data: {batch_size: eight}\n"), "'data.batch_size' expects int"),
    _case("bad_choice", driving, _setting("data: {source: parquet}\n"), "'data.source' must be one of"),
    _case("bad_base_file", driving, (lambda inp: inp.write_config(base=inp.tmp / "no_such_base.yaml"),
                                     lambda inp: inp.write_config()), "no_such_base.yaml"),
    _case("bad_yaml", driving, _setting("optim: {lr: 0.1\n"), "user.yaml", "not valid YAML at line"),
    _case("override_without_value", driving, _argument("trainer.max_steps=1", "trainer.max_steps"),
          "override 'trainer.max_steps' must look like key.sub=value"),
    _case("override_empty_key", driving, _argument("trainer.max_steps=1", "trainer..max_steps=1"),
          "override 'trainer..max_steps=1' has an empty key part"),
    _case("unknown_recipe", driving, _setting("recipe: nerf2\n"), "unknown recipe 'nerf2'"),
    _case("data_root_not_set", driving, _setting("data: {root: null}\n"), "'data.root' is required"),
    _case("missing_data_root", driving, _setting("data: {root: /no/such/data/root}\n"), "/no/such/data/root",
          "data.root"),
    _case("negative_num_workers", driving, _setting("data: {num_workers: -1}\n"), "data.num_workers"),
    _case("run_dir_unwritable", driving, _unwritable(lambda inp: inp.tmp / "runs"), "{tmp}/runs/run", "run.dir"),
    _case("run_dir_is_a_file", driving, _add_file(lambda inp: inp.tmp / "runs" / "run", b"not a folder"),
          "{tmp}/runs/run", "choose another run.dir"),
    _case("synthetic_dir_unwritable", driving_synthetic, _unwritable(lambda inp: inp.tmp / "gen"),
          "{tmp}/gen", "data.synthetic_dir"),
    _case("synthetic_dir_is_a_file", driving_synthetic, _add_file(lambda inp: inp.extra["synth"], b"a file"),
          "{tmp}/gen/driving", "data.synthetic_dir"),
    _case("nan_loss", driving_two_steps, _setting("optim: {lr: 1.0e+30}\n"), "loss became", "at step 1", "optim.lr"),
    # --- driving data: the seed's CSV format and ImageFolder
    _case("csv_bad_label", driving, _rewrite(lambda inp: inp.data / "train" / "labels.csv",
                                             lambda text: text.replace(b",left\n", b",lefty\n", 1)),
          "labels.csv' line 2", "label 'lefty'", "data.classes"),
    _case("csv_names_a_missing_image", driving,
          _move_away(lambda inp: inp.data / "train" / "images" / "frame_0005.jpg"),
          "train/labels.csv' line 7", "image 'frame_0005' not found"),
    _case("csv_empty", driving, _rewrite(lambda inp: inp.data / "val" / "labels.csv", b"image_name,label\n"),
          "val/labels.csv", "lists no images", "empty"),
    _case("corrupt_image", driving_data,
          _rewrite(lambda inp: inp.data / "train" / "images" / "frame_0007.jpg", b"\x00not a jpeg at all"),
          "frame_0007.jpg", "cannot be read as an image"),
    _case("truncated_image", driving_data,
          _rewrite(lambda inp: inp.data / "test" / "images" / "frame_0002.jpg", lambda jpeg: jpeg[: len(jpeg) // 2]),
          "test/images/frame_0002.jpg", "cannot be read as an image"),
    _case("imagefolder_wrong_class_folder", imagefolder, _move_away(lambda inp: inp.data / "train" / "straight"),
          "folders/train", "class folders ['left', 'right']", "data.classes"),
    _case("missing_test_split", driving, _move_away(lambda inp: inp.data / "test"), "test split", "data.test_split"),
    # --- re-ID: Market-1501 layout
    _case("market_bad_file_name", reid, _add_file(lambda inp: inp.data / "query" / "Thumbs_01.jpg", b""),
          "query/Thumbs_01.jpg", "rename or remove the file"),
    _case("market_file_not_an_image", reid_data,
          _rewrite(lambda inp: inp.data / "bounding_box_train" / "0003_c2s1_000002_01.jpg", b"GIF89a junk"),
          "bounding_box_train/0003_c2s1_000002_01.jpg", "cannot be read"),
    _case("market_empty_query", reid, _hide_images("query"), "query set {tmp}/market/query", "no usable image"),
    _case("market_empty_gallery", reid, _hide_images("bounding_box_test"),
          "gallery set {tmp}/market/bounding_box_test", "no usable image"),
    _case("market_query_without_match", reid,
          _hide_images("bounding_box_test", ["0101_c2s1_000010_01.jpg", "0102_c2s1_000011_01.jpg"]),
          "no query of {tmp}/market/query", "bounding_box_test"),
    _case("reid_val_ids_too_large", reid, _argument("data.val_ids=1", "data.val_ids=50"), "data.val_ids=50",
          "between 1 and 3"),
    # --- event VPR: MVSEC HDF5 and folders of .npy windows
    _case("hdf5_without_events", vpr_mvsec, _rewrite_mvsec("train", 0, drop="davis/left/events"),
          "drive_train_data.hdf5", "davis/left/events"),
    _case("hdf5_corrupt", vpr_mvsec, _rewrite(lambda inp: inp.extra["val_events"], b"\x89HDF junk" * 10),
          "drive_val_data.hdf5", "cannot open MVSEC HDF5 file"),
    _case("events_outside_the_sensor", vpr_mvsec_data, _rewrite_mvsec("test", 1, events=_off_sensor),
          "{tmp}/mvsec/drive_test_data.hdf5 window", "outside the sensor"),
    _case("est_training_events_outside_the_sensor", vpr_mvsec_est_data,
          _rewrite_mvsec("train", 0, events=_off_sensor),
          "{tmp}/mvsec/drive_train_data.hdf5 window", "outside the sensor"),
    _case("vpr_real_source_without_val_events", vpr_mvsec, _setting("data: {val_events: null}\n"),
          "'data.val_events' is required"),
    _case("npy_window_corrupt", vpr_npy, _rewrite(_npy_window, b"\x93NUMPY garbage"),
          "train/windows/", ".npy", "corrupt"),
    _case("npy_window_outside_the_sensor", vpr_npy, _rewrite(_npy_window, _npy_bytes(
        np.concatenate([make_event_window(59, 3, NPY_T0 + 0.16), [[NPY_T0 + 0.2, 99.0, 0.0, 1.0]]]))),
          "train/windows/", "outside the sensor"),
    _case("npy_positions_malformed", vpr_npy, _rewrite(lambda inp: inp.extra["val_poses"], b"x y t\n1 2\n"),
          "val/positions.txt", "line 2", "expected 3 (x, y, t)"),
    # --- SimCLR: Fashion-MNIST IDX files, CIFAR-10 python batches, ImageFolder
    _case("idx_wrong_magic", simclr_idx, _rewrite(_idx("train-labels-idx1-ubyte"), _gz_idx(np.zeros((60, 2, 2), np.uint8))),
          "fmnist/train-labels-idx1-ubyte.gz' has magic number 0x00000803, expected 0x00000801"),
    _case("idx_truncated", simclr_idx,
          _rewrite(_idx("t10k-images-idx3-ubyte"), lambda gz: gzip.compress(gzip.decompress(gz)[:-100])),
          "fmnist/t10k-images-idx3-ubyte.gz' is truncated"),
    _case("idx_counts_differ", simclr_idx, _rewrite(_idx("train-labels-idx1-ubyte"), _gz_idx(np.zeros(59, np.uint8))),
          "train-images-idx3-ubyte.gz' holds 60 images but", "train-labels-idx1-ubyte.gz' 59 labels"),
    _case("fashion_mnist_not_installed", simclr_idx, _setting("data: {root: /no/such/fashion-mnist}\n"),
          "/no/such/fashion-mnist", "apt-get install dataset-fashion-mnist", "data.root"),
    _case("cifar_batch_missing", simclr_cifar,
          _move_away(lambda inp: inp.data / "cifar-10-batches-py" / "data_batch_3"), "data_batch_3' is missing"),
    _case("imagefolder_one_class", simclr_imagefolder, _move_away(lambda inp: inp.data / "train" / "dog"),
          "folders/train' has 1 class folder ['cat']", "at least two classes"),
    _case("simclr_temperature_not_positive", simclr_idx, _setting("model: {temperature: 0}\n"),
          "'model.temperature' must be > 0"),
    _case("simclr_batch_of_one", simclr_idx, _argument("data.batch_size=8", "data.batch_size=1"),
          "'data.batch_size' must be >= 2", "no negatives"),
    # --- checkpoints and runs
    _case("eval_file_not_a_checkpoint", _eval_input,
          _rewrite(lambda inp: inp.tmp / "model.ckpt", b"this is not a checkpoint"),
          "model.ckpt", "is not a readable checkpoint", needs_run=True),
    _case("eval_dict_not_a_lightning_checkpoint", _eval_input, _checkpoint(None),
          "not a torchrepro/Lightning checkpoint", needs_run=True),
    _case("eval_checkpoint_of_another_model", _eval_input, _checkpoint("other_ckpt"),
          "model.ckpt", "does not fit recipe 'driving'", needs_run=True),
    _case("resume_not_a_run", _not_a_run, (_make_run_folder, _copy_run_in),
          "{tmp}/run", "is not a run directory", needs_run=True),
    _case("resume_forbidden_override", _resume_input, _argument("trainer.max_epochs=1", "optim.lr=0.5"),
          "resume cannot change 'optim.lr'", "trainer.max_epochs", needs_run=True),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_line_and_the_same_command_works_once_fixed(case: Case, tmp_path, capsys, request):
    inp = case.family(tmp_path, request.getfixturevalue("trained")) if case.needs_run else case.family(tmp_path)
    case.brk(inp)
    code, _, err = run_main(capsys, *inp.cmd)
    assert_one_line_error(code, err, *(n.format(tmp=tmp_path) for n in case.needles))
    case.fix(inp)
    code, out, err = run_main(capsys, *inp.cmd)
    assert code == 0, err[-3000:]
    assert "torchrepro: error:" not in err
    if inp.cmd[0] in ("train", "resume", "eval"):
        assert "metrics: {" in out
    else:  # `torchrepro data`: every split counted
        assert "train: " in out and "val: " in out and "test: " in out

