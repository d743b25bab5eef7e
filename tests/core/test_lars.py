"""LARS (optim.name=lars): one step against the update written out by hand, and the 1-d exclusion."""

from __future__ import annotations

import torch
from torch import nn

from torchrepro.core.config import OptimConfig
from torchrepro.core.optim import LARS, build_optimizer


def test_one_step_matches_the_formula_and_skips_1d_tensors():
    torch.manual_seed(0)
    layer = nn.Linear(4, 3)
    w0, b0 = layer.weight.detach().clone(), layer.bias.detach().clone()
    opt = build_optimizer({"all": layer.parameters()}, OptimConfig(name="lars", lr=0.5, momentum=0.9,
                                                                   weight_decay=0.01, trust_coefficient=0.02))
    assert isinstance(opt, LARS)
    for step in range(2):
        opt.zero_grad()
        layer(torch.randn(8, 4)).pow(2).sum().backward()
        gw, gb = layer.weight.grad.clone(), layer.bias.grad.clone()
        if step == 0:
            g = gw + 0.01 * w0
            expected_w = w0 - 0.5 * (0.02 * w0.norm() / g.norm()) * g
            expected_b = b0 - 0.5 * gb  # bias: no weight decay, no trust ratio
        opt.step()
        if step == 0:
            assert torch.allclose(layer.weight, expected_w, atol=1e-6)
            assert torch.allclose(layer.bias, expected_b, atol=1e-6)
            first_buf = opt.state[layer.bias]["momentum_buffer"].clone()
    assert torch.allclose(opt.state[layer.bias]["momentum_buffer"], 0.9 * first_buf + gb, atol=1e-6)
