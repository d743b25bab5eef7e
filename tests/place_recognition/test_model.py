"""PlaceNet: shapes against the seed (5-bin voxel grid, 224x224, ResNet34 + NetVLAD K=32 → 16,384-d),
centre crop + resize, NetVLAD k-means initialisation that leaves BatchNorm statistics untouched."""

import torch

from torchrepro.place_recognition.model import PlaceNet, centre_crop_resize


def test_seed_shapes_and_unit_norm():
    net = PlaceNet(in_channels=5, arch="resnet34", num_clusters=32).eval()
    x = torch.randn(2, 5, 224, 224)
    assert net.local_features(x).shape == (2, 512, 7, 7)
    out = net(x)
    assert out.shape == (2, 32 * 512) and net.descriptor_dim == 16384
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2))


def test_layer3_trunk_and_last_stride_shapes():
    """The CPU configs' options: NetVLAD over layer3 (256-d features at S/16) or layer4 at stride 16."""
    x = torch.randn(2, 5, 64, 64)
    net3 = PlaceNet(in_channels=5, arch="resnet18", num_clusters=32, trunk_layers=3).eval()
    assert net3.local_features(x).shape == (2, 256, 4, 4) and net3.descriptor_dim == 32 * 256
    assert net3(x).shape == (2, 8192)
    full = sum(p.numel() for p in PlaceNet(5, "resnet18", 32).trunk.parameters())
    layer4 = sum(p.numel() for p in PlaceNet(5, "resnet18", 32).trunk[-1].parameters())
    assert sum(p.numel() for p in net3.trunk.parameters()) == full - layer4
    net1 = PlaceNet(in_channels=5, arch="resnet18", num_clusters=32, last_stride=1).eval()
    assert net1.local_features(x).shape == (2, 512, 4, 4) and net1(x).shape == (2, 16384)
    assert PlaceNet(5, "resnet50", 4, trunk_layers=3).netvlad.dim == 1024


def test_centre_crop_resize_takes_the_middle_square():
    grid = torch.zeros(5, 260, 346)
    left = (346 - 260) // 2
    grid[:, :, left] = 1.0          # first column of the square
    grid[:, :, left - 1] = 7.0      # just outside: must be cropped away
    out = centre_crop_resize(grid, 260)
    assert out.shape == (5, 260, 260)
    assert out[:, :, 0].eq(1).all() and out.max() == 1.0
    assert centre_crop_resize(grid, 64).shape == (5, 64, 64)


def test_netvlad_init_sets_flag_and_keeps_running_stats():
    net = PlaceNet(in_channels=5, arch="resnet18", num_clusters=8)
    before = net.trunk[1].running_mean.clone()
    used = net.init_netvlad(torch.randn(6, 5, 64, 64), seed=0)
    assert used == 6 * 2 * 2 and bool(net.netvlad_initialised)
    torch.testing.assert_close(net.trunk[1].running_mean, before)
    assert "netvlad_initialised" in net.state_dict()


def test_channels_last_and_bf16_autocast_keep_the_descriptor():
    """NHWC weights give the same function; under bf16 autocast the trunk runs in bfloat16 but NetVLAD in float32
    (unit-norm float32 output, close to the float32 descriptor)."""
    torch.manual_seed(0)
    ref = PlaceNet(5, "resnet18", 8).eval()
    nhwc = PlaceNet(5, "resnet18", 8, channels_last=True).eval()
    nhwc.load_state_dict(ref.state_dict())
    assert nhwc.trunk[0].weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(3, 5, 64, 64)
    with torch.no_grad():
        expected = ref(x)
        torch.testing.assert_close(nhwc(x), expected, atol=1e-5, rtol=1e-4)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = nhwc(x)
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed.norm(dim=1), torch.ones(3))
    assert float((mixed * expected).sum(dim=1).min()) > 0.99  # cosine to the float32 descriptor
