"""The engine: a Lightning Trainer built from the config, plus train / resume / evaluate entry points.

DDP runs under ``torchrun`` (single- or multi-node, env:// initialisation). The engine initialises the
process group itself when ``WORLD_SIZE > 1`` so that rank 0 can choose the run directory and broadcast it
before anything is written; Lightning then reuses that process group.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Iterator

import pytorch_lightning as pl
import torch
import torch.distributed as dist
import yaml
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger

from torchrepro.core.callbacks import (
    EpochLine,
    GracefulInterrupt,
    MetricsFileCallback,
    NonFiniteLossGuard,
    RNGStateCallback,
)
from torchrepro.core.checkpoint_io import AtomicCheckpointIO, load_checkpoint
from torchrepro.core.config import Config
from torchrepro.core.distributed import SyncBatchNormPlugin
from torchrepro.core.errors import CheckpointError, ConfigError, UserError
from torchrepro.core.registry import Recipe, get_recipe, resolve_config
from torchrepro.core.rundir import (
    CKPT_DIR,
    CONFIG_NAME,
    METRICS_NAME,
    choose_eval_dir,
    choose_run_dir,
    create_run_dir,
    write_json_atomic,
    write_text_atomic,
)
from torchrepro.core.seeding import rank_seed

log = logging.getLogger("torchrepro")


# ------------------------------------------------------------------------------------------ distributed
def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "LOCAL_RANK" in os.environ


def init_distributed(cfg: Config) -> None:
    """Initialise the default process group from torchrun's environment (no-op otherwise)."""
    if not launched_by_torchrun() or (dist.is_available() and dist.is_initialized()):
        return
    backend = "nccl" if cfg.trainer.accelerator in ("gpu", "cuda") or (
        cfg.trainer.accelerator == "auto" and torch.cuda.is_available()
    ) else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group(backend=backend)


def global_rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


#: libraries whose INFO lines (accelerator banners, advertisements, "configured so 100% of the batches …",
#: faiss's CPU-feature probes) say nothing a user acts on; their warnings still show
QUIET_LIBRARIES = ("pytorch_lightning", "lightning_fabric", "lightning", "faiss")


def configure_rank_logging() -> None:
    """INFO on rank 0, WARNING elsewhere: warnings and errors from any rank still show."""
    level = logging.INFO if global_rank() == 0 else logging.WARNING
    logging.basicConfig(level=level, format="%(message)s")
    logging.getLogger("torchrepro").setLevel(level)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)


def agree_on_run_dir(cfg: Config, eval_of: Path | None = None, out: Path | None = None) -> Path:
    """Rank 0 picks and creates the run directory (writing config.yaml); all ranks receive its path.

    ``eval_of``: the checkpoint an evaluation scores; its directory (:func:`choose_eval_dir`) gets no
    ``checkpoints/`` folder."""
    path, error = None, None
    if global_rank() == 0:
        try:
            if eval_of is None:
                path = create_run_dir(cfg, choose_run_dir(cfg))
            else:
                path = create_run_dir(cfg, choose_eval_dir(cfg, eval_of, out), checkpoints=False)
        except ConfigError as err:
            error = str(err)
    if dist.is_available() and dist.is_initialized():
        box = [(str(path) if path else None, error)]
        dist.broadcast_object_list(box, src=0)
        (text, error) = box[0]
        path = Path(text) if text else None
    if error:
        raise ConfigError(error)
    assert path is not None
    return path


# ---------------------------------------------------------------------------------------------- trainer
def trainer_devices(cfg: Config) -> tuple[Any, int, str]:
    """(devices, num_nodes, strategy), taken from torchrun's environment when launched by it."""
    t = cfg.trainer
    if launched_by_torchrun():
        local = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"]))
        nodes = int(os.environ["WORLD_SIZE"]) // local
        return local, nodes, "ddp" if t.strategy == "auto" else t.strategy
    if t.strategy == "ddp" and t.devices not in (1, "1"):
        raise ConfigError(
            "trainer.strategy=ddp with several devices runs under torchrun: "
            "torchrun --nproc_per_node=N -m torchrepro.cli train CONFIG ..."
        )
    return t.devices, t.num_nodes, t.strategy


def build_callbacks(cfg: Config, recipe: Recipe, run_dir: Path) -> list[pl.Callback]:
    """Checkpointing (best by metric, last at every epoch end and every N steps), RNG state, NaN guard, metrics.

    The best-checkpoint callback comes before the ones writing ``last.ckpt``: at an epoch end it records the new
    best first, so the ``last.ckpt`` written after it carries the up-to-date best score for a resume."""
    c = cfg.checkpoint
    ckpt_dir = run_dir / CKPT_DIR
    callbacks: list[pl.Callback] = [RNGStateCallback(), NonFiniteLossGuard(ckpt_dir), MetricsFileCallback(run_dir),
                                    GracefulInterrupt(run_dir)]
    monitor, mode = recipe.best_metric(cfg)
    if monitor:
        callbacks.append(ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=monitor, mode=mode, save_top_k=1,
                                         save_last=False, enable_version_counter=False,
                                         save_weights_only=c.best_weights_only))
    # last.ckpt as a monitor-less top-1 checkpoint named "last": each save replaces the previous one. (Lightning's
    # own save_last only writes when a top-k checkpoint was written at the same step.)
    last = dict(dirpath=ckpt_dir, filename="last", monitor=None, save_top_k=1, save_last=False,
                enable_version_counter=False, save_weights_only=not c.save_optimizer)
    if c.every_n_steps > 0:
        callbacks.append(ModelCheckpoint(every_n_train_steps=c.every_n_steps, **last))
    callbacks.append(ModelCheckpoint(**last))
    return callbacks


def build_trainer(cfg: Config, recipe: Recipe, run_dir: Path, extra_callbacks: list[pl.Callback] | None = None,
                  logger: bool = True) -> pl.Trainer:
    """A Lightning Trainer configured from ``cfg.trainer``, logging to ``run_dir``."""
    t = cfg.trainer
    devices, num_nodes, strategy = trainer_devices(cfg)
    # A progress bar only on a terminal: in a log file its carriage-return updates pile up; there (and with the
    # bar switched off) one line per epoch says the same.
    progress_bar = t.progress_bar and sys.stdout.isatty()
    tb = TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version="") if logger else False
    return pl.Trainer(
        default_root_dir=str(run_dir),
        accelerator=t.accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        sync_batchnorm=t.sync_batchnorm,
        accumulate_grad_batches=t.accumulate_grad_batches,
        gradient_clip_val=t.gradient_clip_val,
        gradient_clip_algorithm=t.gradient_clip_algorithm,
        precision=t.precision,
        max_epochs=t.max_epochs,
        max_steps=t.max_steps,
        val_check_interval=t.val_check_interval,
        check_val_every_n_epoch=t.check_val_every_n_epoch,
        log_every_n_steps=t.log_every_n_steps,
        limit_train_batches=t.limit_train_batches,
        limit_val_batches=t.limit_val_batches,
        deterministic=t.deterministic,
        enable_progress_bar=progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        # no_grad rather than inference_mode for evaluation: metric states created under inference mode
        # (e.g. by a validation before fitting) cannot be updated in place afterwards.
        inference_mode=False,
        logger=tb,
        callbacks=(build_callbacks(cfg, recipe, run_dir) + ([] if progress_bar else [EpochLine()])
                   + recipe.callbacks(cfg) + list(extra_callbacks or [])),
        # torch's SyncBatchNorm has GPU kernels only; the plugin picks a gloo-capable one on CPU. Added only
        # when asked for: Lightning turns layer syncing on for any such plugin.
        plugins=[AtomicCheckpointIO(), *([SyncBatchNormPlugin()] if t.sync_batchnorm else [])],
        # Our ResumableSampler shards itself across ranks; Lightning must not wrap it.
        use_distributed_sampler=False,
    )


# -------------------------------------------------------------------------------------------- commands
def _validate_untrained(trainer: pl.Trainer, module: pl.LightningModule, datamodule: Any) -> dict[str, float]:
    """Score the freshly initialised model (the "untrained" baseline every recipe should report)."""
    module.scoring_untrained = True
    try:
        results = trainer.validate(module, datamodule=datamodule, verbose=False)
    finally:
        module.scoring_untrained = False
    untrained = {k: float(v) for k, v in (results[0] if results else {}).items()}
    if global_rank() == 0:
        print("untrained model: " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(untrained.items())), flush=True)
    return untrained


def _fit(cfg: Config, run_dir: Path, ckpt_path: Path | None) -> dict[str, float]:
    """Seed, build the recipe, (optionally) score it untrained, fit or resume, write plots; final metrics."""
    recipe = get_recipe(cfg.recipe)
    pl.seed_everything(rank_seed(cfg.seed, global_rank()), workers=True, verbose=False)
    module, datamodule = recipe.build(cfg)
    trainer = build_trainer(cfg, recipe, run_dir)
    if cfg.trainer.validate_before_fit and ckpt_path is None:
        _validate_untrained(trainer, module, datamodule)
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if torch.is_tensor(v) and v.numel() == 1}
    if not metrics and ckpt_path is not None:
        # resuming a run that had already finished trains nothing (its test split was scored when it ended):
        # report what the run recorded last
        log.info("the run had already reached its end; nothing was trained")
        return last_recorded_metrics(run_dir)
    if getattr(datamodule, "has_test_split", False):
        metrics.update(_test_once(trainer, module, datamodule, run_dir))
    return metrics


def _scored_checkpoint(run_dir: Path) -> Path:
    """The checkpoint a run's held-out split is scored with: best.ckpt (chosen on validation), else last.ckpt."""
    best = run_dir / CKPT_DIR / "best.ckpt"
    return best if best.is_file() else run_dir / CKPT_DIR / "last.ckpt"


@contextlib.contextmanager
def _exit_on_signal(message: str) -> Iterator[None]:
    """Ctrl-C / SIGTERM inside the block: print ``message`` (rank 0) and exit with status 130, nothing else to save."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:  # noqa: ARG001 - signal's signature
        if global_rank() == 0:
            print(message, flush=True)
        raise SystemExit(130)

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _test_once(trainer: pl.Trainer, module: pl.LightningModule, datamodule: Any, run_dir: Path) -> dict[str, float]:
    """Score the held-out split once, at the end of training, with the checkpoint validation chose.

    Every setting and the checkpoint itself are chosen on the validation split; the test split is touched here
    only, and its figures are logged as ``test/<metric>`` (TensorBoard, ``metrics.json``) and printed once."""
    ckpt = _scored_checkpoint(run_dir)
    if ckpt.is_file():
        module.load_state_dict(load_checkpoint(ckpt)["state_dict"])
    with _exit_on_signal(f"interrupted while scoring the test split; training had ended and {ckpt} is complete: "
                         f"score it with `torchrepro eval {run_dir / CONFIG_NAME} --ckpt {ckpt} --split test`"):
        results = trainer.test(module, datamodule=datamodule, verbose=False)
    tested = {k: float(v) for k, v in (results[0] if results else {}).items()}
    if global_rank() == 0:
        print(f"test (held-out, scored once with {ckpt.name}): "
              + ", ".join(f"{k}={v:.4f}" for k, v in sorted(tested.items())), flush=True)
    return tested


def last_recorded_metrics(run_dir: Path) -> dict[str, float]:
    """The newest entry of a run's metrics.json (without its bookkeeping fields)."""
    import json

    path = run_dir / METRICS_NAME
    if not path.is_file():
        return {}
    last = json.loads(path.read_text()).get("last", {})
    return {k: float(v) for k, v in last.items() if k not in ("stage", "epoch", "step")}


def train(config_path: Path | None, overrides: list[str], raw: dict | None = None) -> tuple[Path, dict[str, float]]:
    """``torchrepro train``: validate, create the run directory, fit. Returns (run_dir, final metrics)."""
    cfg = resolve_config(config_path, overrides, raw=raw)
    init_distributed(cfg)
    configure_rank_logging()
    run_dir = agree_on_run_dir(cfg)
    try:
        return run_dir, _fit(cfg, run_dir, None)
    except UserError:
        _discard_if_nothing_saved(run_dir)
        raise


def _discard_if_nothing_saved(run_dir: Path) -> None:
    """After a user error (bad data, NaN at the first step…), remove a run directory that holds no checkpoint yet,
    so that the very same ``train`` command works once the input is fixed. A run with checkpoints is kept (it can
    be resumed or inspected)."""
    if global_rank() != 0 or any((run_dir / CKPT_DIR).glob("*.ckpt")):
        return
    shutil.rmtree(run_dir, ignore_errors=True)
    log.info("removed %s: the run stopped before its first checkpoint", run_dir)


#: keys ``torchrepro resume RUN_DIR key=value`` may change: how long and how visibly the run goes on. Anything
#: else (data, model, optimiser, seed, batch size) would make the continuation differ from the run it continues.
RESUMABLE_KEYS = ("trainer.max_epochs", "trainer.max_steps", "trainer.val_check_interval",
                  "trainer.check_val_every_n_epoch", "trainer.log_every_n_steps", "trainer.progress_bar",
                  "checkpoint.every_n_steps")


def _resume_overrides(overrides: list[str]) -> list[str]:
    """Refuse, with one line, an override that would break an exact continuation."""
    for text in overrides:
        key = text.split("=", 1)[0].strip()
        if key not in RESUMABLE_KEYS:
            raise ConfigError(
                f"resume cannot change '{key}': a resumed run continues exactly where it stopped, so only "
                f"{', '.join(RESUMABLE_KEYS)} may change; for other settings start a new run with "
                f"`torchrepro train RUN_DIR/config.yaml {text}`"
            )
    return list(overrides)


def _check_last_checkpoint(ckpt: Path) -> None:
    """Fail early, in one line, on a corrupt ``last.ckpt``, saying whether ``best.ckpt`` could take its place."""
    try:
        state = load_checkpoint(ckpt)
    except CheckpointError as err:
        best = ckpt.with_name("best.ckpt")
        try:
            saved = load_checkpoint(best) if best.is_file() else None
        except CheckpointError:
            saved = None
        hint = ""
        if saved is not None and "optimizer_states" in saved:
            hint = f"; {best} is intact (step {saved.get('global_step', '?')}): copy it over last.ckpt to resume from that step"
        elif saved is not None:
            hint = (f"; {best} is intact (step {saved.get('global_step', '?')}, weights only): score it with "
                    f"`torchrepro eval`, or start the run again with `torchrepro train`")
        raise CheckpointError(f"{err}{hint}") from None
    if "optimizer_states" not in state:
        raise CheckpointError(f"{ckpt} holds weights only (the run had checkpoint.save_optimizer=false): it cannot "
                              f"be resumed exactly; start a new run, or evaluate it with `torchrepro eval`")


def resume(run_dir: Path, overrides: list[str] | None = None) -> tuple[Path, dict[str, float]]:
    """``torchrepro resume RUN_DIR [key=value…]``: the run's own config and its last checkpoint.

    Overrides may extend or shorten the run and change how it reports (:data:`RESUMABLE_KEYS`); the run's
    ``config.yaml`` is updated with them, so a later plain ``resume`` continues the same plan. A step- or
    epoch-clocked schedule keeps the clock it was built with: a cosine schedule that has reached its end stays
    at ``sched.eta_min`` for the added steps.
    """
    run_dir = Path(run_dir)
    changes = _resume_overrides(overrides or [])
    if not (run_dir / CONFIG_NAME).is_file():
        raise CheckpointError(f"'{run_dir}' is not a run directory (no {CONFIG_NAME}): pass a directory made by `torchrepro train`")
    ckpt = run_dir / CKPT_DIR / "last.ckpt"
    if not ckpt.is_file():
        raise CheckpointError(f"run directory '{run_dir}' has no checkpoint ({ckpt} is missing): nothing to resume; start it again with `torchrepro train`")
    _check_last_checkpoint(ckpt)
    recorded = resolve_config(run_dir / CONFIG_NAME, changes)  # validated before anything is written
    cfg = dataclasses.replace(recorded, run=dataclasses.replace(recorded.run, dir=str(run_dir)))
    init_distributed(cfg)
    configure_rank_logging()
    if changes and global_rank() == 0:
        write_text_atomic(run_dir / CONFIG_NAME, yaml.safe_dump(recorded.to_dict(), sort_keys=False))
        log.info("resuming with %s (recorded in %s)", " ".join(changes), run_dir / CONFIG_NAME)
    return run_dir, _fit(cfg, run_dir, ckpt)


def _state_dict_mismatch(err: RuntimeError) -> str:
    """The informative line of torch's load_state_dict error (its first line ends with a bare colon)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    detail = next((line for line in lines[1:]), lines[0] if lines else "")
    return detail[:300]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def restore(cfg: Config, ckpt_path: Path) -> tuple[pl.LightningModule, pl.LightningDataModule]:
    """The recipe's (LightningModule, LightningDataModule) for ``cfg`` with the weights of a checkpoint: what
    ``torchrepro eval`` scores and ``torchrepro serve`` shows. The checkpoint is read (``weights_only``) before the
    recipe is built, so a missing or corrupt file fails at once; a CheckpointError names the file, or what does not
    fit when it holds another recipe's (or another config's) weights."""
    ckpt = load_checkpoint(Path(ckpt_path))
    module, datamodule = get_recipe(cfg.recipe).build(cfg)
    try:
        module.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint '{ckpt_path}' does not fit recipe '{cfg.recipe}' with this config "
                              f"({_state_dict_mismatch(err)}): pass a checkpoint written by a '{cfg.recipe}' run "
                              f"of this config") from None
    return module, datamodule


def evaluate(config_path: Path, ckpt_path: Path, overrides: list[str], out: Path | None = None,
             split: str = "val") -> tuple[Path, dict[str, float]]:
    """``torchrepro eval``: load weights (weights_only) into the recipe's model and score the validation split
    (``split="val"``) or the held-out test split (``"test"``, metrics named ``test/…``).

    Results go to their own folder (:func:`choose_eval_dir`: ``RUN_DIR/eval/<timestamp>/`` for a run's
    checkpoint) with ``config.yaml``, ``metrics.json``, the recipe's plots and ``eval.json`` (the checkpoint's path
    and SHA-256, and the metrics). No weights are copied."""
    cfg = resolve_config(config_path, overrides)
    init_distributed(cfg)
    configure_rank_logging()
    recipe = get_recipe(cfg.recipe)
    pl.seed_everything(rank_seed(cfg.seed, global_rank()), workers=True, verbose=False)
    module, datamodule = restore(cfg, Path(ckpt_path))
    if split == "test" and not getattr(datamodule, "has_test_split", False):
        raise ConfigError(f"recipe '{cfg.recipe}' with this config has no held-out test split: "
                          f"evaluate with --split val")
    run_dir = agree_on_run_dir(cfg, eval_of=Path(ckpt_path), out=out)
    trainer = build_trainer(cfg, recipe, run_dir)
    run = trainer.test if split == "test" else trainer.validate
    results = run(module, datamodule=datamodule)
    metrics = {k: float(v) for k, v in (results[0] if results else {}).items()}
    if global_rank() == 0:
        write_json_atomic(run_dir / "eval.json", {"checkpoint": str(Path(ckpt_path).resolve()), "split": split,
                                                  "sha256": file_sha256(Path(ckpt_path)), "metrics": metrics})
    return run_dir, metrics


def prepare_data(config_path: Path, overrides: list[str]) -> dict[str, int]:
    """``torchrepro data``: generate the config's synthetic data (or open and check its real data set), build the
    input caches, run the checks the loaders would run (the data module's ``check_files()``, when it has one: every
    file of every split opened and decoded, without training transforms), and count what training and evaluation
    will see. Writes no run directory, trains nothing; a later ``train`` with the same data keys reuses what this
    made. A problem is a DataError naming the file or folder and the fix."""
    cfg = resolve_config(config_path, overrides)
    configure_rank_logging()
    _, datamodule = get_recipe(cfg.recipe).build(cfg)
    datamodule.prepare_data()
    datamodule.setup("fit")
    check_files = getattr(datamodule, "check_files", None)
    if check_files is not None:
        check_files()
    counts: dict[str, int] = {}
    makers = [("train", datamodule.train_dataloader), ("val", datamodule.val_dataloader)]
    if getattr(datamodule, "has_test_split", False):
        makers.append(("test", datamodule.test_dataloader))
    for split, make in makers:
        made = make()
        loaders = made if isinstance(made, (list, tuple)) else [made]  # several evaluation targets: one each
        counts[f"{split}_items"] = sum(len(loader.dataset) for loader in loaders)
        counts[f"{split}_batches"] = sum(len(loader) for loader in loaders)
    return counts

