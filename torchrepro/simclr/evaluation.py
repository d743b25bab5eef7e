"""The two evaluation protocols of a frozen representation, as self-supervised papers report them.

* **kNN** (Wu et al., CVPR 2018): :func:`torchrepro.retrieval.knn.knn_class_scores` on L2-normalised features
  against a memory bank of labelled training images (k = 200, τ = 0.1).
* **Linear evaluation** (SimCLR, Chen et al., ICML 2020, §2.3 "Evaluation Protocol"): a linear
  classifier trained on top of the frozen encoder. Here its features are extracted once (no augmentation), then
  standardised with the bank's mean and standard deviation, and a multinomial logistic regression with an L2
  penalty is fitted by full-batch L-BFGS — deterministic, cheap enough to run at every validation, and the same
  estimator as scikit-learn's ``LogisticRegression`` (whose raw-pixel score on Fashion-MNIST, 0.84, is the
  usual reference).

Both run on the rows every rank holds after the ordered gather, so every rank computes the same numbers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from torchrepro.retrieval.knn import knn_class_scores


def linear_probe(bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor, num_classes: int,
                 steps: int = 100, weight_decay: float = 1e-4) -> torch.Tensor:
    """Predicted classes of ``queries`` by a logistic regression fitted on ``(bank, bank_labels)``: ``steps``
    L-BFGS iterations (strong-Wolfe line search) on mean cross-entropy + ``weight_decay``/2 · ‖W‖²."""
    with torch.inference_mode(False), torch.enable_grad():
        x = bank.detach().cpu().float().clone()
        y = bank_labels.detach().cpu().long().clone()
        mean, std = x.mean(dim=0), x.std(dim=0).clamp_min(1e-6)
        x = (x - mean) / std
        weight = torch.zeros(x.shape[1], num_classes, requires_grad=True)
        bias = torch.zeros(num_classes, requires_grad=True)
        opt = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=steps, history_size=20,
                                tolerance_grad=1e-9, tolerance_change=1e-12, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = F.cross_entropy(x @ weight + bias, y) + 0.5 * weight_decay * weight.pow(2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        q = (queries.detach().cpu().float() - mean) / std
        return (q @ weight.detach() + bias.detach()).argmax(dim=1)


def knn_and_linear(bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor, labels: torch.Tensor,
                   num_classes: int, knn_k: int, knn_temperature: float, linear_steps: int,
                   linear_weight_decay: float) -> dict[str, float]:
    """``knn_top1`` and ``linear_top1`` of ``queries`` (with their true ``labels``) against the labelled bank."""
    labels = labels.cpu().long()
    knn = knn_class_scores(bank, bank_labels, queries, num_classes, knn_k, knn_temperature).argmax(dim=1)
    linear = linear_probe(bank, bank_labels, queries, num_classes, linear_steps, linear_weight_decay)
    return {"knn_top1": float((knn == labels).double().mean()), "linear_top1": float((linear == labels).double().mean())}
