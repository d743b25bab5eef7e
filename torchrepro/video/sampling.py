"""Segment-based frame sampling of Temporal Segment Networks.

TSN (Wang et al., "Temporal Segment Networks", ECCV 2016, §3.2) cuts a video into ``K`` segments of equal
duration and takes one frame ("snippet") from each: a random one while training, the centre one at test
time. TSM (Lin et al., ICCV 2019) and FFN (Zhang et al., CVPR 2023) inherit this sampler from the TSM code
base (``ops/dataset.py``: ``TSNDataSet._sample_indices`` for training, ``_get_val_indices`` for testing).

Two deliberate differences from that code base, both documented at the function:

* indices are 0-based (TSM adds 1 because its extracted frames are named from ``000001.jpg``);
* the training segments use the same float boundaries ``i * n / K`` as the test sampler, whereas TSM's
  ``_sample_indices`` uses integer segments of ``n // K`` frames and never draws the last ``n % K`` frames.
"""

from __future__ import annotations

import warnings

import torch

# Set by warn_short_once: a data set of 220k videos warns about its short ones once, not once per item.
_short_warning_issued = False


def _check_counts(n_frames: int, n_segments: int) -> None:
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    if n_segments < 1:
        raise ValueError(f"n_segments must be >= 1, got {n_segments}")


def is_short(n_frames: int, n_segments: int) -> bool:
    """Whether a video has fewer frames than segments, so some frames must be used twice."""
    _check_counts(n_frames, n_segments)
    return n_frames < n_segments


def _ceil_div(num: int, den: int) -> int:
    """Exact ``ceil(num / den)`` for integers of any sign (no float rounding on long videos)."""
    return -(-num // den)


def segment_bounds(n_frames: int, n_segments: int) -> list[tuple[int, int]]:
    """The frames ``[lo, hi)`` of each of ``n_segments`` equal segments of a video (TSN §3.2).

    Segment ``i`` spans the time interval ``[i * n / K, (i + 1) * n / K)``; frame ``f`` belongs to the segment
    that holds its centre ``f + 0.5``. That rule makes the segments a partition of ``0 .. n-1`` and puts TSM's
    test frame ``int(tick / 2 + tick * i)`` inside segment ``i`` (for ``n >= K`` every segment holds at least
    one frame, since its length ``n / K >= 1``; a short video, ``n < K``, has empty segments).
    In integers: ``f + 0.5 >= i*n/K  <=>  f >= (2*i*n - K) / (2*K)``.
    """
    _check_counts(n_frames, n_segments)
    edges = [max(0, _ceil_div(2 * i * n_frames - n_segments, 2 * n_segments)) for i in range(n_segments + 1)]
    return list(zip(edges[:-1], edges[1:]))


def _short_indices(n_frames: int, n_segments: int) -> list[int]:
    """Every frame of a short video, evenly repeated: segment ``i`` takes frame ``floor(i * n / K)``."""
    return [i * n_frames // n_segments for i in range(n_segments)]


def _centre_indices(n_frames: int, n_segments: int) -> list[int]:
    """TSM's ``_get_val_indices``: the centre frame ``int(tick / 2 + tick * i)`` of each segment, 0-based."""
    tick = n_frames / n_segments
    return [int(tick / 2.0 + tick * i) for i in range(n_segments)]


def _random_indices(n_frames: int, n_segments: int, generator: torch.Generator) -> list[int]:
    """One frame drawn uniformly from each segment of :func:`segment_bounds`, from ``generator`` only."""
    bounds = segment_bounds(n_frames, n_segments)
    lo = torch.tensor([b[0] for b in bounds], dtype=torch.float64)
    length = torch.tensor([b[1] - b[0] for b in bounds], dtype=torch.float64)
    # u < 1, so floor(u * length) <= length - 1: the draw never leaves its segment. float64 keeps this exact
    # for any realistic frame count.
    u = torch.rand(n_segments, generator=generator, dtype=torch.float64)
    return [int(v) for v in (lo + torch.floor(u * length)).tolist()]


def segment_indices(n_frames: int, n_segments: int, *, train: bool,
                    generator: torch.Generator | None = None) -> list[int]:
    """0-based frame indices, one per segment and non-decreasing, for a video of ``n_frames`` frames.

    TSN §3.2 segment sampling: ``train=True`` draws a uniformly random frame inside each segment of
    :func:`segment_bounds` from ``generator`` (required, so that sampling is reproducible); ``train=False``
    takes the centre frame of each segment exactly as TSM's ``_get_val_indices``. A video shorter than
    ``n_segments`` frames uses every frame, evenly repeated (``floor(i * n / K)``), in both modes: there is
    nothing to draw from. Call :func:`warn_short_once` to tell the user about such videos.
    """
    _check_counts(n_frames, n_segments)
    if train and generator is None:
        raise ValueError("segment_indices(train=True) needs a torch.Generator: every random draw is seeded")
    if is_short(n_frames, n_segments):
        return _short_indices(n_frames, n_segments)
    if train:
        assert generator is not None  # checked above; narrows the type
        return _random_indices(n_frames, n_segments, generator)
    return _centre_indices(n_frames, n_segments)


def warn_short_once(video_name: str, n_frames: int, n_segments: int) -> None:
    """Warn, once per process, that a video has fewer frames than segments and frames will be repeated.

    The first short video is named; later ones are silent, because a data set with many short clips would
    otherwise flood the log with one line per item per epoch. Does nothing for a video that is not short.
    """
    global _short_warning_issued
    if _short_warning_issued or not is_short(n_frames, n_segments):
        return
    _short_warning_issued = True
    warnings.warn(f"video '{video_name}' has {n_frames} frames for {n_segments} segments: its frames are repeated "
                  f"to fill the segments (further short videos are not reported)", stacklevel=2)


def _reset_short_warning() -> None:
    """Re-arm :func:`warn_short_once` (tests only)."""
    global _short_warning_issued
    _short_warning_issued = False
