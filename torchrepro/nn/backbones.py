"""The backbone registry (timm's ``create_model`` idea) and the ResNet trunks every recipe uses so far.

``create_backbone(name, **kwargs)`` builds a registered backbone; the returned module carries its output
channels in ``module.out_channels``. A new backbone registers a factory that returns an ``nn.Module``::

    @register_backbone("vgg16_ssd", out_channels=1024)
    def vgg16_ssd(in_channels: int = 3, pretrained: str | None = None) -> nn.Module: ...

``out_channels`` is declared when it does not depend on the factory's arguments (then
:func:`backbone_channels` answers without building anything); otherwise the factory sets
``module.out_channels`` itself. When backbones come to live in other ``torchrepro.nn`` modules (VGG-SSD, the
SuperPoint encoder, …), import those modules at the end of this one, so that every built-in name is registered
as soon as ``create_backbone`` can be imported.

Weights come only from a local file (``pretrained=path``), never from the network.

ResNet trunks (``resnet18``, ``resnet34``, ``resnet50``: conv1 … layer4, no pooling, no fc):

* ``in_channels != 3`` replaces ``conv1`` (7×7, stride 2) by one taking that many channels, as Event-VPR does
  for a 5-bin voxel grid (Kong et al., Event-VPR, arXiv 2011.03290, §III). With pretrained RGB weights the new
  kernel is the RGB kernel averaged over its input channels, copied to every new channel (the common "average
  the first conv" transfer).
* ``last_stride=1`` removes the down-sampling of ``layer4`` (Luo et al., "Bag of Tricks", CVPRW 2019, §4.2;
  SAN's encoder, Jin et al., AAAI 2020, §3.2), doubling the final map's height and width.
* ``small_stem=True`` replaces the 7×7/2 conv1 and the 3×3/2 max-pool by one 3×3/1 conv, for 32-pixel images
  (He et al., CVPR 2016, §4.2, CIFAR-10; SimCLR's CIFAR-10 encoder, Chen et al., ICML 2020, Appendix B.9): the final
  map is then H/8 × W/8. ``stem_stride=2`` gives that conv a stride of 2 (final map H/16 × W/16): a quarter of the
  multiply-adds of every stage, which buys a wider network at the same cost on 28-pixel images.
* ``width`` scales the channels of every stage (64: torchvision's; 16 gives a quarter of the channels, about a
  sixteenth of the multiply-adds): the output has ``8 * width`` channels (``32 * width`` for resnet50). For CPU
  budgets. Pretrained weights need the torchvision width.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

from torchrepro.core.errors import CheckpointError, ConfigError
from torchrepro.core.typed import closest

__all__ = [
    "ARCHS", "backbone_channels", "backbone_names", "check_backbone_name", "create_backbone",
    "load_local_weights", "read_local_state_dict", "register_backbone", "resnet_trunk", "trunk_channels", "unregister_backbone",
]

if TYPE_CHECKING:
    from torch import nn

# torch and torchvision are imported where a backbone is built, not here: validating a config (the backbone's
# name) must not cost the seconds their import takes (`torchrepro config` starts in well under a second).
BackboneFactory = Callable[..., "nn.Module"]


class _Entry:
    __slots__ = ("factory", "out_channels")

    def __init__(self, factory: BackboneFactory, out_channels: int | None) -> None:
        self.factory = factory
        self.out_channels = out_channels


_REGISTRY: dict[str, _Entry] = {}


def register_backbone(name: str, out_channels: int | None = None) -> Callable[[BackboneFactory], BackboneFactory]:
    """Decorator registering ``factory(**kwargs) -> nn.Module`` under ``name``.

    ``out_channels``: the channels of the backbone's output when they do not depend on its arguments; leave
    it None when they do, and set ``module.out_channels`` in the factory. Registering a taken name is an error.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"a backbone name must be a non-empty string, got {name!r}")

    def decorate(factory: BackboneFactory) -> BackboneFactory:
        if name in _REGISTRY:
            raise ValueError(f"backbone '{name}' is already registered (by {_REGISTRY[name].factory.__qualname__})")
        _REGISTRY[name] = _Entry(factory, out_channels)
        return factory

    return decorate


def unregister_backbone(name: str) -> None:
    """Remove a registered backbone (for tests and plug-ins that register temporary backbones)."""
    check_backbone_name(name)
    del _REGISTRY[name]


def backbone_names() -> list[str]:
    """The registered backbone names, sorted."""
    return sorted(_REGISTRY)


def check_backbone_name(name: str, key: str | None = None) -> None:
    """Raise a :class:`ConfigError` naming ``key`` (e.g. ``model.arch``) unless ``name`` is registered."""
    if name in _REGISTRY:
        return
    names = backbone_names()
    hint = closest(str(name), names)
    where = f" in config key '{key}'" if key else ""
    fix = f"did you mean '{hint}'?" if hint else f"registered backbones: {', '.join(names)}"
    raise ConfigError(f"unknown backbone {name!r}{where}: {fix}")


def backbone_channels(name: str) -> int:
    """Output channels of backbone ``name`` (without building it), for backbones that declare them."""
    check_backbone_name(name)
    channels = _REGISTRY[name].out_channels
    if channels is None:
        raise ValueError(f"backbone '{name}' has argument-dependent channels: read create_backbone(...).out_channels")
    return channels


def create_backbone(name: str, **kwargs) -> nn.Module:
    """Build the backbone registered as ``name`` with the factory's keyword arguments.

    The result has an ``out_channels`` attribute (the channels of its output feature map). Unknown names raise
    a :class:`ConfigError` with a "did you mean" hint.
    """
    from torch import nn

    check_backbone_name(name)
    entry = _REGISTRY[name]
    module = entry.factory(**kwargs)
    if not isinstance(module, nn.Module):
        raise TypeError(f"backbone factory for '{name}' returned {type(module).__name__}, not an nn.Module")
    if getattr(module, "out_channels", None) is None:
        if entry.out_channels is None:
            raise TypeError(f"backbone '{name}' declares no out_channels and its module does not set one")
        module.out_channels = entry.out_channels
    return module


# ------------------------------------------------------------------------------------------- ResNet trunks
#: the torchvision ResNets behind the trunks (constructors of ``torchvision.models`` of these names)
ARCHS = ("resnet18", "resnet34", "resnet50")
_RESNET_CHANNELS = {"resnet18": 512, "resnet34": 512, "resnet50": 2048}


def read_local_state_dict(path: str | Path) -> dict:
    """The state dict in a local file named by ``model.pretrained`` (never downloads); a missing or unreadable file
    is one clear error. A Lightning-style ``{"state_dict": ...}`` wrapper is unwrapped."""
    import torch

    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"model.pretrained '{file}' does not exist: give the path of a local state dict (.pth)")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        raise CheckpointError(f"model.pretrained '{file}' is not a readable state dict ({type(err).__name__})") from None
    return state.get("state_dict", state) if isinstance(state, dict) else state


def load_local_weights(model: nn.Module, path: str) -> None:
    """Load a torchvision-format state dict from a local file (never downloads)."""
    file = Path(path)
    state = read_local_state_dict(file)
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
    """Channels of ``layer4``'s output: 512 for resnet18/34, 2048 for resnet50 (prefer backbone_channels)."""
    return _RESNET_CHANNELS.get(arch, 512)


def _adapt_conv1(resnet: nn.Module, in_channels: int) -> None:
    import torch
    from torch import nn

    old: nn.Conv2d = resnet.conv1
    new = nn.Conv2d(in_channels, old.out_channels, kernel_size=old.kernel_size, stride=old.stride,
                    padding=old.padding, bias=False)
    with torch.no_grad():
        mean = old.weight.mean(dim=1, keepdim=True)  # [64, 1, 7, 7]
        new.weight.copy_(mean.expand(-1, in_channels, -1, -1))
    resnet.conv1 = new


def _rescale_width(resnet: nn.Module, width: int, zero_init_residual: bool) -> None:
    """Rebuild conv1 … layer4 of a torchvision ResNet with ``width`` base channels (torchvision's initialisation)."""
    from torch import nn

    block = type(resnet.layer1[0])
    resnet.inplanes = width
    resnet.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
    resnet.bn1 = nn.BatchNorm2d(width)
    for i, name in enumerate(("layer1", "layer2", "layer3", "layer4")):
        setattr(resnet, name, resnet._make_layer(block, width * 2**i, len(getattr(resnet, name)), stride=1 if i == 0 else 2))
    for m in resnet.modules():  # torchvision's ResNet.__init__ initialisation, for the new layers
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
    if zero_init_residual:
        from torchvision.models.resnet import BasicBlock, Bottleneck

        for m in resnet.modules():
            if isinstance(m, Bottleneck):
                nn.init.constant_(m.bn3.weight, 0)
            elif isinstance(m, BasicBlock):
                nn.init.constant_(m.bn2.weight, 0)


def resnet_trunk(arch: str = "resnet34", in_channels: int = 3, last_stride: int = 2, pretrained: str | None = None,
                 zero_init_residual: bool = False, small_stem: bool = False, width: int = 64,
                 stem_stride: int = 1) -> nn.Sequential:
    """conv1 … layer4 of a torchvision ResNet (no pooling, no fc): ``[N, C, H, W]`` → ``[N, 512|2048, H/32, W/32]``.

    ``last_stride=1`` gives ``H/16 × W/16``. Pretrained weights (a local torchvision state dict) are loaded before
    conv1 is adapted, so an RGB checkpoint initialises an ``in_channels``-channel conv1 (see module docstring).
    Without pretrained weights the new conv1 keeps torchvision's Kaiming initialisation.

    The full torchvision model (fc included) is built first, so a given seed gives the same parameters, and
    leaves the random generator in the same state, as building the torchvision model itself. The result is an
    ``nn.Sequential`` (children 0–7: conv1, bn1, relu, maxpool, layer1–4) with ``out_channels`` set.
    """
    import torchvision
    from torch import nn

    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {sorted(ARCHS)}, got {arch!r}")
    if in_channels < 1 or last_stride not in (1, 2) or width < 1:
        raise ValueError(f"need in_channels >= 1, last_stride in (1, 2) and width >= 1, got {in_channels}, "
                         f"{last_stride}, {width}")
    if stem_stride not in (1, 2) or (stem_stride == 2 and not small_stem):
        raise ConfigError(f"stem_stride {stem_stride}: the small stem's conv takes stride 1 or 2 (small_stem=true)")
    resnet = getattr(torchvision.models, arch)(weights=None, zero_init_residual=zero_init_residual)
    if width != 64:
        if pretrained:
            raise ConfigError(f"pretrained weights '{pretrained}' are for torchvision's width 64, not {width}")
        _rescale_width(resnet, width, zero_init_residual)
    if pretrained:
        load_local_weights(resnet, pretrained)
    if small_stem:
        resnet.conv1 = nn.Conv2d(in_channels, width, kernel_size=3, stride=stem_stride, padding=1, bias=False)
        nn.init.kaiming_normal_(resnet.conv1.weight, mode="fan_out", nonlinearity="relu")
        resnet.maxpool = nn.Identity()
    elif in_channels != 3:
        if pretrained:
            _adapt_conv1(resnet, in_channels)
        else:
            resnet.conv1 = nn.Conv2d(in_channels, width, kernel_size=7, stride=2, padding=3, bias=False)
            nn.init.kaiming_normal_(resnet.conv1.weight, mode="fan_out", nonlinearity="relu")
    if last_stride == 1:
        block = resnet.layer4[0]
        if arch == "resnet50":
            block.conv2.stride = (1, 1)  # Bottleneck down-samples in conv2 (torchvision's ResNet v1.5)
        else:
            block.conv1.stride = (1, 1)  # BasicBlock down-samples in conv1
        block.downsample[0].stride = (1, 1)
    trunk = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool,
                          resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4)
    trunk.out_channels = _RESNET_CHANNELS[arch] * width // 64
    return trunk


def _register_resnet(arch: str) -> None:
    def factory(in_channels: int = 3, last_stride: int = 2, pretrained: str | None = None,
                zero_init_residual: bool = False, small_stem: bool = False, width: int = 64,
                stem_stride: int = 1) -> nn.Sequential:
        return resnet_trunk(arch, in_channels=in_channels, last_stride=last_stride, pretrained=pretrained,
                            zero_init_residual=zero_init_residual, small_stem=small_stem, width=width,
                            stem_stride=stem_stride)

    factory.__name__ = factory.__qualname__ = arch
    factory.__doc__ = f"{arch} trunk (conv1 … layer4); see :func:`resnet_trunk`."
    register_backbone(arch, out_channels=_RESNET_CHANNELS[arch])(factory)


for _arch in ARCHS:
    _register_resnet(_arch)
del _arch
