"""Event Spike Tensor (EST): the learnable quantisation layer of Gehrig et al., "End-to-End Learning of
Representations for Asynchronous Event-Based Data", ICCV 2019 (Sec. 3-4), following the reference code
uzh-rpg/rpg_event_representation_learning (``QuantizationLayer`` / ``ValueLayer`` in ``utils/models.py``).

The layer turns a batch of event windows into a dense tensor ``(batch, 2*B, H, W)``:

* **Time normalisation** (Sec. 3.2). Each sample's timestamps are mapped to ``[0, 1]`` with that sample's own
  min and max: ``tn = (t - t_min) / (t_max - t_min)``. A zero-duration window (one event, or all events at the
  same time) gets ``tn = 0`` everywhere instead of ``0/0``. *Difference from the reference*: the reference
  divides by the max only (``t /= t.max()``), which assumes windows whose time starts at 0 (N-Caltech101);
  our windows carry absolute (epoch) timestamps, so we subtract the min first, as the brief asks.
* **Kernel** (Sec. 3.3, Eq. 4-5). For every temporal bin ``i = 0 .. B-1`` with centre ``c_i = i / (B - 1)``
  each event contributes ``tn * k(tn - c_i)``, where ``k`` is a small MLP (:class:`ValueLayer`, 1-30-30-1
  with LeakyReLU(0.1)). The factor ``tn`` is the event *measurement* "timestamp" of Sec. 3.2 (Eq. 3, the
  EST built on normalised timestamps); we follow the reference, which multiplies by ``tn``. A consequence
  worth knowing: a window's earliest event (``tn = 0``), and every event of a zero-duration window,
  contributes exactly 0.
* **Polarity** (Sec. 3.3). Positive and negative events go to separate grids that are concatenated along
  channels, as in the reference's ``torch.cat([vox[:, 0], vox[:, 1]], 1)``: channels ``0 .. B-1`` hold
  ``p = 0`` (OFF) events and channels ``B .. 2B-1`` hold ``p = 1`` (ON) events. Polarity ``p > 0`` is ON,
  anything else OFF, so ``{-1, +1}`` input works too.
* **Scatter.** Values are summed into the grid with one ``index_add`` over a flat index
  ``((b*2 + p)*B + i)*H*W + y*W + x``; it is differentiable with respect to the MLP's parameters.

The MLP is initialised to approximate the trilinear kernel ``max(0, 1 - |t|*(B-1))`` (the reference's
``ValueLayer.init_kernel``: Adam on that target). See :class:`ValueLayer` for how we make that deterministic
and fast. :class:`TrilinearKernel` is the exact, parameter-free kernel (the paper's hand-crafted baseline,
and what the tests plug in to compare the layer with a per-event loop).

Input layout: :func:`collate_events` turns a list of ``(N_i, 4)`` windows (house convention: columns
``t, x, y, p``) into one ``(N, 5)`` float64 tensor with columns ``(batch_index, t, x, y, p)``. float64 on
purpose: epoch timestamps (~1.5e9 s) have a resolution of ~128 s in float32 but ~2e-7 s in float64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from torchrepro.core.errors import ConfigError, DataError
from torchrepro.events.representations import _as_tensor, _check_sensor, _check_xy

__all__ = ["EventSpikeTensor", "TrilinearKernel", "ValueLayer", "collate_events", "trilinear_kernel"]

# Pre-training schedule for the trilinear initialisation (measured on CPU, one thread, ~0.3 s): the max abs
# error on a 20,001-point grid of [-1, 1] is about 0.01 for B = 2..16 (see tests/events/test_est.py).
_INIT_STEPS = 500
_INIT_LR = 2e-2
_INIT_POINTS = 400  # uniform over [-1, 1], plus as many again over the kernel's neighbourhood


def _check_num_bins(num_bins: int) -> int:
    num_bins = int(num_bins)
    if num_bins < 2:
        # Bin centres are i / (B - 1): one bin has no defined centre (the reference divides by zero too).
        raise ConfigError(f"num_bins must be >= 2 for the event spike tensor; got {num_bins}.")
    return num_bins


def trilinear_kernel(t: torch.Tensor, num_bins: int) -> torch.Tensor:
    """The trilinear (tent) kernel ``max(0, 1 - |t| * (B - 1))`` of Sec. 3.3: 1 at a bin centre, 0 one bin away."""
    return (1.0 - t.abs() * (num_bins - 1)).clamp_min(0.0)


class TrilinearKernel(nn.Module):
    """Exact trilinear kernel as a module, a drop-in replacement for :class:`ValueLayer` (no parameters)."""

    def __init__(self, num_bins: int) -> None:
        super().__init__()
        self.num_bins = _check_num_bins(num_bins)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return trilinear_kernel(t, self.num_bins)


# Fitted initial weights, keyed by (num_bins, hidden, activation, seed): building many layers (or one per
# test) pays the ~0.3 s fit once per process.
_INIT_CACHE: dict[tuple, dict[str, torch.Tensor]] = {}


class ValueLayer(nn.Module):
    """The learnable kernel ``k`` of Sec. 3.3: an MLP ``1 -> hidden... -> 1`` applied element-wise.

    ``forward(t)`` accepts a tensor of any shape and returns kernel values of the same shape.

    Initialisation (``init="trilinear"``, the default): like the reference's ``init_kernel``, the MLP is
    fitted to the trilinear kernel ``max(0, 1 - |t|*(B-1))`` on ``[-1, 1]`` (the range of ``tn - c_i``) with
    Adam. Differences, all for speed and determinism: a fixed input grid instead of random samples, with half
    of the points on the kernel's neighbourhood ``|t| <= 2/(B-1)`` (narrow kernels for large B are otherwise
    fitted poorly), 500 full-batch steps with a cosine learning-rate decay instead of 1000 constant-rate steps
    (the reference even uses 100-unit layers there), mean instead of summed squared error. Parameter init and
    fit run under ``torch.random.fork_rng`` seeded with ``seed``, so the global RNG is left untouched and the
    result is reproducible; the fit runs on CPU in float32 (~0.3 s) and is cached per process.
    ``init="random"`` keeps PyTorch's default (seeded) initialisation. Fitted weights are an ordinary
    ``state_dict``, so a layer can also be loaded from a checkpoint.
    """

    def __init__(
        self,
        num_bins: int,
        hidden: Sequence[int] = (30, 30),
        activation: nn.Module | None = None,
        init: str = "trilinear",
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.num_bins = _check_num_bins(num_bins)
        if init not in ("trilinear", "random"):
            raise ConfigError(f"ValueLayer init must be 'trilinear' or 'random'; got {init!r}.")
        self.activation = activation if activation is not None else nn.LeakyReLU(negative_slope=0.1)
        sizes = [1, *[int(h) for h in hidden], 1]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.mlp = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        if init == "trilinear":
            key = (self.num_bins, tuple(sizes), repr(self.activation), int(seed))
            if key not in _INIT_CACHE:
                self._fit_trilinear()
                _INIT_CACHE[key] = {k: v.detach().clone() for k, v in self.state_dict().items()}
            self.load_state_dict(_INIT_CACHE[key])

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        x = t.unsqueeze(-1)
        for layer in self.mlp[:-1]:
            x = self.activation(layer(x))
        return self.mlp[-1](x).squeeze(-1)

    def _fit_trilinear(self) -> None:
        """Fit the MLP to the trilinear kernel with Adam (see the class docstring for the schedule).

        Adam is written out (a dozen tensor ops per step) rather than taken from ``torch.optim``: the first
        ``torch.optim`` step imports TorchDynamo, which costs more than a second, longer than the fit itself.
        """
        reach = min(1.0, 2.0 / (self.num_bins - 1))
        ts = torch.cat([torch.linspace(-1.0, 1.0, _INIT_POINTS), torch.linspace(-reach, reach, _INIT_POINTS)])
        target = trilinear_kernel(ts, self.num_bins)
        params = list(self.parameters())
        m = [torch.zeros_like(q) for q in params]
        v = [torch.zeros_like(q) for q in params]
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        with torch.enable_grad():
            for step in range(1, _INIT_STEPS + 1):
                loss = (self.forward(ts) - target).pow(2).mean()
                grads = torch.autograd.grad(loss, params)
                # Cosine decay from _INIT_LR to 0 over the schedule (as CosineAnnealingLR).
                lr = 0.5 * _INIT_LR * (1.0 + math.cos(math.pi * (step - 1) / _INIT_STEPS))
                step_size = lr / (1.0 - beta1**step)
                bias2 = math.sqrt(1.0 - beta2**step)
                with torch.no_grad():
                    for q, g, m_q, v_q in zip(params, grads, m, v):
                        m_q.mul_(beta1).add_(g, alpha=1.0 - beta1)
                        v_q.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
                        q.addcdiv_(m_q, v_q.sqrt().div_(bias2).add_(eps), value=-step_size)


def collate_events(windows: Sequence[np.ndarray | torch.Tensor]) -> torch.Tensor:
    """Stack event windows ``(N_i, 4)`` (columns t, x, y, p) into ``(N, 5)`` rows ``(batch_index, t, x, y, p)``.

    The result is float64 (epoch timestamps need it; see the module docstring), on the windows' device (CPU
    for NumPy input). Empty windows contribute no rows but keep their index, so ``batch_size=len(windows)``
    in :meth:`EventSpikeTensor.forward` yields a zero grid for them. A window of the wrong shape raises
    :class:`~torchrepro.core.errors.DataError` naming its position in the batch.
    """
    parts = []
    for i, window in enumerate(windows):
        ev = _as_tensor(window, f"window {i} of the batch")
        index = torch.full((ev.shape[0], 1), float(i), dtype=torch.float64, device=ev.device)
        parts.append(torch.cat([index, ev], dim=1))
    if not parts:
        return torch.zeros((0, 5), dtype=torch.float64)
    return torch.cat(parts, dim=0)


class EventSpikeTensor(nn.Module):
    """Learnable EST quantisation layer (Gehrig et al. ICCV 2019, Sec. 3-4): events -> ``(batch, 2B, H, W)``.

    ``value_layer`` defaults to a trilinear-initialised :class:`ValueLayer` (``hidden``, ``activation``,
    ``seed`` are passed to it); pass :class:`TrilinearKernel` for the fixed hand-crafted kernel. The layer is
    device-agnostic: the output lives on the events' device, in the value layer's dtype (float32 by default).
    Memory: the MLP runs on ``B * N`` inputs and autograd keeps its activations, about
    ``B * N * sum(hidden) * 8`` bytes (the reference's per-bin loop keeps the same).
    """

    def __init__(
        self,
        num_bins: int,
        height: int,
        width: int,
        value_layer: nn.Module | None = None,
        hidden: Sequence[int] = (30, 30),
        activation: nn.Module | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.num_bins = _check_num_bins(num_bins)
        _check_sensor(height, width)
        self.height, self.width = int(height), int(width)
        if value_layer is None:
            value_layer = ValueLayer(self.num_bins, hidden=hidden, activation=activation, seed=seed)
        self.value_layer = value_layer

    def extra_repr(self) -> str:
        return f"num_bins={self.num_bins}, height={self.height}, width={self.width}"

    def _value_dtype(self) -> torch.dtype:
        param = next(self.value_layer.parameters(), None)
        return param.dtype if param is not None else torch.float32

    def forward(self, events: torch.Tensor, batch_size: int) -> torch.Tensor:
        """``events``: ``(N, 5)`` rows ``(batch_index, t, x, y, p)`` (see :func:`collate_events`).

        Returns ``(batch_size, 2 * num_bins, height, width)``; samples without events are all zeros. Raises
        :class:`~torchrepro.core.errors.DataError` for a malformed tensor, a batch index outside
        ``[0, batch_size)``, a non-finite timestamp, or an event outside the sensor.
        """
        batch_size, bins, hw = int(batch_size), self.num_bins, self.height * self.width
        ev = self._validate(events, batch_size)
        out = torch.zeros(batch_size * 2 * bins * hw, dtype=self._value_dtype(), device=ev.device)
        if ev.shape[0] == 0:
            return out.view(batch_size, 2 * bins, self.height, self.width)
        b_f, t, x, y, p = ev.unbind(1)
        b = b_f.to(torch.int64)
        tn = self._normalise_time(t, b, batch_size).to(out.dtype)

        # One MLP call over all (bin, event) pairs: (B, N) offsets from the bin centres c_i = i / (B - 1).
        centres = torch.arange(bins, dtype=out.dtype, device=ev.device) / (bins - 1)
        values = tn * self.value_layer(tn.unsqueeze(0) - centres.unsqueeze(1))  # (B, N)

        # Flat index ((b*2 + p)*B + i)*H*W + y*W + x; coordinates truncated like the voxel grid.
        pixel = y.to(torch.int64) * self.width + x.to(torch.int64)
        base = (b * 2 + (p > 0).to(torch.int64)) * (bins * hw) + pixel  # (N,)
        idx = base.unsqueeze(0) + torch.arange(bins, device=ev.device).unsqueeze(1) * hw  # (B, N)
        out = out.index_add(0, idx.reshape(-1), values.reshape(-1))
        return out.view(batch_size, 2 * bins, self.height, self.width)

    @staticmethod
    def _normalise_time(t: torch.Tensor, b: torch.Tensor, batch_size: int) -> torch.Tensor:
        """Per-sample ``(t - t_min) / (t_max - t_min)`` in float64; zero-duration samples give 0 (no NaN)."""
        t_min = torch.full((batch_size,), torch.inf, dtype=t.dtype, device=t.device)
        t_max = torch.full((batch_size,), -torch.inf, dtype=t.dtype, device=t.device)
        t_min = t_min.scatter_reduce(0, b, t, reduce="amin")
        t_max = t_max.scatter_reduce(0, b, t, reduce="amax")
        duration = (t_max - t_min)[b]
        return torch.where(duration > 0, (t - t_min[b]) / duration.clamp_min(torch.finfo(t.dtype).tiny), 0.0)

    def _validate(self, events: torch.Tensor, batch_size: int) -> torch.Tensor:
        if batch_size < 0:
            raise DataError(f"batch_size must be >= 0 for the event spike tensor; got {batch_size}.")
        if not isinstance(events, torch.Tensor):
            events = torch.as_tensor(np.asarray(events))
        if events.ndim == 1 and events.numel() == 0:
            events = events.reshape(0, 5)
        if events.ndim != 2 or events.shape[1] != 5:
            raise DataError(
                f"event spike tensor input must be (N, 5) rows (batch_index, t, x, y, p); got shape "
                f"{tuple(events.shape)}. Build it with torchrepro.events.est.collate_events."
            )
        # float64 keeps epoch-sized timestamps exact before normalisation.
        ev = events.detach().to(torch.float64)
        if ev.shape[0] == 0:
            return ev
        b, t, x, y, _ = ev.unbind(1)
        bad_b = (b != b.floor()) | (b < 0) | (b >= batch_size) | ~torch.isfinite(b)
        if bool(bad_b.any()):
            raise DataError(
                f"{int(bad_b.sum())} event(s) have a batch index outside the integers 0..{batch_size - 1} "
                f"(batch_size={batch_size}; indices span [{float(b.min()):g}, {float(b.max()):g}]). "
                "Pass batch_size=len(windows) and build the input with collate_events."
            )
        finite = torch.isfinite(t)
        if not bool(finite.all()):
            first = int((~finite).nonzero()[0, 0])
            raise DataError(
                f"{int((~finite).sum())} event(s) have a non-finite timestamp (NaN/Inf; first at row {first}). "
                "Drop or repair those rows before building the event spike tensor."
            )
        _check_xy(x, y, self.height, self.width, "the event spike tensor input")
        return ev
