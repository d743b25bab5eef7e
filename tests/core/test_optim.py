"""Optimiser groups and LR schedules checked against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from torchrepro.core.config import OptimConfig, SchedConfig
from torchrepro.core.errors import ConfigError
from torchrepro.core.optim import ScheduleFactor, build_optimizer, build_scheduler


def _groups():
    backbone, head = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
    return {"backbone": backbone.parameters(), "head": head.parameters()}, backbone


def test_group_learning_rates_and_frozen_params():
    groups, backbone = _groups()
    backbone.weight.requires_grad_(False)
    opt = build_optimizer(groups, OptimConfig(name="sgd", lr=0.1, group_lr={"backbone": 0.1}))
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs == pytest.approx({"backbone": 0.01, "head": 0.1})
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == 2 + 3  # frozen weight left out


def test_unknown_group_is_a_config_error():
    groups, _ = _groups()
    with pytest.raises(ConfigError, match="optim.group_lr.neck"):
        build_optimizer(groups, OptimConfig(group_lr={"neck": 0.1}))


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_optimisers(name):
    groups, _ = _groups()
    opt = build_optimizer(groups, OptimConfig(name=name, lr=1e-3, betas=[0.5, 0.999]))
    assert type(opt).__name__.lower() == name
    if name != "sgd":
        assert opt.param_groups[0]["betas"] == (0.5, 0.999)


def test_step_multistep_cosine_closed_forms():
    f = ScheduleFactor(SchedConfig(name="step", step_size=7, gamma=0.1), 1.0, 30)
    assert [f(t) for t in (0, 6, 7, 14)] == pytest.approx([1, 1, 0.1, 0.01])
    f = ScheduleFactor(SchedConfig(name="multistep", milestones=[40, 70], gamma=0.1), 1.0, 120)
    assert [f(t) for t in (0, 39, 40, 69, 70)] == pytest.approx([1, 1, 0.1, 0.1, 0.01])
    f = ScheduleFactor(SchedConfig(name="cosine", eta_min=0.1), 1.0, 10)
    assert f(0) == pytest.approx(1.0) and f(10) == pytest.approx(0.1)
    assert f(5) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))


def test_linear_warmup_composes_with_multistep():
    # Bag of Tricks: 10-epoch linear warm-up from 0.1x, milestones 40/70 on the same clock.
    f = ScheduleFactor(SchedConfig(name="multistep", milestones=[40, 70], warmup="linear", warmup_length=10,
                                   warmup_start_factor=0.1), 1.0, 120)
    assert f(0) == pytest.approx(0.1) and f(5) == pytest.approx(0.55) and f(10) == pytest.approx(1.0)
    assert f(45) == pytest.approx(0.1)


def test_exponential_warmup_matches_san_exponential_lr():
    # SAN: ExponentialLR(gamma=1.259) from 8e-6 for 10 epochs reaches ~8e-5 (x10).
    base = 8e-5
    f = ScheduleFactor(SchedConfig(warmup="exponential", warmup_length=10, warmup_start_factor=0.1), base, 100)
    lrs = [base * f(t) for t in range(11)]
    assert lrs[0] == pytest.approx(8e-6)
    ratios = [b / a for a, b in zip(lrs, lrs[1:])]
    assert ratios == pytest.approx([10 ** 0.1] * 10)  # 1.2589..., the seed's gamma
    assert lrs[10] == pytest.approx(base)


def test_lambda_scheduler_steps_the_optimizer_and_round_trips_state():
    groups, _ = _groups()
    opt = build_optimizer(groups, OptimConfig(lr=1.0, group_lr={"backbone": 0.5}))
    sched = build_scheduler(opt, SchedConfig(name="step", step_size=2, gamma=0.5), 10)["scheduler"]
    for _ in range(3):
        opt.step()
        sched.step()
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.25, 0.5])
    state = sched.state_dict()
    assert state["last_epoch"] == 3
