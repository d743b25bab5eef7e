"""Event place-recognition network: (voxel grid | histogram | EST) → ResNet trunk with B-channel conv1 → NetVLAD.

The seed's "Discriptor" (Kong et al., Event-VPR, arXiv 2011.03290, §III): the event
representation is centre-cropped to a square, resized (224×224 in the seed), fed to a ResNet34 whose conv1
takes the representation's channels, cut after ``layer4`` (512 channels), and pooled by NetVLAD with K=32
clusters into a K·512 = 16,384-d L2-normalised descriptor (Arandjelović et al., CVPR 2016).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchrepro.nn.backbones import create_backbone
from torchrepro.nn.netvlad import NetVLAD

__all__ = ["EventFrontEnd", "PlaceNet", "centre_crop_resize"]


def centre_crop_resize(grid: Tensor, size: int) -> Tensor:
    """Centre-crop ``[..., H, W]`` to a ``min(H, W)`` square and resize it to ``size × size`` (bilinear).

    The seed crops the 346×260 DAVIS grid to 260×260 before resizing; anti-aliasing keeps the sparse event
    structure from aliasing when the grid shrinks (a plain bilinear down-sampling would skip most events).
    """
    h, w = grid.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = grid[..., top : top + side, left : left + side]
    if side == size:
        return crop.contiguous()
    lead = crop.shape[:-2]
    flat = crop.reshape(-1, 1, side, side).float()
    out = F.interpolate(flat, size=(size, size), mode="bilinear", align_corners=False, antialias=side > size)
    return out.reshape(*lead, size, size)


class EventFrontEnd(nn.Module):
    """Learnable EST quantisation (Gehrig et al. 2019) followed by the same centre crop + resize as the cached
    representations: ``(events [N, 5], batch_size)`` → ``[batch_size, 2·B, S, S]``."""

    def __init__(self, num_bins: int, height: int, width: int, size: int, seed: int = 0) -> None:
        super().__init__()
        from torchrepro.events.est import EventSpikeTensor

        self.est = EventSpikeTensor(num_bins, height, width, seed=seed)
        self.size = int(size)

    def forward(self, events: Tensor, batch_size: int) -> Tensor:
        return centre_crop_resize(self.est(events, batch_size), self.size)


class PlaceNet(nn.Module):
    """ResNet trunk (``in_channels`` input) + NetVLAD: ``[N, C, S, S]`` → ``[N, K·D]`` unit-norm descriptors.

    Args:
        in_channels: channels of the event representation (5 for a 5-bin voxel grid, 2·B for EST).
        arch: a registered ResNet trunk (``resnet18|34|50``, :func:`torchrepro.nn.backbones.create_backbone`);
            the seed uses resnet34.
        num_clusters: NetVLAD's K (seed: 32).
        pretrained: optional local torchvision RGB state dict; conv1 is then the RGB kernel averaged over
            channels (see :mod:`torchrepro.nn.backbones`).
        last_stride: 1 keeps ``layer4`` at ``layer3``'s resolution (``S/16``): at small inputs (64 px on a CPU)
            NetVLAD then pools 4×4 local features instead of 2×2.
        trunk_layers: 3 cuts the ResNet after ``layer3`` (256 channels for resnet18/34, 1024 for resnet50),
            as recent VPR models do (CosPlace, MixVPR): a map at ``S/16`` for a quarter less computation.
        channels_last: store the trunk's weights and activations NHWC, the layout oneDNN's fast CPU convolutions
            (and bf16 autocast on CPUs with AMX) want; the numbers are the same up to float rounding.
    """

    def __init__(self, in_channels: int = 5, arch: str = "resnet34", num_clusters: int = 32,
                 pretrained: str | None = None, zero_init_residual: bool = False, last_stride: int = 2,
                 trunk_layers: int = 4, channels_last: bool = False) -> None:
        super().__init__()
        if trunk_layers not in (3, 4):
            raise ValueError(f"trunk_layers must be 3 or 4, got {trunk_layers}")
        trunk = create_backbone(arch, in_channels=in_channels, last_stride=last_stride, pretrained=pretrained,
                                zero_init_residual=zero_init_residual)
        self.trunk = trunk if trunk_layers == 4 else trunk[:-1]
        dim = trunk.out_channels if trunk_layers == 4 else trunk.out_channels // 2  # layer3 has half layer4's width
        self.netvlad = NetVLAD(num_clusters=num_clusters, dim=dim)
        # Set once NetVLAD's centroids come from k-means; saved in checkpoints so a resumed run skips it.
        self.register_buffer("netvlad_initialised", torch.tensor(False))
        self.channels_last = bool(channels_last)
        if self.channels_last:
            self.trunk.to(memory_format=torch.channels_last)

    @property
    def descriptor_dim(self) -> int:
        return self.netvlad.num_clusters * self.netvlad.dim

    def local_features(self, x: Tensor) -> Tensor:
        """``[N, D, h, w]`` trunk features (NetVLAD's local descriptors), contiguous NCHW."""
        if self.channels_last:
            return self.trunk(x.contiguous(memory_format=torch.channels_last)).contiguous()
        return self.trunk(x)

    def forward(self, x: Tensor) -> Tensor:
        feats = self.local_features(x)
        # NetVLAD stays float32 under mixed precision: its soft-assignment logits are scaled by a large alpha
        # (see NetVLAD.init_from_features), which bfloat16's 8-bit mantissa would round into wrong assignments.
        with torch.autocast(feats.device.type, enabled=False):
            return self.netvlad(feats.float())

    @torch.no_grad()
    def init_netvlad(self, inputs: Tensor, seed: int = 0, max_features: int = 50_000, batch_size: int = 32) -> int:
        """Initialise NetVLAD from FAISS k-means on local features of ``inputs`` (NetVLAD §3 / pytorch-NetVlad).

        Features are computed by a *copy* of the trunk in training mode: that is the normalisation the first
        training steps will see (batch statistics), while the copy keeps this model's BatchNorm running
        statistics untouched. At most ``max_features`` local descriptors (a seeded random subset) are
        clustered. Returns the number of descriptors used.
        """
        trunk = copy.deepcopy(self.trunk).train()
        feats = []
        for start in range(0, len(inputs), batch_size):
            fmap = trunk(inputs[start : start + batch_size].float())  # [n, D, h, w]
            feats.append(fmap.permute(0, 2, 3, 1).reshape(-1, fmap.shape[1]))
        local = torch.cat(feats).cpu().numpy()
        if len(local) > max_features:
            keep = np.random.default_rng(seed).choice(len(local), size=max_features, replace=False)
            local = local[np.sort(keep)]
        self.netvlad.init_from_features(local, seed=seed)
        self.netvlad_initialised.fill_(True)
        return len(local)
