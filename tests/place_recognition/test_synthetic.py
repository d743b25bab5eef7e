"""Tests for the simulated event drive (torchrepro.place_recognition.synthetic): small generations only."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from torchrepro.core.errors import ConfigError
from torchrepro.events.mvsec import MVSECEvents, read_mvsec_poses
from torchrepro.place_recognition import drive, synthetic
from torchrepro.place_recognition.synthetic import (
    DRIVE1,
    DRIVE2,
    CameraPose,
    Facade,
    Lighting,
    Renderer,
    build_street,
    generate_event_drive,
    random_drive_spec,
    validation_drive_spec,
)

SMALL = dict(route_length_m=40.0, height=48, width=64)
H, W = SMALL["height"], SMALL["width"]


def _read(paths: dict) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    out = {}
    for name, (data, gt) in paths.items():
        with MVSECEvents(data) as reader:
            ev = reader.slice(0, len(reader))
        ts, xy = read_mvsec_poses(gt)
        out[name] = (ev, ts, xy)
    return out


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("event_drive")
    paths = generate_event_drive(root / "a", seed=0, **SMALL)
    return root, paths, _read(paths)


def test_files_in_mvsec_layout_and_sane(small):
    _, paths, data = small
    assert set(paths) == {"drive1", "drive2"}
    for name, (data_path, gt_path) in paths.items():
        assert data_path.name == f"{name}_data.hdf5" and gt_path.name == f"{name}_gt.hdf5"
        ev, ts, xy = data[name]
        assert len(ev) > 1000
        assert np.all(np.diff(ev[:, 0]) >= 0)
        assert np.all((ev[:, 1] >= 0) & (ev[:, 1] < W) & (ev[:, 2] >= 0) & (ev[:, 2] < H))
        assert set(np.unique(ev[:, 3])) == {0.0, 1.0}
        assert ts[0] <= ev[0, 0] and ev[-1, 0] <= ts[-1]  # every window can be given a position
        # Poses advance along the route (x) from 0 to the route length; y is the lane offset.
        assert np.all(np.diff(xy[:, 0]) > 0)
        assert xy[0, 0] == pytest.approx(0.0) and xy[-1, 0] == pytest.approx(SMALL["route_length_m"])
        assert np.all(np.abs(xy[:, 1]) < synthetic.ROAD_HALF_M)


def test_traversals_differ(small):
    _, _, data = small
    (ev1, ts1, xy1), (ev2, ts2, xy2) = data["drive1"], data["drive2"]
    # Different lanes (~1.3 m apart) and speeds (8 vs 11 m/s): drive2 is shorter in time.
    assert abs(xy1[:, 1].mean() - xy2[:, 1].mean()) > 0.8
    assert ts2[-1] - ts2[0] < 0.85 * (ts1[-1] - ts1[0])
    assert 40.0 / 8.0 * 0.8 < ts1[-1] - ts1[0] < 40.0 / 8.0 * 1.25


def test_deterministic_per_seed(small):
    root, _, data = small
    again = _read(generate_event_drive(root / "b", seed=0, max_workers=2, **SMALL))  # parallel == serial
    other = _read(generate_event_drive(root / "c", seed=1, **SMALL))
    for name in ("drive1", "drive2"):
        for a, b in zip(data[name], again[name]):
            np.testing.assert_array_equal(a, b)
        ev, ev_other = data[name][0], other[name][0]
        assert ev.shape != ev_other.shape or not np.array_equal(ev, ev_other)


def test_second_call_is_a_no_op_and_params_are_stamped(small, monkeypatch):
    root, paths, _ = small
    mtimes = [p.stat().st_mtime_ns for pair in paths.values() for p in pair]

    def boom(*args, **kwargs):
        raise AssertionError("must not rebuild a complete generation")

    monkeypatch.setattr(drive, "build_street", boom)
    assert generate_event_drive(root / "a", seed=0, **SMALL) == paths
    assert [p.stat().st_mtime_ns for pair in paths.values() for p in pair] == mtimes
    stamp = json.loads((root / "a" / synthetic.STAMP_NAME).read_text())
    assert stamp["params"]["seed"] == 0 and stamp["params"]["route_length_m"] == 40.0
    assert stamp["stats"]["drive1"]["events"] > 0
    with pytest.raises(AssertionError, match="must not rebuild"):  # other parameters: regenerate
        generate_event_drive(root / "a", seed=0, route_length_m=41.0, height=H, width=W, max_workers=1)


def test_bad_parameters_raise_config_error(tmp_path):
    with pytest.raises(ConfigError, match="route_length_m"):
        generate_event_drive(tmp_path, route_length_m=1.0)
    with pytest.raises(ConfigError, match="frame_spacing_m"):
        generate_event_drive(tmp_path, frame_spacing_m=0.0)
    with pytest.raises(ConfigError, match="sensor size"):
        generate_event_drive(tmp_path, height=4)
    assert not any(tmp_path.iterdir())


def test_facade_ray_cast_matches_hand_computation():
    """Rays at lateral slope b (per metre forward) from (s=0, y=0) against two buildings of 10 m."""
    a = np.ones(4)
    b = np.array([1.5, 0.9, 1.1, -1.0])
    fac = Facade(s0=np.array([0.0, 10.0]), s1=np.array([10.0, 20.0]), setback=np.array([10.0, 12.0]),
                 height=np.array([6.0, 9.0]))
    t, s_hit, side, hgt = Renderer._cast_facade(fac, 0.0, 0.0, a, b)
    # b=1.5 reaches y=10 at t=6.67 inside building 0; b=0.9 passes building 0 (y=9 at s=10) and hits the
    # front of building 1 at y=12: t=13.33; b<0 looks at the other side.
    np.testing.assert_allclose(t[:2], [10 / 1.5, 12 / 0.9])
    np.testing.assert_allclose(hgt[:2], [6.0, 9.0])
    assert not side[:2].any() and np.isinf(t[3])
    # Set-back reversed: building 1 sticks out, so b=1.1 (y=11 at s=10, deeper than its façade at 10) hits
    # building 1's side face at s=10.
    fac2 = Facade(s0=fac.s0, s1=fac.s1, setback=np.array([12.0, 10.0]), height=fac.height)
    t2, s2, side2, _ = Renderer._cast_facade(fac2, 0.0, 0.0, a, b)
    assert side2[2] and t2[2] == pytest.approx(10.0)


def test_render_layout_sky_walls_ground():
    street = build_street(0, 20.0)
    renderer = Renderer(street, H, W, 200.0 * W / 346)
    img = renderer.render(CameraPose(5.0, -1.4, 1.4, 0.0, 0.0), Lighting.of(DRIVE1))
    assert img.shape == (H, W) and img.dtype == np.float32 and np.all(np.isfinite(img)) and img.min() > 0
    # Top-centre is sky (a little darker than ``sky`` away from the horizon), bottom rows are darker asphalt.
    assert 0.75 * DRIVE1.sky < img[0, W // 2] <= DRIVE1.sky
    assert img[-3:, W // 3 : 2 * W // 3].mean() < 0.5
    sunny = renderer.render(CameraPose(5.0, -1.4, 1.4, 0.0, 0.0), Lighting.of(DRIVE2))
    assert not np.allclose(img, sunny)


def test_extra_training_drives_leave_the_first_two_unchanged(small, tmp_path):
    """Extra training drives (randomised conditions) are optional; adding them must not alter drive1 or drive2."""
    _, _, data = small
    extra = random_drive_spec(0, 2)
    paths = generate_event_drive(tmp_path / "three", seed=0, drives=(DRIVE1, DRIVE2, extra), **SMALL)
    assert set(paths) == {"drive1", "drive2", "drive3"}
    three = _read(paths)
    for name in ("drive1", "drive2"):
        for a, b in zip(data[name], three[name]):
            np.testing.assert_array_equal(a, b)
    ev3, ts3, xy3 = three["drive3"]
    assert len(ev3) > 1000 and np.all(np.diff(ev3[:, 0]) >= 0)
    assert abs(xy3[:, 1].mean() - extra.lane_y_m) < extra.wander_m + extra.lane_drift_m + 0.05  # its own lane


def test_the_validation_drive_is_its_own_and_the_same_whatever_the_training_drives(small, tmp_path):
    """drive_val: conditions from the a-priori ranges but none of a training drive's or drive2's, and files that do
    not change when training drives are added before it (its streams are its own, not its position's)."""
    val = validation_drive_spec(0)
    assert val.name == "drive_val" and val == validation_drive_spec(0) and val != validation_drive_spec(1)
    trained = [random_drive_spec(0, i) for i in range(2, 8)]
    assert all(dataclasses.replace(val, name=t.name, stream_index=None) != t for t in trained)
    assert val.lane_y_m != DRIVE2.lane_y_m and 0.35 <= val.contrast_threshold <= 0.55
    synthetic.EventDriveParams(drives=(DRIVE1, DRIVE2, *trained, val)).validate()  # the most a config generates
    alone = _read(generate_event_drive(tmp_path / "v", seed=0, drives=(DRIVE1, DRIVE2, val), **SMALL))
    after = _read(generate_event_drive(tmp_path / "xv", seed=0, drives=(DRIVE1, DRIVE2, trained[0], val), **SMALL))
    assert len(alone["drive_val"][0]) > 1000
    for a, b in zip(alone["drive_val"], after["drive_val"]):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ConfigError, match="unique"):
        synthetic.EventDriveParams(drives=(DRIVE1, DRIVE2, val, val)).validate()


def test_distance_from_map_counts_each_factor_by_its_range():
    """Hand-made cases: the map itself is at 0; a lane 2.6 m away (the whole lane range) adds 1; a camera
    re-mounted 2.5 deg right adds 0.5 (range ±2.5); factors add up."""
    assert synthetic.distance_from_map(DRIVE1) == 0.0
    moved = dataclasses.replace(DRIVE1, lane_y_m=DRIVE1.lane_y_m - 2.6)
    assert synthetic.distance_from_map(moved) == pytest.approx(1.0)
    both = dataclasses.replace(moved, yaw_offset_deg=2.5)
    assert synthetic.distance_from_map(both) == pytest.approx(1.5)


def test_validation_drives_keep_the_draw_least_like_the_map():
    """``candidates`` draws per validation drive from the training ranges, the farthest from drive1 kept (checked
    against the draws made here stream by stream); drives have their own names and streams; k=0, one candidate is
    the single validation drive of earlier versions."""
    assert validation_drive_spec(0, 0, 1) == validation_drive_spec(0)
    first, second = synthetic.validation_drive_specs(0, drives=2, candidates=6)
    assert (first.name, second.name) == ("drive_val", "drive_val2")
    for k, spec in enumerate((first, second)):
        streams = [synthetic.VALIDATION_STREAM + k * synthetic.MAX_CANDIDATES + j for j in range(6)]
        distances = [synthetic.distance_from_map(random_drive_spec(0, s)) for s in streams]
        assert spec.stream_index == streams[int(np.argmax(distances))]
        assert synthetic.distance_from_map(spec) == max(distances) > min(distances)
    assert synthetic.distance_from_map(first) > synthetic.distance_from_map(validation_drive_spec(0))
    with pytest.raises(ConfigError, match="candidates"):
        validation_drive_spec(0, 0, 17)


def test_training_drives_drawn_least_like_the_map_keep_their_names():
    """One candidate: the random training drive of earlier versions. Several: drive{k+3} is the farthest draw from
    drive1 of its own streams (checked draw by draw), none of them a validation drive's."""
    assert synthetic.training_drive_spec(0, 1) == random_drive_spec(0, 3)
    spec = synthetic.training_drive_spec(0, 1, candidates=5)
    streams = [synthetic.TRAINING_CANDIDATE_STREAM + synthetic.MAX_CANDIDATES + j for j in range(5)]
    distances = [synthetic.distance_from_map(random_drive_spec(0, s)) for s in streams]
    assert spec.name == "drive4" and spec.stream_index == streams[int(np.argmax(distances))]
    validation = synthetic.validation_drive_specs(0, drives=3, candidates=16)
    assert spec.stream_index not in {v.stream_index for v in validation}


def test_random_drive_specs_are_seeded_varied_and_valid():
    specs = [random_drive_spec(0, i) for i in range(2, 8)]
    assert specs[0] == random_drive_spec(0, 2) and specs[0] != random_drive_spec(1, 2)
    assert [s.name for s in specs] == [f"drive{i}" for i in range(3, 9)]
    lanes = [s.lane_y_m for s in specs]
    assert max(lanes) - min(lanes) > 0.5 and all(-3.4 <= y <= -0.8 for y in lanes)
    synthetic.EventDriveParams(drives=(DRIVE1, DRIVE2, *specs)).validate()
    with pytest.raises(ValueError, match="fixed"):
        random_drive_spec(0, 1)


def test_random_drives_change_lane_and_light_along_the_route():
    """Extra drives sweep most of the lane range and drift in light; drive1/drive2 keep constant conditions."""
    params = synthetic.EventDriveParams(drives=(DRIVE1, DRIVE2, *(random_drive_spec(0, i) for i in (2, 3))))
    for index in (2, 3):
        spec = params.drives[index]
        assert 0.6 <= spec.lane_drift_m <= 1.3 and 0.5 <= spec.light_drift <= 1.0
        s, _, y, yaw, _ = synthetic.drive_trajectory(spec, params, index)
        assert y.max() - y.min() > 1.5 * spec.lane_drift_m  # the peak-normalised drift sweeps the lanes
        assert y.min() > -3.4 - spec.wander_m and y.max() < -0.8 + spec.wander_m  # same a-priori range
        assert np.rad2deg(np.abs(yaw - np.deg2rad(spec.yaw_offset_deg))).max() < 6.0  # gentle lane changes
        lights = synthetic.lighting_along(spec, params, index, s)
        for name, (lo, hi) in synthetic.RANDOM_LIGHT.items():
            values = np.array([getattr(light, name) for light in lights])
            assert lo - 1e-9 <= values.min() and values.max() <= hi + 1e-9  # inside the a-priori range
            assert np.ptp(values) > 0.5 * spec.light_drift * (hi - lo)  # and wandering over much of it
    s, *_ = synthetic.drive_trajectory(DRIVE2, params, 1)
    assert set(synthetic.lighting_along(DRIVE2, params, 1, s)) == {Lighting.of(DRIVE2)}
    bad = dataclasses.replace(DRIVE1, name="drive2", lane_drift_m=5.0)
    with pytest.raises(ConfigError, match="stay on the road"):
        synthetic.EventDriveParams(drives=(DRIVE1, bad)).validate()


def test_third_parking_variant_keeps_regular_cars_and_varies_the_others():
    street = build_street(0, 300.0)
    present = street.objects.present
    assert present.shape[1] == 3
    regular = present[:, 0] & present[:, 1]
    assert present[regular, 2].all()
    occasional = present[:, 0] ^ present[:, 1]
    assert occasional.sum() > 10
    assert 0.2 < present[occasional, 2].mean() < 0.8
