"""BNNeck (Luo et al., "Bag of Tricks and A Strong Baseline for Deep Person Re-identification", CVPRW 2019, §3.6).

The triplet loss is applied to the pooled feature ``f_t``; a BatchNorm1d then gives ``f_i``, on which a bias-free
linear classifier computes the ID loss, and ``f_i`` is the feature used at inference. Normalising between the
two losses lets them act on differently shaped embedding spaces (triplet: free Euclidean; ID: near a
hypersphere). The BN's shift (β) is frozen at zero and the classifier has no bias, both as in the paper, so the
classifier's decision boundaries pass through the origin of the normalised space.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["BNNeck"]


class BNNeck(nn.Module):
    """``f_t`` [N, D] → (``f_i`` = BN(f_t), logits = W f_i). ``num_classes=0`` keeps only the BN."""

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(dim)
        self.bn.bias.requires_grad_(False)  # β frozen at 0 (§3.6)
        nn.init.constant_(self.bn.weight, 1.0)
        nn.init.constant_(self.bn.bias, 0.0)
        self.classifier = nn.Linear(dim, num_classes, bias=False) if num_classes > 0 else None
        if self.classifier is not None:
            nn.init.normal_(self.classifier.weight, std=0.001)  # the paper's initialisation

    def forward(self, f_t: Tensor) -> tuple[Tensor, Tensor | None]:
        f_i = self.bn(f_t)
        return f_i, (self.classifier(f_i) if self.classifier is not None else None)
