"""NeRF's positional encoding (§5.1, Eq. 4, without π as the official code) and MLP (Appendix A, Fig. 7): widths,
hand-computed values and parameter counts, the output ranges and initialisation, and a tiny fit of an opaque plane
through the renderer."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from torchrepro.nerf.encoding import PositionalEncoding
from torchrepro.nerf.fields import DENSITY_BIAS_INIT, NeRFMLP, paper_nerf_mlps, tiny_nerf_mlps
from torchrepro.nerf.rendering import render_rays


def _linear(d_in: int, d_out: int) -> int:
    return d_in * d_out + d_out


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_positional_encoding_widths_and_hand_values() -> None:
    points, dirs = PositionalEncoding(10), PositionalEncoding(4)
    assert points.out_dim(3) == 63 and points(torch.zeros(5, 3)).shape == (5, 63)
    assert dirs.out_dim(3) == 27 and dirs(torch.zeros(2, 7, 3)).shape == (2, 7, 27)
    assert PositionalEncoding(4, include_input=False).out_dim(3) == 24
    x = torch.tensor([[0.5, -1.0]])
    expected = [0.5, -1.0]
    for k in range(3):  # the code's layout: x, then per frequency the sines of every coordinate, then the cosines
        f = 2.0 ** k  # no π (the official code's γ, not Eq. 4's)
        expected += [math.sin(f * 0.5), math.sin(-f), math.cos(f * 0.5), math.cos(-f)]
    torch.testing.assert_close(PositionalEncoding(3)(x), torch.tensor([expected]))
    linear = PositionalEncoding(4, include_input=False, log_space=False)
    torch.testing.assert_close(linear.freqs, torch.tensor([1.0, 10 / 3, 17 / 3, 8.0]))
    third = torch.tensor([math.sin(17 / 3), math.cos(17 / 3)])
    torch.testing.assert_close(linear(torch.tensor([[1.0]]))[0, 4:6], third)
    assert "freqs" not in PositionalEncoding(4).state_dict()


def test_paper_mlp_parameter_count_matches_appendix_a() -> None:
    # Fig. 7: γ(x) 63 → 8 × 256 ReLU layers, γ(x) concatenated to the 5th layer's activation (so the 6th takes
    # 256 + 63); σ from a linear layer on the trunk; a 256-d feature, concatenated with γ(d) (27), → 128 → RGB
    trunk = _linear(63, 256) + 4 * _linear(256, 256) + _linear(256 + 63, 256) + 2 * _linear(256, 256)
    heads = _linear(256, 1) + _linear(256, 256) + _linear(256 + 27, 128) + _linear(128, 3)
    coarse, fine = paper_nerf_mlps()
    assert _n_params(coarse) == _n_params(fine) == trunk + heads == 595_844
    assert len(coarse.trunk) == 8 and coarse.trunk[5].in_features == 256 + 63


def test_tiny_mlps_have_the_seed_layers() -> None:
    coarse, fine = tiny_nerf_mlps()
    assert len(coarse.trunk) == 2 and len(fine.trunk) == 6
    assert [layer.in_features for layer in fine.trunk] == [63, 128, 128, 128, 128, 128 + 63]
    assert [layer.in_features for layer in coarse.trunk] == [63, 128]  # the skip at 4 never happens in 2 layers
    heads = _linear(128, 1) + _linear(128, 128) + _linear(128 + 27, 64) + _linear(64, 3)
    assert _n_params(coarse) == _linear(63, 128) + _linear(128, 128) + heads
    assert _n_params(fine) == _linear(63, 128) + 4 * _linear(128, 128) + _linear(128 + 63, 128) + heads


@pytest.mark.parametrize("activation", ["relu", "softplus"])
def test_field_outputs_ranges_and_a_live_start(activation: str) -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    points = torch.rand(2048, 3, generator=g) * 8 - 4
    dirs = torch.nn.functional.normalize(torch.randn(2048, 3, generator=g), dim=-1)
    for field in (*tiny_nerf_mlps(activation), NeRFMLP(n_layers=3, d_filter=32, use_view_dirs=False,
                                                        density_activation=activation)):
        sigma, rgb = field(points, dirs)
        assert sigma.shape == (2048,) and rgb.shape == (2048, 3)
        assert (sigma >= 0).all() and (rgb >= 0).all() and (rgb <= 1).all()
        # the positive density bias: most samples start with σ > 0, so they get a density gradient (no dead start)
        assert (sigma > 0).float().mean() > 0.75
    assert NeRFMLP(n_layers=2, d_filter=16).density_head.bias.item() == pytest.approx(DENSITY_BIAS_INIT)
    blind = NeRFMLP(n_layers=2, d_filter=16, use_view_dirs=False)
    torch.testing.assert_close(blind(points[:4], dirs[:4]), blind(points[:4], -dirs[:4]))
    seeing = NeRFMLP(n_layers=2, d_filter=16)
    assert not torch.allclose(seeing(points[:4], dirs[:4])[1], seeing(points[:4], -dirs[:4])[1])
    torch.testing.assert_close(seeing(points[:4], dirs[:4])[0], seeing(points[:4], -dirs[:4])[0])  # σ ignores d
    with pytest.raises(ValueError, match="density_activation"):
        NeRFMLP(density_activation="exp")


def _plane_colour(xy: torch.Tensor) -> torch.Tensor:
    """The plane z = −4's texture: smooth, different in every channel."""
    return torch.stack((0.5 + 0.4 * torch.sin(2 * xy[:, 0]), 0.5 + 0.4 * torch.cos(3 * xy[:, 1]),
                        0.3 + 0.2 * torch.sin(xy[:, 0] + xy[:, 1])), dim=-1)


def test_a_small_mlp_fits_an_opaque_plane() -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    n_rays = 64
    # a pinhole at the origin looking down −z (OpenGL): d = (x, y, −1) is not unit and hits z = −4 at t = 4
    directions = torch.cat((torch.rand(n_rays, 2, generator=g) - 0.5, -torch.ones(n_rays, 1)), dim=-1)
    origins = torch.zeros(n_rays, 3)
    target = _plane_colour(4 * directions[:, :2])
    field = NeRFMLP(n_layers=2, d_filter=32, skips=(), pos_freqs=4, dir_freqs=2, d_viewdirs_hidden=16)
    optimiser = torch.optim.Adam(field.parameters(), lr=1e-2)

    def render(perturb: bool) -> dict[str, torch.Tensor]:
        return render_rays(field, None, origins, directions, 2.0, 6.0, 32, 0, perturb, False, generator=g)["coarse"]

    with torch.no_grad():
        before = ((render(False)["rgb"] - target) ** 2).mean()
    for _ in range(100):
        loss = ((render(True)["rgb"] - target) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        out = render(False)
    after = ((out["rgb"] - target) ** 2).mean()
    assert after < before / 10, (before.item(), after.item())  # measured: 0.09 → 7e-4
    # an opaque surface, not a colour painted on a half-transparent fog; its depth is not checked: from one
    # viewpoint every depth explains the pictures equally well
    assert out["acc"].mean() > 0.9
