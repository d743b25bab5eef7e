"""What makes the simulated held-out drive hard: one nuisance factor at a time, for a non-learned or trained descriptor.

drive2 differs from drive1 in many ways at once (lane, camera mounting, light, sun shadows, sensor, speed,
parked cars). This study renders drive2's *path* (its random streams: wander, jitter, sensor noise) under
drive1's conditions, then switches one group of drive2's parameters on at a time, and scores each variant
against drive1 with the same non-learned descriptor: the window's 5-bin voxel grid (the recipe's cached
input, normalised, centre-cropped, 64×64) summed over time bins and compared by cosine, recall@1 at 25 m.
The baseline measured in the same run is the "none" row (drive1's conditions on drive2's path); each row's
ratio to it says how much that factor alone costs. "all" is drive2 itself.

``--checkpoint RUN/checkpoints/last.ckpt`` scores with a trained vpr_event network instead (its run's
``config.yaml`` gives the architecture; the inputs must be the 5-bin voxel grids at 64 px the default config
caches). ``--leave-one-out`` asks the complementary question, which matters when factors compound: start from
drive2 ("none" is drive2 itself) and set one group back to drive1's values at a time ("all" = drive1's
conditions); a row's gain over "none" is what that factor costs in drive2's combination.

    .venv/bin/python benchmarks/vpr_sim_factors.py [--route 600] [--groups lane,mount] [--leave-one-out] \
        [--checkpoint runs/vpr/checkpoints/last.ckpt]

About 30-40 s per row on one core at 600 m (one simulated drive each).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

from torchrepro.events.mvsec import drop_sparse_windows, fixed_count_windows, interpolate_positions
from torchrepro.place_recognition.windows import InputSpec, window_input
from torchrepro.place_recognition.synthetic import (
    DRIVE1,
    DRIVE2,
    DriveSpec,
    EventDriveParams,
    build_street,
    simulate_drive,
)
from torchrepro.retrieval.recall import recall_at_n

GROUPS: dict[str, list[str]] = {
    "none": [],
    "lane": ["lane_y_m", "wander_m"],
    "mount": ["yaw_offset_deg", "pitch_offset_deg", "yaw_jitter_deg", "pitch_jitter_deg"],
    "light": ["gain", "gamma", "sky", "shade_left", "shade_right"],
    "shadows": ["sun_shadow", "shadow_reach"],
    "sensor": ["contrast_threshold", "threshold_sigma", "noise_rate_hz"],
    "speed": ["speed_mps", "speed_variation"],
    "parked": ["parked_variant"],
    "all": [f.name for f in dataclasses.fields(DriveSpec) if f.name != "name"],
}
EVENTS_PER_WINDOW = 15_000
SPEC = InputSpec("voxel", 5, 260, 346, 64, True)


def windows_of(street, params: EventDriveParams, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Simulate drive ``index`` of ``params``; return (cached-style inputs [n, 5, 64, 64], positions [n, 2])."""
    events, pose_ts, poses = simulate_drive(street, params, index)
    windows, _ = drop_sparse_windows(fixed_count_windows(len(events), EVENTS_PER_WINDOW), EVENTS_PER_WINDOW)
    stamps = np.array([events[stop - 1, 0] for _, stop in windows])
    positions = interpolate_positions(pose_ts, poses[:, 0:2, 3], stamps)
    return np.stack([window_input(events[a:b], SPEC, "window").numpy() for a, b in windows]), positions


def time_summed(inputs: np.ndarray) -> np.ndarray:
    """The non-learned descriptor: voxel grid summed over time bins, flattened, L2-normalised."""
    flat = inputs.sum(axis=1).reshape(len(inputs), -1).astype(np.float32)
    return flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-12)


def trained_descriptor(checkpoint: Path):
    """``inputs → descriptors`` of the PlaceNet saved in a vpr_event run's checkpoint (eval mode, float32)."""
    import torch
    import yaml

    from torchrepro.place_recognition.model import PlaceNet

    model = yaml.safe_load((checkpoint.parent.parent / "config.yaml").read_text())["model"]
    net = PlaceNet(SPEC.channels, model["arch"], model["num_clusters"], last_stride=model.get("last_stride", 2),
                   trunk_layers=model.get("trunk_layers", 4))
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    net.load_state_dict({k[len("net."):]: v for k, v in state.items() if k.startswith("net.")})
    net.eval()

    def describe(inputs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.cat([net(torch.from_numpy(inputs[i : i + 64]).float())
                              for i in range(0, len(inputs), 64)]).numpy()

    return describe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--route", type=float, default=600.0, help="route length in metres (default 600)")
    parser.add_argument("--groups", default=",".join(GROUPS), help="comma-separated subset of " + ",".join(GROUPS))
    parser.add_argument("--checkpoint", type=Path, help="score with this vpr_event checkpoint's network")
    parser.add_argument("--leave-one-out", action="store_true",
                        help="start from drive2 and set one group back to drive1's values at a time")
    args = parser.parse_args()
    groups = args.groups.split(",")
    unknown = set(groups) - set(GROUPS)
    if unknown:
        parser.error(f"unknown group(s) {sorted(unknown)}")
    if args.checkpoint is not None and not args.checkpoint.is_file():
        parser.error(f"checkpoint {args.checkpoint} does not exist")
    describe = trained_descriptor(args.checkpoint) if args.checkpoint else time_summed
    base, other = (DRIVE2, DRIVE1) if args.leave_one_out else (DRIVE1, DRIVE2)
    street = build_street(0, args.route)
    inputs, db_pos = windows_of(street, EventDriveParams(route_length_m=args.route), 0)
    database = describe(inputs)
    print(f"drive1: {len(database)} windows of {EVENTS_PER_WINDOW} events ({args.route:g} m); descriptor: "
          f"{args.checkpoint or 'time-summed voxel grid'}")
    title = "factor set back to drive1" if args.leave_one_out else "factor switched to drive2"
    print(f"{title:<26} {'windows':>7} {'recall@1':>9} {'ratio':>6}  seconds")
    reference = None
    for group in groups:
        start = time.perf_counter()
        variant = dataclasses.replace(base, **{f: getattr(other, f) for f in GROUPS[group]})
        params = EventDriveParams(route_length_m=args.route, drives=(DRIVE1, variant))
        inputs, q_pos = windows_of(street, params, 1)  # index 1: drive2's random streams
        metrics, _ = recall_at_n(describe(inputs), database, q_pos, db_pos, (1,), 25.0)
        r1 = metrics["recall@1"]
        reference = r1 if group == "none" else reference
        ratio = f"{r1 / reference:6.2f}" if reference else "     -"
        print(f"{group:<26} {len(inputs):>7} {r1:>9.3f} {ratio}  {time.perf_counter() - start:5.0f}", flush=True)


if __name__ == "__main__":
    main()
