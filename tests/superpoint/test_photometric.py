"""Photometric augmentation (torchrepro.superpoint.photometric): ranges, determinism, each primitive's effect."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from torchrepro.core.errors import ConfigError
from torchrepro.superpoint.photometric import (
    PRIMITIVES,
    PhotometricConfig,
    additive_gaussian_noise,
    additive_shade,
    additive_speckle_noise,
    motion_blur,
    photometric_augment,
    random_brightness,
    random_contrast,
)

SHAPE = (120, 160)


def constant(value: float = 128.0, shape=SHAPE) -> np.ndarray:
    return np.full(shape, value, np.float32)


def rngs(n: int):
    return (np.random.default_rng(seed) for seed in range(n))


def test_defaults_are_the_shapes_config_and_pass_check():
    cfg = PhotometricConfig()
    cfg.check("data.photometric")
    assert cfg.primitives == list(PRIMITIVES) and len(PRIMITIVES) == 6 and cfg.random_order
    assert (cfg.max_abs_change, cfg.strength_range, cfg.stddev_range, cfg.prob_range) == (75, [0.3, 1.8], [0, 15],
                                                                                         [0, 0.0035])
    assert (cfg.transparency_range, cfg.kernel_size_range, cfg.max_kernel_size) == ([-0.5, 0.8], [50, 100], 7)


def test_augment_output_range_dtype_and_determinism():
    image = np.random.default_rng(0).integers(0, 256, SHAPE, dtype=np.uint8)
    cfg = PhotometricConfig()
    outs = [photometric_augment(image, np.random.default_rng(s), cfg) for s in (1, 1, 2)]
    for out in outs:
        assert out.dtype == np.float32 and out.shape == SHAPE and out.min() >= 0 and out.max() <= 255
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not np.array_equal(outs[0], outs[2])
    assert not np.array_equal(outs[0], image)
    # saturated inputs stay in range whatever the draw
    for rng in rngs(20):
        out = photometric_augment(np.full(SHAPE, 255, np.uint8), rng, cfg)
        assert 0 <= out.min() and out.max() <= 255


def test_disabled_augmentation_returns_the_image_and_leaves_the_rng_alone():
    image = np.random.default_rng(0).integers(0, 256, SHAPE, dtype=np.uint8)
    rng = np.random.default_rng(3)
    out = photometric_augment(image, rng, PhotometricConfig(enable=False))
    np.testing.assert_array_equal(out, image.astype(np.float32))
    assert rng.random() == np.random.default_rng(3).random()


def test_fixed_order_applies_the_primitives_in_sequence():
    image = np.random.default_rng(0).uniform(0, 255, SHAPE).astype(np.float32)
    cfg = PhotometricConfig(primitives=["random_brightness", "motion_blur"], random_order=False)
    rng = np.random.default_rng(4)
    expected = motion_blur(random_brightness(image, rng, 75.0), rng, 7)
    np.testing.assert_array_equal(photometric_augment(image, np.random.default_rng(4), cfg), expected)


def test_random_order_varies_between_draws():
    # brightness then contrast differs from contrast then brightness only through clipping; use an order-revealing
    # pair instead: speckle noise after motion blur keeps pure 0/255 pixels, before it they get blurred away
    image = constant(128.0, (200, 200))
    cfg = PhotometricConfig(primitives=["additive_speckle_noise", "motion_blur"], prob_range=[0.01, 0.01],
                            max_kernel_size=7)
    blurred_speckles = {bool(((out := photometric_augment(image, rng, cfg)) == 255).sum() < 0.5 * (out > 200).sum())
                        for rng in rngs(40)}
    assert blurred_speckles == {True, False}


def test_brightness_shifts_the_mean_within_the_range():
    shifts = np.array([random_brightness(constant(), rng, 75.0).mean() - 128 for rng in rngs(300)])
    assert np.abs(shifts).max() <= 75 and np.abs(shifts).max() > 65
    assert (shifts > 0).any() and (shifts < 0).any()
    out = random_brightness(constant(), np.random.default_rng(0), 75.0)
    assert np.ptp(out) == 0  # one shift for the whole image


def test_contrast_scales_deviations_from_the_mean():
    image = constant(100.0)
    image[:, 80:] = 150.0  # mean 125, deviations ±25
    factors = []
    for rng in rngs(100):
        out = random_contrast(image, rng, (0.3, 1.8))
        assert out.mean() == pytest.approx(125.0, abs=1e-3)
        factor = (out[0, 100] - 125.0) / 25.0
        np.testing.assert_allclose(out - 125.0, (image - 125.0) * factor, atol=1e-3)
        factors.append(factor)
    assert 0.3 <= min(factors) < 0.4 and 1.7 < max(factors) <= 1.8


def test_gaussian_noise_std_is_within_the_range():
    stds = []
    for rng in rngs(50):
        out = additive_gaussian_noise(constant(), rng, (0.0, 15.0))
        assert abs(out.mean() - 128) < 0.5
        stds.append(out.std())
    # 19200 pixels: the sample std is within ~1% of the drawn std
    assert max(stds) <= 15 * 1.03 and max(stds) > 12 and min(stds) < 3


def test_speckle_noise_sets_few_pixels_to_black_or_white():
    image = constant(128.0, (300, 300))
    for rng in rngs(20):
        out = additive_speckle_noise(image, rng, (0.0, 0.0035))
        black, white = (out == 0).mean(), (out == 255).mean()
        assert black <= 0.0035 * 1.3 + 1e-3 and white <= 0.0035 * 1.3 + 1e-3
        assert set(np.unique(out)) <= {0.0, 128.0, 255.0}
    out = additive_speckle_noise(image, np.random.default_rng(0), (0.01, 0.01))
    assert 0.007 < (out == 0).mean() < 0.013 and 0.007 < (out == 255).mean() < 0.013


def test_shade_darkens_or_brightens_smoothly_within_the_transparency():
    signs = set()
    for rng in rngs(40):
        out = additive_shade(constant(), rng, transparency_range=(-0.5, 0.8))
        delta = out - 128.0
        assert delta.max() <= 0.5 * 128 + 1e-3 and delta.min() >= -0.8 * 128 - 1e-3
        assert (delta >= -1e-3).all() or (delta <= 1e-3).all()  # one transparency: shade or light, not both
        signs.add(np.sign(delta.sum()))
        assert np.abs(np.diff(out, axis=1)).max() < 20  # blurred: no hard ellipse edges
    assert signs >= {-1.0, 1.0}


def test_shade_kernel_scales_with_the_image():
    # a bigger image gets a proportionally bigger kernel: the shading stays as smooth relative to the image
    small = additive_shade(constant(), np.random.default_rng(1), transparency_range=(0.8, 0.8))
    large = additive_shade(constant(128.0, (240, 320)), np.random.default_rng(1), transparency_range=(0.8, 0.8))
    assert np.abs(np.diff(large, axis=1)).max() < np.abs(np.diff(small, axis=1)).max()
    tiny = additive_shade(constant(128.0, (12, 16)), np.random.default_rng(1))
    assert tiny.shape == (12, 16) and 0 <= tiny.min() and tiny.max() <= 255


def test_motion_blur_preserves_constant_regions_and_spreads_a_dot_along_a_line():
    np.testing.assert_allclose(motion_blur(constant(), np.random.default_rng(0), 7), 128.0, atol=1e-3)
    dot = np.zeros((31, 31), np.float32)
    dot[15, 15] = 255.0
    sizes = set()
    for rng in rngs(60):
        out = motion_blur(dot, rng, 7)
        assert out.sum() == pytest.approx(255.0, rel=1e-4)  # the kernel sums to 1
        ys, xs = np.nonzero(out > 1e-3)
        extent = max(np.ptp(ys), np.ptp(xs)) + 1
        assert extent <= 7 and min(np.ptp(ys), np.ptp(xs)) in (0, extent - 1)  # a line: row, column or diagonal
        sizes.add(int(extent))
    assert sizes == {1, 3, 5, 7}


def test_channels_are_supported():
    image = np.random.default_rng(0).uniform(0, 255, (*SHAPE, 3)).astype(np.float32)
    out = photometric_augment(image, np.random.default_rng(1), PhotometricConfig())
    assert out.shape == image.shape and out.dtype == np.float32


@pytest.mark.parametrize("overrides, key", [
    ({"primitives": ["random_brightness", "gaussian_blur"]}, "primitives"),
    ({"primitives": ["motion_blur", "motion_blur"]}, "primitives"),
    ({"primitives": "all"}, "primitives"),
    ({"max_abs_change": -1}, "max_abs_change"),
    ({"strength_range": [1.8, 0.3]}, "strength_range"),
    ({"strength_range": [0.3]}, "strength_range"),
    ({"stddev_range": [-1, 15]}, "stddev_range"),
    ({"prob_range": [0, 0.7]}, "prob_range"),
    ({"transparency_range": [-0.5, 1.5]}, "transparency_range"),
    ({"kernel_size_range": [0, 100]}, "kernel_size_range"),
    ({"kernel_size_range": [50.5, 100]}, "kernel_size_range"),
    ({"max_kernel_size": 0}, "max_kernel_size"),
    ({"nb_ellipses": -1}, "nb_ellipses"),
    ({"random_order": "yes"}, "random_order"),
])
def test_config_check_names_the_bad_key(overrides, key):
    with pytest.raises(ConfigError, match=rf"'data\.photometric\.{key}'") as err:
        dataclasses.replace(PhotometricConfig(), **overrides).check("data.photometric")
    assert "\n" not in str(err.value)


def test_unknown_primitive_lists_the_known_ones():
    with pytest.raises(ConfigError) as err:
        PhotometricConfig(primitives=["random_brightness", "gaussian_blur"]).check("data.photometric")
    message = str(err.value)
    assert "gaussian_blur" in message and all(name in message for name in PRIMITIVES)
