"""ResNet trunks: input channels, last stride, parameter counts, local pretrained weights adapted to conv1."""

import pytest
import torch
import torchvision

from torchrepro.nn.backbones import resnet_trunk


@pytest.mark.parametrize("arch,channels", [("resnet18", 512), ("resnet34", 512), ("resnet50", 2048)])
def test_shapes_and_last_stride(arch, channels):
    x = torch.zeros(1, 5, 256, 128)
    assert resnet_trunk(arch, 5, last_stride=2)(x).shape == (1, channels, 8, 4)
    assert resnet_trunk(arch, 5, last_stride=1)(x).shape == (1, channels, 16, 8)


def test_parameter_count_is_torchvision_minus_fc_with_adapted_conv1():
    ref = torchvision.models.resnet34(weights=None)
    expected = sum(p.numel() for p in ref.parameters()) - sum(p.numel() for p in ref.fc.parameters())
    trunk = resnet_trunk("resnet34", in_channels=5)
    # conv1 has 64 × 5 × 7 × 7 weights instead of 64 × 3 × 7 × 7
    assert sum(p.numel() for p in trunk.parameters()) == expected + 64 * 2 * 49


def test_pretrained_rgb_conv1_is_averaged_over_channels(tmp_path):
    ref = torchvision.models.resnet18(weights=None)
    path = tmp_path / "r18.pth"
    torch.save(ref.state_dict(), path)
    trunk = resnet_trunk("resnet18", in_channels=5, pretrained=str(path))
    expected = ref.conv1.weight.mean(dim=1, keepdim=True).expand(-1, 5, -1, -1)
    torch.testing.assert_close(trunk[0].weight, expected)
    torch.testing.assert_close(trunk[4][0].conv1.weight, ref.layer1[0].conv1.weight)
