"""SimCLR's batched augmentation: each view equals torchvision's own per-sample functional transforms replayed with
the same parameters (the reference), every draw is a pure function of the sample's seed, and the draws follow the
configured probabilities and ranges."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from torchrepro.simclr.augment import SimCLRAugment, blur_kernel_size, keyed_uniforms
from torchrepro.simclr.config import AugmentConfig


def reference_view(image: torch.Tensor, p: dict, i: int, aug: SimCLRAugment) -> torch.Tensor:
    """One sample's view through torchvision's functional transforms, one operation after another."""
    x = image.float() / 255
    x = TF.resized_crop(x, int(p["top"][i]), int(p["left"][i]), int(p["height"][i]), int(p["width"][i]),
                        [aug.size, aug.size], interpolation=InterpolationMode.BILINEAR, antialias=False)
    if p["flip"][i]:
        x = TF.horizontal_flip(x)
    if p["jitter"][i]:
        b, c, s, h = p["factors"][i].tolist()
        ops = [lambda v: TF.adjust_brightness(v, b), lambda v: TF.adjust_contrast(v, c),
               lambda v: TF.adjust_saturation(v, s), lambda v: TF.adjust_hue(v, h)]
        for j in p["order"][i].tolist():
            x = ops[j](x)
    if p["grey"][i]:
        x = TF.rgb_to_grayscale(x, num_output_channels=3)
    if p["blur"][i]:
        sigma = float(p["sigma"][i])
        x = TF.gaussian_blur(x, [aug.kernel, aug.kernel], [sigma, sigma])
    return x


@pytest.mark.parametrize("channels, size, out", [(1, 28, 28), (3, 32, 32), (3, 40, 24)])
@pytest.mark.parametrize("always", [False, True], ids=["paper-probabilities", "every-op"])
def test_batched_views_equal_torchvision_per_sample(channels: int, size: int, out: int, always: bool):
    cfg = AugmentConfig(crop_scale=[0.2, 1.0])
    if always:
        cfg = dataclasses.replace(cfg, flip_p=1.0, jitter_p=1.0, grayscale_p=1.0 if channels == 3 else 0.2, blur_p=1.0)
    aug = SimCLRAugment(cfg, out, channels)
    gen = torch.Generator().manual_seed(channels * size)
    images = torch.randint(0, 256, (24, channels, size, size), dtype=torch.uint8, generator=gen)
    seeds = torch.randint(0, 2**62, (24,), generator=gen)
    v1, v2 = aug(images, seeds)
    assert v1.shape == (24, channels, out, out) and not torch.allclose(v1, v2)
    for view, batch in ((0, v1), (1, v2)):
        p = aug.params(seeds, view, size, size)
        for i in range(len(images)):
            expected = reference_view(images[i], p, i, aug)
            assert torch.allclose(batch[i], expected, atol=2e-5), (view, i, (batch[i] - expected).abs().max())


def test_views_are_a_pure_function_of_the_sample_seed():
    aug = SimCLRAugment(AugmentConfig(), 28, 1)
    images = torch.randint(0, 256, (16, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    seeds = torch.arange(16) * 7919 + 3
    a1, a2 = aug(images, seeds)
    order = torch.randperm(16, generator=torch.Generator().manual_seed(1))
    b1, b2 = aug(images[order][:9], seeds[order][:9])  # another batch: other neighbours, other positions
    assert torch.equal(a1[order][:9], b1) and torch.equal(a2[order][:9], b2)
    c1, _ = aug(images, seeds + 1)
    assert not torch.equal(a1, c1)


def test_draws_follow_the_configured_probabilities_and_ranges():
    cfg = AugmentConfig(crop_scale=[0.3, 0.9], jitter_strength=0.5)
    aug = SimCLRAugment(cfg, 32, 3)
    p = aug.params(torch.arange(20_000), 0, 32, 32)
    assert abs(p["flip"].float().mean() - 0.5) < 0.02 and abs(p["jitter"].float().mean() - 0.8) < 0.02
    assert abs(p["grey"].float().mean() - 0.2) < 0.02 and abs(p["blur"].float().mean() - 0.5) < 0.02
    area = (p["height"] * p["width"]).float() / 32**2
    assert area.min() > 0.26 and area.max() < 0.95  # the scale range, up to rounding of the box sides
    assert (p["top"] + p["height"] <= 32).all() and (p["left"] + p["width"] <= 32).all() and (p["top"] >= 0).all()
    b, c, s, h = p["factors"].unbind(1)
    assert b.min() >= 0.6 and b.max() <= 1.4 and h.abs().max() <= 0.1 and s.min() >= 0.6
    assert len(set(map(tuple, p["order"].tolist()))) == 24  # every order of the four operations occurs
    grey = SimCLRAugment(cfg, 28, 1).params(torch.arange(1000), 0, 28, 28)
    assert not grey["grey"].any() and grey["order"].shape == (1000, 2)  # brightness and contrast only


def test_keyed_uniforms_are_uniform_and_independent_of_the_batch():
    u = keyed_uniforms(torch.arange(5000), 8)
    assert u.shape == (5000, 8) and 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.01
    assert abs(np.corrcoef(u[:, 0], u[:, 1])[0, 1]) < 0.05
    assert np.array_equal(keyed_uniforms(torch.tensor([41, 42]), 8)[1], keyed_uniforms(torch.tensor([42]), 8)[0])


def test_blur_kernel_is_about_a_tenth_of_the_side():
    assert [blur_kernel_size(s, 0.1) for s in (16, 28, 32, 96, 224)] == [3, 3, 3, 9, 23]
