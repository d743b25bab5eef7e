"""Config schemas of the SimCLR recipe (``data:`` with its ``augment:`` block, and ``model:``) and their checks.

Schemas only (no torch): ``torchrepro list`` and ``torchrepro config`` import this module to register the recipe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from torchrepro.core.config import check_data_root
from torchrepro.core.errors import ConfigError
from torchrepro.core.registry import Recipe, register

#: where Debian's ``dataset-fashion-mnist`` package puts the original IDX files
FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_INSTALL = "apt-get install dataset-fashion-mnist (or `make fashion-mnist`)"


def _check_range(value: list[float], key: str, low: float, high: float) -> None:
    if len(value) != 2 or not (low <= value[0] <= value[1] <= high):
        raise ConfigError(f"config key '{key}' needs two numbers [min, max] with {low} <= min <= max <= {high}, "
                          f"got {value}")


@dataclass
class AugmentConfig:
    """The paper's augmentations (Chen et al., ICML 2020, §3 and Appendix A), each configurable.

    Random resized crop (area fraction ``crop_scale``, aspect ratio ``crop_ratio``) resized back to the image size,
    horizontal flip with ``flip_p``, colour jitter of strength ``jitter_strength`` s (brightness, contrast and
    saturation 0.8·s, hue 0.2·s, in a random order) applied with ``jitter_p``, grayscale with ``grayscale_p``, Gaussian
    blur with ``blur_p`` (σ in ``blur_sigma``, kernel ≈ ``blur_kernel_frac`` of the image side). On grey images
    colour jitter reduces to brightness and contrast and grayscale does nothing. The paper leaves blur out on
    CIFAR-10 (Appendix B.9).
    """

    crop_scale: list[float] = field(default_factory=lambda: [0.08, 1.0])
    crop_ratio: list[float] = field(default_factory=lambda: [3 / 4, 4 / 3])
    flip_p: float = 0.5
    jitter_strength: float = 1.0
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    blur_p: float = 0.5
    blur_sigma: list[float] = field(default_factory=lambda: [0.1, 2.0])
    blur_kernel_frac: float = 0.1

    def check(self, where: str) -> None:
        _check_range(self.crop_scale, f"{where}.crop_scale", 1e-6, 1.0)
        _check_range(self.crop_ratio, f"{where}.crop_ratio", 1e-6, float("inf"))
        _check_range(self.blur_sigma, f"{where}.blur_sigma", 1e-6, float("inf"))
        for key in ("flip_p", "jitter_p", "grayscale_p", "blur_p"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"config key '{where}.{key}' is a probability in [0, 1], got {getattr(self, key)}")
        if self.jitter_strength < 0 or not 0 < self.blur_kernel_frac <= 1:
            raise ConfigError(f"config keys '{where}.jitter_strength' (>= 0) and '{where}.blur_kernel_frac' (in (0, 1]) "
                              f"got {self.jitter_strength} and {self.blur_kernel_frac}")


@dataclass
class SimCLRData:
    """Images for contrastive pre-training and the splits that score it.

    ``source``: ``fashion_mnist`` (the original IDX files ``train-images-idx3-ubyte[.gz]``, ``train-labels-…``,
    ``t10k-…`` in ``root``), ``cifar10`` (the python format, ``cifar-10-batches-py/data_batch_1..5`` and
    ``test_batch`` in ``root`` or ``root`` itself), ``imagefolder`` (``root/train/<class>/*`` and ``root/test/<class>/*``,
    resized to ``image_size``) or ``synthetic`` (grey shapes written as Fashion-MNIST IDX files under
    ``synthetic_dir``, then read back by the IDX reader).

    Splits: ``val_size`` training images, drawn with ``split_seed``, are held out as the validation split that is
    scored every epoch and chooses the checkpoint; the official test set is scored once at the end. Evaluation uses
    ``val_bank`` / ``test_bank`` training images (null: all of them; a fixed seeded subset otherwise) as the kNN memory
    bank and as the training set of the linear classifier.
    """

    source: Literal["fashion_mnist", "cifar10", "imagefolder", "synthetic"] = "fashion_mnist"
    root: str | None = FASHION_MNIST_ROOT
    image_size: int | None = None  # null: the data set's own size (28 Fashion-MNIST, 32 CIFAR-10); imagefolder: 64
    val_size: int = 5000
    split_seed: int = 0
    val_bank: int | None = 10000
    test_bank: int | None = None
    batch_size: int = 128
    eval_batch_size: int = 512
    num_workers: int = 0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    synthetic_dir: str = "data/synthetic/simclr"
    synthetic_train: int = 3000
    synthetic_test: int = 600

    @property
    def channels(self) -> int:
        return 1 if self.source in ("fashion_mnist", "synthetic") else 3

    def check(self, where: str) -> None:
        if self.source != "synthetic":
            fix = (f"install it with `{FASHION_MNIST_INSTALL}`, or point {where}.root at a folder holding the IDX files"
                   if self.source == "fashion_mnist" else f"point {where}.root at the data set folder")
            check_data_root(self.root, where, self.source, "/path/to/data", fix)
        if self.batch_size < 2:
            raise ConfigError(f"config key '{where}.batch_size' must be >= 2, got {self.batch_size}: NT-Xent contrasts "
                              f"each image with the other images of the batch, a batch of one has no negatives")
        for key in ("val_size", "eval_batch_size", "synthetic_train", "synthetic_test"):
            if getattr(self, key) < 1:
                raise ConfigError(f"config key '{where}.{key}' must be >= 1, got {getattr(self, key)}")
        for key in ("image_size", "val_bank", "test_bank"):
            value = getattr(self, key)
            if value is not None and value < (8 if key == "image_size" else 1):
                raise ConfigError(f"config key '{where}.{key}' must be null or >= {8 if key == 'image_size' else 1}, "
                                  f"got {value}")


@dataclass
class SimCLRModel:
    """Encoder, projection head, NT-Xent temperature and the evaluation protocol.

    ``arch``: a torchvision ResNet (resnet18/34/50) without its fc; ``small_stem`` replaces the 7×7/2 conv1 and the
    max-pool by a 3×3/1 conv (the paper's CIFAR-10 variant, Appendix B.9; ``stem_stride`` 2 makes it 3×3/2); ``width`` scales every stage's channels
    (64: torchvision's ResNet; 512-d features for resnet18); ``channels_last`` stores the trunk NHWC (faster on
    CPUs). ``proj_hidden`` / ``proj_dim``: the two-layer MLP head
    g (§2.1; the seed's 512→512→256). ``temperature``: τ of NT-Xent (§2.1, Eq. 1; the paper's 0.1–0.5, Table 5).

    Evaluation (every validation, and once on the test split): kNN on L2-normalised features (``knn_k`` neighbours
    by cosine similarity, votes weighted by exp(s/``knn_temperature``), Wu et al. 2018) and a linear classifier
    trained on frozen, once-extracted features (``linear_steps`` full-batch L-BFGS steps, L2 penalty
    ``linear_weight_decay``). ``untrained_baseline``: also score an encoder freshly initialised with the run's
    seed (``baseline_untrained_*``) beside the raw-pixel baselines.
    """

    arch: Literal["resnet18", "resnet34", "resnet50"] = "resnet18"
    small_stem: bool = True
    stem_stride: int = 1  # 2: the small stem's conv down-samples (a quarter of the cost; with small_stem)
    width: int = 64
    channels_last: bool = False  # NHWC trunk: oneDNN's faster CPU convolutions
    proj_hidden: int = 512
    proj_dim: int = 256
    proj_bn: bool = True
    temperature: float = 0.5
    gather_negatives: bool = True
    knn_k: int = 200
    knn_temperature: float = 0.1
    linear_steps: int = 100
    linear_weight_decay: float = 1e-4
    untrained_baseline: bool = True

    def check(self, where: str) -> None:
        if not self.temperature > 0:
            raise ConfigError(f"config key '{where}.temperature' must be > 0, got {self.temperature}: NT-Xent divides "
                              f"cosine similarities by τ (the paper uses 0.1-0.5)")
        if not self.knn_temperature > 0:
            raise ConfigError(f"config key '{where}.knn_temperature' must be > 0, got {self.knn_temperature}")
        for key in ("width", "proj_hidden", "proj_dim", "knn_k", "linear_steps"):
            if getattr(self, key) < 1:
                raise ConfigError(f"config key '{where}.{key}' must be >= 1, got {getattr(self, key)}")
        if self.channels_last and self.width < 8:
            # measured with torch 2.14.1 here: NHWC training of a width-4 (or 2) trunk on the CPU corrupts the heap
            # ("free(): invalid next size", a segfault) in oneDNN's convolutions; width 8 and above train normally
            raise ConfigError(f"config key '{where}.channels_last' needs {where}.width >= 8, got width {self.width}: "
                              f"oneDNN's NHWC CPU convolutions crash on fewer channels; set {where}.channels_last=false")
        if self.stem_stride not in (1, 2) or (self.stem_stride == 2 and not self.small_stem):
            raise ConfigError(f"config key '{where}.stem_stride' must be 1, or 2 with {where}.small_stem=true, "
                              f"got {self.stem_stride}")
        if self.linear_weight_decay < 0:
            raise ConfigError(f"config key '{where}.linear_weight_decay' must be >= 0, got {self.linear_weight_decay}")


RECIPE = register(Recipe(
    name="simclr",
    description="SimCLR contrastive pre-training (NT-Xent, ResNet) scored by kNN and linear evaluation; "
                "Fashion-MNIST IDX, CIFAR-10 python batches, ImageFolder or synthetic shapes",
    data_schema=SimCLRData,
    model_schema=SimCLRModel,
    task="torchrepro.simclr.task",  # build(cfg), callbacks(cfg): imported when a run needs them
    default_monitor="knn_top1",
    default_mode="max",
    baseline_metric="baseline_pixels_knn_top1",
    synthetic_config="configs/simclr_synthetic.yaml",
    tiny_overrides=("data.synthetic_train=72", "data.synthetic_test=24", "data.val_size=24", "data.batch_size=8",
                    "data.eval_batch_size=32", "data.image_size=16", "model.width=4", "model.proj_hidden=16",
                    "model.proj_dim=8", "model.knn_k=10", "model.linear_steps=5", "trainer.max_epochs=2"),
    report_figures=(  # written by torchrepro.simclr.plots.SimCLRPlots
        ("curves.png", "NT-Xent training loss, and the validation kNN and linear-evaluation accuracy per epoch."),
        ("embedding_pca.png", "The last evaluation's features of the evaluated split projected on their first two "
                              "principal components, coloured by class (the labels are never used in training)."),
        ("neighbours.png", "Evaluation images (left) beside their 8 nearest training images by cosine similarity of "
                           "the encoder's features; a green frame marks the query's class, red another class."),
    ),
))
