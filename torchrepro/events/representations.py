"""Dense representations of an event window: the voxel grid and the two-channel event histogram.

Events follow the house convention: an ``(N, 4)`` float64 array (or tensor) with columns ``t`` (seconds),
``x``, ``y``, ``p``; ``p`` is ``{0, 1}`` on disk and mapped to ``±1`` here (``p > 0 → +1``, else ``−1``).
A structured array with fields ``t, x, y, p`` is accepted too. Sensor size is ``(height, width)``, e.g.
DAVIS346 ``(260, 346)``.

Voxel grid (Zhu et al. 2019, "Unsupervised event-based learning of optical flow, depth and egomotion", as
implemented by rpg_e2vid's ``events_to_voxel_grid``):

* timestamps are normalised to ``[0, B − 1]`` with ``tn = (t − t0) / (t_last − t0) * (B − 1)``, where ``t0``
  and ``t_last`` are the first and last timestamps of the (ascending) window. Both implementations evaluate
  it in exactly that order (divide, then multiply), so the last event gets ``tn = B − 1`` exactly and every
  ``tn`` lies in ``[0, B − 1]``; a precomputed scale ``(t − t0) * ((B − 1) / dt)`` can give 3.9999999999999996
  for B = 5 and leak ~4e-16 into bin B − 2. (rpg_e2vid's own order, ``(B − 1) * (t − t0) / dt``, is exact
  when B − 1 is a power of two but can miss by one ulp otherwise, e.g. B = 4 or 6.)
* each event's polarity ``±1`` is split bilinearly between bins ``floor(tn)`` (weight ``1 − (tn − floor)``)
  and ``floor(tn) + 1`` (weight ``tn − floor``), the upper bin only when it is ``< B``. The first event
  lands fully in bin 0 and the last fully in bin ``B − 1``; the grid's total equals the sum of polarities.
* zero-duration window (``t_last == t0``, e.g. one event): every event goes to bin 0 (as rpg_e2vid, which
  then divides by 1 instead of 0).

Differences from tonic's ``to_voxel_grid_numpy``, as recorded in our design doc (``DESIGN.md``, "Voxel
grid"): that implementation scales timestamps by ``B`` instead of ``B − 1``, drops the last event of the
window, and turns boolean polarity ``False`` into ``+1``. Grids from tonic are therefore not comparable
bin-for-bin with ours; we follow rpg_e2vid.

:func:`voxel_grid_reference` is the plain per-event loop written straight from the formula; it is the
reference that the tests and ``benchmarks/voxel_grid.py`` compare the vectorised :func:`voxel_grid` with.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch

from torchrepro.core.errors import DataError

__all__ = ["event_histogram", "voxel_grid", "voxel_grid_reference"]


def _where(source: str | None) -> str:
    return f" in {source}" if source else ""


def _as_numpy(events: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(events, torch.Tensor):
        return events.detach().cpu().to(torch.float64).numpy()
    arr = np.asarray(events)
    if arr.dtype.names is not None:
        arr = np.stack([arr[name] for name in ("t", "x", "y", "p")], axis=-1)
    return np.asarray(arr, dtype=np.float64)


def _as_tensor(events: np.ndarray | torch.Tensor, source: str | None) -> torch.Tensor:
    """Events as a float64 ``(N, 4)`` tensor (on the input tensor's device; CPU for arrays)."""
    if isinstance(events, torch.Tensor):
        ev = events.detach().to(torch.float64)
    else:
        ev = torch.from_numpy(np.ascontiguousarray(_as_numpy(events)))
    if ev.ndim == 1 and ev.numel() == 0:
        ev = ev.reshape(0, 4)
    if ev.ndim != 2 or ev.shape[1] != 4:
        raise DataError(
            f"events{_where(source)} must be an (N, 4) array with columns t, x, y, p; got shape "
            f"{tuple(ev.shape)}. Convert the window to that layout before building a representation."
        )
    return ev


def _check_sensor(height: int, width: int) -> None:
    if int(height) <= 0 or int(width) <= 0:
        raise DataError(f"sensor size must be positive (height, width); got ({height}, {width}).")


def _check_xy(x: torch.Tensor, y: torch.Tensor, height: int, width: int, source: str | None) -> None:
    """Raise DataError unless every event lies on the sensor (NaN coordinates fail too)."""
    bad_x = ~((x >= 0) & (x < width))
    bad_y = ~((y >= 0) & (y < height))
    if bool(bad_x.any()) or bool(bad_y.any()):
        n_bad = int((bad_x | bad_y).sum())
        raise DataError(
            f"{n_bad} event(s){_where(source)} lie outside the sensor of height={height}, width={width}: "
            f"x spans [{float(x.min()):g}, {float(x.max()):g}] (must be in [0, {width})), "
            f"y spans [{float(y.min()):g}, {float(y.max()):g}] (must be in [0, {height})). "
            "Check the sensor size in the recipe config (e.g. DAVIS346 is height=260, width=346) "
            "and the column order (t, x, y, p)."
        )


def _check_t(t: torch.Tensor, source: str | None) -> None:
    finite = torch.isfinite(t)
    if not bool(finite.all()):
        n_bad = int((~finite).sum())
        first = int((~finite).nonzero()[0, 0])
        raise DataError(
            f"{n_bad} event(s){_where(source)} have a non-finite timestamp (NaN/Inf; first at row {first}). "
            "Drop or repair those rows before building the voxel grid."
        )
    if t.numel() > 1 and bool((t[1:] < t[:-1]).any()):
        first = int((t[1:] < t[:-1]).nonzero()[0, 0]) + 1
        raise DataError(
            f"event timestamps{_where(source)} are not sorted ascending (first decrease at row {first}). "
            "Sort the window by t before building the voxel grid."
        )


@numba.njit(cache=True, nogil=True)
def _voxel_grid_kernel(t, x, y, p, num_bins, height, width, out):  # pragma: no cover - compiled
    """Fused CPU voxel grid, one pass: returns 1 for an off-sensor/NaN coordinate, 2 for bad timestamps, else 0.

    On a non-zero status ``out`` holds a partial grid (the caller raises and drops it). Every event is checked
    before its cells are written: coordinates on the sensor, and ``t[i-1] <= t[i] <= t_last`` with finite ``t0``
    and ``t_last``, which is exactly "finite and ascending" and bounds ``tn`` to ``[0, B - 1]``, so every index
    written is inside ``out``.
    """
    n = t.shape[0]
    t0 = t[0]
    t_last = t[n - 1]
    if not (np.isfinite(t0) and np.isfinite(t_last)):
        return 2
    # (t - t0) / dt * (B - 1), in this order: dt / dt is exactly 1, so the last event lands exactly on B - 1
    # (a precomputed scale (B - 1) / dt gives e.g. 3.9999999999999996 and leaks ~4e-16 into bin B - 2).
    # Rounding is monotone, so every tn lies in [0, B - 1]. Zero duration: dt = 1 and every tn is 0.
    dt = t_last - t0
    if not dt > 0:
        dt = 1.0
    last = num_bins - 1
    hw = height * width
    prev = t0
    for i in range(n):
        ti = t[i]
        if not (ti >= prev and ti <= t_last):  # NaN fails too
            return 2
        prev = ti
        xi = x[i]
        yi = y[i]
        if not (xi >= 0 and xi < width and yi >= 0 and yi < height):
            return 1
        tn = (ti - t0) / dt * last
        lower = int(np.floor(tn))
        frac = tn - lower
        pol = 1.0 if p[i] > 0 else -1.0
        idx = int(yi) * width + int(xi) + lower * hw
        out[idx] += pol * (1.0 - frac)
        if lower + 1 < num_bins:
            out[idx + hw] += pol * frac
    return 0


def voxel_grid(
    events: np.ndarray | torch.Tensor,
    num_bins: int,
    height: int,
    width: int,
    source: str | None = None,
    compiled: bool = True,
) -> torch.Tensor:
    """Voxel grid of an event window, shape ``(num_bins, height, width)``, float32.

    See the module docstring for the formula (rpg_e2vid / Zhu et al. 2019: bilinear in time over ``[0, B−1]``)
    and how it differs from tonic. On CPU one fused numba pass validates and scatters; elsewhere (GPU tensors)
    two ``index_add_`` calls (lower and upper bin) over a flattened grid. The result is on the device of
    ``events`` (CPU for NumPy input). ``compiled=False`` forces the tensor path (tested against the same
    reference, so both stay correct).

    * empty window → all zeros;
    * zero-duration window (``t_last == t0``) → every event in bin 0;
    * events outside ``[0, width) × [0, height)``, non-finite timestamps or timestamps that are not
      ascending raise :class:`~torchrepro.core.errors.DataError`; ``source`` (e.g. the file name) is named
      in the message.

    Coordinates are truncated to integers (as rpg_e2vid's ``astype(int)``).
    """
    num_bins, height, width = int(num_bins), int(height), int(width)
    if num_bins < 1:
        raise DataError(f"num_bins must be >= 1 for the voxel grid; got {num_bins}.")
    _check_sensor(height, width)
    ev = _as_tensor(events, source)
    device = ev.device
    grid = torch.zeros(num_bins * height * width, dtype=torch.float32, device=device)
    if ev.shape[0] == 0:
        return grid.view(num_bins, height, width)
    if compiled and device.type == "cpu" and ev.dtype == torch.float64:
        # CPU: one fused pass (validation + scatter) compiled by numba; ~20 separate tensor ops cost
        # several times more than the arithmetic itself at 15,000 events.
        arr = ev.numpy()
        status = _voxel_grid_kernel(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3], num_bins, height, width, grid.numpy())
        if status == 0:
            return grid.view(num_bins, height, width)
        _check_t(ev[:, 0], source)  # status != 0: let the detailed checks name the problem
        _check_xy(ev[:, 1], ev[:, 2], height, width, source)
        raise DataError(f"invalid events{_where(source)} for the voxel grid")  # not reached: a check raises

    t, x, y, p = ev.unbind(1)
    hw = height * width
    # Validation on the fast path is a handful of reductions; the detailed diagnosis (which rows, how many)
    # only runs when one of them fails. NaN propagates through min/max/diff, so it fails these too.
    x_ext, y_ext = x.aminmax(), y.aminmax()
    on_sensor = (
        x_ext.min.item() >= 0 and x_ext.max.item() < width and y_ext.min.item() >= 0 and y_ext.max.item() < height
    )
    t0, t_last = t[0].item(), t[-1].item()
    ascending = ev.shape[0] == 1 or (t[1:] - t[:-1]).min().item() >= 0
    if not (math.isfinite(t0) and math.isfinite(t_last) and ascending):
        _check_t(t, source)
    if not on_sensor:
        _check_xy(x, y, height, width, source)

    # tn = (t - t0) / dt * (B - 1) in this order, as the formula: dt / dt is exactly 1, so the last event gets
    # exactly B - 1, and every tn lies in [0, B - 1] (rounding is monotone); float64 so epoch-sized t0 keeps
    # its precision. dt is divided as a tensor on the events' device, not a Python float: CUDA turns division
    # by a CPU scalar into multiplication by its reciprocal, which is the inexact (B - 1) / dt scaling again.
    # rpg_e2vid: a zero-duration window divides by 1 instead (t - t0 is 0 throughout): every event in bin 0.
    tn = torch.sub(t, t0)
    if t_last > t0:
        tn = tn.div_(tn[-1].clone())
    tn = tn.mul_(num_bins - 1)
    lower = tn.floor()
    frac = tn.sub_(lower).to(torch.float32)  # weight of the upper bin
    pol = torch.where(p > 0, 1.0, -1.0).to(device=device, dtype=torch.float32)
    w_upper = pol * frac
    w_lower = pol.sub_(w_upper)
    # Flat index y*W + x + bin*H*W (coordinates truncated like rpg_e2vid's astype(int)).
    idx = torch.add(x.to(torch.int64), y.to(torch.int64), alpha=width).add_(lower.to(torch.int64), alpha=hw)
    grid.index_add_(0, idx, w_lower)
    # Upper bin floor(tn)+1 exists only when < B. tn <= B-1, so floor(tn) = B-1 only for tn == B-1 exactly,
    # where the upper weight is exactly 0: clamping that index into the grid adds 0 and needs no boolean mask.
    grid.index_add_(0, idx.add_(hw).clamp_(max=num_bins * hw - 1), w_upper)
    return grid.view(num_bins, height, width)


def voxel_grid_reference(
    events: np.ndarray | torch.Tensor, num_bins: int, height: int, width: int
) -> np.ndarray:
    """Reference voxel grid: a plain per-event Python loop written straight from the formula.

    Slow on purpose; it exists for the tests and the benchmark to compare :func:`voxel_grid` with. It does
    no validation (the caller passes in-sensor, finite, ascending events). Returns a float64
    ``(num_bins, height, width)`` NumPy array.
    """
    ev = _as_numpy(events).reshape(-1, 4)
    grid = np.zeros((num_bins, height, width), dtype=np.float64)
    if len(ev) == 0:
        return grid
    t0, t_last = float(ev[0, 0]), float(ev[-1, 0])
    duration = t_last - t0
    for t, x, y, p in ev:
        if duration > 0:
            tn = (float(t) - t0) / duration * (num_bins - 1)
        else:
            tn = 0.0
        b = math.floor(tn)
        w_upper = tn - b
        pol = 1.0 if p > 0 else -1.0
        grid[b, int(y), int(x)] += pol * (1.0 - w_upper)
        if b + 1 < num_bins:
            grid[b + 1, int(y), int(x)] += pol * w_upper
    return grid


def event_histogram(
    events: np.ndarray | torch.Tensor, height: int, width: int, source: str | None = None
) -> torch.Tensor:
    """Per-pixel event counts, shape ``(2, height, width)``, float32: channel 0 positive (``p > 0``),
    channel 1 negative events. Out-of-sensor events raise :class:`~torchrepro.core.errors.DataError`."""
    height, width = int(height), int(width)
    _check_sensor(height, width)
    ev = _as_tensor(events, source)
    counts = torch.zeros(2 * height * width, dtype=torch.float32, device=ev.device)
    if ev.shape[0] > 0:
        _, x, y, p = ev.unbind(1)
        _check_xy(x, y, height, width, source)
        channel = (p <= 0).to(torch.int64)  # 0: positive, 1: negative
        idx = channel * (height * width) + y.to(torch.int64) * width + x.to(torch.int64)
        counts.index_add_(0, idx, torch.ones_like(idx, dtype=torch.float32))
    return counts.view(2, height, width)
