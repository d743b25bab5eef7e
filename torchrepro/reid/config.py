"""Config schemas of the person re-identification recipe (``data:`` and ``model:`` blocks) and their checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from torchrepro.core.config import Config
from torchrepro.core.errors import ConfigError
from torchrepro.core.registry import Recipe, Tool, register, register_tool
from torchrepro.nn.backbones import check_backbone_name
from torchrepro.reid.datasets import DATASETS


@dataclass
class ReidData:
    """Sources (training, pids offset per data set) and targets (the held-out test split), each a name from
    ``market1501 | dukemtmc | cuhk03_labeled | cuhk03_detected | synthetic`` with its folder in ``roots``
    (``synthetic`` defaults to a generated set under ``synthetic_dir``).

    ``val_ids`` identities of the sources' training folders are held out of training and form the validation
    split that chooses checkpoints (open-reid's ``num_val``; query per camera as Market-1501, Zheng et al.
    ICCV 2015 §3). ``synthetic_train_ids`` counts the generated training folder *including* them: the default
    250 − 50 keeps 200 training identities."""

    sources: list[str] = field(default_factory=lambda: ["synthetic"])
    targets: list[str] = field(default_factory=lambda: ["synthetic"])
    roots: dict[str, str] = field(default_factory=dict)
    val_ids: int = 50
    synthetic_dir: str = "data/synthetic/persons"
    synthetic_train_ids: int = 250
    synthetic_test_ids: int = 100
    height: int = 256
    width: int = 128
    batch_size: int = 32
    num_instances: int = 4
    test_batch_size: int = 100
    num_workers: int = 0
    flip: float = 0.5
    pad: int = 10
    erasing: float = 0.5
    texture_height: int = 256
    texture_width: int = 256

    def check(self, where: str) -> None:
        for name in [*self.sources, *self.targets]:
            if name not in DATASETS:
                raise ConfigError(f"{where}: unknown data set '{name}'; choose from {', '.join(sorted(DATASETS))}")
            if name != "synthetic":
                root = self.roots.get(name)
                if not root:
                    raise ConfigError(f"config key '{where}.roots.{name}' is required: the folder of the {name} data")
                if not Path(root).is_dir():
                    raise ConfigError(f"'{root}' ({where}.roots.{name}) does not exist: point it at the {name} folder")
        if not self.sources or not self.targets:
            raise ConfigError(f"{where}.sources and {where}.targets need at least one data set each")
        if self.val_ids < 1:
            raise ConfigError(
                f"{where}.val_ids must be >= 1, got {self.val_ids}: checkpoints and settings are chosen on training "
                f"identities held out for validation, never on the test split (data.targets); hold out some, e.g. "
                f"{where}.val_ids=100 for Market-1501")
        if self.sources == ["synthetic"] and self.val_ids >= self.synthetic_train_ids:
            raise ConfigError(
                f"{where}.val_ids ({self.val_ids}) must be smaller than {where}.synthetic_train_ids "
                f"({self.synthetic_train_ids}), which counts the validation identities too: lower {where}.val_ids "
                f"or raise {where}.synthetic_train_ids")
        if self.batch_size % self.num_instances:
            raise ConfigError(f"{where}.batch_size ({self.batch_size}) must be a multiple of "
                              f"{where}.num_instances ({self.num_instances})")


@dataclass
class ReidModel:
    """Network, losses and evaluation options (defaults: Bag of Tricks / the SAN seed)."""

    method: Literal["bot", "san", "san_pg"] = "bot"
    arch: str = "resnet50"
    last_stride: int = 1
    pretrained: str | None = None
    channels_last: bool = False  # NHWC trunk: oneDNN's faster CPU convolutions (~13% a step here)
    init_from: str | None = None  # a SAN-PG (or SAN) checkpoint: encoder + decoder weights
    label_smoothing: float = 0.1
    id_weight: float = 1.0
    triplet_weight: float = 1.0
    triplet_margin: float | None = 0.3  # null: soft margin
    recon_weight: float = 1.0
    constraint_weight: float = 1.0
    constraint_margin: float | None = 0.3
    decoder_lr: float | None = None  # default: optim.lr
    distance: Literal["euclidean", "cosine"] = "euclidean"
    rerank: bool = False
    cuhk03_single_shot: bool = False

    def check(self, where: str) -> None:
        check_backbone_name(self.arch, f"{where}.arch")
        for key in ("pretrained", "init_from"):
            value = getattr(self, key)
            if value and not Path(value).is_file():
                raise ConfigError(f"'{value}' ({where}.{key}) does not exist: give a local checkpoint path")
        if self.last_stride not in (1, 2):
            raise ConfigError(f"{where}.last_stride must be 1 or 2, got {self.last_stride}")


def uses_decoder(cfg: Config) -> bool:
    return cfg.model.method in ("san", "san_pg")


# The recipe's entry in the registry: names, schemas and the task module (imported only when a run builds it).
RECIPE = register(Recipe(
    name="reid",
    description="person re-identification: BoT baseline, SAN texture decoder and SAN-PG; Market-1501/DukeMTMC/"
                "CUHK03 formats or synthetic persons with textures; CMC/mAP/mINP on held-out training identities "
                "(val) and the targets (test, once)",
    data_schema=ReidData,
    model_schema=ReidModel,
    task="torchrepro.reid.task",  # build(cfg), callbacks(cfg): imported when a run needs them
    default_monitor="rank-1",
    default_mode="max",
    baseline_metric="baseline_colour_rank-1",
    synthetic_config="configs/reid_sim_bot.yaml",
    tiny_overrides=("data.synthetic_train_ids=6", "data.val_ids=2", "data.synthetic_test_ids=6", "data.height=64",
                    "data.width=32", "data.batch_size=8", "data.num_instances=4", "model.arch=resnet18", "trainer.max_epochs=2"),
    demo="torchrepro.reid.demo",  # page(runs_dir): the live page of `torchrepro serve`
    report_figures=(  # written by torchrepro.reid.plots.ReidPlots
        ("ranked_results.png", "Eight queries of the last evaluation beside their ten nearest gallery images, after "
                               "removing the query identity's images from the query's own camera (Market-1501 "
                               "protocol); green border: same identity, red: another."),
        ("textures.png", "SAN / SAN-PG texture decoder on six training images: the person, the predicted texture and "
                         "the target texture."),
        ("curves.png", "Training loss, rank-1 and mAP per epoch."),
    ),
))
register_tool(Tool("reid-ablation", "SAN ablation table (baseline / +recon / +constraints / SAN-PG init / control), "
                                    "validation and test figures", "torchrepro.reid.tools", "ablation_main"))
register_tool(Tool("reid-textures", "write SAN-PG pseudo textures for a re-ID data set", "torchrepro.reid.tools",
                   "textures_main"))
