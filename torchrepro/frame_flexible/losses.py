"""FFN's training objective (Zhang et al., "Frame Flexible Network", CVPR 2023, §3.2, Eq. 3).

The high-frame sub-network learns from the labels; each lower-frame sub-network is pulled towards the high-frame
prediction, which is detached so the teacher is not dragged towards the students:

    L = CE(p_H, y) + λ · [KL(p_H ‖ p_L) + KL(p_H ‖ p_M)]

written in the reference code as ``nn.KLDivLoss(reduction="batchmean")(log_softmax(z_L), softmax(z_H.detach()))``
(that module's first argument is the student's log-probabilities and its second the target distribution, so the
divergence it computes is KL(target ‖ student), summed over classes and averaged over the batch).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["distillation_kl", "ffn_losses"]


def distillation_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """KL(softmax(teacher) ‖ softmax(student)) summed over classes, averaged over the batch; no gradient reaches
    the teacher."""
    target = F.softmax(teacher_logits.detach(), dim=1)
    return F.kl_div(F.log_softmax(student_logits, dim=1), target, reduction="batchmean")


def ffn_losses(logits: dict[int, torch.Tensor], labels: torch.Tensor, kl_weight: float,
               low_frame_ce: bool = False) -> dict[str, torch.Tensor]:
    """Named terms of FFN's loss for logits keyed by frame count: ``ce`` on the most frames, ``kl_<F>`` (weighted
    by λ = ``kl_weight``) for every other frame count ``F``, and with ``low_frame_ce`` a ``ce_<F>`` term for them
    too (not in the paper, whose lower-frame sub-networks learn only from the high-frame one)."""
    high = max(logits)
    terms = {"ce": F.cross_entropy(logits[high], labels)}
    for frames in sorted(logits):
        if frames != high:
            terms[f"kl_{frames}"] = kl_weight * distillation_kl(logits[frames], logits[high])
            if low_frame_ce:
                terms[f"ce_{frames}"] = F.cross_entropy(logits[frames], labels)
    return terms
