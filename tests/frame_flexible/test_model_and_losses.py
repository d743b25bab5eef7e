"""FFN's loss against hand-computed values, and the clip classifier's sub-network choice and consensus."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from torchrepro.frame_flexible.losses import distillation_kl, ffn_losses
from torchrepro.frame_flexible.model import FrameFlexibleNet


def test_distillation_kl_hand_computed() -> None:
    """Teacher p = (3/4, 1/4), student q = (1/2, 1/2): KL(p ‖ q) = 3/4 ln(3/2) + 1/4 ln(1/2)."""
    student = torch.zeros(1, 2, requires_grad=True)
    teacher = torch.tensor([[math.log(3.0), 0.0]], requires_grad=True)
    kl = distillation_kl(student, teacher)
    assert kl.item() == pytest.approx(0.75 * math.log(1.5) + 0.25 * math.log(0.5), abs=1e-6)
    kl.backward()
    assert teacher.grad is None  # the teacher is detached (FFN Eq. 3)
    # d KL / d student logits = q - p
    assert torch.allclose(student.grad, torch.tensor([[0.5 - 0.75, 0.5 - 0.25]]))


def test_distillation_kl_averages_over_the_batch() -> None:
    teacher = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]])
    one = distillation_kl(torch.zeros(1, 2), teacher[:1])
    assert distillation_kl(torch.zeros(2, 2), teacher).item() == pytest.approx(one.item() / 2, abs=1e-7)


def test_ffn_losses_terms() -> None:
    torch.manual_seed(0)
    logits = {f: torch.randn(5, 4) for f in (4, 8, 16)}
    labels = torch.tensor([0, 1, 2, 3, 0])
    terms = ffn_losses(logits, labels, kl_weight=0.5)
    assert sorted(terms) == ["ce", "kl_4", "kl_8"]
    assert terms["ce"].item() == pytest.approx(torch.nn.functional.cross_entropy(logits[16], labels).item())
    for f in (4, 8):
        p, logq = logits[16].softmax(1), logits[f].log_softmax(1)
        expected = 0.5 * (p * (p.log() - logq)).sum(1).mean()
        assert terms[f"kl_{f}"].item() == pytest.approx(expected.item(), abs=1e-6)


def test_clip_logits_are_the_mean_of_frame_logits() -> None:
    """TSN's average consensus: without the shift, a clip's logits are the mean of its frames' logits."""
    torch.manual_seed(0)
    net = FrameFlexibleNet(5, [4], width=8, shift=False, dropout=0.0).eval()
    clip = torch.randn(1, 4, 3, 32, 32)
    per_frame = torch.cat([net(clip[:, t:t + 1]) for t in range(4)])
    assert torch.allclose(net(clip), per_frame.mean(0, keepdim=True), atol=1e-5)


def test_sub_network_choice_and_warning() -> None:
    torch.manual_seed(0)
    net = FrameFlexibleNet(5, [8, 4, 16], width=8, private=True, weight_alteration=True).eval()
    assert net.frame_counts == (4, 8, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for frames, branch in ((4, 0), (8, 1), (16, 2)):
            net(torch.randn(1, frames, 3, 32, 32))
            assert net.state.branch == branch and net.state.frames == frames
    with pytest.warns(UserWarning, match="no sub-network was trained for 6-frame clips.*running the 8-frame one"):
        net(torch.randn(1, 6, 3, 32, 32))
    assert net.state.branch == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net(torch.randn(1, 6, 3, 32, 32))  # warned once per frame count


def test_shared_model_runs_any_frame_count_silently() -> None:
    net = FrameFlexibleNet(5, [16], width=8).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert net(torch.randn(2, 4, 3, 32, 32)).shape == (2, 5)


def test_bad_clip_shape_and_options() -> None:
    net = FrameFlexibleNet(5, [4], width=8)
    with pytest.raises(ValueError, match=r"\[N, T, 3, H, W\]"):
        net(torch.randn(4, 3, 32, 32))
    with pytest.raises(ValueError, match="private=True"):
        FrameFlexibleNet(5, [4, 8], width=8, weight_alteration=True)


def test_low_frame_ce_adds_the_label_loss_of_every_other_frame_count() -> None:
    torch.manual_seed(1)
    logits = {f: torch.randn(4, 3) for f in (4, 8, 16)}
    labels = torch.tensor([0, 1, 2, 0])
    plain = ffn_losses(logits, labels, kl_weight=1.0)
    extra = ffn_losses(logits, labels, kl_weight=1.0, low_frame_ce=True)
    assert sorted(extra) == ["ce", "ce_4", "ce_8", "kl_4", "kl_8"]
    assert all(torch.equal(extra[k], plain[k]) for k in plain)
    for f in (4, 8):
        assert extra[f"ce_{f}"].item() == pytest.approx(torch.nn.functional.cross_entropy(logits[f], labels).item())
