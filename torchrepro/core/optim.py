"""Optimisers with per-group learning rates, and LR schedules with a composable warm-up.

Schedules are closed-form factors of the base LR evaluated by :class:`ScheduleFactor` inside a
``LambdaLR``; the warm-up multiplies the main schedule on the same clock, as in the re-ID "Bag of Tricks"
``WarmupMultiStepLR`` (Luo et al. 2019, §3.1). Being a plain object with a ``__dict__``, the factor is
saved in and restored from checkpoints by ``LambdaLR.state_dict``.
"""

from __future__ import annotations

import bisect
import math
from typing import Iterable

import torch
from torch import nn

from torchrepro.core.config import OptimConfig, SchedConfig
from torchrepro.core.errors import ConfigError


def param_groups(groups: dict[str, Iterable[nn.Parameter]], cfg: OptimConfig) -> list[dict]:
    """Named parameter groups → optimiser groups with ``lr = cfg.lr * cfg.group_lr.get(name, 1)``.

    Parameters with ``requires_grad=False`` (a frozen backbone) are left out; empty groups are dropped.
    """
    unknown = set(cfg.group_lr) - set(groups)
    if unknown:
        name = sorted(unknown)[0]
        raise ConfigError(f"config key 'optim.group_lr.{name}' names no parameter group: valid groups are {', '.join(groups)}")
    out = []
    for name, params in groups.items():
        trainable = [p for p in params if p.requires_grad]
        if trainable:
            out.append({"name": name, "params": trainable, "lr": cfg.lr * cfg.group_lr.get(name, 1.0)})
    if not out:
        raise ConfigError("no trainable parameters: check model.freeze_backbone and the model's head")
    return out


class LARS(torch.optim.Optimizer):
    """Layer-wise Adaptive Rate Scaling (You et al., "Large Batch Training of Convolutional Networks", 2017), as
    SimCLR uses it (Chen et al., ICML 2020, §2.2; the authors' TensorFlow ``LARSOptimizer``).

    For each weight tensor w with gradient g: g ← g + λw, then g ← η·‖w‖/‖g‖ · g (the trust ratio; 1 when either
    norm is 0), then SGD with momentum: v ← μv + g, w ← w − lr·v. Tensors of one dimension or less (biases, batch
    norm weights) skip both the weight decay and the trust ratio (``exclude_1d``), as in the paper.
    """

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 trust_coefficient: float = 0.001, exclude_1d: bool = True) -> None:
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, trust_coefficient=trust_coefficient,
                        exclude_1d=exclude_1d)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001, ANN201 - torch's signature
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if not (group["exclude_1d"] and p.ndim <= 1):
                    g = g.add(p, alpha=group["weight_decay"])
                    w_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(g)
                    trust = torch.where((w_norm > 0) & (g_norm > 0),
                                        group["trust_coefficient"] * w_norm / g_norm, torch.ones_like(w_norm))
                    g = g * trust
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.clone(g).detach()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(g)
                p.add_(state["momentum_buffer"], alpha=-group["lr"])
        return loss


def build_optimizer(groups: dict[str, Iterable[nn.Parameter]], cfg: OptimConfig) -> torch.optim.Optimizer:
    """SGD / Adam / AdamW / LARS over named parameter groups."""
    pgroups = param_groups(groups, cfg)
    if cfg.name == "lars":
        return LARS(pgroups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                    trust_coefficient=cfg.trust_coefficient)
    if cfg.name == "sgd":
        return torch.optim.SGD(pgroups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)
    betas = (cfg.betas[0], cfg.betas[1])
    adam = torch.optim.Adam if cfg.name == "adam" else torch.optim.AdamW
    return adam(pgroups, lr=cfg.lr, betas=betas, eps=cfg.eps, weight_decay=cfg.weight_decay, fused=cfg.fused or None)


class ScheduleFactor:
    """LR multiplier at time ``t`` (epochs or steps): warm-up factor × main schedule factor."""

    def __init__(self, cfg: SchedConfig, base_lr: float, total: int) -> None:
        self.name = cfg.name
        self.step_size = cfg.step_size
        self.gamma = cfg.gamma
        self.milestones = sorted(cfg.milestones)
        self.t_max = cfg.t_max or total
        self.eta_min_ratio = cfg.eta_min / base_lr
        self.warmup = cfg.warmup
        self.warmup_length = cfg.warmup_length
        self.start = cfg.warmup_start_factor

    def main(self, t: int) -> float:
        if self.name == "step":
            return self.gamma ** (t // self.step_size)
        if self.name == "multistep":
            return self.gamma ** bisect.bisect_right(self.milestones, t)
        if self.name == "cosine":
            progress = min(t, self.t_max) / max(1, self.t_max)
            return self.eta_min_ratio + (1 - self.eta_min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
        return 1.0

    def warm(self, t: int) -> float:
        if self.warmup == "none" or t >= self.warmup_length:
            return 1.0
        alpha = t / self.warmup_length
        if self.warmup == "linear":
            return self.start + (1 - self.start) * alpha
        return self.start ** (1 - alpha)  # exponential: constant ratio per interval, start → 1

    def __call__(self, t: int) -> float:
        return self.warm(t) * self.main(t)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: SchedConfig, total: int) -> dict | None:
    """Lightning ``lr_scheduler`` config, or None when there is neither a schedule nor a warm-up."""
    if cfg.name == "none" and cfg.warmup == "none":
        return None
    base_lr = optimizer.param_groups[0]["lr"]
    factor = ScheduleFactor(cfg, base_lr, total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return {"scheduler": scheduler, "interval": cfg.interval, "frequency": 1}
