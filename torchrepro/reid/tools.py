"""Re-ID tools: SAN-PG pseudo textures for a data set, and the SAN ablation (Jin et al., AAAI 2020, §3, §4).

``torchrepro tool reid-textures --run RUN_DIR --root DATA_ROOT``: a SAN-PG (or SAN) run's encoder + decoder
predict a texture for every image of a Market-1501-layout folder (``bounding_box_train``, ``query``,
``bounding_box_test``) or a CUHK03 ``images_labeled``/``images_detected`` folder, written where the loader looks
(:func:`~torchrepro.reid.datasets.texture_path`). Existing textures are never overwritten (``--overwrite``).

``torchrepro tool reid-ablation CONFIG [--out DIR] [key=value …]``: trains, from the same config and seed,
(1) the baseline (ID + triplet), (2) + reconstruction, (3) + reconstruction + triplet ReID constraints,
(4) SAN-PG pre-training (reconstruction only) and then (5) SAN initialised from it, and (6) the control for (5):
the baseline trained as long as (4) + (5) together, its epoch-counted schedule stretched to match. Each row's
checkpoint is chosen on the validation split (held-out training identities); ``ablation.md`` and
``ablation.json`` in ``DIR`` give the validation figures of that checkpoint and the test figures it scored once.
The seed author lost track of which losses each run used; the table records the exact overrides beside every
number.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from PIL import Image

from torchrepro.core.config import Config
from torchrepro.core.errors import ConfigError, DataError
from torchrepro.core.rundir import chosen_validation
from torchrepro.core.study import parse_study_args

__all__ = ["ABLATION", "ablation_main", "stretched_schedule", "textures_main"]

IMAGE_FOLDERS = ("bounding_box_train", "query", "bounding_box_test", "images_labeled", "images_detected")

#: (row name, overrides) of the ablation, in order; "{san_pg}" is replaced by the SAN-PG run's last checkpoint.
ABLATION: list[tuple[str, list[str]]] = [
    ("baseline (ID + triplet)", ["model.method=bot"]),
    ("+ reconstruction", ["model.method=san", "model.constraint_weight=0"]),
    ("+ reconstruction + constraints (SAN)", ["model.method=san"]),
    ("SAN-PG pre-training (reconstruction only)", ["model.method=san_pg"]),
    ("SAN initialised from SAN-PG", ["model.method=san", "model.init_from={san_pg}"]),
]
#: the row whose training includes another row's (its pre-training): its epochs count both
PRETRAINED_ROW = "SAN initialised from SAN-PG"
CONTROL_ROW = "baseline trained as long as SAN-PG + SAN"
METRICS = ("rank-1", "mAP", "mINP")


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")[:40]


def stretched_schedule(cfg: Config, factor: int) -> list[str]:
    """Overrides that train ``factor`` times as long with the same schedule shape: ``trainer.max_epochs`` (and
    ``max_steps`` when set) and the schedule's lengths (milestones, step size, ``t_max``) multiplied; the warm-up
    is kept (it is about the start of optimisation, not the run's length).

    The control of the SAN-PG-initialised row: BoT's multi-step schedule is defined relative to the run's length
    (Luo et al. 2019: ×0.1 at epochs 40 and 70 of 120), so doubling the epochs without moving the milestones would
    spend the extra epochs at 1/100 of the learning rate and handicap the control."""
    t, sched = cfg.trainer, cfg.sched
    over = [f"trainer.max_epochs={t.max_epochs * factor}"]
    if t.max_steps > 0:
        over.append(f"trainer.max_steps={t.max_steps * factor}")
    if sched.name == "multistep":
        over.append(f"sched.milestones=[{','.join(str(m * factor) for m in sched.milestones)}]")
    elif sched.name == "step":
        over.append(f"sched.step_size={sched.step_size * factor}")
    elif sched.name == "cosine" and sched.t_max is not None:
        over.append(f"sched.t_max={sched.t_max * factor}")
    return over


def _row(name: str, overrides: list[str], epochs: str, run_dir: Path, metrics: dict[str, float],
         val: dict[str, float]) -> dict:
    return {"run": name, "epochs": epochs, "overrides": overrides, "run_dir": str(run_dir),
            **{f"val/{k}": val.get(k) for k in METRICS}, **{f"test/{k}": metrics.get(f"test/{k}") for k in METRICS}}


def ablation_main(argv: list[str]) -> int:
    from torchrepro.core import engine
    from torchrepro.core.registry import get_recipe, resolve_config

    args = parse_study_args(argv, "torchrepro tool reid-ablation", __doc__.splitlines()[0], Path("runs/reid_ablation"))
    cfg = resolve_config(args.config, args.overrides)  # checked before the first row trains
    monitor, mode = get_recipe(cfg.recipe).best_metric(cfg)
    epochs = cfg.trainer.max_epochs
    plan = [*ABLATION, (CONTROL_ROW, ["model.method=bot", *stretched_schedule(cfg, 2)])]
    rows = []
    san_pg_ckpt = None
    for name, overrides in plan:
        over = [o.replace("{san_pg}", str(san_pg_ckpt)) for o in overrides]
        run_dir, metrics = engine.train(args.config, [*args.overrides, *over, f"run.dir={args.out / _slug(name)}"])
        if "model.method=san_pg" in overrides:
            san_pg_ckpt = run_dir / "checkpoints" / "last.ckpt"
        trained = {PRETRAINED_ROW: f"{epochs} + {epochs}", CONTROL_ROW: f"{2 * epochs}"}.get(name, f"{epochs}")
        rows.append(_row(name, over, trained, run_dir, metrics, chosen_validation(run_dir, monitor, mode)))
    write_table(rows, args.out)
    print((args.out / "ablation.md").read_text())
    return 0


def write_table(rows: list[dict], out: Path) -> None:
    """``ablation.md`` (validation figures of each row's chosen checkpoint, then the test figures it scored once)
    and ``ablation.json``."""
    keys = [*(f"val/{k}" for k in METRICS[:2]), *(f"test/{k}" for k in METRICS)]
    lines = ["| run | epochs | val rank-1 | val mAP | test rank-1 | test mAP | test mINP | overrides |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        nums = " | ".join(f"{r[k]:.3f}" if r[k] is not None else "–" for k in keys)
        lines.append(f"| {r['run']} | {r['epochs']} | {nums} | `{' '.join(r['overrides'])}` |")
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation.md").write_text("\n".join(lines) + "\n")
    (out / "ablation.json").write_text(json.dumps(rows, indent=2) + "\n")


@torch.no_grad()
def textures_main(argv: list[str]) -> int:
    from torchrepro.core.checkpoint_io import load_checkpoint
    from torchrepro.core.registry import resolve_config
    from torchrepro.reid.data import build_transforms
    from torchrepro.reid.plots import texture_to_uint8
    from torchrepro.reid.datasets import texture_path
    from torchrepro.reid.task import ReidTask

    parser = argparse.ArgumentParser(prog="torchrepro tool reid-textures", description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a SAN-PG run directory (config.yaml + checkpoints/)")
    parser.add_argument("--ckpt", type=Path, default=None, help="default: RUN/checkpoints/last.ckpt")
    parser.add_argument("--root", type=Path, required=True, help="data set folder to write ROOT/texture/… into")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    cfg = resolve_config(args.run / "config.yaml", [])
    if cfg.model.method not in ("san_pg", "san"):
        raise ConfigError(f"{args.run} was trained with model.method={cfg.model.method}; a texture decoder needs a "
                          f"san_pg (or san) run")
    ckpt = args.ckpt or args.run / "checkpoints" / "last.ckpt"
    state = load_checkpoint(ckpt)["state_dict"]
    classes = int(state["encoder.neck.classifier.weight"].shape[0])
    task = ReidTask(cfg, classes)
    task.load_state_dict(state)
    task.eval()
    images = [p for folder in IMAGE_FOLDERS for p in sorted((args.root / folder).glob("*.[jp][pn]g"))]
    if not images:
        raise DataError(f"no images under {args.root}/{{{','.join(IMAGE_FOLDERS)}}}; point --root at a data set folder")
    targets = [texture_path(args.root, p) for p in images]
    if not args.overwrite and (clash := next((t for t in targets if t.exists()), None)):
        raise DataError(f"texture {clash} already exists; pass --overwrite to replace the data set's textures")
    tf = build_transforms(cfg.data.height, cfg.data.width, train=False)
    for start in range(0, len(images), args.batch_size):
        batch = torch.stack([tf(Image.open(p).convert("RGB")) for p in images[start:start + args.batch_size]])
        enc = task.encoder(batch)
        textures, _ = task.decoder(enc["fmap"], enc["skips"])
        for tex, target in zip(textures, targets[start:start + args.batch_size]):
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(texture_to_uint8(tex)).save(target)
    print(f"wrote {len(images)} textures under {args.root / 'texture'}")
    return 0
