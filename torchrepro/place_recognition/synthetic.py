"""A deterministic simulated "event drive": traversals of one procedurally built street, in MVSEC layout.

Stand-in for MVSEC ``outdoor_day2`` (train, ``drive1``) and ``outdoor_day1`` (test, ``drive2``) as used by
event-based place recognition (Kong et al., "Event-VPR: End-to-End Weakly Supervised Deep Network Architecture
for Visual Place Recognition Using Event-Based Vision Sensor", IEEE TIM 2022; Lee & Kim, "EventVLAD", IROS 2021):
a car drives the same street twice, under different lighting, lane, speed, camera mounting and sensor noise, and
the task is to retrieve, for each event window of ``drive2``, windows of ``drive1`` recorded within 25 m.

Pipeline (all NumPy, deterministic from ``seed``):

1. **Street** (:func:`build_street`). A straight road along world ``+x`` (straight keeps the façades planar and
   the per-column ray casting exact; the place signal comes from what lines the street, not from its shape).
   World frame: ``x`` = distance along the route ``s`` (m), ``y`` = lateral, positive to the left, ``z`` up;
   the road centre is ``y = 0``, kerbs at ``|y| = 7 m``. Both sides hold a row of buildings, 6-25 m wide, each
   with its own set-back, height, albedo and façade texture (storeys of windows on varying grids, shop fronts
   with signs, doors, cornices, pilasters, brick/panel/plaster/glass surfaces), occasionally a deep forecourt.
   The ground holds asphalt with patches, lane markings, crosswalks, manholes, kerbs and paved sidewalks whose
   tiles change every 20-60 m. Poles, street signs, bins, trees (trunk + ellipsoidal canopy; in stretches) and
   parked cars stand at irregular positions; about half the parked cars differ between the two traversals (as
   they do between real recordings). Façade and ground albedo are baked once into texture *atlases* (5 cm
   texels) with a 4x box-filtered mip pyramid, so rendering is a few gathers per pixel.
2. **Rendering** (:meth:`Renderer.render`): grayscale linear intensity from a forward-facing pinhole camera
   (DAVIS346: 346 x 260, f = 200 px, ~82 deg horizontal field of view) by ray casting, column-wise like a
   classic ray caster: with no roll the horizontal direction of a ray depends only on its image column, so
   walls (including the side faces of set-backs) and vertical objects are intersected once per column
   (vectorised over columns x buildings/objects), and each pixel only compares heights and depths: the ground
   plane ``z = 0`` at forward depth ``h / v``, the column's wall up to the building's height (sky above), the two
   nearest object hits per column in front. Pitch is applied to the rays' vertical slope exactly for the
   central column (a small-angle approximation elsewhere). Distance fog fades far surfaces to the horizon
   sky. About 3 ms per 346 x 260 frame.
3. **Events** (:class:`~torchrepro.events.simulator.EventSimulator`): frames are rendered every
   ``frame_spacing_m`` of travel (0.25 m by default, i.e. every 23-31 ms at 8-11 m/s) and converted to events
   by the contrast-threshold model; event times are interpolated inside each frame interval, so the temporal
   structure finer than 0.25 m of travel is approximate (as in any frame-based simulator without upsampling).
4. **Files**: ``drive{1,2}_data.hdf5`` / ``drive{1,2}_gt.hdf5`` in the MVSEC layout
   (:func:`~torchrepro.events.mvsec.write_mvsec_sequence`) with one pose per frame; ``pose[:, 0:2, 3]`` is the
   camera's ground-plane position (route coordinate, lateral offset) in metres.

The two traversals differ in lighting (overcast vs. low sun: global gain, gamma 1.0 vs 0.8, sky brightness,
façade shading, shadows of buildings, trees and poles on the ground), lane (1.3 m apart) and lateral wander,
speed profile (8 vs. 11 m/s, +-20-25 % smooth variation), yaw/pitch jitter and camera mounting (drive2 is
re-mounted 1.5 deg to the right and 2 deg down), parked cars, contrast thresholds (0.45 vs 0.4), threshold
mismatch (sigma 0.03 vs 0.06) and background noise (0.05 vs 0.2 Hz per pixel).

Extra *training* traversals (drive3, drive4, …; :func:`random_drive_spec`) draw every one of these factors at
random from broad ranges fixed a priori; ``data.train_protocol: cross`` uses their windows as anchors against
drive1 (domain randomisation + NetVLAD's Time Machine supervision). drive2 stays the held-out traversal.
Drives are simulated in parallel processes; each one's randomness comes from streams of its own index.

Measured at the defaults (seed 0, 600 m, one core): street 1.3 s, drive1 12.9 s, drive2 13.7 s, 28 s in all;
drive1 7.56 M events (12.6 k/m, 75 s simulated), drive2 6.41 M events (10.7 k/m, 55 s simulated), i.e. one
15,000-event window per 1.2-1.4 m. Every ~25 m of street differs at a coarse scale (building widths, heights,
brightness, window grids, trees), so a learned descriptor can localise; a raw event-count image (65 x 87,
L2-normalised, cosine) reaches only recall@1 = 0.26 (recall@5 0.53; chance 0.09) from drive2 to drive1.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import multiprocessing
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from torchrepro.core.errors import ConfigError
from torchrepro.events.mvsec import write_mvsec_sequence
from torchrepro.events.simulator import EventSimulator

log = logging.getLogger(__name__)

#: Bump when the generator's output changes, so stale generations are not reused.
GENERATOR_VERSION = 1
STAMP_NAME = "event_drive.json"
MAX_DRIVES = 8


def drive_name(index: int) -> str:
    """``drive1``, ``drive2``, …: the file stem of the ``index``-th (0-based) traversal."""
    return f"drive{index + 1}"

TEXEL_M = 0.05  # atlas resolution (finest mip level)
MIP_FACTOR = 4
MIP_LEVELS = 4
FACADE_MAX_Z = 32.0  # atlas height; taller buildings are clipped to it
GROUND_HALF_M = 16.0  # the ground atlas spans y in [-16, 16] m
ROAD_HALF_M = 7.0  # kerb to kerb: two 2.5 m lanes per direction + 2 m parking strips
VIEW_M = 160.0  # nothing is cast beyond this distance (fog has made it invisible)
OBJECT_VIEW_M = 90.0
FOG_M = 70.0  # contrast halves every ~48 m
ROUTE_MARGIN_M = 30.0  # street built before the start of the route

Rng = np.random.Generator


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
    rng = np.random.default_rng(_seed(seed, 30, index))
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


@dataclass(frozen=True)
class EventDriveParams:
    """Parameters of :func:`generate_event_drive`; their JSON form is the cache stamp."""

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
        return float(self.focal_px) if self.focal_px is not None else 200.0 * self.width / 346.0

    def validate(self) -> None:
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
                              f"drives), got {len(self.drives)}")
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

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


def _seed(seed: int, *stream: int) -> np.random.SeedSequence:
    """Independent sub-stream of ``seed`` (street, textures, objects, each drive's path and sensor)."""
    return np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *stream])


# ============================================================================================ textures
def _smooth_noise(rng: Rng, shape: tuple[int, int], cell: tuple[float, float]) -> np.ndarray:
    """Value noise: a Gaussian lattice every ``cell`` texels, bilinearly interpolated (float32, ~unit sd)."""
    axes = []
    for n, c in zip(shape, cell):
        pos = np.arange(n, dtype=np.float32) / np.float32(max(float(c), 1.0))
        i0 = pos.astype(np.int64)
        axes.append((i0, (pos - i0).astype(np.float32), int(i0[-1]) + 2 if n else 2))
    (i0, w0, n0), (j0, w1, n1) = axes
    lattice = rng.standard_normal((n0, n1), dtype=np.float32) * np.float32(1.6)  # 1.6: undo the smoothing
    cols = lattice[:, j0] * (1 - w1)[None, :] + lattice[:, j0 + 1] * w1[None, :]  # (n0, shape[1]), small
    return cols[i0] * (1 - w0)[:, None] + cols[i0 + 1] * w0[:, None]


def _cell_values(rng: Rng, a: np.ndarray, z: np.ndarray, pa: float, pz: float, phase: float) -> np.ndarray:
    """One random N(0, 1) value per cell of a (pa x pz) grid (e.g. per window pane), for texels a x z."""
    ia = np.floor((a - phase) / pa).astype(np.int64)
    iz = np.floor(z / pz).astype(np.int64)
    ia -= ia.min()
    iz -= iz.min()
    table = rng.standard_normal((int(ia.max()) + 1, int(iz.max()) + 1), dtype=np.float32)
    return table[ia[:, None], iz[None, :]]


def _pyramid(atlas: np.ndarray) -> list[np.ndarray]:
    """Mip pyramid: ``MIP_LEVELS`` levels, each a ``MIP_FACTOR`` x ``MIP_FACTOR`` box filter of the previous.

    Sampling the level whose texels match a pixel's footprint avoids aliasing flicker (which would fire
    spurious events on distant texture).
    """
    levels = [np.ascontiguousarray(atlas, dtype=np.float32)]
    for _ in range(MIP_LEVELS - 1):
        a = levels[-1]
        n0, n1 = a.shape[0] // MIP_FACTOR, a.shape[1] // MIP_FACTOR
        a = a[: n0 * MIP_FACTOR, : n1 * MIP_FACTOR].reshape(n0, MIP_FACTOR, n1, MIP_FACTOR).mean(axis=(1, 3))
        levels.append(np.ascontiguousarray(a, dtype=np.float32))
    return levels


def _grid_mask(coord: np.ndarray, period: float, width: float, phase: float = 0.0) -> np.ndarray:
    """True where ``coord`` lies in the first ``width`` of each ``period`` (windows, stripes, dashes)."""
    return np.mod(coord - phase, period) < width


# ============================================================================================ façades
@dataclass
class Facade:
    """One side of the street: buildings ``[s0, s1)`` along the route, set-back (|y| of the façade), height."""

    s0: np.ndarray
    s1: np.ndarray
    setback: np.ndarray
    height: np.ndarray
    mips: list[np.ndarray] = field(default_factory=list)  # albedo atlases, shape (n_s, n_z), z contiguous


def _layout_buildings(rng: Rng, s_start: float, s_end: float) -> tuple[np.ndarray, ...]:
    """Contiguous buildings covering [s_start, s_end): widths 6-25 m, set-backs, heights, a few forecourts."""
    s0, s1, setback, height = [], [], [], []
    s = s_start
    base = rng.uniform(9.5, 11.0)  # kerb + sidewalk
    while s < s_end:
        w = rng.uniform(6.0, 25.0)
        if rng.uniform() < 0.08:  # deep forecourt / parking lot in front of a lower building
            back, h = rng.uniform(4.0, GROUND_HALF_M - 0.5 - base), rng.uniform(4.0, 10.0)
        else:
            back = 0.0 if rng.uniform() < 0.55 else rng.uniform(0.4, 3.5)
            storeys = int(rng.integers(2, 9))
            h = min(3.2 * storeys + rng.uniform(0.5, 2.5), FACADE_MAX_Z)
        s0.append(s)
        s1.append(s + w)
        setback.append(min(base + back, GROUND_HALF_M - 0.5))
        height.append(h)
        s += w
    return tuple(np.asarray(v, dtype=np.float64) for v in (s0, s1, setback, height))


def _paint_building(rng: Rng, n_a: int, n_z: int) -> np.ndarray:
    """Albedo of one façade, (n_a texels along the street, n_z texels up); local coords in metres."""
    a = (np.arange(n_a, dtype=np.float32) + 0.5) * TEXEL_M
    z = (np.arange(n_z, dtype=np.float32) + 0.5) * TEXEL_M
    A, Z = a[:, None], z[None, :]
    width, height = n_a * TEXEL_M, n_z * TEXEL_M
    base = rng.uniform(0.18, 0.75)
    material = rng.choice(["plaster", "brick", "panels", "glass"], p=[0.35, 0.3, 0.2, 0.15])
    img = np.full((n_a, n_z), base, dtype=np.float32)
    # Surface grain: large blotches + fine noise; brick gets courses.
    img *= 1.0 + rng.uniform(0.03, 0.1) * _smooth_noise(rng, (n_a, n_z), (40, 40))
    img *= 1.0 + rng.uniform(0.02, 0.08) * _smooth_noise(rng, (n_a, n_z), (3, 3))
    if material == "brick":
        img *= np.where(_grid_mask(Z, 0.3, 0.04), 0.8, 1.0).astype(np.float32)
    elif material == "panels":
        pw, ph = rng.uniform(1.2, 3.0), rng.uniform(1.0, 3.0)
        joints = _grid_mask(A, pw, 0.06) | _grid_mask(Z, ph, 0.06)
        img = np.where(joints, img * 0.7, img)

    ground = rng.uniform(3.4, 4.8)  # ground-floor height
    storey = rng.uniform(2.8, 3.9)
    upper = Z >= ground
    level_z = np.mod(Z - ground, storey)
    # Upper-floor windows on a grid (varying width, spacing, height, sill).
    ww = rng.uniform(0.7, 2.2)
    pitch = ww + rng.uniform(0.5, 3.0) if material != "glass" else ww + rng.uniform(0.1, 0.3)
    wh = rng.uniform(1.1, min(2.2, storey - 0.5)) if material != "glass" else storey - 0.25
    sill = rng.uniform(0.5, storey - wh) if material != "glass" else 0.1
    margin = max((width - pitch * max(int(width // pitch), 1)) / 2, 0.0)
    phase = margin + rng.uniform(0, 0.3)
    win = upper & _grid_mask(A, pitch, ww, phase) & (level_z >= sill) & (level_z < sill + wh)
    win &= (A > 0.4) & (A < width - 0.4) & (Z < height - 0.8)
    dark = rng.uniform() < 0.7
    # Each window pane has its own value (curtains, lights, reflections): noise with a cell per window.
    pane = _cell_values(rng, a, z - ground, pitch, storey, phase)
    wval = (rng.uniform(0.04, 0.15) if dark else rng.uniform(0.55, 0.9)) * (1.0 + 0.35 * pane)
    img = np.where(win, wval, img)
    if rng.uniform() < 0.6:  # window frames / sills
        frame = win & ~(_grid_mask(A, pitch, ww - 0.08, phase + 0.04) & (level_z >= sill + 0.08))
        img = np.where(frame, base * 1.25, img)
    if rng.uniform() < 0.5:  # cornice at every storey
        img = np.where(upper & (level_z < 0.25), img * rng.choice([0.65, 1.35]), img)
    if rng.uniform() < 0.3:  # pilasters
        img = np.where(_grid_mask(A, pitch, 0.35, phase + ww + 0.1), img * 1.2, img)

    # Ground floor: shop windows or a plain wall with a door, a sign band above.
    shop = rng.uniform() < 0.6
    gz = Z < ground
    if shop:
        sw = rng.uniform(1.5, 4.5)
        sp = sw + rng.uniform(0.4, 1.5)
        sval = rng.uniform(0.05, 0.35)
        shopwin = gz & _grid_mask(A, sp, sw, rng.uniform(0, sp)) & (Z > 0.5) & (Z < ground - 1.3)
        img = np.where(shopwin, sval * (1.0 + 0.3 * pane), img)
        sign_lo = ground - rng.uniform(1.1, 1.25)
        sign = (Z > sign_lo) & (Z < ground - 0.2) & (A > 0.3) & (A < width - 0.3)
        sign_val = rng.choice([rng.uniform(0.03, 0.12), rng.uniform(0.75, 0.98)])
        letters = _grid_mask(A, rng.uniform(0.35, 0.7), rng.uniform(0.15, 0.3)) & (Z > sign_lo + 0.25) & (
            Z < ground - 0.45
        )
        img = np.where(sign, np.where(letters, 1.0 - sign_val, sign_val), img)
    for _ in range(int(rng.integers(1, 3))):  # doors
        d0 = rng.uniform(0.5, max(width - 1.8, 0.6))
        door = (A > d0) & (A < d0 + rng.uniform(1.0, 1.8)) & (Z < 2.3)
        img = np.where(door, rng.uniform(0.05, 0.3), img)
    img = np.where(Z < 0.35, base * 0.6, img)  # plinth
    img = np.where(Z > height - rng.uniform(0.3, 0.8), base * rng.choice([0.6, 1.3]), img)  # roof cornice
    return np.clip(img, 0.02, 1.0)


def _build_facade(rng: Rng, s_start: float, s_end: float) -> Facade:
    s0, s1, setback, height = _layout_buildings(rng, s_start, s_end)
    n_s = int(round((s1[-1] - s_start) / TEXEL_M))
    n_z = int(round(FACADE_MAX_Z / TEXEL_M))
    atlas = np.zeros((n_s, n_z), dtype=np.float32)
    for i in range(len(s0)):
        a0 = int(round((s0[i] - s_start) / TEXEL_M))
        a1 = min(int(round((s1[i] - s_start) / TEXEL_M)), n_s)
        nz = min(int(round(height[i] / TEXEL_M)), n_z)
        atlas[a0:a1, :nz] = _paint_building(rng, a1 - a0, nz)
        atlas[a0:a1, nz:] = atlas[a0:a1, nz - 1 : nz]  # above the roof: never shown, keeps mips clean
    return Facade(s0, s1, setback, height, _pyramid(atlas))


# ============================================================================================ ground
def _build_ground(rng: Rng, s_start: float, n_s: int) -> np.ndarray:
    """Ground albedo atlas (n_s along the route, n_y across from y = -GROUND_HALF_M), y contiguous."""
    n_y = int(round(2 * GROUND_HALF_M / TEXEL_M))
    s_end = s_start + n_s * TEXEL_M
    s_ax = s_start + (np.arange(n_s, dtype=np.float32) + 0.5) * TEXEL_M
    y_ax = -GROUND_HALF_M + (np.arange(n_y, dtype=np.float32) + 0.5) * TEXEL_M
    s, y = s_ax[:, None], y_ax[None, :]
    ay = np.abs(y)

    def rows(lo: float, hi: float) -> slice:  # texel rows covering [lo, hi) along the route
        return slice(max(int((lo - s_start) / TEXEL_M), 0), max(int(np.ceil((hi - s_start) / TEXEL_M)), 0))

    img = 0.22 * (1.0 + 0.12 * _smooth_noise(rng, (n_s, n_y), (60, 60)))  # asphalt: large blotches ...
    img *= 1.0 + 0.05 * rng.standard_normal((n_s, n_y), dtype=np.float32)  # ... and grain
    for _ in range(int(n_s * TEXEL_M / 25)):  # repair patches: darker / lighter rectangles
        p0 = rng.uniform(s_start, s_end)
        q0, q1 = rng.uniform(-ROAD_HALF_M, ROAD_HALF_M - 1.5), rng.uniform(1.0, 4.0)
        r = rows(p0, p0 + rng.uniform(2.0, 12.0))
        cols = (y_ax > q0) & (y_ax < q0 + q1)
        img[r, cols] *= rng.uniform(0.7, 1.35)
    paint = 0.8
    # Lane markings: dashed centre and lane lines, solid edge lines of the parking strips.
    centre = (np.abs(y) < 0.08) & _grid_mask(s, 9.0, 3.0, rng.uniform(0, 9))
    lanes = (np.abs(ay - 2.5) < 0.06) & _grid_mask(s, 12.0, 3.0, rng.uniform(0, 12))
    edge = np.abs(ay - 5.0) < 0.07
    img[centre | lanes | edge] = paint
    # Crosswalks every 70-160 m (zebra stripes along the route) with a stop line.
    c = s_start + rng.uniform(40.0, 90.0)
    zebra_cols = (np.abs(y_ax) < ROAD_HALF_M) & _grid_mask(y_ax, 1.0, 0.5)
    while c < s_end:
        img[rows(c, c + 4.0), zebra_cols] = paint
        img[rows(c - 2.0, c - 1.6), np.abs(y_ax) < ROAD_HALF_M - 2.0] = paint
        c += rng.uniform(70.0, 160.0)
    for _ in range(int(n_s * TEXEL_M / 30)):  # manholes
        ms, my = rng.uniform(s_start, s_end), rng.uniform(-ROAD_HALF_M + 1, ROAD_HALF_M - 1)
        r = rows(ms - 0.35, ms + 0.35)
        disc = (s_ax[r, None] - ms) ** 2 + (y_ax[None, :] - my) ** 2 < 0.33**2
        img[r][disc] = 0.09
    # Paved sidewalk with tile joints; tile size and shade change every 20-60 m; a kerb at the road edge.
    walk_cols = np.flatnonzero(np.abs(y_ax) >= ROAD_HALF_M)
    yw = y_ax[walk_cols][None, :]
    seg_edges = np.cumsum(rng.uniform(20.0, 60.0, int(n_s * TEXEL_M / 20) + 2)) + s_start
    seg = np.searchsorted(seg_edges, s_ax)
    tile = rng.uniform(0.4, 1.2, seg_edges.size + 1).astype(np.float32)[seg][:, None]
    shade = rng.uniform(0.75, 1.25, seg_edges.size + 1).astype(np.float32)[seg][:, None]
    walk = 0.42 * shade * (1.0 + 0.05 * rng.standard_normal((n_s, walk_cols.size), dtype=np.float32))
    joints = (np.mod(s, tile) < 0.04) | (np.mod(yw, tile) < 0.04)
    img[:, walk_cols] = np.where(joints, walk * 0.65, walk)
    img[:, (np.abs(y_ax) >= ROAD_HALF_M) & (np.abs(y_ax) < ROAD_HALF_M + 0.25)] = 0.55  # kerb
    return np.clip(img, 0.02, 1.0).astype(np.float32)


# ============================================================================================ objects
@dataclass
class Objects:
    """Vertical objects. ``kind``: 0 cylinder (poles, trunks), 1 ellipsoid canopy, 2 axis-aligned box.

    Geometry in the ground plane: centre ``(s, y)``; cylinders/canopies have radius ``rx``; boxes half sizes
    ``rx`` (along s) and ``ry`` (across). Vertical extent ``[z0, z1]``. ``band`` is a darker horizontal band
    (car windows) ``[b0, b1]``. ``present[:, v]``: whether the object exists in parking variant ``v`` (a drive's ``parked_variant``).
    """

    kind: np.ndarray
    s: np.ndarray
    y: np.ndarray
    rx: np.ndarray
    ry: np.ndarray
    z0: np.ndarray
    z1: np.ndarray
    albedo: np.ndarray
    texture: np.ndarray  # relative amplitude of the object's surface noise
    b0: np.ndarray
    b1: np.ndarray
    present: np.ndarray


def _place_objects(rng: Rng, s_start: float, s_end: float, left: Facade, right: Facade,
                   third_rng: Rng | None = None) -> Objects:
    """Poles, signs, trees (trunk + canopy), bins and parked cars at irregular positions on both sides.

    ``present`` has one column per parking variant. Variants 0 and 1 (drive1, drive2) are drawn from ``rng``
    with everything else; variant 2 (drive3) from ``third_rng`` alone, so that adding it changed nothing of
    the first two: a car parked in both drive1 and drive2 is there in drive3 too, each other car with
    probability 0.5.
    """
    third_rng = third_rng if third_rng is not None else np.random.default_rng(0)
    rows: list[tuple] = []

    def add(kind, s, y, rx, ry, z0, z1, albedo, texture=0.05, band=(0.0, 0.0), present=(True, True)):
        rows.append((kind, s, y, rx, ry, z0, z1, albedo, texture, band[0], band[1], present[0], present[1]))

    for side in (1.0, -1.0):
        facade = left if side > 0 else right
        # Poles every 20-45 m; some carry a sign plate facing the traffic.
        s = s_start + rng.uniform(0, 20)
        while s < s_end:
            y = side * (ROAD_HALF_M + rng.uniform(0.4, 0.8))
            add(0, s, y, 0.11, 0.11, 0.0, rng.uniform(5.0, 9.0), rng.uniform(0.2, 0.55))
            if rng.uniform() < 0.35:
                add(2, s + 0.15, y, 0.03, rng.uniform(0.3, 0.5), rng.uniform(2.0, 2.6), rng.uniform(2.9, 3.4),
                    rng.choice([rng.uniform(0.75, 0.95), rng.uniform(0.05, 0.15)]))
            s += rng.uniform(20.0, 45.0)
        # Trees in stretches: a stretch of 30-120 m has trees every 7-15 m or none.
        s = s_start
        while s < s_end:
            stretch = rng.uniform(30.0, 120.0)
            if rng.uniform() < 0.45:
                t = s + rng.uniform(0, 8)
                while t < min(s + stretch, s_end):
                    back = facade.setback[min(int(np.searchsorted(facade.s1, t, side="right")), facade.s1.size - 1)]
                    y = side * min(ROAD_HALF_M + rng.uniform(1.2, 2.2), back - 1.0)
                    top = rng.uniform(5.0, 10.0)
                    add(0, t, y, rng.uniform(0.15, 0.28), 0.0, 0.0, top * 0.45, rng.uniform(0.12, 0.3), 0.15)
                    r = rng.uniform(1.4, 2.8)
                    add(1, t, y, r, 0.0, top * 0.35, top, rng.uniform(0.1, 0.35), rng.uniform(0.3, 0.6))
                    t += rng.uniform(7.0, 15.0)
            s += stretch
        # Bins / bollards / boxes on the sidewalk.
        for _ in range(int((s_end - s_start) / 25)):
            add(2, rng.uniform(s_start, s_end), side * (ROAD_HALF_M + rng.uniform(0.5, 1.5)), rng.uniform(0.3, 0.6),
                rng.uniform(0.3, 0.6), 0.0, rng.uniform(0.8, 1.5), rng.uniform(0.1, 0.7), 0.1)
        # Parked cars in the parking strip; about half are parked in both drives, the rest in only one.
        s = s_start + rng.uniform(0, 10)
        while s < s_end:
            if rng.uniform() < 0.5:
                u = rng.uniform()
                present = (True, True) if u < 0.45 else ((True, False) if u < 0.72 else (False, True))
                hgt = rng.uniform(1.35, 1.9)
                add(2, s, side * (ROAD_HALF_M - 1.05), rng.uniform(2.0, 2.5), 0.9, 0.15, hgt,
                    rng.uniform(0.08, 0.85), 0.05, (hgt * 0.58, hgt * 0.9), present)
            s += rng.uniform(5.5, 12.0)
    cols = list(zip(*rows))
    as_f = lambda v: np.asarray(v, dtype=np.float64)  # noqa: E731
    both = np.asarray(cols[11]) & np.asarray(cols[12])
    third = both | (third_rng.uniform(size=both.size) < 0.5) & (np.asarray(cols[11]) | np.asarray(cols[12]))
    return Objects(
        kind=np.asarray(cols[0], dtype=np.int64), s=as_f(cols[1]), y=as_f(cols[2]), rx=as_f(cols[3]),
        ry=as_f(cols[4]), z0=as_f(cols[5]), z1=as_f(cols[6]), albedo=as_f(cols[7]), texture=as_f(cols[8]),
        b0=as_f(cols[9]), b1=as_f(cols[10]), present=np.stack([np.asarray(cols[11]), np.asarray(cols[12]), third], 1),
    )


# ============================================================================================ street
@dataclass
class Street:
    """A built street: façades, ground atlas pyramid, objects, and a small noise table for object textures."""

    s_start: float
    s_end: float
    left: Facade
    right: Facade
    ground: list[np.ndarray]
    objects: Objects
    noise: np.ndarray  # (64, 64) float32 in ~[-1, 1], object surface texture


def build_street(seed: int, route_length_m: float) -> Street:
    """Procedurally build the street for a route ``[0, route_length_m]`` (deterministic from ``seed``)."""
    s_start, s_end = -ROUTE_MARGIN_M, route_length_m + VIEW_M + 10.0
    left = _build_facade(np.random.default_rng(_seed(seed, 1, 0)), s_start, s_end)
    right = _build_facade(np.random.default_rng(_seed(seed, 1, 1)), s_start, s_end)
    n_s = int(round((max(left.s1[-1], right.s1[-1]) - s_start) / TEXEL_M))
    ground = _pyramid(_build_ground(np.random.default_rng(_seed(seed, 2)), s_start, n_s))
    objects = _place_objects(np.random.default_rng(_seed(seed, 3)), s_start, s_end - VIEW_M + OBJECT_VIEW_M,
                             left, right, third_rng=np.random.default_rng(_seed(seed, 5)))
    noise = np.random.default_rng(_seed(seed, 4)).uniform(-1, 1, (64, 64)).astype(np.float32)
    return Street(s_start, s_end, left, right, ground, objects, noise)


# ============================================================================================ sun shadows
SHADOW_CELL_M = 0.1
SUN_ALONG = 0.35  # the sun is also a little behind-right: shadows lean forward by this fraction of the reach


def sun_shadow_map(street: Street, darkness: float, reach: float, drive: int) -> np.ndarray:
    """Multiplicative ground shading (n_s, n_y) on a 0.1 m grid for a low sun from the right.

    A point at height ``z`` casts its shadow ``z * reach`` to the left (and ``SUN_ALONG * z * reach`` forward):
    the right-hand buildings shade the road up to ``-setback + reach * height``; tree canopies (ellipsoids)
    cast elongated blobs, trunks and poles thin streaks across the road (strong moving edges in events).
    Cast by the objects present during ``drive``; edges get a 0.3 m penumbra (3x3 box blur).
    """
    cell = SHADOW_CELL_M
    n_s = int(np.ceil((street.s_end - street.s_start) / cell))
    n_y = int(round(2 * GROUND_HALF_M / cell))
    s_ax = street.s_start + (np.arange(n_s) + 0.5) * cell
    y_ax = -GROUND_HALF_M + (np.arange(n_y) + 0.5) * cell
    fac = street.right
    i = np.clip(np.searchsorted(fac.s1, s_ax, side="right"), 0, fac.s1.size - 1)
    edge = -fac.setback[i] + reach * fac.height[i]
    cover = (y_ax[None, :] < edge[:, None]).astype(np.float32)
    ob = street.objects
    for k in np.flatnonzero(ob.present[:, drive] & (ob.s > street.s_start) & (ob.s < street.s_end - 5)):
        z0, z1, r = ob.z0[k], ob.z1[k], ob.rx[k]
        # Shadow footprint: the object's ground disc swept from height z0 to z1 along the sun direction.
        cs, cy = ob.s[k] + SUN_ALONG * reach * (z0 + z1) / 2, ob.y[k] + reach * (z0 + z1) / 2
        half_len = reach * (z1 - z0) / 2
        if ob.kind[k] == 2 and ob.b1[k] == 0 and z0 > 1.0:  # sign plates: a small blob
            half_len = 0.3
        lo_s, hi_s = cs - r - 2 * half_len * SUN_ALONG - 0.5, cs + r + 2 * half_len * SUN_ALONG + 0.5
        rs = slice(max(int((lo_s - street.s_start) / cell), 0), max(int((hi_s - street.s_start) / cell), 0))
        if rs.stop <= rs.start:
            continue
        ds = s_ax[rs, None] - cs
        dy = y_ax[None, :] - cy
        # Distance to the segment (the shadow's axis) in the ground plane, in units that make it a capsule.
        u = np.clip((ds * SUN_ALONG + dy) / (1 + SUN_ALONG**2), -half_len, half_len)
        dist2 = (ds - u * SUN_ALONG) ** 2 + (dy - u) ** 2
        radius = r if ob.kind[k] != 1 else r * 0.9
        cover[rs] = np.maximum(cover[rs], dist2 < radius * radius)
    # Penumbra: 3x3 box blur.
    p = np.pad(cover, 1, mode="edge")
    cover = sum(p[a : a + n_s, b : b + n_y] for a in range(3) for b in range(3)) / 9.0
    return (1.0 - darkness * cover).astype(np.float32)


# ============================================================================================ rendering
@dataclass(frozen=True)
class CameraPose:
    """Camera on the street: route coordinate ``s``, lateral ``y``, height, yaw (left +), pitch (down +)."""

    s: float
    y: float
    height: float
    yaw: float
    pitch: float


@dataclass(frozen=True)
class Lighting:
    """Photometry of a traversal (see :class:`DriveSpec`)."""

    gain: float = 1.0
    gamma: float = 1.0
    sky: float = 0.85
    shade_left: float = 0.9
    shade_right: float = 0.85
    sun_shadow: float = 0.0
    shadow_reach: float = 0.0
    drive: int = 0  # which parked cars are present

    @classmethod
    def of(cls, spec: DriveSpec) -> Lighting:
        return cls(spec.gain, spec.gamma, spec.sky, spec.shade_left, spec.shade_right, spec.sun_shadow,
                   spec.shadow_reach, spec.parked_variant)


class Renderer:
    """Column-wise ray caster for one street and one pinhole camera (see the module docstring).

    Images are computed in (width, height) layout (one image column per array row) so that a column's reads
    from the façade atlas, which is stored z-contiguous, are contiguous; the result is transposed at the end.
    """

    def __init__(self, street: Street, height: int, width: int, focal: float) -> None:
        self.street, self.h, self.w, self.f = street, height, width, float(focal)
        self.u = (np.arange(width) + 0.5 - width / 2) / self.f  # rightwards slope per column
        self.v = (np.arange(height) + 0.5 - height / 2) / self.f  # downwards slope per row
        self.texel = [TEXEL_M * MIP_FACTOR**k for k in range(MIP_LEVELS)]
        # Both façade atlases stacked along s per mip level (right side after the left): one gather per level.
        self._facade_mips = [np.concatenate([lm, rm]) for lm, rm in zip(street.left.mips, street.right.mips)]
        self._right_offset = [lm.shape[0] for lm in street.left.mips]
        self._shadow_maps: dict[tuple[float, float, int], np.ndarray] = {}

    # ------------------------------------------------------------------------------------- geometry
    @staticmethod
    def _cast_facade(fac: Facade, sc: float, yc: float, a: np.ndarray, b: np.ndarray) -> tuple:
        """Per-column hit of one side: ``b`` is the ray's lateral slope *towards* that side (only b > 0 hit).

        The solid region is ``y >= setback(s)``; a ray enters building i iff its lateral position at the end of
        the building, ``yc + b * t(s1_i)``, is beyond the set-back. The first such building is hit on its front
        face at ``t = (setback - yc) / b`` or, if the ray was already deeper when the building starts, on the
        side face at ``t = (s0 - sc) / a``.
        """
        i0 = int(np.searchsorted(fac.s1, sc, side="right"))
        i1 = max(int(np.searchsorted(fac.s0, sc + VIEW_M)), i0 + 1)
        s0 = np.maximum(fac.s0[i0:i1], sc)
        s1, back, hgt = fac.s1[i0:i1], fac.setback[i0:i1], fac.height[i0:i1]
        pos = b > 1e-9
        bb = np.where(pos, b, 1.0)
        y_end = yc + ((s1[None, :] - sc) / a[:, None]) * bb[:, None]
        solid = (y_end >= back[None, :]) & pos[:, None]
        hit = solid.any(axis=1)
        first = np.argmax(solid, axis=1)
        t_front = (back[first] - yc) / bb
        t_side = (s0[first] - sc) / a
        t = np.where(hit, np.maximum(t_front, t_side), np.inf)
        side_face = t_side > t_front
        s_hit = np.where(side_face, s0[first] + 0.5 * TEXEL_M, sc + np.where(hit, t, 0.0) * a)
        return t, s_hit, side_face, np.where(hit, hgt[first], -np.inf)

    def _walls(self, cam: CameraPose, a: np.ndarray, b: np.ndarray, light: Lighting) -> tuple:
        """Nearest wall per column over both sides: depth, s of the hit, side, height, shading, mip level."""
        st = self.street
        tl, sl, fl, hl = self._cast_facade(st.left, cam.s, cam.y, a, b)
        tr, sr, fr, hr = self._cast_facade(st.right, cam.s, -cam.y, a, -b)
        left = tl <= tr
        t = np.where(left, tl, tr)
        s_hit = np.where(left, sl, sr)
        side_face = np.where(left, fl, fr)
        hgt = np.where(left, hl, hr)
        shade = np.where(left, light.shade_left, light.shade_right) * np.where(side_face, 0.7, 1.0)
        # Footprint of a pixel on the wall (m): along s from neighbouring columns, vertically t / f.
        finite = np.isfinite(t)
        s_fin = np.where(finite, s_hit, cam.s)
        ds = np.abs(np.gradient(s_fin)) if s_fin.size > 1 else np.zeros_like(s_fin)
        foot = np.maximum(np.minimum(ds, 50.0), np.where(finite, t, 0.0) / self.f)
        level = np.clip(np.floor(np.log(np.maximum(foot / TEXEL_M, 1e-6)) / np.log(MIP_FACTOR) + 0.5), 0,
                        MIP_LEVELS - 1).astype(np.int64)
        return t, s_fin, left, hgt, shade, level

    def _objects(self, cam: CameraPose, a: np.ndarray, b: np.ndarray, drive: int) -> list[tuple]:
        """Two nearest object hits per column, far first: (depth, z0, z1, albedo, texture, tex column, band)."""
        ob = self.street.objects
        sel = np.flatnonzero((ob.s + ob.rx > cam.s + 0.5) & (ob.s - ob.rx < cam.s + OBJECT_VIEW_M)
                             & ob.present[:, drive])
        if sel.size == 0:
            return []
        kind, os_, oy, rx, ry = ob.kind[sel], ob.s[sel], ob.y[sel], ob.rx[sel], ob.ry[sel]
        dx = (cam.s - os_)[None, :]
        dy = (cam.y - oy)[None, :]
        A, B = a[:, None], b[:, None]
        # Cylinders / canopies: |(dx, dy) + t (a, b)| = r  ->  quadratic in t.
        qa = A * A + B * B
        qb = 2 * (A * dx + B * dy)
        qc = dx * dx + dy * dy - (rx * rx)[None, :]
        disc = qb * qb - 4 * qa * qc
        t_cyl = np.where((disc >= 0) & (kind[None, :] != 2), (-qb - np.sqrt(np.maximum(disc, 0))) / (2 * qa), np.inf)
        # Distance of the ray from the canopy axis -> the ellipsoid's vertical half extent at that column.
        perp = np.abs(A * dy - B * dx) / np.sqrt(qa)
        ell = np.sqrt(np.clip(1 - (perp / rx[None, :]) ** 2, 0, 1))
        # Boxes: slab method in the ground plane (a > 0: the camera looks forward).
        ts0, ts1 = (os_ - rx - cam.s)[None, :] / A, (os_ + rx - cam.s)[None, :] / A
        Bs = np.where(np.abs(B) < 1e-9, 1e-9, B)
        ty0, ty1 = (oy - ry - cam.y)[None, :] / Bs, (oy + ry - cam.y)[None, :] / Bs
        ty_lo, ty_hi = np.minimum(ty0, ty1), np.maximum(ty0, ty1)
        t_in, t_out = np.maximum(ts0, ty_lo), np.minimum(ts1, ty_hi)
        t_box = np.where((t_in <= t_out) & (kind[None, :] == 2), t_in, np.inf)
        end_face = ts0 >= ty_lo  # entered through the face perpendicular to the route
        t_all = np.minimum(t_cyl, t_box)
        t_all = np.where(t_all > 0.3, t_all, np.inf)  # objects at the lens are clipped
        layers = []
        cols = np.arange(a.size)
        for _ in range(2):
            j = np.argmin(t_all, axis=1)
            t = t_all[cols, j]
            c = np.flatnonzero(np.isfinite(t))
            if c.size == 0:
                break
            t_all[cols, j] = np.inf
            t, j = t[c], j[c]
            k = kind[j]
            z0, z1 = ob.z0[sel][j], ob.z1[sel][j]
            mid, half = (z0 + z1) / 2, (z1 - z0) / 2 * np.where(k == 1, ell[c, j], 1.0)
            z0, z1 = np.where(k == 1, mid - half, z0), np.where(k == 1, mid + half, z1)
            # Lambert-like shading: boxes' end faces darker than side faces, cylinders by the hit angle.
            hit_s, hit_y = cam.s + t * a[c] - os_[j], cam.y + t * b[c] - oy[j]
            ang = np.arctan2(hit_y, hit_s)
            shade = np.where(k == 2, np.where(end_face[c, j], 0.75, 1.0), 0.75 + 0.25 * np.cos(ang))
            tex_u = np.where(k == 2, (hit_y + hit_s) * 8.0, ang * rx[j] * 8.0)
            layers.append((c, t, z0, z1, ob.albedo[sel][j] * shade, ob.texture[sel][j], tex_u, ob.b0[sel][j],
                           ob.b1[sel][j]))
        return layers[::-1]

    def _shadow_map(self, light: Lighting) -> np.ndarray:
        """Ground shading under a low sun from the right (cached per lighting); see :func:`sun_shadow_map`."""
        key = (light.sun_shadow, light.shadow_reach, light.drive)
        if key not in self._shadow_maps:
            self._shadow_maps[key] = sun_shadow_map(self.street, light.sun_shadow, light.shadow_reach, light.drive)
        return self._shadow_maps[key]

    # ------------------------------------------------------------------------------------- layers
    def _paint_walls(self, img: np.ndarray, cam: CameraPose, t_w: np.ndarray, s_w: np.ndarray, left: np.ndarray,
                     shade: np.ndarray, level: np.ndarray, v32: np.ndarray, haze: float) -> None:
        """Façade albedo for every pixel (sky and ground are painted over later), shaded and fogged."""
        t_fin = np.where(np.isfinite(t_w), t_w, 1e6).astype(np.float32)
        fog = np.exp(-t_fin / FOG_M)
        gain = (shade * fog).astype(np.float32)
        offset = (haze * (1.0 - fog)).astype(np.float32)
        for lv in np.unique(level):
            c = np.flatnonzero(level == lv)
            atlas, inv = self._facade_mips[lv], np.float32(1.0 / self.texel[lv])
            n_left = self._right_offset[lv]
            si = ((s_w[c] - self.street.s_start) / self.texel[lv]).astype(np.int64)
            si = np.where(left[c], np.clip(si, 0, n_left - 1), n_left + np.clip(si, 0, atlas.shape[0] - n_left - 1))
            zi = ((cam.height - t_fin[c, None] * v32[None, :]) * inv).astype(np.int32)
            np.clip(zi, 0, atlas.shape[1] - 1, out=zi)
            img[c] = atlas[si[:, None], zi] * gain[c, None] + offset[c, None]

    def _paint_ground(self, img: np.ndarray, cam: CameraPose, a: np.ndarray, b: np.ndarray, t_w: np.ndarray,
                      v_eff: np.ndarray, light: Lighting, haze: float) -> None:
        """Ground rows (below the horizon) where the ground is nearer than the wall of the column."""
        st = self.street
        r0 = int(np.searchsorted(v_eff, 1e-4))
        if r0 >= self.h:
            return
        t = np.minimum(cam.height / v_eff[r0:], VIEW_M)  # forward depth of the ground along each row
        # Mip level per row from the geometric mean of the along-route and lateral footprints.
        foot = np.sqrt((t * t / (cam.height * self.f)) * (t / self.f)) / TEXEL_M
        level = np.clip(np.floor(np.log(np.maximum(foot, 1e-6)) / np.log(MIP_FACTOR) + 0.5), 0, MIP_LEVELS - 1)
        fog = np.exp(-t / FOG_M)
        # Levels are monotonic in the row, so each level is a contiguous block of rows.
        bounds = np.flatnonzero(np.diff(level)) + 1
        for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, t.size]):
            lv = int(level[lo])
            atlas, tx = st.ground[lv], self.texel[lv]
            tt = t[lo:hi].astype(np.float32)
            si = ((cam.s - st.s_start) / tx + tt[None, :] * (a / tx).astype(np.float32)[:, None]).astype(np.int32)
            yf = (cam.y + GROUND_HALF_M) / tx + tt[None, :] * (b / tx).astype(np.float32)[:, None]
            np.clip(si, 0, atlas.shape[0] - 1, out=si)
            yi = np.clip(yf.astype(np.int32), 0, atlas.shape[1] - 1)
            val = atlas[si, yi]
            if light.sun_shadow > 0:
                shadow = self._shadow_map(light)
                # Shadow-map cell of each texel: the map's 0.1 m cells are an integer ratio of the texels.
                if tx < SHADOW_CELL_M:
                    ms, my = si // int(SHADOW_CELL_M / tx), yi // int(SHADOW_CELL_M / tx)
                else:
                    ms, my = si * int(tx / SHADOW_CELL_M), yi * int(tx / SHADOW_CELL_M)
                val *= shadow[np.minimum(ms, shadow.shape[0] - 1), np.minimum(my, shadow.shape[1] - 1)]
            f = fog[lo:hi].astype(np.float32)[None, :]
            val = val * f + np.float32(haze) * (1.0 - f)
            rows = slice(r0 + lo, r0 + hi)
            mask = tt[None, :] < t_w[:, None]
            img[:, rows] = np.where(mask, val, img[:, rows])

    def _paint_objects(self, img: np.ndarray, cam: CameraPose, a: np.ndarray, b: np.ndarray, t_w: np.ndarray,
                       v32: np.ndarray, light: Lighting, haze: float) -> None:
        """Poles, trees and cars: far layer first, so the nearer layer paints over it."""
        noise = self.street.noise
        for c, t_o, z0, z1, alb, amp, tex_u, b0, b1 in self._objects(cam, a, b, light.drive):
            front = t_o < t_w[c]  # objects stand in front of the façades; the ground never hides them
            c, t_o, z0, z1, alb, amp, tex_u, b0, b1 = (x[front] for x in (c, t_o, z0, z1, alb, amp, tex_u, b0, b1))
            if c.size == 0:
                continue
            # Only rows that can see some object of this layer: z in [z0, z1] <=> v in [(h-z1)/t, (h-z0)/t].
            r0 = int(np.searchsorted(v32, np.min((cam.height - z1) / t_o)))
            r1 = int(np.searchsorted(v32, np.max((cam.height - z0) / t_o), side="right"))
            if r1 <= r0:
                continue
            rows = slice(r0, r1)
            zc = cam.height - t_o.astype(np.float32)[:, None] * v32[None, rows]
            inside = (zc >= z0[:, None]) & (zc <= z1[:, None])
            ui = (tex_u.astype(np.int64) % 64)[:, None]
            val = noise[ui, (zc * 8.0).astype(np.int64) % 64]
            fog = np.exp(-t_o / FOG_M)
            val = (alb * fog)[:, None] * (1.0 + amp[:, None] * val)
            val = np.where((zc > b0[:, None]) & (zc < b1[:, None]), val * 0.3, val)  # car windows
            val += (haze * (1.0 - fog))[:, None]
            img[c, rows] = np.where(inside, val, img[c, rows])

    def render(self, cam: CameraPose, light: Lighting) -> np.ndarray:
        """Linear intensity image (height, width) float32 of the street seen from ``cam`` under ``light``."""
        cy, sy = math.cos(cam.yaw), math.sin(cam.yaw)
        # Horizontal ray per column, parametrised by forward depth t: d(s)/dt = a, d(y)/dt = b.
        a = cy + self.u * sy
        b = sy - self.u * cy
        tp = math.tan(cam.pitch)
        v_eff = (self.v + tp) / (1.0 - self.v * tp)  # downward slope of each row per unit forward depth
        v32 = v_eff.astype(np.float32)
        haze = light.sky * 0.95

        t_w, s_w, left, hgt, shade, level = self._walls(cam, a, b, light)
        img = np.empty((self.w, self.h), dtype=np.float32)
        self._paint_walls(img, cam, t_w, s_w, left, shade, level, v32, haze)
        # Sky above each column's building (only rows above the horizon can be sky).
        r_h = int(np.searchsorted(v_eff, 0.0))
        if r_h > 0:
            z_top = cam.height - np.where(np.isfinite(t_w), t_w, 1e6)[:, None] * v_eff[None, :r_h]
            sky_row = (light.sky * (1.0 - 0.25 * np.clip(-v_eff[:r_h], 0, 1))).astype(np.float32)
            img[:, :r_h] = np.where(z_top > hgt[:, None], sky_row[None, :], img[:, :r_h])
        self._paint_ground(img, cam, a, b, t_w, v_eff, light, haze)
        self._paint_objects(img, cam, a, b, t_w, v32, light, haze)
        if light.gamma != 1.0:
            np.power(np.maximum(img, 1e-3, out=img), np.float32(light.gamma), out=img)
        img *= np.float32(light.gain)
        return np.ascontiguousarray(img.T)


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
    rng = np.random.default_rng(_seed(params.seed, 10, index))
    n = int(np.floor(params.route_length_m / params.frame_spacing_m)) + 1
    s = np.arange(n) * params.frame_spacing_m
    v = spec.speed_mps * (1.0 + spec.speed_variation * _smooth_signal(rng, s, (60.0, 250.0)))
    dt = np.diff(s) * 0.5 * (1.0 / v[1:] + 1.0 / v[:-1])
    t = np.concatenate([[0.0], np.cumsum(dt)])
    y = spec.lane_y_m + spec.wander_m * _smooth_signal(rng, s, (40.0, 150.0))
    if spec.lane_drift_m > 0:  # own stream: drives without drift keep their paths
        drift = np.random.default_rng(_seed(params.seed, 40, index))
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
    rng = np.random.default_rng(_seed(params.seed, 50, index))
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
    sim_seed = int(_seed(params.seed, 20, index).generate_state(1)[0])
    sim = EventSimulator(params.height, params.width, spec.contrast_threshold, spec.threshold_sigma,
                         spec.refractory_s, spec.noise_rate_hz, seed=sim_seed)

    def frame(k: int) -> np.ndarray:
        return renderer.render(CameraPose(s[k], y[k], params.camera_height_m, yaw[k], pitch[k]), lights[k])

    sim.reset(frame(0), t[0])
    chunks = [sim.step(frame(k), t[k]) for k in range(1, s.size)]
    events = np.concatenate(chunks) if chunks else np.empty((0, 4))
    return events, t, _poses(s, y, params.camera_height_m, yaw, pitch)


# ============================================================================================ on disk
def _paths(root: Path, n_drives: int) -> dict[str, tuple[Path, Path]]:
    return {d: (root / f"{d}_data.hdf5", root / f"{d}_gt.hdf5") for d in map(drive_name, range(n_drives))}


def _is_complete(root: Path, stamp: str, n_drives: int) -> bool:
    stamp_path = root / STAMP_NAME
    if not stamp_path.is_file():
        return False
    try:
        stored = json.loads(stamp_path.read_text()).get("params")
    except (OSError, ValueError):
        return False
    return stored == json.loads(stamp) and all(
        p.is_file() for pair in _paths(root, n_drives).values() for p in pair)


def _publish(tmp: Path, out_dir: Path, stamp: str, n_drives: int) -> None:
    """Move the finished ``tmp`` into place; a stale ``out_dir`` is moved aside first (never a mixture)."""
    if out_dir.exists():
        graveyard = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        os.rename(out_dir, graveyard / "old")
        shutil.rmtree(graveyard, ignore_errors=True)
    try:
        os.rename(tmp, out_dir)
    except OSError:
        if not _is_complete(out_dir, stamp, n_drives):  # a concurrent run published the same generation first
            raise


_STREETS: dict[tuple[int, float], Street] = {}
PARALLEL_MIN_WORK = 2e7  # rendered pixels per drive (frames x height x width) above which drives run in parallel


def _generate_one(params: EventDriveParams, index: int, folder: Path) -> tuple[str, dict, float]:
    """Simulate drive ``index`` and write its MVSEC files into ``folder``; returns (name, stats, seconds)."""
    t0 = time.perf_counter()
    key = (params.seed, params.route_length_m)
    if key not in _STREETS:  # one street per process (deterministic, so every process builds the same one)
        _STREETS.clear()
        _STREETS[key] = build_street(params.seed, params.route_length_m)
    events, pose_ts, poses = simulate_drive(_STREETS[key], params, index)
    name = drive_name(index)
    data_path, gt_path = _paths(folder, len(params.drives))[name]
    write_mvsec_sequence(data_path, gt_path, events, pose_ts, poses)
    stats = {"events": int(events.shape[0]), "duration_s": float(pose_ts[-1] - pose_ts[0]),
             "route_m": float(params.route_length_m)}
    return name, stats, time.perf_counter() - t0


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
    """Generate (or find) the traversals in MVSEC layout; returns ``{"drive1": (data, gt), "drive2": ...}``.

    ``drives``: drive1 and drive2, then optional extra training recordings (:func:`random_drive_spec`). Each
    drive's path and sensor noise come from streams of its own index, so drive1 and drive2 are the same
    whether or not extra drives are generated. Drives are simulated in up to ``max_workers`` processes (default:
    one per CPU core for drives of more than :data:`PARALLEL_MIN_WORK` rendered pixels, else one); the files do
    not depend on it.

    Files: ``out_dir/drive{1,2[,3]}_data.hdf5`` and ``…_gt.hdf5`` plus ``event_drive.json``, a stamp of
    every parameter. If ``out_dir`` already holds a complete generation with the same stamp, nothing is done.
    Otherwise everything is written into a temporary sibling directory and renamed into place, so an
    interrupted run never leaves a half-written set (and a stale one is replaced as a whole).
    """
    params = EventDriveParams(seed=int(seed), route_length_m=float(route_length_m), height=int(height),
                              width=int(width), focal_px=None if focal_px is None else float(focal_px),
                              frame_spacing_m=float(frame_spacing_m), camera_height_m=float(camera_height_m),
                              drives=tuple(drives))
    params.validate()
    out_dir = Path(out_dir)
    stamp = params.to_json()
    n = len(params.drives)
    if _is_complete(out_dir, stamp, n):
        log.info("event drive in %s is complete; reusing it", out_dir)
        return _paths(out_dir, n)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        os.chmod(tmp, 0o755)
        if max_workers is None:  # a worker process costs seconds to start (imports): only for real-size drives
            frames = params.route_length_m / params.frame_spacing_m
            max_workers = (os.cpu_count() or 1) if frames * params.height * params.width > PARALLEL_MIN_WORK else 1
        workers = max(1, min(n, max_workers))
        jobs = [(params, index, tmp) for index in range(n)]
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
        (tmp / STAMP_NAME).write_text(json.dumps({"params": json.loads(stamp), "stats": stats}, indent=1))
        _publish(tmp, out_dir, stamp, n)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return _paths(out_dir, n)
