"""Detectors behind one factory: the seed's multi-box head on ResNet34, torchvision's SSD300 and SSDlite.

``build_detector(name, num_classes, image_size, pretrained=None, **options)`` returns a :class:`Detector`;
every detector has the same contract:

* input: ``images`` float ``[B, 3, S, S]`` with values in **[0, 1]** (RGB, not normalised: each model
  normalises with the statistics its backbone expects), ``S = image_size``; targets per image
  ``{"boxes": [n, 4] xyxy in pixels of the S×S input, "labels": [n] int64 in 1..C}`` (0 = background);
* ``model.train()``: ``model(images, targets)`` → ``{"bbox_regression": …, "classification": …}``;
* ``model.eval()``: ``model(images)`` → per image ``{"boxes" [m, 4] xyxy pixels of the S×S input,
  "scores" [m], "labels" [m] in 1..C}`` (torchvision's format).

``seed_resnet34`` (the driving simulator's second network, fastai 2018 "multi-label SSD" lesson): a ResNet34
trunk (conv1 … layer4, :func:`torchrepro.nn.backbones.create_backbone`; 224 → 512×7×7) and the seed's
``SSD_MultiHead``: ``dropout(relu(x))`` → StdConv(512→256, stride 1) → StdConv(stride 2) [4×4] → out1 →
StdConv(stride 2) [2×2] → out2 → StdConv(stride 2) [1×1] → out3, where StdConv = 3×3 conv → ReLU → BatchNorm →
Dropout (the seed's order) and each OutConv is a 3×3 conv to ``k·(C+1)`` class logits beside a 3×3 conv to
``k·4`` box activations; outputs are flattened cell-major and concatenated: 21 cells × 9 anchors = 189 for
S = 224 (any S in 193…256 gives the same grids; other sizes get the grids their feature maps have). The class
conv's bias starts at ``class_bias`` = −4 (the seed's ``bias=-4.``): sigmoid(−4) ≈ 0.018, a prior for rare
positives (the idea of Lin et al. 2017, §4.1, who use −log(99) ≈ −4.6). Dropout 0.4 is the lesson's value.
The images are normalised inside with ImageNet's mean and std (the trunk's pretraining statistics). The
``loss`` option picks the box coding, loss and score function (:mod:`torchrepro.detection.losses`):
``seed`` (tanh decoding, L1 + BCE, sigmoid scores), ``ssd`` (variance offsets, 3:1 mining, softmax) or
``focal`` (variance offsets, sigmoid focal loss, sigmoid scores).

``ssd300_vgg16`` / ``ssdlite320_mobilenet_v3_large``: torchvision's models built with ``weights=None,
weights_backbone=None, num_classes=C+1`` (random init; never a download) and wrapped. They match, compute
their loss (torchvision's SSD loss: IoU >= 0.5 + best anchor per GT, smooth L1 on (10, 10, 5, 5)-encoded
offsets, softmax CE with 3:1 hard negatives, both over the positives) and run NMS themselves. What the
wrapper does about their internal ``GeneralizedRCNNTransform``:

* normalisation — kept as torchvision set it, because it expects exactly our [0, 1] input: SSD300 subtracts
  the VGG Caffe means and multiplies by 255 (``image_std = 1/255``), SSDlite maps [0, 1] to [−1, 1]. The
  recipe must therefore *not* normalise for any detector.
* resizing — the backbones only work at their native size (SSD300's VGG extra layers need exactly 300×300;
  its anchors use fixed pixel steps), so the transform resizes S×S to 300×300 (320×320) bilinearly, scales
  the targets with it, and maps the detections back to S×S pixels. With S equal to the native size the
  resize is the identity (tests/detection/test_model.py checks it).

Post-processing settings are shared by all three (SSD §3.7 / Caffe / torchvision's SSD300 defaults: score >
0.01, 400 per class before NMS, NMS IoU 0.45, 200 per image); SSDlite's own defaults (0.001, 300, 0.55, 300)
are replaced by them so that the detectors are evaluated alike, unless options say otherwise.

``pretrained``: for ``seed_resnet34`` a local torchvision ResNet34 state dict for the trunk; for the
torchvision models a local state dict of the whole detector (``model.state_dict()`` of the same
architecture, e.g. torchvision's COCO checkpoint file): tensors of the class head whose shape differs
(another class count) keep their random initialisation, any other mismatch is an error.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchrepro.core.errors import CheckpointError, ConfigError, DataError
from torchrepro.core.typed import closest
from torchrepro.detection.anchors import SEED_RATIOS, SEED_ZOOMS, AnchorSet, seed_anchors
from torchrepro.detection.boxes import decode_seed, decode_ssd, pad_targets
from torchrepro.detection.losses import LOSSES, detection_loss
from torchrepro.detection.postprocess import MAX_DETECTIONS, NMS_IOU, SCORE_THRESH, TOPK_PER_CLASS, detect
from torchrepro.detection.config import seed_grid_sides
from torchrepro.nn.backbones import create_backbone, read_local_state_dict

__all__ = [
    "DETECTORS", "Detector", "OutConv", "SeedDetector", "SeedHead", "StdConv", "TorchvisionSSD", "build_detector",
    "seed_grids",
]

DETECTORS = ("seed_resnet34", "ssd300_vgg16", "ssdlite320_mobilenet_v3_large")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_POSTPROCESS = {"score_thresh": SCORE_THRESH, "topk": TOPK_PER_CLASS, "nms_iou": NMS_IOU,
                "max_detections": MAX_DETECTIONS}


class Detector(nn.Module):
    """Common interface (module docstring): train mode → loss dict, eval mode → detections."""

    num_classes: int
    image_size: int

    def check_inputs(self, images: Tensor, targets: list[dict[str, Tensor]] | None) -> None:
        s = self.image_size
        if not isinstance(images, Tensor) or images.dim() != 4 or tuple(images.shape[1:]) != (3, s, s):
            shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(f"{type(self).__name__} expects images [B, 3, {s}, {s}] in [0, 1], got {shape}")
        if not images.is_floating_point():
            raise ValueError(f"images must be float in [0, 1], got {images.dtype}")
        if not self.training:
            return
        if targets is None or len(targets) != images.shape[0]:
            raise ValueError("training mode needs one target dict per image (switch to eval() for detections)")
        labels = torch.cat([t["labels"].reshape(-1) for t in targets])
        # one host sync per step buys a message naming the fix instead of a CUDA assert / "out of bounds"
        if labels.numel() and not (1 <= int(labels.min()) and int(labels.max()) <= self.num_classes):
            raise DataError(f"target labels must lie in 1..{self.num_classes} (0 is background), got "
                            f"{int(labels.min())}..{int(labels.max())}: check num_classes against the data's classes")


# ----------------------------------------------------------------------------------------- the seed's head
class StdConv(nn.Module):
    """The seed's ``StdConv``: 3×3 conv (padding 1) → ReLU → BatchNorm → Dropout (BN after the ReLU, as in the seed)."""

    def __init__(self, cin: int, cout: int, stride: int = 2, drop: float = 0.1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1)
        self.bn = nn.BatchNorm2d(cout)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.bn(F.relu(self.conv(x))))


def _flatten(x: Tensor, per_anchor: int) -> Tensor:
    """``[B, k·F, g, g]`` → ``[B, g·g·k, F]``: cells row-major, then the k anchors (the seed's ``flatten_conv``)."""
    b = x.shape[0]
    return x.permute(0, 2, 3, 1).reshape(b, -1, per_anchor)


class OutConv(nn.Module):
    """The seed's ``OutConv``: two 3×3 convs on one grid, class logits ``[B, g·g·k, C+1]`` and boxes ``[B, g·g·k, 4]``."""

    def __init__(self, k: int, cin: int, num_classes: int, class_bias: float) -> None:
        super().__init__()
        self.num_outputs = num_classes + 1
        self.cls = nn.Conv2d(cin, k * self.num_outputs, 3, padding=1)
        self.box = nn.Conv2d(cin, k * 4, 3, padding=1)
        nn.init.constant_(self.cls.bias, class_bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return _flatten(self.cls(x), self.num_outputs), _flatten(self.box(x), 4)


class SeedHead(nn.Module):
    """The seed's ``SSD_MultiHead`` (module docstring) on a trunk map of ``cin`` channels. ``trunk_grid``: a fourth
    OutConv on the first StdConv's stride-1 output (the trunk's own grid, 7×7 at 224), SSD's multi-scale
    prediction (§2.1) one level finer than the seed's grids; its outputs come first."""

    def __init__(self, num_classes: int, k: int = 9, cin: int = 512, channels: int = 256, dropout: float = 0.4,
                 class_bias: float = -4.0, trunk_grid: bool = False) -> None:
        super().__init__()
        self.out0 = OutConv(k, channels, num_classes, class_bias) if trunk_grid else None
        self.drop = nn.Dropout(dropout)
        self.sconv0 = StdConv(cin, channels, stride=1, drop=dropout)
        self.sconv1 = StdConv(channels, channels, drop=dropout)
        self.sconv2 = StdConv(channels, channels, drop=dropout)
        self.sconv3 = StdConv(channels, channels, drop=dropout)
        self.out1 = OutConv(k, channels, num_classes, class_bias)
        self.out2 = OutConv(k, channels, num_classes, class_bias)
        self.out3 = OutConv(k, channels, num_classes, class_bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.sconv0(self.drop(F.relu(x)))
        outs = [] if self.out0 is None else [self.out0(x)]
        for sconv, out in ((self.sconv1, self.out1), (self.sconv2, self.out2), (self.sconv3, self.out3)):
            x = sconv(x)
            outs.append(out(x))
        return torch.cat([c for c, _ in outs], dim=1), torch.cat([b for _, b in outs], dim=1)


def seed_grids(image_size: int, trunk_grid: bool = False) -> tuple[int, ...]:
    """Sides of the head's grids for an S×S input (224 → 7 → (4, 2, 1), or (7, 4, 2, 1) with ``trunk_grid``); the
    rule lives in the torch-free config module, which checks ``model.image_size`` with it
    (tests/detection/test_model.py checks it against the feature maps the network really produces)."""
    return seed_grid_sides(image_size, trunk_grid)


class SeedDetector(Detector):
    """ResNet34 trunk + the seed's multi-box head, with its anchors, loss and post-processing."""

    def __init__(self, num_classes: int, image_size: int = 224, pretrained: str | None = None, loss: str = "seed",
                 dropout: float = 0.4, class_bias: float = -4.0, width: int = 64, head_channels: int = 256,
                 trunk_grid: bool = False, anchor_ratios: tuple[tuple[float, float], ...] = SEED_RATIOS,
                 score_thresh: float = SCORE_THRESH, topk: int = TOPK_PER_CLASS, nms_iou: float = NMS_IOU,
                 max_detections: int = MAX_DETECTIONS) -> None:
        """``width`` shrinks the trunk (64: ResNet34 itself; see create_backbone), ``head_channels`` the head
        (256: the seed's) — both for CPU tests only."""
        super().__init__()
        if loss not in LOSSES:
            raise ConfigError(f"unknown detection loss {loss!r}: choose one of {', '.join(LOSSES)}")
        self.num_classes, self.image_size, self.loss_name = num_classes, image_size, loss
        self.postprocess = {"score_thresh": score_thresh, "topk": topk, "nms_iou": nms_iou,
                            "max_detections": max_detections}
        self.trunk = create_backbone("resnet34", pretrained=pretrained, width=width)
        anchors = seed_anchors(seed_grids(image_size, trunk_grid), SEED_ZOOMS, anchor_ratios)
        self.k, self.grids = anchors.k, anchors.grids
        self.head = SeedHead(num_classes, anchors.k, self.trunk.out_channels, head_channels, dropout, class_bias,
                             trunk_grid)
        # derived from the constructor's arguments, so kept out of the state dict
        self.register_buffer("anchor_cxcywh", anchors.cxcywh, persistent=False)
        self.register_buffer("anchor_grid_size", anchors.grid_size, persistent=False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def anchors(self) -> AnchorSet:
        return AnchorSet(self.anchor_cxcywh, self.anchor_grid_size, self.k, self.grids)

    def head_outputs(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Class logits [B, A, C+1] and box outputs [B, A, 4] for [0, 1] images."""
        return self.head(self.trunk((images - self.mean) / self.std))

    def compute_loss(self, cls_logits: Tensor, box_out: Tensor, targets: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        """The configured loss; pixel targets are brought to the anchors' [0, 1] units."""
        gt = pad_targets(targets, cls_logits.device, scale=1.0 / self.image_size)
        return detection_loss(self.loss_name, cls_logits, box_out, gt, self.anchors)

    def detections(self, cls_logits: Tensor, box_out: Tensor) -> list[dict[str, Tensor]]:
        """Decode, score, NMS (:func:`torchrepro.detection.postprocess.detect`), boxes in pixels."""
        anchors = self.anchors
        if self.loss_name == "seed":
            boxes = decode_seed(box_out, anchors.cxcywh, anchors.grid_size)
        else:
            boxes = decode_ssd(box_out, anchors.xyxy)
        if self.loss_name == "ssd":
            scores = F.softmax(cls_logits, dim=-1)[..., 1:]
        else:  # sigmoid classifiers: the background column is never trained
            scores = torch.sigmoid(cls_logits[..., 1:])
        s = self.image_size
        return detect(boxes * s, scores, image_size=(s, s), **self.postprocess)

    def forward(self, images: Tensor, targets: list[dict[str, Tensor]] | None = None):
        self.check_inputs(images, targets)
        cls_logits, box_out = self.head_outputs(images)
        if self.training:
            return self.compute_loss(cls_logits, box_out, targets)
        return self.detections(cls_logits, box_out)


# ------------------------------------------------------------------------------------- torchvision's SSDs
class TorchvisionSSD(Detector):
    """torchvision's ``ssd300_vgg16`` / ``ssdlite320_mobilenet_v3_large`` behind the common contract."""

    def __init__(self, name: str, num_classes: int, image_size: int, pretrained: str | None = None,
                 score_thresh: float = SCORE_THRESH, topk: int = TOPK_PER_CLASS, nms_iou: float = NMS_IOU,
                 max_detections: int = MAX_DETECTIONS) -> None:
        import torchvision.models.detection as tvd

        super().__init__()
        if name not in DETECTORS[1:]:
            raise ConfigError(f"not a torchvision SSD: {name!r} (choose {' or '.join(DETECTORS[1:])})")
        self.name, self.num_classes, self.image_size = name, num_classes, image_size
        self.net = getattr(tvd, name)(weights=None, weights_backbone=None, num_classes=num_classes + 1)
        # set after construction: ssdlite's builder also hands its keyword arguments to MobileNetV3
        self.net.score_thresh, self.net.topk_candidates = score_thresh, topk
        self.net.nms_thresh, self.net.detections_per_img = nms_iou, max_detections
        self.native_size = tuple(self.net.transform.fixed_size)
        if pretrained:
            _load_detector_state(self.net, pretrained)

    def forward(self, images: Tensor, targets: list[dict[str, Tensor]] | None = None):
        self.check_inputs(images, targets)
        return self.net(list(images.unbind(0)), targets if self.training else None)


def _load_detector_state(net: nn.Module, path: str) -> None:
    """Load a local whole-detector state dict; a class head of another class count keeps its initialisation."""
    file = Path(path)
    state = read_local_state_dict(file)
    own = net.state_dict()
    skipped = [k for k, v in state.items() if k.startswith("head.classification_head.") and k in own
               and own[k].shape != v.shape]
    missing, unexpected = net.load_state_dict({k: v for k, v in state.items() if k not in skipped}, strict=False)
    missing = [k for k in missing if k not in skipped]
    if missing or unexpected:
        raise CheckpointError(f"model.pretrained '{file}' does not match the detector: {len(missing)} missing keys "
                              f"(e.g. {missing[:1]}), {len(unexpected)} unexpected (e.g. {unexpected[:1]})")


def build_detector(name: str, num_classes: int, image_size: int, pretrained: str | None = None,
                   **options) -> Detector:
    """The detector ``name`` (one of :data:`DETECTORS`) for ``num_classes`` object classes (background not
    counted) and S×S inputs. ``options``: post-processing (``score_thresh``, ``topk``, ``nms_iou``,
    ``max_detections``) for all; ``loss``, ``dropout``, ``class_bias``, ``width``, ``head_channels``, ``trunk_grid``, ``anchor_ratios`` for the seed."""
    if name not in DETECTORS:
        hint = closest(str(name), DETECTORS)
        raise ConfigError(f"unknown detector {name!r}: " + (f"did you mean '{hint}'?" if hint else
                                                            f"choose one of {', '.join(DETECTORS)}"))
    if num_classes < 1 or image_size < 32:
        raise ConfigError(f"need num_classes >= 1 and image_size >= 32, got {num_classes} and {image_size}")
    if name == "seed_resnet34":
        return SeedDetector(num_classes, image_size, pretrained, **options)
    unknown = set(options) - set(_POSTPROCESS)
    if unknown:
        raise ConfigError(f"{name} takes only the post-processing options {sorted(_POSTPROCESS)}, got {sorted(unknown)}")
    return TorchvisionSSD(name, num_classes, image_size, pretrained, **options)
