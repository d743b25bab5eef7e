"""The vpr_event recipe end to end through the CLI on a tiny simulated drive (64×48 sensor, 60 m), in both
representations (cached voxel grid; learnable EST), plus its real-format configs and bad inputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from tests.conftest import write_mvsec
from tests.helpers import REPO, cli, cli_env, scratch_dir
from torchrepro.core.errors import ConfigError
from torchrepro.place_recognition.config import VPRData, VPRModel

TINY = [
    "trainer.max_epochs=1", "trainer.limit_train_batches=3", "trainer.progress_bar=false",
    "trainer.log_every_n_steps=1", "checkpoint.every_n_steps=0",
    "data.synthetic_route_m=60", "data.sensor_height=48", "data.sensor_width=64",
    "data.events_per_window=400", "data.min_events=400", "data.input_size=32", "data.n_negatives=2",
    "data.batch_size=2", "data.eval_batch_size=16", "data.mining_candidates=8",
    "model.arch=resnet18", "model.num_clusters=4", "model.netvlad_init_windows=8", "data.synthetic_train_drives=2",
]


@pytest.fixture(scope="module")
def workdir(request, tmp_path_factory) -> Iterator[Path]:
    with scratch_dir(request, tmp_path_factory, "vpr") as path:
        yield path


def _train(workdir: Path, name: str, *extra: str, config: str = "vpr_event_sim.yaml"):
    over = [*TINY, f"data.synthetic_dir={workdir / 'drive'}", f"data.cache_dir={workdir / 'cache'}",
            f"run.dir={workdir / name}", *extra]
    return cli("train", REPO / "configs" / config, *over, timeout=600)


@pytest.mark.parametrize("representation,extra,config", [
    # + PCA-whitening at evaluation, anchors from drives 3-4 (train_protocol=cross), NetVLAD over layer4 at stride 16,
    # denoised inputs and every training augmentation
    ("voxel", ["data.batching=tuples", "data.mining=hard", "model.pca_dim=8", "data.train_protocol=cross",
               "model.last_stride=1", "data.denoise_s=0.01", "data.augment_erase=0.5", "data.augment_drop=0.2",
               "data.augment_lateral=0.2"],
     "vpr_event_sim.yaml"),
    # the shipped config (place batches, Multi-Similarity loss) on the 2-channel histogram, two validation drives
    ("histogram", ["data.representation=histogram", "data.synthetic_val_drives=2", "data.synthetic_val_candidates=3"],
     "vpr_event_sim.yaml"),
    ("est", ["data.mining=random", "data.train_protocol=split"], "vpr_event_sim_est.yaml"),  # the seed's protocol
])
def test_recipe_runs_end_to_end(workdir, representation, extra, config):
    res = _train(workdir, f"run_{representation}", *extra, config=config)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "untrained model:" in res.stdout and "baseline_count_recall@1" in res.stdout
    run = workdir / f"run_{representation}"
    history = json.loads((run / "metrics.json").read_text())["history"]
    last, tested = [h for h in history if h["stage"] == "fit"][-1], history[-1]
    assert tested["stage"] == "test" and res.stdout.count("test (held-out, scored once with best.ckpt)") == 1
    for n in (1, 5, 10, 20):
        assert 0.0 <= last[f"recall@{n}"] <= 1.0 and 0.0 <= last[f"baseline_count_recall@{n}"] <= 1.0
        assert 0.0 <= tested[f"test/recall@{n}"] <= 1.0 and 0.0 <= tested[f"test/baseline_count_recall@{n}"] <= 1.0
    assert last["recall@1"] <= last["recall@5"] <= last["recall@10"] <= last["recall@20"]
    # validation (drive_val) and test (drive2) are different drives: their baselines differ
    assert last["baseline_count_recall@1"] != tested["test/baseline_count_recall@1"]
    for png in ("recall_curve.png", "retrievals.png", "window_polarity.png"):
        assert (run / png).stat().st_size > 1000, png
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert f"representation: {representation}" in (run / "config.yaml").read_text()
    if config == "vpr_event_sim.yaml":
        assert "drive1_data.hdf5+drive3_data.hdf5+drive4_data.hdf5" in res.stderr + res.stdout  # anchors: extra drives
    if representation == "histogram":  # the validation queries pool both validation drives
        assert "val (drive_val_data.hdf5+drive_val2_data.hdf5)" in res.stderr + res.stdout


def test_mvsec_config_parses_and_runs_on_fixture_files(workdir):
    folder = workdir / "mvsec"
    d2 = write_mvsec(folder, "outdoor_day2", 0)
    d1 = write_mvsec(folder, "outdoor_day1", 1)
    n1 = write_mvsec(folder, "outdoor_night1", 3)
    paths = [f"data.train_events={d2[0]}", f"data.train_poses={d2[1]}", f"data.val_events={n1[0]}",
             f"data.val_poses={n1[1]}", f"data.test_events={d1[0]}", f"data.test_poses={d1[1]}"]
    res = cli("config", REPO / "configs" / "vpr_event_mvsec.yaml", *paths)
    assert res.returncode == 0, res.stderr
    assert "source: mvsec" in res.stdout and "events_per_window: 15000" in res.stdout
    small = [o for o in TINY if not o.startswith("data.synthetic")] + [
        "data.events_per_window=800", "data.min_events=800", "trainer.accelerator=cpu", "data.num_workers=0",
        "data.mining_candidates=8", f"data.cache_dir={workdir / 'cache'}", f"run.dir={workdir / 'run_mvsec'}"]
    res = cli("train", REPO / "configs" / "vpr_event_mvsec.yaml", *paths, *small, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "recall@1" in res.stdout


def test_mvsec_config_names_a_missing_file(workdir):
    res = cli("train", REPO / "configs" / "vpr_event_mvsec.yaml", f"run.dir={workdir / 'never'}")
    assert res.returncode == 2
    assert "outdoor_day2_data.hdf5" in res.stderr and "data.train_events" in res.stderr
    assert not (workdir / "never").exists()


def test_missing_hdf5_key_is_named(workdir):
    import h5py

    folder = workdir / "broken"
    data, gt = write_mvsec(folder, "seq", 2)
    with h5py.File(gt, "a") as f:
        del f["davis/left/pose_ts"]
    val = write_mvsec(folder, "seq_val", 3)
    over = [f"data.train_events={data}", f"data.train_poses={gt}", f"data.test_events={data}",
            f"data.test_poses={gt}", f"data.val_events={val[0]}", f"data.val_poses={val[1]}",
            f"run.dir={workdir / 'broken_run'}", f"data.cache_dir={workdir / 'cache'}",
            "data.events_per_window=800", "data.min_events=800"]
    res = cli("train", REPO / "configs" / "vpr_event_mvsec.yaml", *over)
    assert res.returncode == 2
    assert "pose_ts" in res.stderr and str(gt) in res.stderr


def test_est_with_cached_input_augmentation_is_refused(workdir):
    res = _train(workdir, "est_aug", "data.augment_shift=0.1", config="vpr_event_sim_est.yaml")
    assert res.returncode == 2 and "augment_shift" in res.stderr
    assert not (workdir / "est_aug").exists()


@pytest.mark.parametrize("key,value", [("augment_lateral", 1.5), ("augment_drop", 1.0), ("denoise_s", -0.01)])
def test_bad_augmentation_and_denoise_values_are_named(key, value):
    """Checked in-process (the CLI path of the same checks is covered above): one message naming the key."""
    with pytest.raises(ConfigError, match=f"data.{key}"):
        VPRData(**{key: value}).check("data")


@pytest.mark.parametrize("fields", [{"batching": "places", "train_protocol": "split"},
                                    {"batching": "places", "train_protocol": "cross", "representation": "est"},
                                    {"batching": "places", "train_protocol": "cross", "places_per_epoch": 0},
                                    {"batching": "places", "train_protocol": "cross", "recordings_per_place": 4}])
def test_place_batches_need_cross_training_on_cached_inputs(fields):
    with pytest.raises(ConfigError, match=r"data.batching=places|data.places_per_epoch|data.recordings_per_place .*\[2, 3\]"):
        VPRData(**fields).check("data")


@pytest.mark.parametrize("key,value", [("ms_beta", 0.0), ("ms_epsilon", -0.1)])
def test_bad_multi_similarity_values_are_named(key, value):
    with pytest.raises(ConfigError, match=f"model.{key}"):
        VPRModel(**{key: value}).check("model")


def test_cross_training_needs_a_second_recording(workdir):
    folder = workdir / "mvsec_cross"
    d2 = write_mvsec(folder, "outdoor_day2", 0)
    d1 = write_mvsec(folder, "outdoor_day1", 1)
    over = [f"data.train_events={d2[0]}", f"data.train_poses={d2[1]}", f"data.test_events={d2[0]}",
            f"data.test_poses={d2[1]}", f"data.val_events={d1[0]}", f"data.val_poses={d1[1]}",
            "data.train_protocol=cross", f"run.dir={workdir / 'cross_never'}"]
    res = cli("train", REPO / "configs" / "vpr_event_mvsec.yaml", *over)
    assert res.returncode == 2 and "data.train_query_events" in res.stderr and "train_protocol=cross" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (workdir / "cross_never").exists()


def test_ddp_two_ranks_evaluate_like_one_process(workdir):
    """The recipe under real ``torchrun --nproc_per_node=2`` (gloo): sharded descriptor extraction + ordered
    gather must give the single process's recall@N before training, and the DDP run (hard mining refreshed on
    both ranks) must train and write one run directory."""
    over = ["data.mining=hard", "trainer.limit_train_batches=2", "trainer.max_epochs=2"]
    single = _train(workdir, "ddp_ref", *over)
    assert single.returncode == 0, single.stderr[-3000:]
    args = [*TINY, f"data.synthetic_dir={workdir / 'drive'}", f"data.cache_dir={workdir / 'cache'}",
            f"run.dir={workdir / 'ddp_run'}", *over]
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "-m", "torchrepro.cli", "train", str(REPO / "configs" / "vpr_event_sim.yaml"), *args],
                         cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    ref = json.loads((workdir / "ddp_ref" / "metrics.json").read_text())["history"]
    got = json.loads((workdir / "ddp_run" / "metrics.json").read_text())["history"]
    untrained = lambda h: next(e for e in h if e["stage"] == "untrained")  # noqa: E731
    for n in (1, 5, 10, 20):
        assert untrained(got)[f"recall@{n}"] == pytest.approx(untrained(ref)[f"recall@{n}"], abs=1e-6)
    fit = [e for e in got if e["stage"] == "fit"]
    assert [e["epoch"] for e in fit] == [0, 1] and all(np.isfinite(e["loss"]) for e in fit)
    assert (workdir / "ddp_run" / "checkpoints" / "last.ckpt").is_file()
    assert not any(p.name.startswith("ddp_run") and p.name != "ddp_run" for p in workdir.iterdir())


def test_too_few_features_for_netvlad_names_the_config_keys(workdir):
    """At 32 px a ResNet18 map is 1x1: one window gives one local feature, fewer than 4 clusters. The error names
    the keys to change, and the run leaves no folder behind (two windows: BatchNorm needs more than one)."""
    res = _train(workdir, "few_features", "model.netvlad_init_windows=2")
    assert res.returncode == 2, res.stderr[-2000:]
    line = res.stderr.strip().splitlines()[-1]
    assert line.startswith("torchrepro: error:") and "model.num_clusters=4" in line
    assert "model.netvlad_init_windows" in line and "Traceback" not in res.stderr
    assert not (workdir / "few_features").exists()


def test_a_real_source_needs_a_validation_recording_of_its_own(tmp_path):
    """The checkpoint is chosen on a validation recording: a real source without one, or with the test recording
    given as validation, is refused with one message naming the key."""
    paths = {}
    for key in ("train_events", "train_poses", "test_events", "test_poses"):
        (tmp_path / key).mkdir()
        paths[key] = str(tmp_path / key)
    with pytest.raises(ConfigError, match=r"'data.val_events' is required .* validation recording"):
        VPRData(source="mvsec", **paths).check("data")
    with pytest.raises(ConfigError, match=r"data.val_events must be a recording of its own"):
        VPRData(source="mvsec", val_events=paths["test_events"], val_poses=paths["test_poses"], **paths).check("data")
