"""CTC for LipNet, batched correctly (Graves, Fernández, Gomez and Schmidhuber, ICML 2006; LipNet §3.2).

The seed write-up trained only at batch size 1: larger batches diverged. Batched CTC goes wrong in a handful of
ways, each of which this function rules out (tests in ``tests/lipreading/test_losses.py`` show each one):

* **time-major input**: ``ctc_loss`` wants ``[T, B, C]``; a batch-first ``[B, T, C]`` tensor is read as B frames
  of T clips. Here the network's output is batch-first and this function transposes it, once.
* **target lengths**: the true length of every transcript, not the padded width; counted padding becomes extra
  labels equal to the blank, which no alignment can emit: the loss is infinite.
* **blank index**: the blank is class 0 here, as ``ctc_loss`` assumes by default; Keras' CTC puts it last, and a
  vocabulary whose padding or blank share an index with a character teaches the network to drop it.
* **input lengths**: each clip's own frame count (padding frames would be aligned to labels).
* **infeasible pairs**: a transcript needing more frames than the clip has (characters + repeated neighbours) has
  no alignment: its loss is infinite and, with ``zero_infinity=False``, NaN gradients follow. Such pairs are
  refused with a clear error when the data set is read (:func:`torchrepro.lipreading.data.ctc_min_frames`) and checked again here.
  ``zero_infinity=True`` would hide them, so it is off.
* **reduction**: ``mean`` divides each item's loss by its target length before averaging over the batch, so the
  gradient does not grow with batch size or sentence length (``sum`` at batch 16 is a 16× larger step).
* **log-probabilities in float32**: the log-softmax is computed before the loss in full precision.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from torchrepro.core.errors import DataError
from torchrepro.lipreading.vocabulary import BLANK

__all__ = ["ctc_loss"]


def _check(log_probs: torch.Tensor, targets: torch.Tensor, input_lengths: torch.Tensor,
           target_lengths: torch.Tensor) -> None:
    b, t, _ = log_probs.shape
    if input_lengths.shape != (b,) or target_lengths.shape != (b,) or targets.shape[0] != b:
        raise ValueError(f"ctc_loss: batch-first log_probs [B, T, C] = {tuple(log_probs.shape)} need B input lengths, "
                         f"B target lengths and B target rows; got {tuple(input_lengths.shape)}, "
                         f"{tuple(target_lengths.shape)}, {tuple(targets.shape)}")
    if int(input_lengths.max()) > t or int(input_lengths.min()) < 1:
        raise ValueError(f"ctc_loss: input lengths must be in [1, T={t}], got {input_lengths.tolist()}")
    for row in range(b):
        target = targets[row, :int(target_lengths[row])]
        if (target == BLANK).any():
            raise ValueError(f"ctc_loss: target {row} contains the blank index {BLANK} within its length: the target "
                             f"lengths must not count padding")
        repeats = int((target[1:] == target[:-1]).sum())
        if len(target) + repeats > int(input_lengths[row]):
            raise DataError(f"CTC target {row} needs {len(target) + repeats} frames (characters + repeats) but its clip "
                            f"has {int(input_lengths[row])}: the transcript is longer than the video allows")


def ctc_loss(log_probs: torch.Tensor, targets: torch.Tensor, input_lengths: torch.Tensor,
             target_lengths: torch.Tensor, per_item: bool = False) -> torch.Tensor:
    """Mean CTC loss of a batch, each item's loss divided by its target length (``per_item``: those ``[B]`` values,
    unaveraged). ``log_probs`` ``[B, T, C]`` batch-first log-softmax outputs; ``targets`` ``[B, S]`` padded class
    indices (blank-free within ``target_lengths``); lengths per item. See the module docstring."""
    _check(log_probs, targets, input_lengths, target_lengths)
    losses = F.ctc_loss(log_probs.float().transpose(0, 1), targets, input_lengths, target_lengths, blank=BLANK,
                        reduction="none", zero_infinity=False)
    losses = losses / target_lengths.clamp_min(1).to(losses.dtype)
    return losses if per_item else losses.mean()
