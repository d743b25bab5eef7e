"""Lightning callbacks of the engine (exact-resume RNG state, NaN/Inf guard, metrics.json) and the base of
recipes' artefact callbacks."""

from __future__ import annotations

import math
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from torchrepro.core.errors import NonFiniteLossError
from torchrepro.core.rundir import CKPT_DIR, METRICS_NAME, write_json_atomic
from torchrepro.core.seeding import capture_rng_state, restore_rng_state


class RNGStateCallback(pl.Callback):
    """Save the global RNG states in every checkpoint and restore them on resume.

    The restore is deferred to the first training batch after loading, because Lightning does work between
    loading a checkpoint and the first step (dataloader set-up, sanity checks) that a fresh run did not do at
    that point of its random stream.
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        checkpoint["torchrepro_rng"] = capture_rng_state()

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        self._pending = checkpoint.get("torchrepro_rng")

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        if self._pending is not None:
            restore_rng_state(self._pending)
            self._pending = None


class NonFiniteLossGuard(pl.Callback):
    """Stop training with a clear message when the loss is NaN/Inf, before it reaches the weights.

    Runs before backward, so the bad step never updates parameters and no checkpoint of it is written: the
    last good checkpoint stays as it was. Under DDP the decision is reduced over ranks so all stop together.
    """

    def __init__(self, ckpt_dir: Path | None = None) -> None:
        self.ckpt_dir = ckpt_dir

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        bad = not bool(torch.isfinite(loss.detach()).all())
        if trainer.world_size > 1:
            bad = trainer.strategy.reduce_boolean_decision(bad, all=False)
        if bad:
            last = self.ckpt_dir / "last.ckpt" if self.ckpt_dir else None
            where = f" (last good checkpoint: {last})" if last is not None and last.is_file() else ""
            raise NonFiniteLossError(
                f"loss became {loss.detach().float().mean().item()} at step {trainer.global_step} "
                f"(epoch {trainer.current_epoch}, batch {trainer.fit_loop.epoch_loop.batch_idx}): "
                f"lower optim.lr or set trainer.gradient_clip_val, and check the data{where}"
            )


def _scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for name, value in metrics.items():
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, (int, float)) and math.isfinite(float(value)):
            out[name] = float(value)
    return out


class MetricsFileCallback(pl.Callback):
    """Append every epoch's metrics (and every standalone validation) to ``metrics.json``.

    Rank 0 only, atomic writes.

    The file holds ``history`` (one entry per validation with epoch and step) and ``last`` (the newest).
    On resume the existing history is kept and extended.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / METRICS_NAME

    def _load(self) -> dict[str, Any]:
        import json

        if self.path.is_file():
            try:
                return json.loads(self.path.read_text())
            except ValueError:
                pass
        return {"history": [], "last": {}}

    def record(self, trainer: pl.Trainer, stage: str) -> None:
        if not trainer.is_global_zero:
            return
        data = self._load()
        entry = {"stage": stage, "epoch": trainer.current_epoch, "step": trainer.global_step}
        entry.update(_scalar_metrics(trainer.callback_metrics))
        data["history"].append(entry)
        data["last"] = entry
        write_json_atomic(self.path, data)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning 2.x runs the epoch-end validation before this hook, so both the epoch's training
        # aggregates and the validation metrics are in callback_metrics here.
        self.record(trainer, "fit")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "validate":
            self.record(trainer, "untrained" if getattr(pl_module, "scoring_untrained", False) else "validate")

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.record(trainer, "test")


class RunArtefacts(pl.Callback):
    """A recipe's side products (plots, exported weights) written into the run directory, on rank 0.

    Written when training ends and after a standalone evaluation (``torchrepro eval``), never for the
    engine's scoring of the untrained model. A recipe registers its subclasses with its :class:`Recipe`
    (``callbacks=``); the engine knows nothing of what they write.
    """

    #: also write after ``torchrepro eval`` (False for exports that only a training run should produce)
    on_eval: bool = True
    #: write at the end of training only if the trained model was validated (figures of its evaluation)
    needs_validation: bool = True

    def __init__(self) -> None:
        self._validated_during_fit = False
        self._start_step = 0

    def write(self, run_dir: Path, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        raise NotImplementedError

    def _write(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            self.write(Path(trainer.default_root_dir), trainer, pl_module)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._validated_during_fit = False
        self._start_step = trainer.global_step

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "fit":
            self._validated_during_fit = True
        elif self.on_eval and trainer.state.fn == "validate" and not getattr(pl_module, "scoring_untrained", False):
            self._write(trainer, pl_module)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Without a validation of the trained model, the figures would show the untrained one (or nothing new).
        if self._validated_during_fit or not self.needs_validation:
            self._write(trainer, pl_module)
        elif trainer.is_global_zero and trainer.global_step > self._start_step:
            print(f"{type(self).__name__}: no validation ran during training (trainer.max_steps, "
                  f"check_val_every_n_epoch or limit_val_batches); its figures were not written", flush=True)



class EpochLine(pl.Callback):
    """One line per epoch on rank 0, for logs that are not a terminal (or when the progress bar is off):
    ``epoch 3/6, step 225: accuracy=0.9133, loss=0.2210, … (41 s)``, with the epoch's validation metrics.

    Non-learned baselines (``baseline_*``) do not change between epochs: the untrained model's line and
    ``metrics.json`` show them, the epoch lines leave them out."""

    def __init__(self) -> None:
        self._started = 0.0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # a run resumed mid-epoch gets no on_train_epoch_start for that epoch: time it from the resume
        self._started = time.perf_counter()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._started = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted(_scalar_metrics(trainer.callback_metrics).items())
                            if not k.startswith("baseline_"))
        total = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        print(f"epoch {trainer.current_epoch + 1}{total}, step {trainer.global_step}: {metrics} "
              f"({time.perf_counter() - self._started:.0f} s)", flush=True)


class GracefulInterrupt(pl.Callback):
    """Ctrl-C (SIGINT) or SIGTERM during training: finish the current step, write ``last.ckpt`` (atomically, through
    the engine's checkpoint IO), print one line with its path and the command that continues the run, and exit
    with status 130. A second signal stops at once.

    The checkpoint is written at a step boundary, the same point as the periodic ``last.ckpt``, so the resumed run
    continues exactly. Under DDP the ranks agree (one all-reduce of a flag per step) to stop after the same step.
    """

    def __init__(self, run_dir: Path, ckpt_name: str = "last.ckpt") -> None:
        self.run_dir = Path(run_dir)
        self.ckpt_name = ckpt_name
        self.requested: int | None = None
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:  # noqa: ARG002 - signal's signature
        if self.requested is not None:  # second signal: no more grace
            self._restore()
            raise KeyboardInterrupt
        self.requested = signum

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be installed from the main thread
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handler)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        stop = self.requested is not None
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if not stop:
            return
        path = self.run_dir / CKPT_DIR / self.ckpt_name
        trainer.save_checkpoint(path)
        if trainer.is_global_zero:
            print(f"interrupted after step {trainer.global_step} (epoch {trainer.current_epoch + 1}); saved {path}; "
                  f"continue with: torchrepro resume {self.run_dir}", flush=True)
        self._restore()
        raise SystemExit(130)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._restore()
