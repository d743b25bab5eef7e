"""NeRF's renderer (Mildenhall et al., ECCV 2020, §4 Eq. 1–3, §5.2 Eq. 5) against a plain-Python quadrature, scenes
with a known answer (an opaque wall, empty space), distributions with known quantiles, and torchmetrics' PSNR."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn
from torchmetrics.image import PeakSignalNoiseRatio

from torchrepro.nerf.rendering import (evaluate_field, psnr, render_rays, sample_pdf, stratified_samples,
                                       volume_render)


def _loop_quadrature(density: Tensor, rgb: Tensor, t: Tensor, directions: Tensor,
                     white: bool) -> tuple[list[list[float]], list[float], list[float]]:
    """Eq. 3 written out per ray and sample: T_i = exp(−Σ_{j<i} σ_j δ_j), C = Σ T_i (1 − exp(−σ_i δ_i)) c_i."""
    colours, depths, accs = [], [], []
    for r in range(t.shape[0]):
        norm = math.sqrt(sum(float(v) ** 2 for v in directions[r]))
        n = t.shape[1]
        deltas = [(float(t[r, i + 1]) - float(t[r, i])) * norm for i in range(n - 1)] + [1e10 * norm]
        optical, colour, depth, acc = 0.0, [0.0, 0.0, 0.0], 0.0, 0.0
        for i in range(n):
            sigma = float(density[r, i])
            w = math.exp(-optical) * (1.0 - math.exp(-sigma * deltas[i]))
            optical += sigma * deltas[i]
            colour = [colour[k] + w * float(rgb[r, i, k]) for k in range(3)]
            depth += w * float(t[r, i])
            acc += w
        if white:
            colour = [c + 1.0 - acc for c in colour]
        colours.append(colour)
        depths.append(depth)
        accs.append(acc)
    return colours, depths, accs


@pytest.mark.parametrize("white", [False, True])
def test_volume_render_equals_a_plain_loop_of_eq3(white: bool) -> None:
    g = torch.Generator().manual_seed(0)
    rays, samples = 5, 12
    t = torch.sort(2.0 + 4.0 * torch.rand(rays, samples, generator=g, dtype=torch.float64), dim=-1).values
    density = torch.rand(rays, samples, generator=g, dtype=torch.float64) * 3.0
    density[0] = 0.0  # an empty ray: all background
    rgb = torch.rand(rays, samples, 3, generator=g, dtype=torch.float64)
    directions = torch.randn(rays, 3, generator=g, dtype=torch.float64) * 1.7  # not unit: δ must scale with ‖d‖
    out = volume_render(density, rgb, t, directions, white_background=white)
    colours, depths, accs = _loop_quadrature(density, rgb, t, directions, white)
    # the code's 1e-10 in Π(1 − α + 1e-10) is the only difference from the exact exponentials
    torch.testing.assert_close(out["rgb"], torch.tensor(colours, dtype=torch.float64), atol=1e-8, rtol=1e-7)
    torch.testing.assert_close(out["depth"], torch.tensor(depths, dtype=torch.float64), atol=1e-8, rtol=1e-7)
    torch.testing.assert_close(out["acc"], torch.tensor(accs, dtype=torch.float64), atol=1e-8, rtol=1e-7)
    torch.testing.assert_close(out["weights"].sum(-1), out["acc"])
    assert out["rgb"].shape == (rays, 3) and out["weights"].shape == (rays, samples)


def test_an_opaque_wall_gives_its_depth_and_colour_and_empty_space_the_background() -> None:
    t = torch.linspace(2.0, 6.0, 41).expand(3, 41).contiguous()  # δ = 0.1
    wall = 17  # t = 3.7
    density = torch.zeros(3, 41)
    density[:, wall:] = 1e4
    rgb = torch.zeros(3, 41, 3)
    rgb[:, wall] = torch.tensor([0.2, 0.5, 0.9])
    directions = torch.tensor([[0.0, 0.0, -1.0], [0.3, -0.2, -1.0], [1.0, 1.0, -1.0]])
    for white in (False, True):
        out = volume_render(density, rgb, t, directions, white)
        torch.testing.assert_close(out["depth"], torch.full((3,), 3.7), atol=1e-4, rtol=0)
        torch.testing.assert_close(out["acc"], torch.ones(3), atol=1e-5, rtol=0)
        torch.testing.assert_close(out["rgb"], rgb[:, wall], atol=1e-4, rtol=0)
        empty = volume_render(torch.zeros(3, 41), rgb, t, directions, white)
        torch.testing.assert_close(empty["acc"], torch.zeros(3))
        torch.testing.assert_close(empty["rgb"], torch.full((3, 3), 1.0 if white else 0.0))


def test_deltas_scale_with_the_direction_norm_and_the_last_one_is_infinite() -> None:
    g = torch.Generator().manual_seed(1)
    t = torch.sort(torch.rand(4, 8, generator=g), dim=-1).values + 2.0
    density, rgb = torch.rand(4, 8, generator=g), torch.rand(4, 8, 3, generator=g)
    d = torch.nn.functional.normalize(torch.randn(4, 3, generator=g), dim=-1)
    long = volume_render(density, rgb, t, 2.0 * d, False)
    dense = volume_render(2.0 * density, rgb, t, d, False)
    torch.testing.assert_close(long["rgb"], dense["rgb"])
    # any σ > 0 at the last sample makes the ray opaque: the last interval reaches to infinity
    last = torch.zeros(4, 8)
    last[:, -1] = 1e-3
    torch.testing.assert_close(volume_render(last, rgb, t, d, False)["acc"], torch.ones(4))


def test_volume_render_stays_finite_for_infinite_density_and_repeated_samples() -> None:
    t = torch.tensor([[2.0, 3.0, 3.0, 4.0]])  # δ = 0 between the repeated samples
    density = torch.tensor([[0.0, float("inf"), float("inf"), 1.0]], requires_grad=True)
    rgb = torch.full((1, 4, 3), 0.5)
    out = volume_render(density, rgb, t, torch.tensor([[0.0, 0.0, -1.0]]), True)
    assert all(torch.isfinite(v).all() for v in out.values())
    torch.testing.assert_close(out["acc"], torch.ones(1))
    torch.testing.assert_close(out["depth"], torch.tensor([3.0]))
    out["rgb"].sum().backward()
    assert torch.isfinite(density.grad).all()


def test_raw_noise_keeps_density_non_negative_and_is_seeded() -> None:
    t = torch.linspace(2.0, 6.0, 16).expand(2, 16)
    rgb, d = torch.rand(2, 16, 3), torch.tensor([[0.0, 0.0, -1.0]] * 2)
    runs = [volume_render(torch.zeros(2, 16), rgb, t, d, False, raw_noise_std=1.0,
                          generator=torch.Generator().manual_seed(5)) for _ in range(2)]
    torch.testing.assert_close(runs[0]["rgb"], runs[1]["rgb"])
    assert (runs[0]["acc"] > 0).all() and (runs[0]["weights"] >= 0).all()  # max(noise, 0) > 0 somewhere on a ray


def test_stratified_samples_one_per_stratum_inside_near_far_and_seeded() -> None:
    plain = stratified_samples(2.0, 6.0, 9, 3, perturb=False)
    torch.testing.assert_close(plain, torch.linspace(2.0, 6.0, 9).expand(3, 9))
    jittered = stratified_samples(2.0, 6.0, 9, 500, perturb=True, generator=torch.Generator().manual_seed(0))
    assert jittered.shape == (500, 9)
    edges = torch.cat((torch.tensor([2.0]), 0.5 * (plain[0, 1:] + plain[0, :-1]), torch.tensor([6.0])))
    assert ((jittered >= edges[:-1]) & (jittered <= edges[1:])).all()  # each sample in its own stratum
    assert (jittered[:, 1:] >= jittered[:, :-1]).all()
    # uniform within the stratum, independently per ray: the mean lands at the stratum's middle
    torch.testing.assert_close(jittered.mean(0), 0.5 * (edges[:-1] + edges[1:]), atol=0.03, rtol=0)
    assert jittered[:, 4].std() > 0.1
    again = stratified_samples(2.0, 6.0, 9, 500, perturb=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(jittered, again)
    per_ray = stratified_samples(torch.tensor([1.0, 2.0]), torch.tensor([3.0, 5.0]), 5, 2, perturb=False)
    torch.testing.assert_close(per_ray, torch.stack((torch.linspace(1, 3, 5), torch.linspace(2, 5, 5))))


def test_sample_pdf_draws_the_two_bin_distribution() -> None:
    bins = torch.linspace(0.0, 10.0, 11).expand(2, 11)
    weights = torch.zeros(2, 10)
    weights[:, 2], weights[:, 7] = 30.0, 10.0  # 3 : 1 between [2, 3) and [7, 8); the +1e-5 elsewhere is ~2e-6
    samples = sample_pdf(bins, weights, 20000, perturb=True, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (2, 20000)
    in_a, in_b = (samples >= 2) & (samples < 3), (samples >= 7) & (samples < 8)
    assert (in_a | in_b).float().mean() > 0.999
    assert abs(in_a.float().mean().item() - 0.75) < 0.01
    # KS distance to the true CDF (uniform within each bin): well under the 1% critical value 1.63/√n
    x = torch.sort(samples[0]).values
    true_cdf = 0.75 * (x - 2).clamp(0, 1) + 0.25 * (x - 7).clamp(0, 1)
    empirical = torch.arange(1, x.numel() + 1) / x.numel()
    assert (empirical - true_cdf).abs().max() < 1.63 / math.sqrt(x.numel())
    assert not torch.equal(samples[0], samples[1])  # rays draw independently


def test_sample_pdf_deterministic_lands_at_hand_computed_quantiles_and_is_detached() -> None:
    bins = torch.tensor([[0.0, 1.0, 2.0]])
    weights = torch.tensor([[1.0, 3.0]], requires_grad=True)  # CDF 0, 1/4, 1 at the bin edges
    samples = sample_pdf(bins, weights, 5, perturb=False)
    # u = 0, 1/4, 1/2, 3/4, 1 → 0, 1, 1 + (1/4)/(3/4), 1 + (1/2)/(3/4), 2
    torch.testing.assert_close(samples, torch.tensor([[0.0, 1.0, 4 / 3, 5 / 3, 2.0]]), atol=1e-4, rtol=0)
    assert not samples.requires_grad
    g = torch.Generator().manual_seed(2)
    many = sample_pdf(torch.sort(torch.rand(4, 17, generator=g), -1).values, torch.rand(4, 16, generator=g), 64, False)
    assert (many[:, 1:] >= many[:, :-1]).all()
    # all-zero weights (an empty coarse ray): the 1e-5 makes it uniform, not NaN
    flat = sample_pdf(torch.linspace(0, 1, 5)[None], torch.zeros(1, 4), 5, False)
    torch.testing.assert_close(flat, torch.linspace(0, 1, 5)[None], atol=1e-4, rtol=0)


class _Ball(nn.Module):
    """A learnable soft ball of density at the origin with a learnable colour: a field with known behaviour."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(5.0))
        self.colour = nn.Parameter(torch.tensor([0.0, 1.0, -1.0]))
        self.calls: list[int] = []

    def forward(self, points: Tensor, view_dirs: Tensor) -> tuple[Tensor, Tensor]:
        self.calls.append(points.shape[0])
        assert torch.allclose(view_dirs.norm(dim=-1), torch.ones(points.shape[0]))
        sigma = self.scale * torch.relu(1.0 - points.norm(dim=-1))
        return sigma, torch.sigmoid(self.colour + 0.1 * points).expand(points.shape[0], 3)


def _rays(n: int) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(3)
    origins = torch.tensor([0.0, 0.0, 4.0]).expand(n, 3).contiguous()
    directions = torch.cat((0.05 * torch.randn(n, 2, generator=g), -torch.ones(n, 1)), dim=-1)  # OpenGL: look at −z
    return origins, directions


def test_render_rays_fine_pass_chunking_and_gradients() -> None:
    coarse, fine = _Ball(), _Ball()
    origins, directions = _rays(6)
    out = render_rays(coarse, fine, origins, directions, 2.0, 6.0, 16, 24, perturb=True, white_background=True,
                      chunk=50, generator=torch.Generator().manual_seed(0))
    assert out["coarse"]["t"].shape == (6, 16) and out["fine"]["t"].shape == (6, 40)
    t_fine = out["fine"]["t"]
    assert (t_fine[:, 1:] >= t_fine[:, :-1]).all()
    assert all(torch.isin(out["coarse"]["t"][r], t_fine[r]).all() for r in range(6))  # a superset of the coarse t
    assert max(coarse.calls) <= 50 and sum(coarse.calls) == 6 * 16 and sum(fine.calls) == 6 * 40
    # the fine samples crowd where the coarse weights are: inside the ball (t in [3, 5] on these rays)
    new = t_fine.numel() - 6 * 16
    assert ((t_fine > 2.9) & (t_fine < 5.1)).sum() - ((out["coarse"]["t"] > 2.9) & (out["coarse"]["t"] < 5.1)).sum() \
        > 0.9 * new
    (out["fine"]["rgb"].sum() + out["coarse"]["rgb"].sum()).backward()
    for field in (coarse, fine):
        assert field.scale.grad is not None and field.scale.grad.abs() > 0 and field.colour.grad.abs().sum() > 0


def test_render_rays_chunked_equals_unchunked_and_no_fine_pass_without_a_fine_field() -> None:
    field = _Ball()
    origins, directions = _rays(5)
    args = (origins, directions, 2.0, 6.0, 8, 8, False, False)
    small = render_rays(field, field, *args, chunk=7)
    whole = render_rays(field, field, *args, chunk=10_000)
    for level in ("coarse", "fine"):
        for key in ("rgb", "depth", "acc", "weights", "t"):
            torch.testing.assert_close(small[level][key], whole[level][key])
    only = render_rays(field, None, *args)
    assert set(only) == {"coarse"}
    torch.testing.assert_close(only["coarse"]["rgb"], whole["coarse"]["rgb"])
    sigma, rgb = evaluate_field(field, torch.zeros(10, 3), torch.tensor([[0.0, 0.0, 1.0]]).expand(10, 3), 3)
    assert sigma.shape == (10,) and rgb.shape == (10, 3)


def test_psnr_matches_torchmetrics() -> None:
    g = torch.Generator().manual_seed(4)
    target = torch.rand(2, 3, 8, 8, generator=g)
    pred = (target + 0.05 * torch.randn(2, 3, 8, 8, generator=g)).clamp(0, 1)
    reference = PeakSignalNoiseRatio(data_range=1.0)(pred, target)
    torch.testing.assert_close(psnr(((pred - target) ** 2).mean()), reference)
    torch.testing.assert_close(psnr(torch.tensor(0.01)), torch.tensor(20.0))


def test_ray_box_bounds_clip_to_the_box_by_hand() -> None:
    """Rays along +x from x = -5 through the box [-1, 1]³ enter at t = 4 and leave at t = 6 (a direction of length
    2 halves them); a ray that misses keeps [near, far]; near and far still bound the result."""
    from torchrepro.nerf.rendering import ray_box_bounds

    origins = torch.tensor([[-5.0, 0.0, 0.0], [-5.0, 0.0, 0.0], [-5.0, 3.0, 0.0], [-5.0, 0.5, 0.5]])
    directions = torch.tensor([[1.0, 0.0, 0.0], [2.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    near, far = ray_box_bounds(origins, directions, (-1.0, -1.0, -1.0, 1.0, 1.0, 1.0), 2.0, 5.5)
    assert near.tolist() == [4.0, 2.0, 2.0, 4.0]
    assert far.tolist() == [5.5, 3.0, 5.5, 5.5]
