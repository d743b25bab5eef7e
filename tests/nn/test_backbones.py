"""Backbone registry and ResNet trunks: lookup, errors, channels, parameter counts, RNG use, local weights."""

import pytest
import torch
import torchvision
from torch import nn

from torchrepro.core.errors import ConfigError
from torchrepro.nn.backbones import (
    ARCHS, backbone_channels, backbone_names, check_backbone_name, create_backbone, register_backbone,
    resnet_trunk, unregister_backbone,
)

RESNETS = {"resnet18": 512, "resnet34": 512, "resnet50": 2048}


def test_registry_lists_the_resnet_trunks():
    names = backbone_names()
    assert names == sorted(names)
    assert set(RESNETS) <= set(names)
    assert set(ARCHS) <= set(names)  # every torchvision ResNet behind a trunk is registered
    for name, channels in RESNETS.items():
        assert backbone_channels(name) == channels


def test_unknown_name_is_a_config_error_with_a_hint():
    with pytest.raises(ConfigError, match=r"unknown backbone 'resnet51': did you mean 'resnet50'\?"):
        create_backbone("resnet51")
    with pytest.raises(ConfigError, match="registered backbones: .*resnet18"):
        backbone_channels("alexnet_but_not")
    with pytest.raises(ConfigError, match=r"'resnt34' in config key 'model.arch': did you mean 'resnet34'\?") as err:
        check_backbone_name("resnt34", "model.arch")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name,channels", sorted(RESNETS.items()))
def test_output_shape_and_channels(name, channels):
    x = torch.zeros(1, 5, 64, 32)
    net = create_backbone(name, in_channels=5)
    assert net.out_channels == channels
    assert net(x).shape == (1, channels, 2, 1)
    net = create_backbone(name, in_channels=5, last_stride=1)
    assert net(x).shape == (1, channels, 4, 2)
    assert create_backbone(name)(torch.zeros(1, 3, 64, 64)).shape == (1, channels, 2, 2)


@pytest.mark.parametrize("arch,channels", [("resnet18", 512), ("resnet34", 512), ("resnet50", 2048)])
def test_shapes_and_last_stride(arch, channels):
    x = torch.zeros(1, 5, 256, 128)
    assert resnet_trunk(arch, 5, last_stride=2)(x).shape == (1, channels, 8, 4)
    assert resnet_trunk(arch, 5, last_stride=1)(x).shape == (1, channels, 16, 8)


@pytest.mark.parametrize("name,expected", [("resnet18", 11_176_512), ("resnet34", 21_284_672),
                                           ("resnet50", 23_508_032)])
def test_parameter_counts_are_torchvision_minus_fc(name, expected):
    # ResNet-18 11,689,512 − fc 513,000; ResNet-50 25,557,032 − fc 2,049,000 (torchvision's model table)
    ref = getattr(torchvision.models, name)(weights=None)
    assert sum(p.numel() for p in ref.parameters()) - sum(p.numel() for p in ref.fc.parameters()) == expected
    assert sum(p.numel() for p in create_backbone(name).parameters()) == expected


def test_parameter_count_is_torchvision_minus_fc_with_adapted_conv1():
    ref = torchvision.models.resnet34(weights=None)
    expected = sum(p.numel() for p in ref.parameters()) - sum(p.numel() for p in ref.fc.parameters())
    trunk = resnet_trunk("resnet34", in_channels=5)
    # conv1 has 64 × 5 × 7 × 7 weights instead of 64 × 3 × 7 × 7
    assert sum(p.numel() for p in trunk.parameters()) == expected + 64 * 2 * 49


@pytest.mark.parametrize("zero_init_residual", [False, True])
def test_same_weights_and_random_draws_as_torchvision(zero_init_residual):
    """A seeded trunk equals the seeded torchvision model minus fc, and leaves the generator in the same state,
    so models built around it (heads after the trunk) keep their initialisation."""
    torch.manual_seed(3)
    ref = torchvision.models.resnet18(weights=None, zero_init_residual=zero_init_residual)
    ref_state = torch.random.get_rng_state()
    torch.manual_seed(3)
    trunk = create_backbone("resnet18", zero_init_residual=zero_init_residual)
    assert torch.equal(torch.random.get_rng_state(), ref_state)
    expected = {k: v for k, v in ref.state_dict().items() if not k.startswith("fc.")}
    names = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    got = {f"{names[int(k.split('.', 1)[0])]}.{k.split('.', 1)[1]}": v for k, v in trunk.state_dict().items()}
    assert list(got) == list(expected)
    assert all(torch.equal(got[k], expected[k]) for k in expected)


def test_pretrained_rgb_conv1_is_averaged_over_channels(tmp_path):
    ref = torchvision.models.resnet18(weights=None)
    path = tmp_path / "r18.pth"
    torch.save(ref.state_dict(), path)
    trunk = create_backbone("resnet18", in_channels=5, pretrained=str(path))
    expected = ref.conv1.weight.mean(dim=1, keepdim=True).expand(-1, 5, -1, -1)
    torch.testing.assert_close(trunk[0].weight, expected)
    torch.testing.assert_close(trunk[4][0].conv1.weight, ref.layer1[0].conv1.weight)


def test_a_new_backbone_can_be_registered_and_removed():
    @register_backbone("tiny_test_cnn", out_channels=8)
    def tiny(in_channels: int = 3) -> nn.Module:
        return nn.Sequential(nn.Conv2d(in_channels, 8, 3, stride=2, padding=1), nn.ReLU())

    try:
        assert "tiny_test_cnn" in backbone_names()
        assert backbone_channels("tiny_test_cnn") == 8
        net = create_backbone("tiny_test_cnn", in_channels=2)
        assert net.out_channels == 8 and net(torch.zeros(1, 2, 8, 8)).shape == (1, 8, 4, 4)
        with pytest.raises(ValueError, match="already registered"):
            register_backbone("tiny_test_cnn")(tiny)

        @register_backbone("tiny_test_mlp")  # channels depend on the arguments: the module carries them
        def mlp(width: int = 4) -> nn.Module:
            module = nn.Linear(3, width)
            module.out_channels = width
            return module

        assert create_backbone("tiny_test_mlp", width=6).out_channels == 6
        with pytest.raises(ValueError, match="argument-dependent"):
            backbone_channels("tiny_test_mlp")
    finally:
        for name in ("tiny_test_cnn", "tiny_test_mlp"):
            if name in backbone_names():
                unregister_backbone(name)
    assert "tiny_test_cnn" not in backbone_names() and "tiny_test_mlp" not in backbone_names()
    with pytest.raises(ConfigError, match="unknown backbone 'tiny_test_cnn'"):
        create_backbone("tiny_test_cnn")


def test_small_stem_stride_two_halves_every_map_and_needs_the_small_stem():
    x = torch.randn(2, 1, 32, 32)
    stride1 = create_backbone("resnet18", in_channels=1, small_stem=True, width=8)
    stride2 = create_backbone("resnet18", in_channels=1, small_stem=True, width=8, stem_stride=2)
    assert stride1(x).shape == (2, 64, 4, 4) and stride2(x).shape == (2, 64, 2, 2)  # H/8, then H/16
    assert stride2[0].stride == (2, 2) and stride2[0].kernel_size == (3, 3)
    with pytest.raises(ConfigError, match="small_stem=true"):
        create_backbone("resnet18", stem_stride=2)
