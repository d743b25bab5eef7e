"""Re-ID encoder/decoder shapes against the SAN seed (Jin et al., AAAI 2020, §3.3, as the seed reproduced it), BoT details, parameter counts."""

import numpy as np
import torch
import torchvision

from torchrepro.reid.model import ReidEncoder, SANDecoder
from torchrepro.reid.plots import texture_to_uint8


def test_resnet50_encoder_parameter_count_is_torchvision_minus_fc():
    ref = torchvision.models.resnet50(weights=None)
    expected = sum(p.numel() for p in ref.parameters()) - sum(p.numel() for p in ref.fc.parameters())
    enc = ReidEncoder(num_classes=767, arch="resnet50")
    trunk = sum(p.numel() for m in (enc.stem, enc.layers) for p in m.parameters())
    assert trunk == expected
    # BNNeck: BN weight + (frozen) bias, bias-free classifier
    assert sum(p.numel() for p in enc.neck.parameters()) == 2 * 2048 + 2048 * 767
    assert not enc.neck.bn.bias.requires_grad and enc.neck.classifier.bias is None


def test_seed_shapes_batch4_256x128():
    enc, dec = ReidEncoder(767, "resnet50"), None
    dec = SANDecoder(2048, enc.skip_channels, (256, 256))
    out = enc(torch.randn(4, 3, 256, 128))
    assert out["logits"].shape == (4, 767) and out["f_t"].shape == (4, 2048) and out["f_i"].shape == (4, 2048)
    assert out["fmap"].shape == (4, 2048, 16, 8)  # last stride 1
    assert [tuple(s.shape) for s in out["skips"]] == [(4, 256, 64, 32), (4, 512, 32, 16), (4, 1024, 16, 8)]
    texture, feats = dec(out["fmap"], out["skips"])
    assert texture.shape == (4, 3, 256, 256) and len(feats) == 4
    assert texture.min() >= -1 and texture.max() <= 1


def test_decoder_gradients_reach_the_encoder():
    enc = ReidEncoder(5, "resnet18")
    dec = SANDecoder(enc.feat_dim, enc.skip_channels, (64, 64))
    out = enc(torch.randn(2, 3, 64, 32))
    texture, _ = dec(out["fmap"], out["skips"])
    texture.abs().mean().backward()
    assert enc.stem[0].weight.grad is not None and enc.stem[0].weight.grad.abs().sum() > 0


def test_texture_pictures_are_clipped_not_wrapped():
    t = torch.tensor([-3.0, -1.0, 0.0, 1.0, 1.5]).view(1, 1, 5).expand(3, 1, 5)
    img = texture_to_uint8(t)
    assert img.dtype == np.uint8
    assert img[0, :, 0].tolist() == [0, 0, 128, 255, 255]  # the seed's cast would wrap 1.5 → 63


def test_channels_last_trunk_computes_the_same_features_and_shares_checkpoints():
    torch.manual_seed(0)
    plain = ReidEncoder(5, "resnet18").eval()
    nhwc = ReidEncoder(5, "resnet18", channels_last=True).eval()
    nhwc.load_state_dict(plain.state_dict())
    assert nhwc.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 64, 32)
    torch.testing.assert_close(nhwc.embed(x), plain.embed(x), atol=1e-4, rtol=1e-4)
    ReidEncoder(5, "resnet18").load_state_dict(nhwc.state_dict())  # and back
