"""Random homographies and warps (torchrepro.superpoint.homography): sampling, direction, warps, checks."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch

from torchrepro.core.errors import ConfigError, DataError
from torchrepro.superpoint.homography import (
    HomographyConfig,
    check_homography,
    corner_error,
    homography_from_points,
    inside_mask,
    sample_homographies,
    sample_homography,
    sample_patch,
    valid_mask,
    warp_image,
    warp_images_torch,
    warp_points,
    warp_points_torch,
)

SHAPE = (120, 160)  # rows, cols: the MagicPoint training size
CENTRE = np.array([[(SHAPE[1] - 1) / 2, (SHAPE[0] - 1) / 2]])
CORNERS = np.array([[0.0, 0.0], [SHAPE[1] - 1.0, 0.0], [SHAPE[1] - 1.0, SHAPE[0] - 1.0], [0.0, SHAPE[0] - 1.0]])


def only(component: str, **overrides) -> HomographyConfig:
    """A config with one component enabled."""
    flags = {k: k == component for k in ("translation", "rotation", "scaling", "perspective")}
    return HomographyConfig(**flags, **overrides)


def smooth_image(rng: np.random.Generator, shape=SHAPE, sigma: float = 4.0) -> np.ndarray:
    img = cv2.GaussianBlur(rng.random(shape).astype(np.float32), (0, 0), sigma)
    return (img - img.min()) / (img.max() - img.min())


def translation(tx: float, ty: float) -> np.ndarray:
    return np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


# ---------------------------------------------------------------------------------------------------- sampling
def test_sampling_is_deterministic_per_seed():
    cfg = HomographyConfig()
    a = sample_homography(np.random.default_rng(7), SHAPE, cfg)
    b = sample_homography(np.random.default_rng(7), SHAPE, cfg)
    c = sample_homography(np.random.default_rng(8), SHAPE, cfg)
    assert a.shape == (3, 3) and a.dtype == np.float64 and a[2, 2] == 1.0
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    np.testing.assert_array_equal(sample_homographies(np.random.default_rng(7), SHAPE, cfg, 3)[0], a)


def test_defaults_are_the_shapes_config_and_pass_check():
    cfg = HomographyConfig()
    cfg.check("data.homography")
    assert (cfg.patch_ratio, cfg.scaling_amplitude, cfg.perspective_amplitude_x, cfg.max_angle) == (0.8, 0.2, 0.2, 1.57)
    assert cfg.allow_artifacts and cfg.translation_overflow == 0.05 and (cfg.n_scales, cfg.n_angles) == (5, 25)


@pytest.mark.parametrize("artifacts", [False, True])
def test_translation_only_is_a_zoom_plus_shift_within_the_margin(artifacts):
    cfg = only("translation", allow_artifacts=artifacts, translation_overflow=0.05)
    rng = np.random.default_rng(0)
    for _ in range(50):
        H = sample_homography(rng, SHAPE, cfg)
        # the centred patch of side 0.8 stretched onto the frame: x' = x / 0.8 + t, no shear, no perspective
        np.testing.assert_allclose(H[[0, 1, 2, 2], [1, 0, 0, 1]], 0.0, atol=1e-12)
        np.testing.assert_allclose([H[0, 0], H[1, 1]], 1 / 0.8, rtol=1e-9)
        patch = warp_points(CORNERS, np.linalg.inv(H)) / (np.array(SHAPE[::-1]) - 1)
        slack = 0.05 if artifacts else 0.0
        assert patch.min() >= -slack - 1e-9 and patch.max() <= 1 + slack + 1e-9


def test_rotation_only_is_rigid_about_the_centre():
    cfg = only("rotation", patch_ratio=1.0, max_angle=1.0)
    rng = np.random.default_rng(1)
    angles = []
    for _ in range(40):
        H = sample_homography(rng, SHAPE, cfg)
        np.testing.assert_allclose(warp_points(CENTRE, H), CENTRE, atol=1e-9)  # the centre stays put
        np.testing.assert_allclose(H[2], [0, 0, 1], atol=1e-12)
        np.testing.assert_allclose(H[:2, :2] @ H[:2, :2].T, np.eye(2), atol=1e-9)  # distances are preserved
        assert np.linalg.det(H[:2, :2]) == pytest.approx(1.0)  # a rotation, not a reflection
        angles.append(np.arctan2(H[1, 0], H[0, 0]))
    assert max(np.abs(angles)) <= 1.0 + 1e-9 and max(np.abs(angles)) > 0.5
    grid = np.linspace(-1.0, 1.0, 25)
    assert all(np.isclose(grid, a, atol=1e-9).any() for a in angles)  # one of the n_angles candidates


def test_scaling_only_is_an_isotropic_zoom_about_the_centre():
    cfg = only("scaling", patch_ratio=0.8, scaling_amplitude=0.2)
    rng = np.random.default_rng(2)
    zooms = []
    for _ in range(40):
        H = sample_homography(rng, SHAPE, cfg)
        np.testing.assert_allclose(warp_points(CENTRE, H), CENTRE, atol=1e-9)
        np.testing.assert_allclose(H[[0, 1, 2, 2], [1, 0, 0, 1]], 0.0, atol=1e-12)
        assert H[0, 0] == pytest.approx(H[1, 1])
        zooms.append(H[0, 0])
    scales = 1 / (0.8 * np.array(zooms))  # the patch is 0.8 · s of the image
    assert scales.min() >= 0.8 - 1e-9 and scales.max() <= 1.2 + 1e-9 and scales.std() > 0.01


def test_without_artifacts_the_warp_never_shows_the_border():
    cfg = dataclasses.replace(HomographyConfig(), allow_artifacts=False)
    rng = np.random.default_rng(3)
    for H in sample_homographies(rng, SHAPE, cfg, 200):
        # every output corner comes from inside the source's pixel-centre hull: no black border at all
        src = warp_points(CORNERS, np.linalg.inv(H))
        assert inside_mask(src, SHAPE).all(), src
        assert valid_mask(SHAPE, H, SHAPE).all()


def test_with_artifacts_rotations_use_the_whole_range():
    cfg = HomographyConfig()
    angles = [np.arctan2(*(np.diff(sample_patch(np.random.default_rng(s), SHAPE, cfg)[:2], axis=0)[0] *
                           np.array(SHAPE[::-1]))[::-1]) for s in range(300)]
    assert max(np.abs(angles)) > 1.3  # up to max_angle = 1.57 (+ keystone), not restricted to in-image angles


def test_accepted_configs_never_give_a_degenerate_patch():
    """The perspective bound of check(): at amplitudes just below patch_ratio/2 the patch stays convex."""
    cfg = HomographyConfig(perspective_amplitude_x=0.39, perspective_amplitude_y=0.39, scaling_amplitude=0.99)
    cfg.check("h")
    rng = np.random.default_rng(4)
    for _ in range(300):
        quad = sample_patch(rng, SHAPE, cfg) * (np.array(SHAPE[::-1]) - 1)
        edges = np.roll(quad, -1, axis=0) - quad
        cross = edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1] - edges[:, 1] * np.roll(edges, -1, axis=0)[:, 0]
        assert (cross > 0).all()  # convex, same orientation as the output frame: no crossing corners


# ---------------------------------------------------------------------------------------------------- direction
def blob(shape, centre_xy, sigma=1.5) -> np.ndarray:
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]]
    return np.exp(-((xs - centre_xy[0]) ** 2 + (ys - centre_xy[1]) ** 2) / (2 * sigma ** 2)).astype(np.float32)


def centroid(image: np.ndarray) -> np.ndarray:
    ys, xs = np.mgrid[0:image.shape[0], 0:image.shape[1]]
    return np.array([(xs * image).sum(), (ys * image).sum()]) / image.sum()


def test_warp_image_moves_a_dot_where_warp_points_says():
    # a hand-made translation: the dot at (40, 50) must appear at (45, 47)
    image = np.zeros(SHAPE, np.uint8)
    image[50, 40] = 255
    warped = warp_image(image, translation(5, -3), SHAPE)
    assert tuple(np.argwhere(warped == 255)[0]) == (47, 45)
    np.testing.assert_allclose(warp_points([[40, 50]], translation(5, -3)), [[45, 47]])
    # sampled homographies: a small blob lands at warp_points(point, H)
    rng = np.random.default_rng(5)
    for H in sample_homographies(rng, SHAPE, HomographyConfig(), 20):
        target = np.array([[rng.uniform(30, 130), rng.uniform(30, 90)]])
        source = warp_points(target, np.linalg.inv(H))  # choose the source point whose image is in view
        if not inside_mask(source, SHAPE, margin=8).all():
            continue
        got = centroid(warp_image(blob(SHAPE, source[0]), H, SHAPE))
        np.testing.assert_allclose(got, warp_points(source, H)[0], atol=0.3)


def test_warp_points_round_trip_and_torch_agree():
    rng = np.random.default_rng(6)
    Hs = sample_homographies(rng, SHAPE, HomographyConfig(), 5)
    pts = rng.uniform(0, 120, (30, 2))
    for H in Hs:
        np.testing.assert_allclose(warp_points(warp_points(pts, H), np.linalg.inv(H)), pts, atol=1e-9)
    batched = warp_points_torch(torch.from_numpy(pts), torch.from_numpy(Hs))
    assert batched.shape == (5, 30, 2) and batched.dtype == torch.float64
    np.testing.assert_allclose(batched.numpy(), np.stack([warp_points(pts, H) for H in Hs]), atol=1e-9)
    single = warp_points_torch(torch.from_numpy(pts).float(), Hs[0])
    assert single.shape == (30, 2) and single.dtype == torch.float32
    assert warp_points(np.zeros((0, 2)), Hs[0]).shape == (0, 2)


def test_homography_from_points_maps_the_four_points():
    src = np.array([[0, 0], [10, 1], [11, 9], [-1, 8]], float)
    dst = np.array([[3, 4], [20, 2], [18, 25], [1, 19]], float)
    np.testing.assert_allclose(warp_points(src, homography_from_points(src, dst)), dst, atol=1e-9)


# ---------------------------------------------------------------------------------------------------- warps, masks
def test_warp_images_torch_matches_cv2_away_from_the_border():
    rng = np.random.default_rng(7)
    image = smooth_image(rng)
    Hs = sample_homographies(rng, SHAPE, HomographyConfig(), 6)
    expected = np.stack([warp_image(image, H, SHAPE) for H in Hs])
    got = warp_images_torch(torch.from_numpy(image)[None, None], torch.from_numpy(Hs), SHAPE)[:, 0].numpy()
    masks = np.stack([valid_mask(SHAPE, H, SHAPE, erosion=2) for H in Hs])
    assert masks.mean() > 0.3
    # Both are bilinear with pixel centres at integers; they may differ only by where each places the sample:
    # OpenCV's fixed-point path rounds positions to 1/32 px (INTER_TAB_SIZE), float32 round-off is far smaller.
    # The error is bounded by max|∇I| / 32 (≈ 2e-3 here; cv2 5.0's float path measures ~1e-5).
    gy, gx = np.gradient(image)
    tol = float(np.hypot(gx, gy).max()) / 32
    assert np.abs(got - expected)[masks].max() <= tol
    # a batch of different images warps image by image, any channel count
    images = torch.from_numpy(np.stack([image, 1 - image]))[:, None].repeat(1, 3, 1, 1)
    two = warp_images_torch(images, torch.from_numpy(Hs[:2]), SHAPE)
    assert two.shape == (2, 3, *SHAPE)
    assert np.abs(two[1, 2].numpy() - warp_image(1 - image, Hs[1], SHAPE))[masks[1]].max() <= tol


def test_warp_images_torch_resizes_to_out_shape():
    image = smooth_image(np.random.default_rng(8))
    H = np.diag([0.5, 0.5, 1.0])  # the source shrinks to half its size
    out = warp_images_torch(torch.from_numpy(image)[None, None], H, (60, 80))[0, 0].numpy()
    np.testing.assert_allclose(out, warp_image(image, H, (60, 80)), atol=1e-4)


def test_warp_image_keeps_dtype_and_channels():
    rng = np.random.default_rng(9)
    for image in (rng.integers(0, 255, SHAPE, dtype=np.uint8), rng.random((*SHAPE, 1)).astype(np.float32),
                  rng.random((*SHAPE, 6)).astype(np.float32)):
        out = warp_image(image, translation(2, 1), (100, 90))
        assert out.dtype == image.dtype and out.shape == (100, 90, *image.shape[2:])
        np.testing.assert_array_equal(out[1:, 2:], image[:99, :88])


def test_valid_mask_marks_the_artifact_border_and_erodes_it():
    assert valid_mask(SHAPE, np.eye(3), SHAPE).all()
    assert valid_mask(SHAPE, np.eye(3), SHAPE, erosion=3).all()  # the frame of the output does not erode
    mask = valid_mask(SHAPE, translation(10, 0), SHAPE)
    assert not mask[:, :10].any() and mask[:, 10:].all()
    eroded = valid_mask(SHAPE, translation(10, 0), SHAPE, erosion=2)
    assert not eroded[:, :12].any() and eroded[:, 12:].all()
    # where the mask says valid, warping an all-ones image gives exactly 1 (no zero border read)
    H = sample_homography(np.random.default_rng(10), SHAPE, HomographyConfig())
    ones = warp_image(np.ones(SHAPE, np.float32), H, SHAPE)
    m = valid_mask(SHAPE, H, SHAPE)
    assert 0.2 < m.mean() < 1 and np.allclose(ones[m], 1.0, atol=1e-5)
    # a homography and its negative are the same map
    np.testing.assert_array_equal(valid_mask(SHAPE, -H, SHAPE), m)


def test_inside_mask_uses_pixel_centres():
    pts = np.array([[0, 0], [159, 119], [159.5, 50], [-0.1, 3], [5, 5], [np.nan, 1]])
    np.testing.assert_array_equal(inside_mask(pts, SHAPE), [True, True, False, False, True, False])
    np.testing.assert_array_equal(inside_mask(pts, SHAPE, margin=4), [False, False, False, False, True, False])


# ---------------------------------------------------------------------------------------------------- evaluation
def test_corner_error_by_hand():
    assert corner_error(np.eye(3), translation(3, 4), SHAPE) == pytest.approx(5.0)
    assert corner_error(np.eye(3), np.eye(3) * 2.0, SHAPE) == pytest.approx(0.0)  # same homography up to scale
    # a zoom by 2 about the origin moves the corners by 0, w-1, h-1 and their diagonal
    w, h = SHAPE[1] - 1, SHAPE[0] - 1
    assert corner_error(np.eye(3), np.diag([2.0, 2.0, 1.0]), SHAPE) == pytest.approx((w + h + np.hypot(w, h)) / 4)


def test_check_homography_accepts_real_matrices():
    H = np.array([[0.76, -0.034, 150.0], [0.12, 0.88, -80.0], [3e-4, -1e-5, 1.0]])
    np.testing.assert_array_equal(check_homography(H.tolist(), "H_1_2"), H)
    check_homography(-H, "H_1_2")
    check_homography(translation(5000, -3000), "H_1_3")


@pytest.mark.parametrize("bad, words", [
    (np.eye(2), "shape (2, 2)"),
    (np.ones((3, 4)), "expected 3×3"),
    (np.array([[1, 0, np.nan], [0, 1, 0], [0, 0, 1]]), "NaN or Inf"),
    (np.array([[1, 2, 3], [2, 4, 6], [0, 0, 1.0]]), "singular"),
    (np.zeros((3, 3)), "singular"),
    ([["a", "b", "c"]] * 3, "not numeric"),
])
def test_check_homography_rejects_bad_matrices(bad, words):
    with pytest.raises(DataError, match="v_boat/H_1_4") as err:
        check_homography(bad, "hpatches/v_boat/H_1_4")
    assert words in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("overrides, key", [
    ({"patch_ratio": 0.0}, "patch_ratio"),
    ({"patch_ratio": 1.2}, "patch_ratio"),
    ({"scaling_amplitude": 1.0}, "scaling_amplitude"),
    ({"scaling_amplitude": -0.1}, "scaling_amplitude"),
    ({"perspective_amplitude_x": 0.4}, "perspective_amplitude_x"),
    ({"perspective_amplitude_y": 0.45}, "perspective_amplitude_y"),
    ({"perspective_amplitude_y": -0.1}, "perspective_amplitude_y"),
    ({"n_scales": 0}, "n_scales"),
    ({"n_angles": 0}, "n_angles"),
    ({"n_angles": 2.5}, "n_angles"),
    ({"max_angle": -0.1}, "max_angle"),
    ({"max_angle": float("nan")}, "max_angle"),
    ({"translation_overflow": -0.01}, "translation_overflow"),
    ({"translation_overflow": 0.4}, "translation_overflow"),
    ({"allow_artifacts": "yes"}, "allow_artifacts"),
])
def test_config_check_names_the_bad_key(overrides, key):
    with pytest.raises(ConfigError, match=rf"'data\.homography\.{key}'") as err:
        dataclasses.replace(HomographyConfig(), **overrides).check("data.homography")
    assert "\n" not in str(err.value)


def test_config_check_uses_the_capped_amplitude_without_artifacts():
    # without artifacts the keystone is capped by the free margin (1 - 0.8) / 2 = 0.1: a large value is harmless
    HomographyConfig(perspective_amplitude_x=0.5, allow_artifacts=False).check("h")
    # ... but a small patch with a large margin can still cross its corners
    with pytest.raises(ConfigError, match="'h.perspective_amplitude_x'"):
        HomographyConfig(patch_ratio=0.3, perspective_amplitude_x=0.2, allow_artifacts=False).check("h")
    # a disabled component is not checked against the patch
    HomographyConfig(perspective=False, perspective_amplitude_x=0.5).check("h")
