"""Background-activity filter: drop isolated noise events (Delbruck 2008; tonic's ``Denoise``, jAER's BAF).

A DVS pixel also fires without a change in light ("background activity": leak and shot noise, ~0.1-1 Hz per
pixel in daylight, more in the dark). Such events are isolated; an edge moving across the sensor fires
neighbouring pixels within milliseconds of each other. The classic filter keeps an event only if one of its
eight neighbours (not the pixel itself, so a hot pixel does not support itself) fired within ``support_s``.

Differences to the streaming filters of jAER and tonic (which look only backwards in time, tonic over four
neighbours): windows are filtered offline here, so support is looked for both before *and after* the event,
within ``±support_s``. A causal filter would drop the true events at the start of every window, whose
supporting neighbours fired in the previous window.
"""

from __future__ import annotations

import numpy as np

__all__ = ["background_activity_filter"]

NEIGHBOURS = [(dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dx, dy) != (0, 0)]


def background_activity_filter(events: np.ndarray, height: int, width: int, support_s: float) -> np.ndarray:
    """Boolean mask over ``events`` ``[N, 4]`` (columns t, x, y, p; t in seconds) of the events to keep.

    Vectorised: events are sorted by (pixel, time) once; for each of the 8 neighbour offsets two binary searches
    count the neighbour's events in ``[t − support_s, t + support_s]``. O(N log N), no per-event Python loop.
    """
    if support_s <= 0:
        raise ValueError(f"support_s must be positive, got {support_s}")
    n = len(events)
    if n == 0:
        return np.zeros(0, dtype=bool)
    t = np.asarray(events[:, 0], dtype=np.float64)
    x = np.asarray(events[:, 1]).astype(np.int64)
    y = np.asarray(events[:, 2]).astype(np.int64)
    t_rel = t - t.min()
    # one sortable key per event: pixel index, then time; pixels are `span` apart so windows never overlap
    span = float(t_rel.max()) + 2.0 * support_s + 1.0
    keys = np.sort((y * width + x) * span + t_rel)
    keep = np.zeros(n, dtype=bool)
    for dx, dy in NEIGHBOURS:
        nx, ny = x + dx, y + dy
        inside = (nx >= 0) & (nx < width) & (ny >= 0) & (ny < height)
        base = (ny * width + nx) * span
        lo = np.searchsorted(keys, base + t_rel - support_s, side="left")
        hi = np.searchsorted(keys, base + t_rel + support_s, side="right")
        keep |= inside & (hi > lo)
    return keep
