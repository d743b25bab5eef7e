"""CTC decoding of LipNet's per-frame character log-probabilities, optionally constrained to the GRID grammar.

LipNet (Assael et al., "LipNet: End-to-End Sentence-level Lipreading", 2016, §3.2) is trained with CTC (Graves,
Fernández, Gomez and Schmidhuber, "Connectionist Temporal Classification", ICML 2006). A path π is one class per
frame; the many-to-one map B removes repeated classes, then blanks (Graves §3.1); the probability of a labelling
l is the sum over its paths, p(l | x) = Σ_{π ∈ B⁻¹(l)} Π_t y_t(π_t) (Graves Eq. 2-3). Two decoders (Graves §3.2):

* **best path** (``greedy_decode``): B(argmax path). The most probable *path* is not always the most probable
  *labelling*, since a labelling's mass is spread over many paths, but it is cheap and vectorises.
* **prefix beam search** (``prefix_beam_search``; Hannun, Maas, Jurafsky and Ng, "First-pass large vocabulary
  continuous speech recognition using bi-directional recurrent DNNs", 2014, Algorithm 1). Each kept prefix ℓ
  carries two masses after frame t: p_b(ℓ), of the paths that collapse to ℓ and end in a blank, and p_nb(ℓ), of
  those ending in ℓ's last character. They must be kept apart because of the repeat rule of B: a further frame
  of ℓ's last character c extends ℓ to ℓc only from p_b (a blank separates the two c's), while from p_nb it
  merges into ℓ itself. All arithmetic is in log space; the ``beam_width`` prefixes of highest
  p_b + p_nb survive each frame. With a beam at least as wide as the number of distinct prefixes nothing is
  pruned and the result is the exact most probable labelling (what the tests check against enumeration).

The GRID grammar (``vocabulary.GRID_SLOTS``: six words, one per slot, in order) can optionally constrain the
search; every GRID transcript is such a sentence, so the constraint only removes impossible outputs.
``SlotGrammar`` is a finite automaton made of one character trie per slot, joined by the space; the beam only
extends a prefix with characters the automaton allows and finally only complete sentences are eligible. Since
every path of a labelling passes only through prefixes of that labelling, dropping ungrammatical prefixes loses
no mass of any grammatical sentence: with a wide beam the constrained search returns exactly the most probable
grammatical labelling.

Text is recovered from class indices with ``vocabulary.decode_ids``.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from typing import Literal, overload

import torch

from torchrepro.lipreading.vocabulary import BLANK, GRID_SLOTS, SPACE, encode_text

__all__ = ["SlotGrammar", "beam_decode", "greedy_decode", "prefix_beam_search"]

_NEG_INF = -math.inf

#: a beam: prefix (class indices, no blanks) → [log p_b, log p_nb, grammar state]
_Beam = dict[tuple[int, ...], list]


def _log_add(a: float, b: float) -> float:
    """log(eᵃ + eᵇ), exact for -inf operands (probability zero) without NaNs."""
    if a < b:
        a, b = b, a
    if b == _NEG_INF:
        return a
    return a + math.log1p(math.exp(b - a))


def _check_batch(log_probs: torch.Tensor, lengths: torch.Tensor | None) -> list[int]:
    """Valid frame counts of a ``[B, T, C]`` batch; ``lengths`` defaults to T for every item."""
    if log_probs.dim() != 3:
        raise ValueError(f"log_probs must be [B, T, C], got shape {tuple(log_probs.shape)}")
    batch, frames, _ = log_probs.shape
    if lengths is None:
        return [frames] * batch
    lengths_list = [int(n) for n in torch.as_tensor(lengths).reshape(-1).tolist()]
    if len(lengths_list) != batch or any(n < 0 or n > frames for n in lengths_list):
        raise ValueError(f"lengths must hold {batch} frame counts in [0, {frames}], got {lengths_list}")
    return lengths_list


def greedy_decode(log_probs: torch.Tensor, lengths: torch.Tensor | None = None) -> list[list[int]]:
    """Best-path decoding (Graves et al. 2006, §3.2) of ``log_probs`` ``[B, T, C]`` (batch first; blank = 0).

    Item b uses its first ``lengths[b]`` frames (all T by default): the per-frame argmax, repeats collapsed, then
    blanks dropped, so "a a" separated by a blank stays two a's. Returns class indices without blanks.
    """
    valid = _check_batch(log_probs, lengths)
    best = log_probs.detach().argmax(dim=-1).cpu()  # [B, T], one vectorised argmax for the whole batch
    decoded = []
    for row, length in zip(best.tolist(), valid):
        out, previous = [], BLANK
        for c in row[:length]:
            if c != previous and c != BLANK:
                out.append(c)
            previous = c
        decoded.append(out)
    return decoded


class SlotGrammar:
    """Sentences made of one word per slot, in slot order, separated by single spaces (GRID by default).

    The grammar is a deterministic automaton over class indices: one character trie per slot, whose word-end
    nodes (except in the last slot) have a space edge to the next slot's root. A state is an ``int`` (a trie
    node); ``initial`` is the first slot's root. ``step(state, c)`` is one dict look-up, so the beam search
    extends a prefix's state incrementally instead of re-parsing the prefix. A word that is a prefix of another
    word of its slot is handled by the trie: its node both ends a word and has children.
    """

    def __init__(self, slots: Sequence[Sequence[str]] = GRID_SLOTS) -> None:
        if not slots or any(not slot for slot in slots):
            raise ValueError(f"a SlotGrammar needs at least one slot and a word in every slot, got {slots!r}")
        self.slots: tuple[tuple[str, ...], ...] = tuple(tuple(slot) for slot in slots)
        self._edges: list[dict[int, int]] = []  # state → {class index → next state}
        self._slot: list[int] = []  # state → its slot
        self._word_end: list[bool] = []  # state → a whole word of its slot has been read
        roots = [self._new_state(i) for i in range(len(self.slots))]
        for i, slot in enumerate(self.slots):
            for word in slot:
                ids = encode_text(word, where=f"grammar slot {i} word")
                if not ids or SPACE in ids:
                    raise ValueError(f"grammar slot {i} has the word {word!r}: words must be non-empty, "
                                     "without spaces")
                node = roots[i]
                for c in ids:
                    nxt = self._edges[node].get(c)
                    if nxt is None:
                        nxt = self._edges[node][c] = self._new_state(i)
                    node = nxt
                self._word_end[node] = True
                if i + 1 < len(self.slots):
                    self._edges[node][SPACE] = roots[i + 1]
        self.initial: int = roots[0]
        self._last_slot = len(self.slots) - 1

    def _new_state(self, slot: int) -> int:
        self._edges.append({})
        self._slot.append(slot)
        self._word_end.append(False)
        return len(self._edges) - 1

    def step(self, state: int, c: int) -> int | None:
        """The state after reading class ``c`` in ``state``, or None if ``c`` may not come next."""
        return self._edges[state].get(c)

    def transitions(self, state: int) -> Mapping[int, int]:
        """{class index → next state} for every class allowed after ``state`` (read-only: the automaton's own)."""
        return self._edges[state]

    def allowed(self, state: int) -> frozenset[int]:
        """The class indices that may follow ``state`` (the space only after a whole, non-final word)."""
        return frozenset(self._edges[state])

    def is_complete(self, state: int) -> bool:
        """Whether ``state`` ends a whole sentence: a whole word of the last slot has just been read."""
        return self._word_end[state] and self._slot[state] == self._last_slot

    def slot_of(self, state: int) -> int:
        """The index of the slot whose word is being read in ``state``."""
        return self._slot[state]

    def state_of(self, ids: Sequence[int]) -> int | None:
        """The state after reading ``ids`` from the start, or None if they are not a prefix of any sentence."""
        state: int | None = self.initial
        for c in ids:
            state = self._edges[state].get(c)
            if state is None:
                return None
        return state

    def accepts(self, ids: Sequence[int]) -> bool:
        """Whether ``ids`` (class indices, no blanks) spell a whole sentence of the grammar."""
        state = self.state_of(ids)
        return state is not None and self.is_complete(state)


@overload
def prefix_beam_search(log_probs: torch.Tensor, beam_width: int = ..., grammar: SlotGrammar | None = ...,
                       return_score: Literal[False] = ...) -> list[int]: ...


@overload
def prefix_beam_search(log_probs: torch.Tensor, beam_width: int = ..., grammar: SlotGrammar | None = ...,
                       *, return_score: Literal[True]) -> tuple[list[int], float]: ...


def prefix_beam_search(log_probs: torch.Tensor, beam_width: int = 16, grammar: SlotGrammar | None = None,
                       return_score: bool = False) -> list[int] | tuple[list[int], float]:
    """CTC prefix beam search (Hannun et al. 2014, Algorithm 1) over one utterance's ``log_probs`` ``[T, C]``.

    ``log_probs`` should be log-softmax outputs (blank = 0). Keeps the ``beam_width`` most probable prefixes
    after every frame and returns the class indices (no blanks) of the most probable labelling among the
    candidates after the last frame; with ``return_score`` also its log-probability log p(l | x) as accumulated
    by the search: exact when the beam never had to prune, otherwise a lower bound (mass of paths through pruned
    prefixes is lost).

    With a ``grammar``, a prefix is only extended by characters the grammar allows, and only complete sentences
    are eligible at the end. If no candidate is a complete sentence (too few frames, or the beam lost them all),
    the search falls back to the most probable (grammatical but incomplete) prefix rather than returning nothing.

    Speed: a character of probability exactly zero (log-prob -inf) is skipped, which changes nothing; no other
    pruning is done, so results do not depend on a probability threshold. Time is O(T · beam_width · C) without
    a grammar and O(T · beam_width · k) with one, k being the few characters the grammar allows after a prefix.
    """
    if log_probs.dim() != 2:
        raise ValueError(f"log_probs must be [T, C] for one utterance, got shape {tuple(log_probs.shape)}")
    if beam_width < 1:
        raise ValueError(f"beam_width must be >= 1, got {beam_width}")
    frames = log_probs.detach().to(device="cpu", dtype=torch.float64).tolist()  # Python floats: fast scalar math
    # before any frame the empty prefix has all the mass and "ends in a blank" (its first character is a plain
    # extension); the third field is the prefix's grammar state (unused without a grammar)
    beam: _Beam = {(): [0.0, _NEG_INF, grammar.initial if grammar is not None else 0]}
    for t, frame in enumerate(frames):
        beam = _advance(beam, frame, grammar)
        if t + 1 < len(frames) and len(beam) > beam_width:
            # nlargest is stable: equal scores keep their creation order, so results are reproducible
            beam = dict(heapq.nlargest(beam_width, beam.items(), key=lambda kv: _log_add(kv[1][0], kv[1][1])))
        # the last frame's candidates are not pruned: all are eligible, and pruning could only lose sentences
    scored = [(_log_add(pb, pnb), prefix, state) for prefix, (pb, pnb, state) in beam.items()]
    if grammar is not None:
        complete = [item for item in scored if grammar.is_complete(item[2])]
        scored = complete or scored  # the fallback of the docstring: the best incomplete prefix
    best_score, best_prefix, _ = max(scored, key=lambda item: item[0])  # the first of equal maxima wins
    labelling = list(best_prefix)
    return (labelling, best_score) if return_score else labelling


def _advance(beam: _Beam, frame: list[float], grammar: SlotGrammar | None) -> _Beam:
    """One frame of Hannun et al.'s Algorithm 1: every way each kept prefix can continue, masses merged."""
    p_blank = frame[BLANK]
    # without a grammar every prefix may take every character of non-zero probability this frame
    free = [(c, 0) for c in range(len(frame)) if c != BLANK and frame[c] != _NEG_INF] if grammar is None else []
    nxt: _Beam = {}
    for prefix, (pb, pnb, state) in beam.items():
        total = _log_add(pb, pnb)
        entry = nxt.get(prefix)
        if entry is None:
            entry = nxt[prefix] = [_NEG_INF, _NEG_INF, state]
        entry[0] = _log_add(entry[0], total + p_blank)  # a blank: same prefix, now ending in a blank
        last = prefix[-1] if prefix else None
        if last is not None:
            # the repeat rule of B: after a path ending in ℓ's last character, another frame of it collapses into
            # ℓ itself. Not subject to the grammar: it adds no character (and a complete sentence, which allows
            # no next character, must keep this mass)
            entry[1] = _log_add(entry[1], pnb + frame[last])
        for c, child_state in (free if grammar is None else grammar.transitions(state).items()):
            # a second c right after ℓ's last character c needs a blank in between: only p_b(ℓ) extends
            mass = (pb if c == last else total) + frame[c]
            if mass == _NEG_INF:  # probability zero: creating the prefix would change nothing
                continue
            extended = prefix + (c,)
            child = nxt.get(extended)
            if child is None:
                child = nxt[extended] = [_NEG_INF, _NEG_INF, child_state]
            child[1] = _log_add(child[1], mass)
    return nxt


def beam_decode(log_probs: torch.Tensor, lengths: torch.Tensor | None = None, beam_width: int = 16,
                grammar: SlotGrammar | None = None) -> list[list[int]]:
    """``prefix_beam_search`` over each item of a ``[B, T, C]`` batch, item b on its first ``lengths[b]`` frames."""
    valid = _check_batch(log_probs, lengths)
    cpu = log_probs.detach().cpu()
    return [prefix_beam_search(cpu[b, :length], beam_width, grammar) for b, length in enumerate(valid)]
