"""A deterministic simulated "event drive": traversals of one procedurally built street, in MVSEC layout.

Stand-in for MVSEC ``outdoor_day2`` (train, ``drive1``) and ``outdoor_day1`` (test, ``drive2``) as used by
event-based place recognition (Kong et al., "Event-VPR: End-to-End Weakly Supervised Deep Network Architecture
for Visual Place Recognition Using Event-Based Vision Sensor", IEEE TIM 2022; Lee & Kim, "EventVLAD", IROS 2021):
a car drives the same street twice, under different lighting, lane, speed, camera mounting and sensor noise, and
the task is to retrieve, for each event window of ``drive2``, windows of ``drive1`` recorded within 25 m.

This module gathers the public names of the pipeline (all NumPy, deterministic from ``seed``):

1. **Street** (:mod:`~torchrepro.place_recognition.street`, :func:`build_street`): façades, ground, objects.
2. **Rendering** (:mod:`~torchrepro.place_recognition.render`, :meth:`Renderer.render`): a column-wise ray
   caster giving grayscale linear intensity from a forward-facing pinhole camera (DAVIS346 by default).
3. **Drives** (:mod:`~torchrepro.place_recognition.drive`): trajectories, lighting along the route, events by
   the contrast-threshold simulator (:func:`simulate_drive`) and the MVSEC files (:func:`generate_event_drive`).

The two traversals differ in lighting (overcast vs. low sun: global gain, gamma 1.0 vs 0.8, sky brightness,
façade shading, shadows of buildings, trees and poles on the ground), lane (1.3 m apart) and lateral wander,
speed profile (8 vs. 11 m/s, +-20-25 % smooth variation), yaw/pitch jitter and camera mounting (drive2 is
re-mounted 1.5 deg to the right and 2 deg down), parked cars, contrast thresholds (0.45 vs 0.4), threshold
mismatch (sigma 0.03 vs 0.06) and background noise (0.05 vs 0.2 Hz per pixel).

Extra *training* traversals (drive3, drive4, …; :func:`random_drive_spec`) draw every one of these factors at
random from broad ranges fixed a priori; ``data.train_protocol: cross`` uses their windows as anchors against
drive1 (domain randomisation + NetVLAD's Time Machine supervision). drive2 stays the held-out traversal.
The validation traversals ``drive_val``, ``drive_val2``, … (:func:`validation_drive_spec`) draw their conditions from
the same ranges but streams of their own (optionally the draw least like drive1 of several): they are evaluated
every epoch and choose the checkpoint; drive2 is scored once.
Drives are simulated in parallel processes; each one's randomness comes from streams of its own index.

Measured at the defaults (seed 0, 600 m, one core): street 1.3 s, drive1 12.9 s, drive2 13.7 s, 28 s in all;
drive1 7.56 M events (12.6 k/m, 75 s simulated), drive2 6.41 M events (10.7 k/m, 55 s simulated), i.e. one
15,000-event window per 1.2-1.4 m. Every ~25 m of street differs at a coarse scale (building widths, heights,
brightness, window grids, trees), so a learned descriptor can localise; a raw event-count image (65 x 87,
L2-normalised, cosine) reaches only recall@1 = 0.26 (recall@5 0.53; chance 0.09) from drive2 to drive1.
"""

from __future__ import annotations

from torchrepro.place_recognition.drive import (
    DRIVE1,
    DRIVE2,
    GENERATOR_VERSION,
    MAX_CANDIDATES,
    MAX_DRIVES,
    RANDOM_LIGHT,
    STAMP_NAME,
    TRAINING_CANDIDATE_STREAM,
    VALIDATION_STREAM,
    DriveSpec,
    distance_from_map,
    least_like_map,
    training_drive_spec,
    EventDriveParams,
    drive_name,
    drive_trajectory,
    generate_event_drive,
    lighting_along,
    random_drive_spec,
    simulate_drive,
    validation_drive_name,
    validation_drive_spec,
    validation_drive_specs,
)
from torchrepro.place_recognition.render import CameraPose, Lighting, Renderer
from torchrepro.place_recognition.street import ROAD_HALF_M, Facade, Objects, Street, build_street, sun_shadow_map

__all__ = [
    "DRIVE1",
    "DRIVE2",
    "GENERATOR_VERSION",
    "MAX_CANDIDATES",
    "MAX_DRIVES",
    "RANDOM_LIGHT",
    "ROAD_HALF_M",
    "STAMP_NAME",
    "TRAINING_CANDIDATE_STREAM",
    "VALIDATION_STREAM",
    "CameraPose",
    "DriveSpec",
    "EventDriveParams",
    "Facade",
    "Lighting",
    "Objects",
    "Renderer",
    "Street",
    "build_street",
    "distance_from_map",
    "least_like_map",
    "training_drive_spec",
    "drive_name",
    "drive_trajectory",
    "generate_event_drive",
    "lighting_along",
    "random_drive_spec",
    "simulate_drive",
    "sun_shadow_map",
    "validation_drive_name",
    "validation_drive_spec",
    "validation_drive_specs",
]
