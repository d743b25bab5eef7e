"""The drives of the simulated event drive: traversal specs, trajectories, lighting, events and MVSEC files.

A car drives the street (:mod:`torchrepro.place_recognition.street`) several times. Each traversal
(:class:`DriveSpec`) has its own lane and lateral wander, speed profile, yaw/pitch jitter and camera mounting,
lighting, parked cars and sensor. Frames are rendered (:class:`~torchrepro.place_recognition.render.Renderer`)
every ``frame_spacing_m`` of travel (0.25 m by default, i.e. every 23-31 ms at 8-11 m/s) and converted to events
by the contrast-threshold model (:class:`~torchrepro.events.simulator.EventSimulator`); event times are
interpolated inside each frame interval, so the temporal structure finer than 0.25 m of travel is approximate
(as in any frame-based simulator without upsampling).

Files: ``<name>_data.hdf5`` / ``<name>_gt.hdf5`` (``drive1``, ``drive2``, …, ``drive_val``) in the MVSEC layout
(:func:`~torchrepro.events.mvsec.write_mvsec_sequence`) with one pose per frame; ``pose[:, 0:2, 3]`` is the
camera's ground-plane position (route coordinate, lateral offset) in metres. They are published once, with a
stamp of every parameter (:func:`torchrepro.core.generated.publish_once`).
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from torchrepro.core.errors import ConfigError
from torchrepro.core.generated import publish_once
from torchrepro.events.mvsec import write_mvsec_sequence
from torchrepro.events.simulator import EventSimulator
from torchrepro.place_recognition.render import CameraPose, Lighting, Renderer
from torchrepro.place_recognition.street import ROAD_HALF_M, Street, build_street, stream_seed

log = logging.getLogger(__name__)

#: Bump when the generator's output changes, so stale generations are not reused.
GENERATOR_VERSION = 1
STAMP_NAME = "event_drive.json"
MAX_DRIVES = 11  # drive1, drive2, up to six extra training drives, up to three validation drives
#: The stream index of the first validation drive (:func:`validation_drive_spec`): beyond every training drive's
VALIDATION_STREAM = 100
#: The first stream of the candidates of extra training drives drawn least like the map (:func:`training_drive_spec`)
TRAINING_CANDIDATE_STREAM = 200
#: Drive ``k``'s candidates use the streams ``first + k * MAX_CANDIDATES + j`` (``j < MAX_CANDIDATES``)
MAX_CANDIDATES = 16
MAX_VALIDATION_DRIVES = 3

Rng = np.random.Generator


def drive_name(index: int) -> str:
    """``drive1``, ``drive2``, …: the file stem of the ``index``-th (0-based) traversal."""
    return f"drive{index + 1}"


# ============================================================================================ parameters
@dataclass(frozen=True)
class DriveSpec:
    """Everything that distinguishes one traversal of the street (camera path, light, sensor)."""

    name: str
    speed_mps: float  # mean speed
    speed_variation: float  # relative amplitude of the smooth speed profile
    lane_y_m: float  # lateral position of the lane (negative: right of the road centre)
    wander_m: float  # amplitude of the slow lateral wander inside the lane
    yaw_jitter_deg: float
    pitch_jitter_deg: float
    # -- lighting: intensity = gain * (albedo * shading) ** gamma
    gain: float
    gamma: float
    sky: float  # sky brightness (linear albedo units)
    shade_left: float  # façade shading of the left / right side (sun direction)
    shade_right: float
    sun_shadow: float  # darkness of the shadows of buildings, trees and poles on the ground (0: overcast)
    shadow_reach: float  # shadow length on the ground per metre of height (low sun from the right)
    # -- sensor
    contrast_threshold: float
    threshold_sigma: float
    noise_rate_hz: float
    refractory_s: float = 1e-4
    parked_variant: int = 0  # which subset of the optional parked cars is present
    yaw_offset_deg: float = 0.0  # camera mounting (re-mounted between recordings)
    pitch_offset_deg: float = 0.0
    # -- conditions that change *along* a recording (0: constant, as in drive1 and drive2)
    lane_drift_m: float = 0.0  # peak amplitude of slow lane changes (wavelengths 150-400 m) around lane_y_m
    light_drift: float = 0.0  # 0-1: how far gamma, sky and shading wander over their RANDOM_LIGHT ranges (clouds)
    # -- randomness of the path, lighting drift and sensor noise: the streams of this index (None: the drive's
    # position in the generation), so a drive is the same whatever other drives are generated with it
    stream_index: int | None = None

    def stream(self, position: int) -> int:
        """The index whose random streams this drive's path, lighting and sensor noise use."""
        return position if self.stream_index is None else self.stream_index


#: drive1 ~ MVSEC outdoor_day2 (train): overcast, slower, inner lane.
DRIVE1 = DriveSpec(
    name="drive1", speed_mps=8.0, speed_variation=0.2, lane_y_m=-1.4, wander_m=0.25, yaw_jitter_deg=0.8,
    pitch_jitter_deg=0.5, gain=1.0, gamma=1.0, sky=0.85, shade_left=0.9, shade_right=0.85, sun_shadow=0.0,
    shadow_reach=0.0, contrast_threshold=0.45, threshold_sigma=0.03, noise_rate_hz=0.05, parked_variant=0,
)
#: drive2 ~ MVSEC outdoor_day1 (test): low sun from the right, faster, outer lane, noisier sensor.
DRIVE2 = DriveSpec(
    name="drive2", speed_mps=11.0, speed_variation=0.25, lane_y_m=-2.7, wander_m=0.3, yaw_jitter_deg=1.2,
    pitch_jitter_deg=0.7, gain=1.4, gamma=0.8, sky=1.0, shade_left=1.0, shade_right=0.45, sun_shadow=0.45,
    shadow_reach=0.45, contrast_threshold=0.4, threshold_sigma=0.06, noise_rate_hz=0.2, parked_variant=1,
    yaw_offset_deg=-1.5, pitch_offset_deg=2.0,
)


#: A-priori ranges of the photometric factors of extra drives (and of their drifts along a drive).
RANDOM_LIGHT: dict[str, tuple[float, float]] = {
    "gamma": (0.75, 1.2), "sky": (0.75, 1.0), "shade_left": (0.45, 1.0), "shade_right": (0.45, 1.0)}


def random_drive_spec(seed: int, index: int) -> DriveSpec:
    """Extra *training* recording ``drive{index+1}`` (index >= 2) under randomly drawn conditions.

    Domain randomisation (Tobin et al., IROS 2017): each extra drive draws every factor that separates real
    recordings of one route, uniformly over a broad, physically plausible range fixed a priori: any lateral
    position in our half of the road, camera mounting within ±2.5°, overcast to low sun, gamma 0.75-1.2,
    sensor thresholds 0.35-0.55 with 0.02-0.07 mismatch and 0.02-0.3 Hz noise, 7-12 m/s. Anchors from these
    drives against drive1's windows (``data.train_protocol: cross``) teach the network what survives such
    changes. Deterministic from ``(seed, index)``; drive2 (the held-out traversal) is never among them.

    The conditions also change *along* each extra drive: the car changes lanes slowly (peaks of ±0.6-1.3 m
    around its lane, the whole path staying in the same range) and clouds drift over the sun (gamma, sky and
    façade shading wander over 50-100 % of their ranges, see :func:`lighting_along`). Each place is then seen
    under a different combination of factors in every extra drive, so a few drives cover many combinations.
    """
    if index < 2:
        raise ValueError("drive1 and drive2 are fixed; random drives start at index 2")
    rng = np.random.default_rng(stream_seed(seed, 30, index))
    u = rng.uniform
    sunny = u() < 0.6
    spec = DriveSpec(
        name=drive_name(index), speed_mps=u(7.0, 12.0), speed_variation=u(0.1, 0.3), lane_y_m=u(-3.4, -0.8),
        wander_m=u(0.2, 0.7), yaw_jitter_deg=u(0.5, 1.3), pitch_jitter_deg=u(0.3, 0.8), gain=u(0.6, 1.6),
        gamma=u(*RANDOM_LIGHT["gamma"]), sky=u(*RANDOM_LIGHT["sky"]), shade_left=u(*RANDOM_LIGHT["shade_left"]),
        shade_right=u(*RANDOM_LIGHT["shade_right"]),
        sun_shadow=u(0.2, 0.5) if sunny else 0.0, shadow_reach=u(0.2, 0.5) if sunny else 0.0,
        contrast_threshold=u(0.35, 0.55), threshold_sigma=u(0.02, 0.07), noise_rate_hz=u(0.02, 0.3),
        parked_variant=2, yaw_offset_deg=u(-2.5, 2.5), pitch_offset_deg=u(-2.5, 2.5),
    )
    # drawn last, so the factors above keep the values they had before drifts existed
    lane_drift = u(0.6, 1.3)
    lane = float(np.clip(spec.lane_y_m, -3.4 + lane_drift, -0.8 - lane_drift))
    return dataclasses.replace(spec, lane_y_m=lane, lane_drift_m=lane_drift, light_drift=u(0.5, 1.0))


#: The factors by which a drawn drive is compared with the map (drive1), each divided by the width of its
#: a-priori range in :func:`random_drive_spec`, so every factor counts alike (:func:`distance_from_map`).
CONDITION_RANGES: dict[str, float] = {
    "lane_y_m": 2.6, "yaw_offset_deg": 5.0, "pitch_offset_deg": 5.0, "speed_mps": 5.0, "gain": 1.0,
    "gamma": 0.45, "sky": 0.25, "shade_left": 0.55, "shade_right": 0.55, "sun_shadow": 0.5, "shadow_reach": 0.5,
    "contrast_threshold": 0.2, "threshold_sigma": 0.05, "noise_rate_hz": 0.28,
}


def distance_from_map(spec: DriveSpec, reference: DriveSpec = DRIVE1) -> float:
    """How unlike the map recording a drive is: the sum over :data:`CONDITION_RANGES` of each factor's difference
    from ``reference`` divided by its range's width (0: the map's conditions; one factor at the far end of its
    range adds up to 1)."""
    return float(sum(abs(getattr(spec, key) - getattr(reference, key)) / width
                     for key, width in CONDITION_RANGES.items()))


def validation_drive_name(k: int) -> str:
    """``drive_val``, ``drive_val2``, ``drive_val3``: the file stem of the ``k``-th (0-based) validation drive."""
    return "drive_val" if k == 0 else f"drive_val{k + 1}"


def least_like_map(seed: int, first_stream: int, candidates: int) -> tuple[DriveSpec, int]:
    """Of ``candidates`` drives drawn from the training ranges (:func:`random_drive_spec`) on the streams
    ``first_stream + j``, the one with the largest :func:`distance_from_map` (the first of equals), and its stream.

    A drive drawn uniformly rarely combines the changes that make a later recording hard (another lane *and* a
    re-mounted camera *and* low sun); the most different of several draws does, which is what a place-recognition
    map must survive (NetVLAD's Time Machine queries are taken months apart, Arandjelović et al., CVPR 2016, §4).
    The choice looks only at the drawn conditions and drive1's, never at a recording's recall."""
    if not 1 <= candidates <= MAX_CANDIDATES:
        raise ConfigError(f"{candidates} candidates: need 1 to {MAX_CANDIDATES} drawn drives")
    drawn = [(random_drive_spec(seed, stream), stream) for stream in range(first_stream, first_stream + candidates)]
    return max(drawn, key=lambda pair: distance_from_map(pair[0]))


def training_drive_spec(seed: int, k: int, candidates: int = 1) -> DriveSpec:
    """The ``k``-th extra training drive (``drive{k+3}``): :func:`random_drive_spec` (``candidates`` 1), or the draw
    least like the map of ``candidates`` (:func:`least_like_map`, on streams from :data:`TRAINING_CANDIDATE_STREAM`),
    so that more training recordings combine the changes a later drive brings."""
    if candidates == 1:
        return random_drive_spec(seed, 2 + k)
    spec, stream = least_like_map(seed, TRAINING_CANDIDATE_STREAM + k * MAX_CANDIDATES, candidates)
    return dataclasses.replace(spec, name=drive_name(2 + k), stream_index=stream)


def validation_drive_spec(seed: int, k: int = 0, candidates: int = 1) -> DriveSpec:
    """The ``k``-th *validation* recording: conditions drawn from the same a-priori ranges as the extra training
    drives (:func:`random_drive_spec`), on streams of their own (from :data:`VALIDATION_STREAM`), so it is neither
    a training drive nor drive2 (the test drive, whose conditions are fixed and never used to choose anything).

    ``candidates`` > 1: the draw least like the map of ``candidates`` (:func:`least_like_map`). One uniform draw
    saturated (recall@1 near 1) and could not rank set-ups; the most different of several measures
    generalisation to recordings unlike the map.

    The drive's path, lighting drift and sensor noise use the chosen candidate's stream: the validation drives
    are the same whatever number of training drives a config generates, so validation figures compare across
    configs (and ``k=0, candidates=1`` is the single validation drive of earlier versions)."""
    if not 0 <= k < MAX_VALIDATION_DRIVES:
        raise ConfigError(f"validation drive {k}: need 0 <= k < {MAX_VALIDATION_DRIVES}")
    spec, stream = least_like_map(seed, VALIDATION_STREAM + k * MAX_CANDIDATES, candidates)
    return dataclasses.replace(spec, name=validation_drive_name(k), stream_index=stream)


def validation_drive_specs(seed: int, drives: int = 1, candidates: int = 1) -> tuple[DriveSpec, ...]:
    """The ``drives`` validation recordings of :func:`validation_drive_spec`."""
    return tuple(validation_drive_spec(seed, k, candidates) for k in range(drives))


@dataclass(frozen=True)
class EventDriveParams:
    """Parameters of :func:`generate_event_drive`; their ``dataclasses.asdict`` form is the cache stamp."""

    seed: int = 0
    route_length_m: float = 600.0
    height: int = 260
    width: int = 346
    focal_px: float | None = None  # None: 200 px scaled with the width (DAVIS346 with a ~82 deg lens)
    camera_height_m: float = 1.4
    frame_spacing_m: float = 0.25
    drives: tuple[DriveSpec, ...] = (DRIVE1, DRIVE2)
    version: int = GENERATOR_VERSION

    @property
    def focal(self) -> float:
        """Focal length in pixels."""
        return float(self.focal_px) if self.focal_px is not None else 200.0 * self.width / 346.0

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first parameter out of its range."""
        if not self.route_length_m >= 5.0:
            raise ConfigError(f"route_length_m must be >= 5 m, got {self.route_length_m!r}")
        if self.height < 8 or self.width < 8:
            raise ConfigError(f"sensor size must be at least 8x8 pixels, got {self.height}x{self.width}")
        if not self.focal > 0:
            raise ConfigError(f"focal_px must be positive, got {self.focal_px!r}")
        if not 0.01 <= self.frame_spacing_m <= 1.0:
            raise ConfigError(f"frame_spacing_m must be in [0.01, 1] m, got {self.frame_spacing_m!r}")
        if not 0.3 <= self.camera_height_m <= 4.0:
            raise ConfigError(f"camera_height_m must be in [0.3, 4] m, got {self.camera_height_m!r}")
        if not 2 <= len(self.drives) <= MAX_DRIVES:
            raise ConfigError(f"drives must hold 2 to {MAX_DRIVES} DriveSpec (drive1, drive2, extra training "
                              f"drives, validation drives), got {len(self.drives)}")
        names = [d.name for d in self.drives]
        if len(set(names)) != len(names):
            raise ConfigError(f"drive names must be unique (they name the files), got {names}")
        for d in self.drives:
            if d.parked_variant not in (0, 1, 2):
                raise ConfigError(f"{d.name}: parked_variant must be 0, 1 or 2, got {d.parked_variant!r}")
            if not (d.speed_mps > 0 and 0 <= d.speed_variation < 0.8):
                raise ConfigError(f"{d.name}: speed_mps must be > 0 and speed_variation in [0, 0.8)")
            if not (d.lane_drift_m >= 0 and 0 <= d.light_drift <= 1):
                raise ConfigError(f"{d.name}: lane_drift_m must be >= 0 and light_drift in [0, 1]")
            if not abs(d.lane_y_m) + d.wander_m + d.lane_drift_m < ROAD_HALF_M - 1.0:
                raise ConfigError(f"{d.name}: lane_y_m +- (wander_m + lane_drift_m) must stay on the road "
                                  f"(|y| < {ROAD_HALF_M - 1} m)")
            if not (d.gain > 0 and d.gamma > 0):
                raise ConfigError(f"{d.name}: gain and gamma must be positive")


# ============================================================================================ drives
def _smooth_signal(rng: Rng, s: np.ndarray, wavelengths: tuple[float, float], n: int = 4) -> np.ndarray:
    """Sum of ``n`` sinusoids with random wavelengths/phases along ``s``, scaled to [-1, 1]."""
    lam = rng.uniform(*wavelengths, n)
    phase = rng.uniform(0, 2 * np.pi, n)
    amp = rng.uniform(0.5, 1.0, n)
    sig = (amp[None, :] * np.sin(2 * np.pi * s[:, None] / lam[None, :] + phase[None, :])).sum(axis=1)
    return sig / amp.sum()


def drive_trajectory(spec: DriveSpec, params: EventDriveParams, index: int) -> tuple[np.ndarray, ...]:
    """Frame route positions ``s``, times ``t``, lateral ``y``, ``yaw`` and ``pitch`` (radians) of one drive.

    Frames are equally spaced in distance (``frame_spacing_m``); times integrate ``ds / v(s)`` with a smooth
    speed profile ``v = speed * (1 + variation * signal(s))``. The heading follows the lateral wander
    (``atan(dy/ds)``) plus the camera's mounting yaw and a small smooth jitter; pitch is the mounting pitch plus
    a faster jitter (road bumps).
    """
    index = spec.stream(index)
    rng = np.random.default_rng(stream_seed(params.seed, 10, index))
    n = int(np.floor(params.route_length_m / params.frame_spacing_m)) + 1
    s = np.arange(n) * params.frame_spacing_m
    v = spec.speed_mps * (1.0 + spec.speed_variation * _smooth_signal(rng, s, (60.0, 250.0)))
    dt = np.diff(s) * 0.5 * (1.0 / v[1:] + 1.0 / v[:-1])
    t = np.concatenate([[0.0], np.cumsum(dt)])
    y = spec.lane_y_m + spec.wander_m * _smooth_signal(rng, s, (40.0, 150.0))
    if spec.lane_drift_m > 0:  # own stream: drives without drift keep their paths
        drift = np.random.default_rng(stream_seed(params.seed, 40, index))
        y = y + spec.lane_drift_m * _peak_normalised(_smooth_signal(drift, s, (150.0, 400.0)))
    yaw = np.arctan(np.gradient(y, s)) + np.deg2rad(spec.yaw_offset_deg)
    yaw += np.deg2rad(spec.yaw_jitter_deg) * _smooth_signal(rng, s, (8.0, 30.0))
    pitch = np.deg2rad(spec.pitch_offset_deg)
    pitch += np.deg2rad(spec.pitch_jitter_deg) * _smooth_signal(rng, s, (3.0, 12.0))
    return s, t, y, yaw, pitch


def _peak_normalised(signal: np.ndarray) -> np.ndarray:
    """Scale a signal to peak magnitude 1 over the route, so a drift's amplitude is the range it really spans."""
    peak = float(np.abs(signal).max()) if signal.size else 0.0
    return signal / peak if peak > 0 else signal


def lighting_along(spec: DriveSpec, params: EventDriveParams, index: int, s: np.ndarray) -> list[Lighting]:
    """Lighting of every frame: the drive's constant :class:`Lighting`, or, with ``spec.light_drift = w > 0``,
    gamma, sky brightness and the shading of each façade side drifting slowly and independently (wavelengths
    80-300 m, i.e. clouds over several seconds): ``value(s) = (1 − w)·constant + w·sweep(s)``, where ``sweep``
    travels the factor's whole :data:`RANDOM_LIGHT` range. Values stay inside those a-priori ranges."""
    base = Lighting.of(spec)
    if spec.light_drift <= 0:
        return [base] * s.size
    rng = np.random.default_rng(stream_seed(params.seed, 50, spec.stream(index)))
    w = spec.light_drift
    values = {}
    for name, (lo, hi) in RANDOM_LIGHT.items():
        sweep = lo + (hi - lo) * 0.5 * (1.0 + _peak_normalised(_smooth_signal(rng, s, (80.0, 300.0))))
        values[name] = (1.0 - w) * getattr(base, name) + w * sweep
    return [dataclasses.replace(base, **{name: float(v[k]) for name, v in values.items()}) for k in range(s.size)]


def _poses(s: np.ndarray, y: np.ndarray, z: float, yaw: np.ndarray, pitch: np.ndarray) -> np.ndarray:
    """(N, 4, 4) camera-to-world poses: rotation Rz(yaw) @ Ry(pitch) (x forward, y left, z up), translation."""
    n = s.size
    cyw, syw, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    out = np.zeros((n, 4, 4))
    # Rz(yaw) @ Ry(pitch); Ry with +pitch tilting the forward axis down.
    out[:, 0, 0], out[:, 0, 1], out[:, 0, 2] = cyw * cp, -syw, cyw * sp
    out[:, 1, 0], out[:, 1, 1], out[:, 1, 2] = syw * cp, cyw, syw * sp
    out[:, 2, 0], out[:, 2, 1], out[:, 2, 2] = -sp, 0.0, cp
    out[:, 0, 3], out[:, 1, 3], out[:, 2, 3] = s, y, z
    out[:, 3, 3] = 1.0
    return out


def simulate_drive(street: Street, params: EventDriveParams, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render and convert one traversal: returns ``(events (N,4) t,x,y,p, pose_ts (M,), poses (M,4,4))``."""
    spec = params.drives[index]
    s, t, y, yaw, pitch = drive_trajectory(spec, params, index)
    renderer = Renderer(street, params.height, params.width, params.focal)
    lights = lighting_along(spec, params, index, s)
    sim_seed = int(stream_seed(params.seed, 20, spec.stream(index)).generate_state(1)[0])
    sim = EventSimulator(params.height, params.width, spec.contrast_threshold, spec.threshold_sigma,
                         spec.refractory_s, spec.noise_rate_hz, seed=sim_seed)

    def frame(k: int) -> np.ndarray:
        return renderer.render(CameraPose(s[k], y[k], params.camera_height_m, yaw[k], pitch[k]), lights[k])

    sim.reset(frame(0), t[0])
    chunks = [sim.step(frame(k), t[k]) for k in range(1, s.size)]
    events = np.concatenate(chunks) if chunks else np.empty((0, 4))
    return events, t, _poses(s, y, params.camera_height_m, yaw, pitch)




# ============================================================================================ on disk
def _paths(root: Path, drives: tuple[DriveSpec, ...]) -> dict[str, tuple[Path, Path]]:
    return {d.name: (root / f"{d.name}_data.hdf5", root / f"{d.name}_gt.hdf5") for d in drives}


_STREETS: dict[tuple[int, float], Street] = {}
PARALLEL_MIN_WORK = 2e7  # rendered pixels per drive (frames x height x width) above which drives run in parallel
#: Events per pixel per metre of route, an upper estimate (the defaults give 0.12-0.15) for the free-space check.
EVENTS_PER_PIXEL_M = 0.2


def _generate_one(params: EventDriveParams, index: int, folder: Path) -> tuple[str, dict, float]:
    """Simulate drive ``index`` and write its MVSEC files into ``folder``; returns (name, stats, seconds)."""
    t0 = time.perf_counter()
    key = (params.seed, params.route_length_m)
    if key not in _STREETS:  # one street per process (deterministic, so every process builds the same one)
        _STREETS.clear()
        _STREETS[key] = build_street(params.seed, params.route_length_m)
    events, pose_ts, poses = simulate_drive(_STREETS[key], params, index)
    name = params.drives[index].name
    data_path, gt_path = _paths(folder, params.drives)[name]
    write_mvsec_sequence(data_path, gt_path, events, pose_ts, poses)
    stats = {"events": int(events.shape[0]), "duration_s": float(pose_ts[-1] - pose_ts[0]),
             "route_m": float(params.route_length_m)}
    return name, stats, time.perf_counter() - t0


def _write_drives(params: EventDriveParams, folder: Path, max_workers: int | None) -> dict[str, dict]:
    """Simulate every drive into ``folder`` (in parallel processes for real-size drives); returns their stats."""
    n = len(params.drives)
    frames = params.route_length_m / params.frame_spacing_m
    if max_workers is None:  # a worker process costs seconds to start (imports): only for real-size drives
        max_workers = (os.cpu_count() or 1) if frames * params.height * params.width > PARALLEL_MIN_WORK else 1
    workers = max(1, min(n, max_workers))
    jobs = [(params, index, folder) for index in range(n)]
    if workers == 1:
        results = [_generate_one(*job) for job in jobs]
        _STREETS.clear()  # the street's atlases are large; training does not need them
    else:  # drives are independent (own seeds): one process each, same files as a serial run
        ctx = multiprocessing.get_context("spawn")  # no fork of a process that may hold torch threads
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            results = list(pool.map(_generate_one, *zip(*jobs)))
    stats = {}
    for name, stat, seconds in results:
        stats[name] = stat
        log.info("%s: %d events over %.0f m / %.1f s simulated (%.0f events/m), generated in %.1f s", name,
                 stat["events"], stat["route_m"], stat["duration_s"], stat["events"] / stat["route_m"], seconds)
    return stats


def _bytes_needed(params: EventDriveParams) -> int:
    """Estimated size of the files: 32 bytes per event (float64 x, y, t, p) and 136 bytes per pose, per drive."""
    frames = params.route_length_m / params.frame_spacing_m + 1
    events = EVENTS_PER_PIXEL_M * params.height * params.width * params.route_length_m
    return int(len(params.drives) * (32 * events + 136 * frames + 65536))


def generate_event_drive(
    out_dir: Path,
    seed: int = 0,
    route_length_m: float = 600.0,
    height: int = 260,
    width: int = 346,
    focal_px: float | None = None,
    frame_spacing_m: float = 0.25,
    camera_height_m: float = 1.4,
    drives: tuple[DriveSpec, ...] = (DRIVE1, DRIVE2),
    max_workers: int | None = None,
) -> dict[str, tuple[Path, Path]]:
    """Generate (or find) the traversals in MVSEC layout; returns ``{name: (data, gt)}`` in the order of ``drives``.

    ``drives``: drive1 and drive2, then optional extra training recordings (:func:`random_drive_spec`) and the
    validation recording (:func:`validation_drive_spec`). Each drive's path and sensor noise come from streams
    of its own index (:meth:`DriveSpec.stream`), so drive1 and drive2 are the same whether or not other drives
    are generated. Drives are simulated in up to ``max_workers`` processes (default: one per CPU core for drives
    of more than :data:`PARALLEL_MIN_WORK` rendered pixels, else one); the files do not depend on it.

    Files: ``out_dir/<name>_data.hdf5`` and ``…_gt.hdf5`` plus ``event_drive.json``, a stamp of every
    parameter. If ``out_dir`` already holds a complete generation with the same stamp, nothing is done.
    Otherwise everything is written into a temporary sibling directory and renamed into place, so an
    interrupted run never leaves a half-written set (and a stale one is replaced as a whole).
    """
    params = EventDriveParams(seed=int(seed), route_length_m=float(route_length_m), height=int(height),
                              width=int(width), focal_px=None if focal_px is None else float(focal_px),
                              frame_spacing_m=float(frame_spacing_m), camera_height_m=float(camera_height_m),
                              drives=tuple(drives))
    params.validate()
    out_dir = Path(out_dir)

    def intact(root: Path, stamp: dict) -> bool:
        return all(p.is_file() for pair in _paths(root, params.drives).values() for p in pair)

    generated = publish_once(
        out_dir, lambda tmp: {"stats": _write_drives(params, tmp, max_workers)},
        generator="torchrepro.place_recognition.synthetic", version=GENERATOR_VERSION,
        params=dataclasses.asdict(params), bytes_needed=_bytes_needed(params), config_key="data.synthetic_dir",
        stamp_name=STAMP_NAME, intact=intact,
    )
    if not generated:
        log.info("event drive in %s is complete; reusing it", out_dir)
    return _paths(out_dir, params.drives)
