"""The NeRF recipe's checks of the contract's tiny run (tests/test_contract.py): what the run printed and wrote,
and ``tool nerf-render`` on its checkpoint. Run there so this folder needs no tiny training run of its own."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from torchrepro.cli import main
from torchrepro.nerf.cameras import look_at


def check_nerf_run(config: Path, overrides: list[str], cwd: Path, run: Path, stdout: str,
                   stderr: str = "") -> None:
    untrained = next(line for line in stdout.splitlines() if line.startswith("untrained model:"))
    for key in ("psnr=", "ssim=", "baseline_mean_psnr=", "depth_mae="):
        assert key in untrained, untrained
    last = json.loads((run / "metrics.json").read_text())["last"]
    assert last["test/psnr"] > 0 and 0 <= last["test/ssim"] <= 1 and last["test/depth_mae"] >= 0, last
    for picture in ("views.png", "curves.png"):
        assert (run / picture).is_file(), picture
    assert [p.name for p in (run / "views").iterdir()] and all(p.suffix == ".png" for p in (run / "views").iterdir())

    # nerf-render: an orbit of three frames from the run's checkpoint, then the user's own poses
    out = cwd / "render"
    assert main(["tool", "nerf-render", "--ckpt", str(run / "checkpoints" / "best.ckpt"), "--frames", "3",
                 "--out", str(out)]) == 0
    frames = sorted(out.glob("frame_*.png"))
    assert len(frames) == 3 and (out / "orbit.gif").is_file()
    with Image.open(frames[0]) as frame:
        assert frame.width == 2 * frame.height  # the render and its depth side by side

    np.save(cwd / "poses.npy", np.stack([look_at((4.0, 0.0, 1.0)), look_at((0.0, 4.0, 2.0))]).astype(np.float32))
    assert main(["tool", "nerf-render", "--ckpt", str(run / "checkpoints" / "best.ckpt"), "--poses",
                 str(cwd / "poses.npy"), "--out", str(cwd / "posed")]) == 0
    assert len(list((cwd / "posed").glob("frame_*.png"))) == 2
    np.save(cwd / "bad.npy", np.eye(3, dtype=np.float32)[None])
    assert main(["tool", "nerf-render", "--ckpt", str(run / "checkpoints" / "best.ckpt"), "--poses",
                 str(cwd / "bad.npy"), "--out", str(cwd / "bad")]) == 2  # not 4x4: one line, exit 2
