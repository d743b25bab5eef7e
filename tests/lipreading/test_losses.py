"""CTC as LipNet trains it: equal to an independent forward-algorithm implementation, and every batching mistake
that made the seed diverge above batch size 1 either ruled out or refused with a clear error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from torchrepro.core.errors import DataError
from torchrepro.lipreading.data import ctc_min_frames
from torchrepro.lipreading.losses import ctc_loss


def reference_ctc_nll(log_probs: np.ndarray, target: list[int], blank: int = 0) -> float:
    """−log p(target | x) by the CTC forward recursion over the blank-extended label sequence (Graves et al., ICML
    2006, Eqs. 6-8), in log space with plain Python loops."""
    ext = [blank]
    for label in target:
        ext += [label, blank]
    t_len, s_len = log_probs.shape[0], len(ext)
    alpha = np.full((t_len, s_len), -np.inf)
    alpha[0, 0] = log_probs[0, blank]
    if s_len > 1:
        alpha[0, 1] = log_probs[0, ext[1]]
    for t in range(1, t_len):
        for s in range(s_len):
            terms = [alpha[t - 1, s]]
            if s >= 1:
                terms.append(alpha[t - 1, s - 1])
            if s >= 2 and ext[s] != blank and ext[s] != ext[s - 2]:
                terms.append(alpha[t - 1, s - 2])
            alpha[t, s] = np.logaddexp.reduce(terms) + log_probs[t, ext[s]]
    return float(-np.logaddexp(alpha[-1, -1], alpha[-1, -2] if s_len > 1 else -np.inf))


def _batch(seed: int = 0, b: int = 4, t: int = 12, c: int = 6):
    g = torch.Generator().manual_seed(seed)
    log_probs = torch.randn(b, t, c, generator=g).log_softmax(-1)
    lengths = torch.tensor([t, t - 2, t - 1, t][:b])
    texts = [[1, 2, 2, 3], [4], [5, 1, 5], [2, 3, 4, 5, 1]][:b]
    targets = torch.zeros(b, 8, dtype=torch.long)
    for row, text in enumerate(texts):
        targets[row, :len(text)] = torch.tensor(text)
    return log_probs, targets, lengths, torch.tensor([len(x) for x in texts]), texts


def test_matches_the_forward_recursion_item_by_item():
    log_probs, targets, lengths, target_lengths, texts = _batch()
    per_item = ctc_loss(log_probs, targets, lengths, target_lengths, per_item=True)
    for row, text in enumerate(texts):
        expected = reference_ctc_nll(log_probs[row, :int(lengths[row])].numpy(), text) / len(text)
        assert per_item[row].item() == pytest.approx(expected, rel=1e-5)
    assert ctc_loss(log_probs, targets, lengths, target_lengths).item() == pytest.approx(per_item.mean().item())


def test_batch_loss_is_independent_of_padding_and_batch_mates():
    log_probs, targets, lengths, target_lengths, _ = _batch()
    alone = ctc_loss(log_probs[1:2, :int(lengths[1])], targets[1:2, :1], lengths[1:2], target_lengths[1:2])
    batched = ctc_loss(log_probs, targets, lengths, target_lengths, per_item=True)[1]
    assert batched.item() == pytest.approx(alone.item(), rel=1e-6)


def test_padding_counted_in_target_lengths_is_refused():
    log_probs, targets, lengths, target_lengths, _ = _batch()
    padded_lengths = torch.full_like(target_lengths, targets.shape[1])  # the padded width, not the text's length
    raw = F.ctc_loss(log_probs.transpose(0, 1), targets, lengths, padded_lengths, reduction="none")
    assert not torch.isfinite(raw).all()  # what the mistake does: blank labels no path can emit, infinite loss
    # why batch 1 worked: a batch of one is padded to its own length, so "padded width" is the true length
    alone = targets[3:4, :int(target_lengths[3])]
    assert torch.isfinite(F.ctc_loss(log_probs[3:4].transpose(0, 1), alone, lengths[3:4],
                                     torch.tensor([alone.shape[1]]), reduction="none")).all()
    with pytest.raises(ValueError, match="must not count padding"):
        ctc_loss(log_probs, targets, lengths, padded_lengths)


def test_a_transcript_longer_than_the_clip_is_a_clear_error():
    log_probs = torch.randn(1, 5, 6).log_softmax(-1)
    target = torch.tensor([[2, 2, 3, 4]])  # 4 characters + 1 repeat = 5 frames: fits exactly
    assert torch.isfinite(ctc_loss(log_probs, target, torch.tensor([5]), torch.tensor([4])))
    with pytest.raises(DataError, match="needs 5 frames .* clip has 4"):
        ctc_loss(log_probs, target, torch.tensor([4]), torch.tensor([4]))


@pytest.mark.parametrize("target, frames", [([], 0), ([3], 1), ([2, 2], 3), ([2, 3, 2], 3), ([4, 4, 4, 1], 6)])
def test_ctc_min_frames(target, frames):
    assert ctc_min_frames(target) == frames


def test_gradient_is_finite_and_zero_on_padding_frames():
    torch.manual_seed(0)
    logits = torch.randn(2, 7, 5, requires_grad=True)
    targets, lengths, target_lengths = torch.tensor([[1, 2, 0], [3, 3, 4]]), torch.tensor([7, 5]), torch.tensor([2, 3])
    ctc_loss(logits.log_softmax(-1), targets, lengths, target_lengths).backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad[1, 5:].abs().max() == 0  # frames after a clip's length take no part
    assert logits.grad[1, :5].abs().max() > 0
