"""Config schemas of the Frame Flexible Network recipe (``data:`` and ``model:`` blocks), their checks, and its
registration (recipe ``ffn`` and the ``ffn-table`` tool).

FFN: Zhang, Bai, Liu, Wang, Li and Fu, "Frame Flexible Network", CVPR 2023. TSM: Lin, Gan and Han, "TSM: Temporal
Shift Module for Efficient Video Understanding", ICCV 2019. No torch here: the CLI validates configs without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from torchrepro.core.config import check_data_root
from torchrepro.core.errors import ConfigError
from torchrepro.core.registry import Recipe, Tool, register, register_tool
from torchrepro.nn.backbones import check_backbone_name

__all__ = ["FFNData", "FFNModel"]


@dataclass
class FFNData:
    """Where the videos come from and how clips are cut from them.

    ``source``: ``synthetic`` (our Something-Something-like videos, generated under ``synthetic_dir`` in the
    frames-folder + CSV layout, then read back), ``frames_csv`` (that layout at ``root``: ``classes.txt``,
    ``<split>.csv``, ``frames/<video>/``) or ``sthv2`` (a Something-Something V2 download at ``root``:
    ``labels.json``, ``train.json``, ``validation.json`` and ``20bn-something-something-v2/<id>.webm``, or frames
    extracted per video under ``frames_dir``).

    Splits. ``frames_csv`` / ``synthetic``: the CSVs ``train_split``, ``val_split`` and ``test_split``. ``sthv2``:
    validation chooses the checkpoint, so it cannot be the set the paper reports on: ``val_fraction`` of
    ``train.json`` (a fixed, seeded draw) is held out as the validation split and ``validation.json``, the set
    FFN's tables report, is the held-out test split, scored once.

    Clips (TSN segment sampling, Wang et al., ECCV 2016, §3.2): a clip of F frames takes one frame from each of F
    equal segments of the video, at random in training and at the segment's centre in evaluation. Frames are
    resized so the shorter side is ``resize`` and cropped to ``image_size`` (training: a random crop covering
    ``crop_scale`` of the area, the same for every frame of the video; evaluation: the centre). No horizontal flip:
    it would turn "left to right" into "right to left" (TSM's code turns flipping off for Something-Something).
    """

    source: Literal["synthetic", "frames_csv", "sthv2"] = "synthetic"
    root: str | None = None
    train_split: str = "train"
    val_split: str = "val"
    test_split: str | None = "test"
    val_fraction: float = 0.05
    videos_dir: str = "20bn-something-something-v2"
    frames_dir: str | None = None
    synthetic_dir: str = "data/synthetic/ffn"
    synthetic_train: int = 2000
    synthetic_val: int = 300
    synthetic_test: int = 300
    synthetic_size: int = 64
    synthetic_frames: int = 32
    image_size: int = 64
    resize: int = 64
    crop_scale: list[float] = field(default_factory=lambda: [0.6, 1.0])
    batch_size: int = 16
    val_batch_size: int = 32
    num_workers: int = 0

    def check(self, where: str) -> None:
        if self.source != "synthetic":
            check_data_root(self.root, where, self.source, "/path/to/data", "point it at the "
                            f"{'Something-Something V2' if self.source == 'sthv2' else 'data set'} folder")
        if self.source != "sthv2":
            splits = [self.train_split, self.val_split] + ([self.test_split] if self.test_split else [])
            if len(set(splits)) != len(splits):
                raise ConfigError(f"{where}.train_split, {where}.val_split and {where}.test_split must differ, got "
                                  f"{splits}: a split that is also scored is not held out")
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"config key '{where}.val_fraction' must be in (0, 1), got {self.val_fraction}")
        if len(self.crop_scale) != 2 or not 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1:
            raise ConfigError(f"config key '{where}.crop_scale' must be [min, max] with 0 < min <= max <= 1, got "
                              f"{self.crop_scale}")
        if self.resize < self.image_size:
            raise ConfigError(f"config key '{where}.resize' ({self.resize}) must be >= {where}.image_size "
                              f"({self.image_size}): the crop is taken from the resized frame")
        for key in ("synthetic_train", "synthetic_val", "synthetic_test", "synthetic_size", "synthetic_frames",
                    "image_size", "batch_size", "val_batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"config key '{where}.{key}' must be >= 1, got {getattr(self, key)}")


@dataclass
class FFNModel:
    """The network and how it is trained (FFN §4.1, Table 1's rows).

    ``regime``: ``single`` trains at the one frame count in ``train_frames`` (run once per frame count, that is
    FFN's "separated training"); ``mixed`` draws one of ``train_frames`` for every batch, with shared batch norms
    (FFN's "mixed sampling" baseline); ``ffn`` runs every frame count of ``train_frames`` on each video, with
    private batch norms and, if ``weight_alteration``, FFN's weight alterations, and the loss CE on the most
    frames + ``kl_weight`` × the KL terms of the others (FFN Eq. 3; the paper's λ is 1); ``low_frame_ce`` adds CE on
    the other frame counts too (not in the paper: an ablation for when the high-frame sub-network learns slowest).
    ``eval_frames``: the frame counts every evaluation scores (``acc@F``); the monitored ``accuracy`` is the mean
    over ``train_frames``. ``shift: false`` turns TSM's shift off (TSN, the baseline without temporal modelling).
    ``width`` scales the ResNet's channels (64: torchvision's; 16: a CPU-sized network).
    """

    regime: Literal["single", "mixed", "ffn"] = "ffn"
    train_frames: list[int] = field(default_factory=lambda: [4, 8, 16])
    eval_frames: list[int] = field(default_factory=lambda: [4, 8, 16])
    arch: str = "resnet18"
    width: int = 64
    pretrained: str | None = None
    shift: bool = True
    shift_div: int = 8
    weight_alteration: bool = True
    kl_weight: float = 1.0
    low_frame_ce: bool = False
    dropout: float = 0.5

    def check(self, where: str) -> None:
        check_backbone_name(self.arch, f"{where}.arch")
        if self.pretrained and not Path(self.pretrained).is_file():
            raise ConfigError(f"pretrained weights '{self.pretrained}' ({where}.pretrained) do not exist: give a local "
                              f".pth path")
        for key in ("train_frames", "eval_frames"):
            frames = getattr(self, key)
            if not frames or any(f < 1 for f in frames) or len(set(frames)) != len(frames):
                raise ConfigError(f"config key '{where}.{key}' must list distinct frame counts >= 1, got {frames}")
        if not set(self.train_frames) <= set(self.eval_frames):
            raise ConfigError(f"config key '{where}.eval_frames' ({self.eval_frames}) must include every frame count of "
                              f"{where}.train_frames ({self.train_frames}): the monitored accuracy averages over them")
        if self.regime == "single" and len(self.train_frames) != 1:
            raise ConfigError(f"regime 'single' trains at one frame count, but {where}.train_frames is "
                              f"{self.train_frames}: give one (e.g. {where}.train_frames=[16])")
        if self.regime != "single" and len(self.train_frames) < 2:
            raise ConfigError(f"regime '{self.regime}' needs at least two frame counts in {where}.train_frames, got "
                              f"{self.train_frames}: use regime 'single' for one")
        if self.width < 4 or self.shift_div < 2 or self.kl_weight < 0 or not 0 <= self.dropout < 1:
            raise ConfigError(f"need {where}.width >= 4, {where}.shift_div >= 2, {where}.kl_weight >= 0 and "
                              f"0 <= {where}.dropout < 1; got {self.width}, {self.shift_div}, {self.kl_weight}, "
                              f"{self.dropout}")


RECIPE = register(Recipe(
    name="ffn",
    description="Frame Flexible Network (Zhang et al., CVPR 2023) on a TSM ResNet: one model for 4 / 8 / 16-frame "
                "clips, against training at one frame count, separated training and mixed sampling",
    data_schema=FFNData,
    model_schema=FFNModel,
    task="torchrepro.frame_flexible.task",
    demo="torchrepro.frame_flexible.demo",  # page(runs_dir): the live page of `torchrepro serve`
    default_monitor="accuracy",
    default_mode="max",
    baseline_metric="baseline_prior_accuracy",
    synthetic_config="configs/ffn_synthetic.yaml",
    tiny_overrides=("data.synthetic_train=20", "data.synthetic_val=10", "data.synthetic_test=10",
                    "data.synthetic_size=32", "data.synthetic_frames=8", "data.image_size=32", "data.resize=32",
                    "data.batch_size=4", "model.train_frames=[2,4]", "model.eval_frames=[2,4]", "model.width=8",
                    "trainer.max_epochs=2"),
    report_figures=(  # written by torchrepro.frame_flexible.plots.FFNPlots
        ("accuracy_vs_frames.png", "Validation accuracy of the chosen checkpoint at every evaluated frame count."),
        ("curves.png", "Training loss and validation accuracy per epoch, at every evaluated frame count."),
    ),
))

register_tool(Tool("ffn-table", "train FFN's regimes (trained at the most frames, separated, mixed sampling, FFN) "
                   "and write the accuracy table at every frame count (Markdown, JSON and a plot)",
                   "torchrepro.frame_flexible.table", "table_main"))
