"""ResNet trunks for every recipe: torchvision ResNets with a chosen number of input channels and last stride.

Weights come only from a local file (``pretrained=path``), never from the network.

* ``in_channels != 3`` replaces ``conv1`` (7×7, stride 2) by one taking that many channels, as the event-VPR seed
  does for a 5-bin voxel grid (SEEDS.md §1). With pretrained RGB weights the new kernel is the RGB kernel
  averaged over its input channels, copied to every new channel (the common "average the first conv" transfer).
* ``last_stride=1`` removes the down-sampling of ``layer4`` (Luo et al., "Bag of Tricks", §4.2; SAN's
  encoder), doubling the final map's height and width.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

from torchrepro.core.errors import CheckpointError

__all__ = ["ARCHS", "load_local_weights", "resnet_trunk", "trunk_channels"]

ARCHS = {"resnet18": torchvision.models.resnet18, "resnet34": torchvision.models.resnet34,
         "resnet50": torchvision.models.resnet50}


def load_local_weights(model: nn.Module, path: str) -> None:
    """Load a torchvision-format state dict from a local file (never downloads)."""
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"model.pretrained '{file}' does not exist: give the path of a local torchvision state dict (.pth)")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        raise CheckpointError(f"model.pretrained '{file}' is not a readable state dict ({type(err).__name__})") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches raise even with strict=False
        detail = next((line.strip() for line in str(err).splitlines() if "size mismatch" in line), str(err))
        raise CheckpointError(f"model.pretrained '{file}' does not match the backbone: {detail}") from None
    if missing or unexpected:
        raise CheckpointError(
            f"model.pretrained '{file}' does not match the backbone: {len(missing)} missing keys "
            f"(e.g. {missing[:1]}), {len(unexpected)} unexpected (e.g. {unexpected[:1]})"
        )


def trunk_channels(arch: str) -> int:
    """Channels of ``layer4``'s output: 512 for resnet18/34, 2048 for resnet50."""
    return 2048 if arch == "resnet50" else 512


def _adapt_conv1(resnet: nn.Module, in_channels: int) -> None:
    old: nn.Conv2d = resnet.conv1
    new = nn.Conv2d(in_channels, old.out_channels, kernel_size=old.kernel_size, stride=old.stride,
                    padding=old.padding, bias=False)
    with torch.no_grad():
        mean = old.weight.mean(dim=1, keepdim=True)  # [64, 1, 7, 7]
        new.weight.copy_(mean.expand(-1, in_channels, -1, -1))
    resnet.conv1 = new


def resnet_trunk(arch: str = "resnet34", in_channels: int = 3, last_stride: int = 2, pretrained: str | None = None,
                 zero_init_residual: bool = False) -> nn.Sequential:
    """conv1 … layer4 of a torchvision ResNet (no pooling, no fc): ``[N, C, H, W]`` → ``[N, 512|2048, H/32, W/32]``.

    ``last_stride=1`` gives ``H/16 × W/16``. Pretrained weights (a local torchvision state dict) are loaded before
    conv1 is adapted, so an RGB checkpoint initialises an ``in_channels``-channel conv1 (see module docstring).
    Without pretrained weights the new conv1 keeps torchvision's Kaiming initialisation.
    """
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {sorted(ARCHS)}, got {arch!r}")
    if in_channels < 1 or last_stride not in (1, 2):
        raise ValueError(f"need in_channels >= 1 and last_stride in (1, 2), got {in_channels}, {last_stride}")
    resnet = ARCHS[arch](weights=None, zero_init_residual=zero_init_residual)
    if pretrained:
        load_local_weights(resnet, pretrained)
    if in_channels != 3:
        if pretrained:
            _adapt_conv1(resnet, in_channels)
        else:
            resnet.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
            nn.init.kaiming_normal_(resnet.conv1.weight, mode="fan_out", nonlinearity="relu")
    if last_stride == 1:
        block = resnet.layer4[0]
        if arch == "resnet50":
            block.conv2.stride = (1, 1)  # Bottleneck down-samples in conv2 (torchvision's ResNet v1.5)
        else:
            block.conv1.stride = (1, 1)  # BasicBlock down-samples in conv1
        block.downsample[0].stride = (1, 1)
    return nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool,
                         resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4)
