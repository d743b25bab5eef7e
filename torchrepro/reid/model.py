"""Re-ID networks: the Bag-of-Tricks encoder (SA-Enc) and SAN's texture decoder (SA-Dec).

Encoder (Luo et al., Bag of Tricks, CVPRW 2019; SA-Enc of Jin et al., SAN, AAAI 2020, §3.2): a registered ResNet
trunk (:func:`torchrepro.nn.backbones.create_backbone`) with last stride 1 → global average pooling → ``f_t``
(triplet loss) → BNNeck → ``f_i`` (ID loss, inference feature). For a 256×128 input and ResNet50 the last map is
2048×16×8 and the skip maps of layers 1–3 are 256×64×32, 512×32×16, 1024×16×8.

Decoder (Jin et al., SAN, AAAI 2020, §3.3): a 1×1 conv reduces the encoder map 2048→512 (+BN, ReLU); four
residual up-sampling blocks (bilinear ×2, reflection pad, 3×3 conv, with a 1×1 shortcut) shrink the channels
512→256→64→32→16, and U-Net skips from encoder layers 3, 2, 1 enter through 1×1 embedding convs
(1024→512, 512→256, 256→64 for ResNet50; from the trunk's own widths otherwise) added before blocks 1–3. A
3×3 conv maps the 16 channels to RGB (tanh: textures are normalised to [−1, 1] with mean 0.5, std 0.5), resized
to the texture size (256×256 for 256×128 inputs). The block outputs are the decoder features on which SAN's
triplet ReID constraints act (the seed's ``x_sim1..4``). The decoder is used only in training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchrepro.nn.backbones import create_backbone
from torchrepro.nn.bnneck import BNNeck

__all__ = ["ReidEncoder", "SANDecoder", "EncoderOutput"]

_SKIP_CHANNELS = {"resnet50": (256, 512, 1024)}  # layer1..3 widths; resnet18/34: (64, 128, 256)


class EncoderOutput(dict):
    """``f_t`` (pooled), ``f_i`` (after BNNeck), ``logits`` (or None), ``fmap`` (last map), ``skips`` (layers 1–3)."""


class ReidEncoder(nn.Module):
    """BoT baseline / SA-Enc. ``forward`` returns an :class:`EncoderOutput`; ``embed`` the inference feature."""

    def __init__(self, num_classes: int, arch: str = "resnet50", last_stride: int = 1,
                 pretrained: str | None = None, channels_last: bool = False) -> None:
        """``channels_last`` stores the trunk's weights NHWC, the layout of oneDNN's fast CPU convolutions (a
        ResNet18 step at 128×64 took 0.65 s instead of 0.74 s on this project's 2-core machine); the figures
        change only by float rounding, and checkpoints load either way."""
        super().__init__()
        self.arch = arch
        trunk = create_backbone(arch, in_channels=3, last_stride=last_stride, pretrained=pretrained)
        self.stem = trunk[:4]  # conv1, bn1, relu, maxpool
        self.layers = nn.ModuleList(trunk[4:])  # layer1..layer4
        self.feat_dim = trunk.out_channels
        self.neck = BNNeck(self.feat_dim, num_classes)
        if channels_last:
            self.stem.to(memory_format=torch.channels_last)
            self.layers.to(memory_format=torch.channels_last)

    @property
    def skip_channels(self) -> tuple[int, int, int]:
        return _SKIP_CHANNELS.get(self.arch, (64, 128, 256))

    def forward(self, x: Tensor) -> EncoderOutput:
        x = self.stem(x)
        skips = []
        for layer in self.layers:
            x = layer(x)
            skips.append(x)
        f_t = F.adaptive_avg_pool2d(x, 1).flatten(1)
        f_i, logits = self.neck(f_t)
        return EncoderOutput(f_t=f_t, f_i=f_i, logits=logits, fmap=x, skips=skips[:3])

    @torch.no_grad()
    def embed(self, x: Tensor) -> Tensor:
        """Inference feature: BNNeck output ``f_i`` (§3.6 of Bag of Tricks)."""
        return self.forward(x)["f_i"]


class _UpBlock(nn.Module):
    """Residual up-sampling block: bilinear ×2 → [reflection pad, 3×3 conv, BN, ReLU] ×2, plus a 1×1 shortcut."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1), nn.Conv2d(cout, cout, 3, bias=False), nn.BatchNorm2d(cout),
        )
        self.shortcut = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: Tensor, size: tuple[int, int] | None = None) -> Tensor:
        x = F.interpolate(x, size=size, scale_factor=None if size else 2.0, mode="bilinear", align_corners=False)
        return F.relu(self.body(x) + self.shortcut(x))


class SANDecoder(nn.Module):
    """SA-Dec: encoder map + skips → texture ``[N, 3, Ht, Wt]`` and the four block features."""

    CHANNELS = (256, 64, 32, 16)

    def __init__(self, in_channels: int = 2048, skip_channels: tuple[int, int, int] = (256, 512, 1024),
                 texture_size: tuple[int, int] = (256, 256)) -> None:
        super().__init__()
        self.texture_size = tuple(texture_size)
        self.reduce = nn.Sequential(nn.Conv2d(in_channels, 512, 1, bias=False), nn.BatchNorm2d(512), nn.ReLU(inplace=True))
        c1, c2, c3 = skip_channels
        # U-Net skips: layer3 joins the 512-channel reduced map, layer2 block 1's output, layer1 block 2's
        self.embed3 = nn.Conv2d(c3, 512, 1)
        self.embed2 = nn.Conv2d(c2, self.CHANNELS[0], 1)
        self.embed1 = nn.Conv2d(c1, self.CHANNELS[1], 1)
        chans = (512, *self.CHANNELS)
        self.blocks = nn.ModuleList(_UpBlock(chans[i], chans[i + 1]) for i in range(4))
        self.to_rgb = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(self.CHANNELS[-1], 3, 3), nn.Tanh())

    def forward(self, fmap: Tensor, skips: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        s1, s2, s3 = skips
        x = self.reduce(fmap)
        x = x + F.interpolate(self.embed3(s3), size=x.shape[-2:], mode="bilinear", align_corners=False)
        feats = []
        x = self.blocks[0](x, size=s2.shape[-2:])
        feats.append(x)
        x = self.blocks[1](x + self.embed2(s2), size=s1.shape[-2:])
        feats.append(x)
        x = self.blocks[2](x + self.embed1(s1))
        feats.append(x)
        x = self.blocks[3](x, size=self.texture_size)
        feats.append(x)
        return self.to_rgb(x), feats
