"""SuperPointNet against the paper's architecture (DeTone et al., CVPRW 2018, §3.1–3.3, Fig. 3)."""

from __future__ import annotations

import pytest
import torch

from torchrepro.nn.superpoint import SuperPointNet


def _conv_params(c_in: int, c_out: int, k: int) -> int:
    return c_in * c_out * k * k + c_out


def test_parameter_count_equals_the_paper_architecture() -> None:
    """Encoder 1→64→64 | 64→64→64 | 64→128→128 | 128→128→128 (3×3), heads 128→256 (3×3) → 65 / 256 (1×1)."""
    encoder = [(1, 64), (64, 64), (64, 64), (64, 64), (64, 128), (128, 128), (128, 128), (128, 128)]
    expected = sum(_conv_params(a, b, 3) for a, b in encoder)
    expected += _conv_params(128, 256, 3) + _conv_params(256, 65, 1)  # interest point decoder
    expected += _conv_params(128, 256, 3) + _conv_params(256, 256, 1)  # descriptor decoder
    assert expected == 1_300_865  # "≈1.3 M", Magic Leap's released SuperPointNet
    assert SuperPointNet(batchnorm=False).count_parameters() == expected
    magicpoint = expected - _conv_params(128, 256, 3) - _conv_params(256, 256, 1)
    assert SuperPointNet(descriptor=False).count_parameters() == magicpoint


def test_output_shapes_and_unit_descriptors() -> None:
    net = SuperPointNet(batchnorm=True).eval()
    out = net(torch.rand(2, 1, 120, 160))
    assert out["semi"].shape == (2, 65, 15, 20)
    assert out["desc"].shape == (2, 256, 15, 20)
    torch.testing.assert_close(out["desc"].norm(dim=1), torch.ones(2, 15, 20))
    assert "desc" not in SuperPointNet(descriptor=False)(torch.rand(1, 1, 16, 24))


@pytest.mark.parametrize("shape", [(1, 3, 16, 16), (1, 1, 20, 16), (1, 16, 16)])
def test_rejects_images_it_cannot_take(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="multiples of 8"):
        SuperPointNet()(torch.rand(*shape))


def test_dustbin_prior_starts_every_cell_at_that_probability() -> None:
    net = SuperPointNet(descriptor=False, batchnorm=True, dustbin_prior=0.97).eval()
    prob = torch.softmax(net(torch.rand(2, 1, 32, 48))["semi"], dim=1)
    torch.testing.assert_close(prob[:, 64].mean(), torch.tensor(0.97), atol=0.01, rtol=0)
    with pytest.raises(ValueError, match="dustbin_prior"):
        SuperPointNet(dustbin_prior=1.0)
