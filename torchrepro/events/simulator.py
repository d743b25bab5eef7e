"""Frames → events with the log-intensity contrast-threshold model of an event camera (ESIM / v2e style).

The model (Gallego et al., "Event-based Vision: A Survey", TPAMI 2020, eq. (1); Rebecq, Gehrig & Scaramuzza,
"ESIM: an Open Event Camera Simulator", CoRL 2018): every pixel remembers a *reference* log intensity
``L_ref``. Whenever the current log intensity ``L = log(I + eps)`` departs from it by a contrast threshold
``C``, the pixel fires an event of polarity ``sign(L - L_ref)`` and the reference moves by ``±C``::

    L(x, t) - L_ref(x) = p * C,   p in {-1, +1}        (survey, eq. (1))

Between two rendered frames the log intensity of each pixel is assumed to vary linearly in time (ESIM's
piecewise-linear interpolation), so the k-th threshold level ``L_ref + k * C`` is crossed at::

    t_k = t0 + (L_ref + k*C - L0) / (L1 - L0) * (t1 - t0),   k = 1 .. floor(|L1 - L_ref| / C)

with ``L0``/``L1`` the log intensities of the previous/current frame. Every ``t_k`` lies in ``(t0, t1]``: after
each step the reference sits within one threshold of the frame, so the first level is always beyond ``L0``.

Sensor non-idealities, as in v2e (Hu, Liu & Delbruck, CVPRW 2021):

* *threshold mismatch*: per-pixel positive and negative thresholds drawn once from ``N(C, sigma)``, clipped to
  at least ``MIN_THRESHOLD``;
* *refractory period*: an event closer than ``refractory_s`` to the previous **emitted** event of the same
  pixel is dropped. The reference still moves by the full ``n * C`` (our choice: the photoreceptor keeps
  integrating while the pixel's comparator is blocked, so the pixel does not "owe" the dropped events later and
  a saturated pixel cannot emit a burst of stale events when the refractory period ends);
* *background activity*: Poisson noise events with a per-pixel rate ``noise_rate_hz``, random polarity and
  uniform times in the step interval. They do not move the reference (leak/shot noise is not a change of the
  scene) but are subject to the refractory period like any other event.

Events are returned as an (N, 4) float64 array with columns ``t, x, y, p`` and ``p`` in {0, 1} (DESIGN.md,
"Events"), sorted by time (stable).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from torchrepro.core.errors import ConfigError, DataError

#: Lower bound of a per-pixel threshold; a zero threshold would fire infinitely many events.
MIN_THRESHOLD = 0.01
#: Slack (in units of a threshold) when counting crossings, so that a change of exactly ``k * C`` in log
#: intensity gives ``k`` events despite floating-point rounding of ``log``.
_COUNT_SLACK = 1e-9


@njit(cache=True)
def _refractory_keep(pix: np.ndarray, t: np.ndarray, last: np.ndarray, refractory: float) -> np.ndarray:
    """Sequential refractory filter over events already ordered by (pixel, time).

    ``last[pix]`` holds the time of each pixel's last emitted event and is updated in place; an event is kept
    iff it comes at least ``refractory`` after it (dropped events do not restart the refractory period).
    """
    keep = np.empty(pix.shape[0], dtype=np.bool_)
    for i in range(pix.shape[0]):
        p = pix[i]
        if t[i] - last[p] >= refractory:
            keep[i] = True
            last[p] = t[i]
        else:
            keep[i] = False
    return keep


def _check_positive(name: str, value: float, allow_zero: bool = False) -> float:
    value = float(value)
    ok = value >= 0 if allow_zero else value > 0
    if not (ok and np.isfinite(value)):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"EventSimulator: {name} must be finite and {bound}, got {value!r}")
    return value


class EventSimulator:
    """Per-pixel contrast-threshold event generator for a stream of intensity frames.

    Usage: ``sim.reset(first_frame, t0)`` then ``sim.step(frame, t)`` for each following frame, which returns
    the events fired in ``(t_previous, t]``. Frames are linear intensities (any non-negative scale, typically
    [0, 1]) of shape ``(height, width)``; ``log_eps`` is added before the logarithm so black pixels stay finite.
    All randomness (thresholds, noise) comes from ``seed``: the same frames and seed give the same events.
    """

    def __init__(
        self,
        height: int,
        width: int,
        contrast_threshold: float = 0.2,
        threshold_sigma: float = 0.03,
        refractory_s: float = 1e-3,
        noise_rate_hz: float = 0.05,
        log_eps: float = 1e-3,
        seed: int = 0,
    ) -> None:
        if int(height) <= 0 or int(width) <= 0:
            raise ConfigError(f"EventSimulator: sensor size must be positive, got height={height} width={width}")
        self.height, self.width = int(height), int(width)
        self.contrast_threshold = _check_positive("contrast_threshold", contrast_threshold)
        self.threshold_sigma = _check_positive("threshold_sigma", threshold_sigma, allow_zero=True)
        self.refractory_s = _check_positive("refractory_s", refractory_s, allow_zero=True)
        self.noise_rate_hz = _check_positive("noise_rate_hz", noise_rate_hz, allow_zero=True)
        self.log_eps = _check_positive("log_eps", log_eps)
        # Separate streams: thresholds are a property of the sensor, noise of the recording.
        thr_seq, noise_seq = np.random.SeedSequence([int(seed), 0x5EED]).spawn(2)
        thr_rng = np.random.default_rng(thr_seq)
        n = self.height * self.width
        c, s = self.contrast_threshold, self.threshold_sigma
        self.c_pos = np.maximum(thr_rng.normal(c, s, n) if s > 0 else np.full(n, c), MIN_THRESHOLD)
        self.c_neg = np.maximum(thr_rng.normal(c, s, n) if s > 0 else np.full(n, c), MIN_THRESHOLD)
        self._noise_rng = np.random.default_rng(noise_seq)
        self._ref: np.ndarray | None = None  # reference log intensity per pixel (float64, flat)
        self._prev_log: np.ndarray | None = None  # log intensity of the previous frame
        self._last_event: np.ndarray | None = None  # time of each pixel's last emitted event
        self._t = 0.0

    # -------------------------------------------------------------------------------------------- helpers
    def _log(self, frame: np.ndarray) -> np.ndarray:
        frame = np.asarray(frame)
        if frame.shape != (self.height, self.width):
            raise DataError(
                f"EventSimulator: frame has shape {frame.shape}; expected (height, width) = "
                f"({self.height}, {self.width})"
            )
        return np.log(frame.astype(np.float64).ravel() + self.log_eps)

    @property
    def reference(self) -> np.ndarray:
        """Current reference log intensity, shape (height, width) (a copy)."""
        if self._ref is None:
            raise RuntimeError("EventSimulator.reset(frame, t) must be called first")
        return self._ref.reshape(self.height, self.width).copy()

    def reset(self, frame: np.ndarray, t: float) -> None:
        """Start a recording: the reference log intensity of every pixel becomes that of ``frame`` at ``t``."""
        log_frame = self._log(frame)
        self._ref = log_frame.copy()
        self._prev_log = log_frame
        self._last_event = np.full(log_frame.shape, -np.inf)
        self._t = float(t)

    def _signal_events(self, log_frame: np.ndarray, t0: float, t1: float) -> tuple[np.ndarray, ...]:
        """Threshold crossings since the reference: (pixel, time, polarity) per event, grouped by pixel.

        Moves the reference by ``n * C`` per pixel. Fully vectorised: pixel ``i`` with ``n_i`` crossings is
        repeated ``n_i`` times and ``k`` (1 .. n_i) is recovered from the running position inside its group.
        """
        assert self._ref is not None and self._prev_log is not None
        delta = log_frame - self._ref
        up = delta > 0
        thr = np.where(up, self.c_pos, self.c_neg)
        n = np.floor(np.abs(delta) / thr + _COUNT_SLACK).astype(np.int64)
        idx = np.flatnonzero(n)
        if idx.size == 0:
            return np.empty(0, np.int64), np.empty(0), np.empty(0)
        counts = n[idx]
        sign = np.where(up[idx], 1.0, -1.0)
        step = sign * thr[idx]
        ref0, lo, hi = self._ref[idx], self._prev_log[idx], log_frame[idx]
        self._ref[idx] = ref0 + counts * step  # reference tracks even if refractory drops events (see module doc)

        pix = np.repeat(idx, counts)
        group_start = np.cumsum(counts) - counts
        k = np.arange(pix.size) - np.repeat(group_start, counts) + 1
        level = np.repeat(ref0, counts) + k * np.repeat(step, counts)
        lo_r, hi_r = np.repeat(lo, counts), np.repeat(hi, counts)
        # Linear interpolation of log intensity between the frames (ESIM); hi != lo whenever n > 0.
        frac = np.clip((level - lo_r) / (hi_r - lo_r), 0.0, 1.0)
        t = t0 + frac * (t1 - t0)
        t = np.maximum(t, np.nextafter(t0, np.inf))  # strictly after t0 despite rounding
        pol = np.repeat(sign > 0, counts).astype(np.float64)
        return pix, t, pol

    def _noise_events(self, t0: float, t1: float) -> tuple[np.ndarray, ...]:
        """Background activity: independent Poisson processes of equal rate at every pixel.

        Drawn as one Poisson total spread uniformly over pixels, which has the same distribution and costs
        O(#noise events) instead of O(#pixels) per step.
        """
        n_pix = self.height * self.width
        lam = self.noise_rate_hz * n_pix * (t1 - t0)
        if lam <= 0:
            return np.empty(0, np.int64), np.empty(0), np.empty(0)
        rng = self._noise_rng
        n = int(rng.poisson(lam))
        pix = rng.integers(0, n_pix, n)
        t = t1 - (t1 - t0) * rng.random(n)  # uniform in (t0, t1]
        pol = rng.integers(0, 2, n).astype(np.float64)
        return pix, t, pol

    def step(self, frame: np.ndarray, t: float) -> np.ndarray:
        """Events fired between the previous frame and ``frame`` at time ``t``: (N, 4) ``t, x, y, p``, t-sorted."""
        if self._ref is None or self._last_event is None:
            raise RuntimeError("EventSimulator.reset(frame, t) must be called before step()")
        t0, t1 = self._t, float(t)
        if not t1 > t0:
            raise DataError(f"EventSimulator: frame times must increase, got t={t1!r} after t={t0!r}")
        log_frame = self._log(frame)
        s_pix, s_t, s_p = self._signal_events(log_frame, t0, t1)
        n_pix, n_t, n_p = self._noise_events(t0, t1)
        self._prev_log = log_frame
        self._t = t1
        pix = np.concatenate([s_pix, n_pix])
        ts = np.concatenate([s_t, n_t])
        pol = np.concatenate([s_p, n_p])
        if self.refractory_s > 0 and pix.size:
            order = np.lexsort((ts, pix))  # by pixel, then time: the order the filter walks in
            keep = np.empty(pix.size, dtype=bool)
            keep[order] = _refractory_keep(pix[order], ts[order], self._last_event, self.refractory_s)
            pix, ts, pol = pix[keep], ts[keep], pol[keep]
        order = np.argsort(ts, kind="stable")
        out = np.empty((order.size, 4), dtype=np.float64)
        out[:, 0] = ts[order]
        out[:, 1] = pix[order] % self.width
        out[:, 2] = pix[order] // self.width
        out[:, 3] = pol[order]
        return out
