"""Config schemas of the LipNet recipe (``data:`` and ``model:`` blocks), their checks, and its registration
(recipe ``lipnet`` and the ``lipread`` tool).

LipNet: Assael, Shillingford, Whiteson and de Freitas, "LipNet: End-to-End Sentence-level Lipreading", 2016.
GRID: Cooke, Barker, Cunningham and Shao, JASA 2006. No torch here: the CLI validates configs without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from torchrepro.core.config import check_data_root
from torchrepro.core.errors import ConfigError
from torchrepro.core.registry import Recipe, Tool, register, register_tool

__all__ = ["LipData", "LipModel"]


@dataclass
class LipData:
    """Where the videos come from, how the mouth is cut out, and the splits.

    ``source``: ``synthetic`` (our talking-mouth corpus, generated under ``synthetic_dir`` in the GRID layout, then
    read back) or ``grid`` (the GRID corpus at ``root``, layout in :mod:`torchrepro.lipreading.grid`).

    Splits (LipNet §4.1): ``unseen_speakers`` are only tested; of every other speaker in ``speakers`` (empty: all
    found), ``test_per_speaker`` sentences are the overlapped-speakers test set and ``val_per_speaker`` more the
    validation set, drawn with ``split_seed``.

    Clips: ``frames`` frames per clip (GRID: 75). A video whose length differs from its alignment's is an error
    naming it (``length_mismatch: error``) or is padded with its last frame / cut to the alignment
    (``length_mismatch: pad``). The mouth is ``mouth_box`` = [top, bottom, left, right] of every frame (the seed's
    GRID crop: rows 190-236, cols 100-200), or per-frame boxes read from ``boxes``: a file
    ``<boxes>/<speaker>/<name>.txt`` with one line per frame, either ``top bottom left right`` or face landmarks
    ``x1 y1 x2 y2 …`` (dlib's 68 points, of which the mouth's are used, or the mouth's points alone), boxed with a
    margin at the input's aspect ratio. Crops are turned grey, resized to ``input_size`` = [height, width] and standardised per
    video (the seed's (x − mean) / std). ``flip``: mirror the clip at random in training (LipNet §3.3).
    """

    source: Literal["synthetic", "grid"] = "synthetic"
    root: str | None = None
    speakers: list[str] = field(default_factory=list)
    unseen_speakers: list[str] = field(default_factory=lambda: ["s1", "s2", "s20", "s22"])
    test_per_speaker: int = 255
    val_per_speaker: int = 50
    split_seed: int = 0
    video_template: str = "{speaker}"
    align_template: str = "alignments/{speaker}"
    frames: int = 75
    length_mismatch: Literal["error", "pad"] = "error"
    mouth_box: list[int] = field(default_factory=lambda: [190, 236, 100, 200])
    boxes: str | None = None
    input_size: list[int] = field(default_factory=lambda: [50, 100])
    flip: bool = True
    synthetic_dir: str = "data/synthetic/lipnet"
    synthetic_speakers: int = 10
    synthetic_sentences: int = 150
    batch_size: int = 16
    val_batch_size: int = 32
    num_workers: int = 0

    def check(self, where: str) -> None:
        if self.source == "grid":
            check_data_root(self.root, where, "grid", "/path/to/GRID",
                            "point it at the GRID folder holding s1/, s2/ … and alignments/")
        top, bottom, left, right = (self.mouth_box + [0, 0, 0, 0])[:4]
        if len(self.mouth_box) != 4 or not (0 <= top < bottom and 0 <= left < right):
            raise ConfigError(f"config key '{where}.mouth_box' must be [top, bottom, left, right] with top < bottom and "
                              f"left < right, got {self.mouth_box}")
        if len(self.input_size) != 2 or min(self.input_size) < 8:
            raise ConfigError(f"config key '{where}.input_size' must be [height, width], each >= 8, got {self.input_size}")
        for template, key in ((self.video_template, "video_template"), (self.align_template, "align_template")):
            if "{speaker}" not in template:
                raise ConfigError(f"config key '{where}.{key}' must contain '{{speaker}}', got '{template}'")
        for key in ("frames", "synthetic_speakers", "synthetic_sentences", "batch_size", "val_batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"config key '{where}.{key}' must be >= 1, got {getattr(self, key)}")
        if self.test_per_speaker < 0 or self.val_per_speaker < 1:
            raise ConfigError(f"need {where}.test_per_speaker >= 0 and {where}.val_per_speaker >= 1, got "
                              f"{self.test_per_speaker} and {self.val_per_speaker}")
        if self.speakers and not set(self.unseen_speakers) <= set(self.speakers):
            raise ConfigError(f"{where}.unseen_speakers {self.unseen_speakers} must be among {where}.speakers "
                              f"{self.speakers}")


@dataclass
class LipModel:
    """LipNet (§3.1): three spatio-temporal convolutions with max-pooling, two bidirectional GRUs, a linear layer
    to the 28 characters, CTC.

    ``variant``: ``paper`` (the first convolution strides 2 in space, LipNet Table 4) or ``seed`` (every convolution
    stride 1, as the seed write-up). ``channels`` and ``hidden`` are the paper's 32/64/96 and 256; smaller values
    give a CPU-sized network. ``dropout``: spatial dropout after each convolution block and dropout on the GRU
    outputs. ``batch_norm``: batch normalisation after each convolution (not in the paper). ``beam_width``: the
    CTC prefix beam search of every evaluation but the per-epoch validation; ``grammar``: constrain it to GRID
    sentences.
    """

    variant: Literal["paper", "seed"] = "paper"
    channels: list[int] = field(default_factory=lambda: [32, 64, 96])
    hidden: int = 256
    dropout: float = 0.5
    batch_norm: bool = False
    beam_width: int = 16
    grammar: bool = True

    def check(self, where: str) -> None:
        if len(self.channels) != 3 or min(self.channels) < 1:
            raise ConfigError(f"config key '{where}.channels' must be three positive channel counts, got {self.channels}")
        if self.hidden < 1 or self.beam_width < 1 or not 0 <= self.dropout < 1:
            raise ConfigError(f"need {where}.hidden >= 1, {where}.beam_width >= 1 and 0 <= {where}.dropout < 1; got "
                              f"{self.hidden}, {self.beam_width}, {self.dropout}")


RECIPE = register(Recipe(
    name="lipnet",
    description="LipNet (Assael et al., 2016): sentence-level lip reading on GRID with 3-D convolutions, "
                "bidirectional GRUs and CTC; CER/WER on overlapped and unseen speakers, greedy and grammar beam",
    data_schema=LipData,
    model_schema=LipModel,
    task="torchrepro.lipreading.task",
    demo="torchrepro.lipreading.demo",
    default_monitor="wer",
    default_mode="min",
    baseline_metric="baseline_wer",
    synthetic_config="configs/lipnet_synthetic.yaml",
    tiny_overrides=("data.synthetic_speakers=3", "data.synthetic_sentences=8", "data.unseen_speakers=[s3]",
                    "data.test_per_speaker=2", "data.val_per_speaker=2", "data.batch_size=4", "data.frames=75",
                    "model.channels=[4,8,8]", "model.hidden=16", "model.beam_width=2", "trainer.max_epochs=2"),
    report_figures=(),
))

register_tool(Tool("lipread", "read the lips of a video with a trained LipNet: print the decoded text and write a "
                   "GIF of the mouth crop the model sees with its raw and decoded tokens",
                   "torchrepro.lipreading.lipread", "lipread_main"))
