"""LipNet recipe ("lipnet"): CTC training, CER/WER evaluation with greedy and grammar-constrained beam decoding.

Metrics (LipNet §4.1: the edit distance over the reference's length, in characters and in words, for the whole
set; torchmetrics' ``char_error_rate`` / ``word_error_rate``):

* every validation: ``cer`` and ``wer`` of greedy (best-path) decoding, ``val_loss`` (CTC); ``wer`` chooses the
  checkpoint;
* the held-out test, once: the same for the overlapped speakers (``test/cer`` …) and for the unseen speakers
  (``test/unseen_cer`` …), each also with the prefix beam search constrained to GRID sentences (``cer_beam``,
  ``wer_beam``); the scoring of the untrained model runs the beam search on validation too.
* ``baseline_cer`` / ``baseline_wer``: a language-only model that ignores the video and answers the grammar's most
  likely sentence (the most frequent training word of every slot).
"""

from __future__ import annotations

from collections import Counter

import torch
from torchmetrics.functional.text import char_error_rate, word_error_rate

from torchrepro.core.config import Config
from torchrepro.core.task import TaskModule
from torchrepro.lipreading.config import LipModel
from torchrepro.lipreading.data import LipClipDataset, LipDataModule
from torchrepro.lipreading.decoding import SlotGrammar, beam_decode, greedy_decode
from torchrepro.lipreading.losses import ctc_loss
from torchrepro.lipreading.model import LipNet
from torchrepro.lipreading.vocabulary import GRID_SLOTS, decode_ids

__all__ = ["LipNetTask", "build", "most_likely_sentence"]

Batch = dict[str, torch.Tensor]


def most_likely_sentence(texts: list[str]) -> str:
    """The language-only baseline's answer: the most frequent word of every GRID slot in ``texts`` (ties: the
    word listed first in the grammar). Words of a transcript are assigned to slots by position."""
    counts = [Counter() for _ in GRID_SLOTS]
    for text in texts:
        for counter, word in zip(counts, text.split()):
            counter[word] += 1
    return " ".join(max(slot, key=lambda w: (counter[w], -slot.index(w))) for counter, slot in zip(counts, GRID_SLOTS))


def error_rates(hypotheses: list[str], references: list[str], suffix: str = "") -> dict[str, float]:
    """Corpus CER and WER (total edits over total reference length) as ``cer<suffix>`` / ``wer<suffix>``."""
    return {f"cer{suffix}": float(char_error_rate(hypotheses, references)),
            f"wer{suffix}": float(word_error_rate(hypotheses, references))}


class LipNetTask(TaskModule):
    """LipNet trained with CTC; see the module docstring for what is logged."""

    progress_metric = "wer"

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        m: LipModel = cfg.model
        self.m = m
        self.net = LipNet(cfg.data.input_size, m.channels, m.hidden, variant=m.variant, dropout=m.dropout,
                          batch_norm=m.batch_norm)
        self.grammar = SlotGrammar(GRID_SLOTS) if m.grammar else None
        #: the language-only baseline's sentence, set in setup from the training transcripts
        self.baseline_sentence = ""

    def setup(self, stage: str) -> None:
        train: LipClipDataset = self.trainer.datamodule.train_set
        self.baseline_sentence = most_likely_sentence([train.text(i) for i in range(len(train))])

    def forward(self, clips: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(clips, lengths)

    def batch_size(self, batch: Batch) -> int:
        return len(batch["clip"])

    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        log_probs = self.net(batch["clip"], batch["length"])
        return {"ctc": ctc_loss(log_probs, batch["target"], batch["length"], batch["target_length"])}

    def evaluation_rows(self, batch: Batch, dataloader_idx: int) -> dict[str, torch.Tensor]:
        log_probs = self.net(batch["clip"], batch["length"]).float()
        loss = ctc_loss(log_probs, batch["target"], batch["length"], batch["target_length"], per_item=True)
        return {"log_probs": log_probs, "length": batch["length"], "index": batch["index"], "loss": loss}

    def _datasets(self) -> list[tuple[str, LipClipDataset]]:
        dm: LipDataModule = self.trainer.datamodule
        return [("", dm.val_set)] if self.eval_split == "val" else [
            ("" if name == "overlapped" else f"{name}_", dataset) for name, dataset in dm.test_sets]

    def _set_metrics(self, rows: dict[str, torch.Tensor], dataset: LipClipDataset, beam: bool) -> dict[str, float]:
        references = [dataset.text(int(i)) for i in rows["index"]]
        greedy = [decode_ids(ids) for ids in greedy_decode(rows["log_probs"], rows["length"])]
        metrics = {**error_rates(greedy, references), "loss": float(rows["loss"].mean())}
        if beam:
            decoded = beam_decode(rows["log_probs"], rows["length"], self.m.beam_width, self.grammar)
            metrics.update(error_rates([decode_ids(ids) for ids in decoded], references, "_beam"))
        metrics.update({f"baseline_{k}": v for k, v in
                        error_rates([self.baseline_sentence] * len(references), references).items()})
        return metrics

    def evaluation_metrics(self, targets: list[dict[str, torch.Tensor]]) -> dict[str, float]:
        # the beam search costs ~2 ms a sentence: every evaluation but the per-epoch validation of a fit runs it
        beam = self.trainer.state.fn != "fit"
        metrics: dict[str, float] = {}
        for (prefix, dataset), rows in zip(self._datasets(), targets):
            for key, value in self._set_metrics(rows, dataset, beam).items():
                metrics[prefix + key] = value
        if self.eval_split == "val":
            metrics["val_loss"] = metrics.pop("loss")
        return metrics


def build(cfg: Config) -> tuple[LipNetTask, LipDataModule]:
    return LipNetTask(cfg), LipDataModule(cfg)
