"""LipNet (Assael, Shillingford, Whiteson and de Freitas, "LipNet: End-to-End Sentence-level Lipreading", 2016).

§3.1 and Table 4: three blocks of spatio-temporal convolution (STCNN) → ReLU → spatial dropout → max-pool
(1×2×2), then two bidirectional GRUs and a linear layer to the 28 characters, trained with CTC::

    input  1 × T × 50 × 100 (grey; the paper feeds RGB)
    STCNN  32, kernel 3×5×5, stride 1×2×2, padding 1×2×2   → pool 1×2×2
    STCNN  64, kernel 3×5×5, stride 1,     padding 1×2×2   → pool 1×2×2
    STCNN  96, kernel 3×3×3, stride 1,     padding 1       → pool 1×2×2
    Bi-GRU 256 → Bi-GRU 256 → linear 512 → 28

Time is never strided or pooled, so there is one output per frame, as CTC needs. ``variant="seed"`` is the seed
write-up's network: the first convolution does not stride (a 4× larger feature map after it).

Padded clips: a batch holds clips of several lengths (a GRID video may be a frame short). Every convolution
block's output is zeroed past each clip's length, and the GRUs run on a ``PackedSequence``, so the backward
direction of each clip starts at its own last frame, not in its padding: a clip's outputs are the same alone or in
any batch (tested). Without both, they would depend on how much padding the batch happens to have.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from torchrepro.lipreading.vocabulary import NUM_CLASSES

__all__ = ["LipNet"]


def _stcnn(c_in: int, c_out: int, kernel: tuple[int, int, int], stride: tuple[int, int, int], dropout: float,
           batch_norm: bool) -> nn.Sequential:
    padding = tuple(k // 2 for k in kernel)
    norm = [nn.BatchNorm3d(c_out)] if batch_norm else []
    return nn.Sequential(nn.Conv3d(c_in, c_out, kernel, stride, padding, bias=not batch_norm), *norm,
                         nn.ReLU(inplace=True), nn.Dropout3d(dropout), nn.MaxPool3d((1, 2, 2), (1, 2, 2)))


class LipNet(nn.Module):
    """Clips ``[B, 1, T, H, W]`` and their lengths → per-frame log-probabilities ``[B, T, num_classes]``."""

    def __init__(self, input_size: Sequence[int] = (50, 100), channels: Sequence[int] = (32, 64, 96),
                 hidden: int = 256, num_classes: int = NUM_CLASSES, variant: str = "paper", dropout: float = 0.5,
                 in_channels: int = 1, batch_norm: bool = False) -> None:
        super().__init__()
        first_stride = (1, 2, 2) if variant == "paper" else (1, 1, 1)
        c1, c2, c3 = channels
        self.convs = nn.Sequential(_stcnn(in_channels, c1, (3, 5, 5), first_stride, dropout, batch_norm),
                                   _stcnn(c1, c2, (3, 5, 5), (1, 1, 1), dropout, batch_norm),
                                   _stcnn(c2, c3, (3, 3, 3), (1, 1, 1), dropout, batch_norm))
        try:
            with torch.no_grad():
                features = self.convs(torch.zeros(1, in_channels, 1, *input_size))
        except RuntimeError:  # a pooling's output would be empty
            features = torch.zeros(0, 0, 0, 0, 0)
        if features.numel() == 0:
            raise ValueError(f"input_size {tuple(input_size)} is too small for LipNet's three 2x poolings")
        self.feature_dim = features[0, :, 0].numel()
        self.gru1 = nn.GRU(self.feature_dim, hidden, batch_first=True, bidirectional=True)
        self.gru2 = nn.GRU(2 * hidden, hidden, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(2 * hidden, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """He initialisation for the convolutions and the classifier, orthogonal recurrent weights (the
        initialisation of VIPL's LipNet-PyTorch port, whose batched CTC training is stable)."""
        for m in self.modules():
            if isinstance(m, (nn.Conv3d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for gru in (self.gru1, self.gru2):
            for name, p in gru.named_parameters():
                if name.startswith("weight_hh"):
                    for gate in p.data.chunk(3, 0):  # reset, update and new gates: one orthogonal matrix each
                        nn.init.orthogonal_(gate)
                elif name.startswith("bias"):
                    nn.init.zeros_(p)

    def _recurrent(self, gru: nn.GRU, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = gru(packed)
        return pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]

    def forward(self, clips: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        b, _, t = clips.shape[:3]
        if lengths is None:
            lengths = torch.full((b,), t, dtype=torch.long)
        # zero every block's output past each clip's length: the next temporal kernel then sees zeros there, as at
        # the clip's own border, instead of ReLU(bias) of the padding frames
        keep = (torch.arange(t, device=clips.device)[None, :] < lengths.to(clips.device)[:, None]).to(clips.dtype)
        x = clips
        for block in self.convs:
            x = block(x) * keep[:, None, :, None, None]  # [B, C, T, h, w]
        x = x.permute(0, 2, 1, 3, 4).reshape(b, t, -1)
        x = self.dropout(self._recurrent(self.gru1, x, lengths))
        x = self.dropout(self._recurrent(self.gru2, x, lengths))
        return self.classifier(x).log_softmax(-1)
