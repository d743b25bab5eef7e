"""CTC decoding against hand-worked cases and an independent brute force from the CTC definition.

The brute force (Graves et al. 2006, Eq. 2-3) enumerates every path π of a tiny input, maps it with B (merge
repeats, then drop blanks) and sums Π_t y_t(π_t) per labelling; the most probable labelling, or the most probable
one among the sentences of a grammar (checked here by splitting the text on spaces, not with the decoder's trie),
is what a wide enough prefix beam search must return.
"""

from __future__ import annotations

import itertools
import math
import random

import pytest
import torch
import torch.nn.functional as F

from torchrepro.core.errors import DataError
from torchrepro.lipreading.decoding import SlotGrammar, beam_decode, greedy_decode, prefix_beam_search
from torchrepro.lipreading.vocabulary import (BLANK, CHARACTERS, GRID_SLOTS, NUM_CLASSES, SPACE, decode_ids,
                                              encode_text, is_grid_sentence)

A, B = encode_text("ab")  # the real class indices of "a" and "b": 2 and 3, so classes 0-3 are blank, space, a, b
TINY_SLOTS = (("ab", "b"), ("a", "ba"))  # sentences: "ab a", "ab ba", "b a", "b ba"
WIDE = 4096  # wider than the number of distinct prefixes of any tiny input here: nothing is ever pruned


# ---------------------------------------------------------------- the independent reference ----------------------

def _collapse(path: tuple[int, ...]) -> tuple[int, ...]:
    """Graves' B: merge runs of the same class, then remove blanks."""
    merged = [c for i, c in enumerate(path) if i == 0 or c != path[i - 1]]
    return tuple(c for c in merged if c != BLANK)


def _labelling_log_probs(log_probs: torch.Tensor, classes: int | None = None) -> dict[tuple[int, ...], float]:
    """log p(l | x) of every labelling with non-zero probability, by enumerating all paths over the first
    ``classes`` classes (the others must have probability zero)."""
    frames, num = log_probs.shape
    classes = num if classes is None else classes
    paths = list(itertools.product(range(classes), repeat=frames))
    lp = log_probs.double()[torch.arange(frames), torch.tensor(paths)].sum(1).tolist()  # [N] path log-probs
    per: dict[tuple[int, ...], list[float]] = {}
    for path, value in zip(paths, lp):
        per.setdefault(_collapse(path), []).append(value)
    return {lab: torch.logsumexp(torch.tensor(v, dtype=torch.float64), 0).item() for lab, v in per.items()}


def _is_sentence(labelling: tuple[int, ...], slots) -> bool:
    words = decode_ids(labelling).split(" ")
    return len(words) == len(slots) and all(w in slot for w, slot in zip(words, slots))


def _random_log_probs(seed: int, frames: int, classes: int, scale: float = 2.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(frames, classes, generator=g, dtype=torch.float64)).log_softmax(-1)


def _frames(spec: list[dict[str, float]]) -> torch.Tensor:
    """[T, 28] log-probs: each frame gives some characters ("-" = blank) a probability; the rest of the mass is
    spread evenly over the other classes."""
    out = torch.empty(len(spec), NUM_CLASSES, dtype=torch.float64)
    for t, probs in enumerate(spec):
        idx = {BLANK if ch == "-" else CHARACTERS.index(ch): p for ch, p in probs.items()}
        rest = (1.0 - sum(idx.values())) / (NUM_CLASSES - len(idx))
        out[t] = torch.tensor([idx.get(c, rest) for c in range(NUM_CLASSES)]).log()
    return out


def _clean_spec(text: str) -> list[dict[str, float]]:
    """Two confident frames per character, a confident blank after each."""
    spec = []
    for ch in text:
        spec += [{ch: 0.9}, {ch: 0.9}, {"-": 0.9}]
    return spec


# ---------------------------------------------------------------- greedy ------------------------------------------

def _one_hot_log_probs(rows: list[list[int]]) -> torch.Tensor:
    """[B, T, 4] log-probs whose per-frame argmax is the given class (0.7 there, 0.1 elsewhere)."""
    probs = torch.full((len(rows), len(rows[0]), 4), 0.1)
    for b, row in enumerate(rows):
        for t, c in enumerate(row):
            probs[b, t, c] = 0.7
    return probs.log()


def test_greedy_hand_written() -> None:
    rows = [[A, BLANK, A, B],        # a blank between two a's keeps both
            [A, A, B, B],            # repeats merge
            [BLANK, BLANK, BLANK, BLANK],
            [B, SPACE, SPACE, A]]
    assert greedy_decode(_one_hot_log_probs(rows)) == [[A, A, B], [A, B], [], [B, SPACE, A]]


def test_greedy_respects_lengths() -> None:
    lp = _one_hot_log_probs([[A, B, BLANK, A], [B, B, A, A]])
    assert greedy_decode(lp, torch.tensor([2, 4])) == [[A, B], [B, A]]
    assert greedy_decode(lp, torch.tensor([0, 1])) == [[], [B]]
    with pytest.raises(ValueError, match="lengths"):
        greedy_decode(lp, torch.tensor([5, 1]))
    with pytest.raises(ValueError, match=r"\[B, T, C\]"):
        greedy_decode(lp[0])


# ---------------------------------------------------------------- prefix beam search --------------------------------

def test_beam_beats_best_path_hand_computed() -> None:
    """Two frames of (blank .4, a .35, b .25): the best path is blank-blank (p = .16), but "a" has the paths
    aa, a-, -a: p = .35² + 2·.35·.4 = .4025."""
    lp = torch.tensor([[0.4, 0.0, 0.35, 0.25]] * 2).log()
    assert greedy_decode(lp[None]) == [[]]
    labelling, score = prefix_beam_search(lp, beam_width=8, return_score=True)
    assert labelling == [A]
    assert score == pytest.approx(math.log(0.4025), abs=1e-6)


def test_repeated_character_needs_a_blank() -> None:
    """Frames a, (blank | a), a: "aa" has the single path a-a, so p("aa") = .97 · p(blank) · .97; otherwise the
    a's merge into "a"."""
    for middle_blank, expected in [(0.6, [A, A]), (0.38, [A])]:
        middle = [middle_blank, 0.01, 0.98 - middle_blank, 0.01]
        lp = torch.tensor([[0.01, 0.01, 0.97, 0.01], middle, [0.01, 0.01, 0.97, 0.01]], dtype=torch.float64).log()
        labelling, score = prefix_beam_search(lp, beam_width=8, return_score=True)
        assert labelling == expected
        if expected == [A, A]:
            assert score == pytest.approx(math.log(0.97 * middle_blank * 0.97), abs=1e-12)


@pytest.mark.parametrize("frames,classes", [(1, 3), (3, 3), (5, 3), (6, 3), (4, 4), (6, 4)])
def test_wide_beam_finds_the_most_probable_labelling(frames: int, classes: int) -> None:
    for seed in range(12):
        lp = _random_log_probs(seed, frames, classes)
        exact = _labelling_log_probs(lp)
        best = max(exact, key=exact.get)
        labelling, score = prefix_beam_search(lp, beam_width=WIDE, return_score=True)
        assert tuple(labelling) == best, f"seed {seed}"
        assert score == pytest.approx(exact[best], abs=1e-9)


def test_wide_beam_is_never_worse_than_greedy() -> None:
    strictly_better = 0
    for seed in range(40):
        lp = _random_log_probs(100 + seed, 5, 3, scale=1.0)  # flat outputs: best path and best labelling differ
        exact = _labelling_log_probs(lp)
        greedy = tuple(greedy_decode(lp[None])[0])
        beam = tuple(prefix_beam_search(lp, beam_width=WIDE))
        assert exact[beam] >= exact[greedy] - 1e-12, f"seed {seed}"
        strictly_better += exact[beam] > exact[greedy] + 1e-9
    assert strictly_better > 0  # otherwise this test could not tell the two decoders apart


def test_narrow_beam_score_is_a_lower_bound() -> None:
    """With pruning, the mass of paths through dropped prefixes is lost: the score never exceeds the truth."""
    for seed in range(10):
        lp = _random_log_probs(200 + seed, 6, 4, scale=1.0)
        exact = _labelling_log_probs(lp)
        labelling, score = prefix_beam_search(lp, beam_width=2, return_score=True)
        assert score <= exact[tuple(labelling)] + 1e-9


def test_no_frames_and_bad_arguments() -> None:
    assert prefix_beam_search(torch.zeros(0, 4)) == []
    with pytest.raises(ValueError, match="beam_width"):
        prefix_beam_search(torch.zeros(3, 4), beam_width=0)
    with pytest.raises(ValueError, match=r"\[T, C\]"):
        prefix_beam_search(torch.zeros(1, 3, 4))


# ---------------------------------------------------------------- grammar ------------------------------------------

def _allowed_text(grammar: SlotGrammar, prefix: str) -> set[str]:
    state = grammar.state_of(encode_text(prefix))
    assert state is not None, prefix
    return {CHARACTERS[c] for c in grammar.allowed(state)}


def test_grid_grammar_next_characters() -> None:
    g = SlotGrammar()
    assert _allowed_text(g, "") == {"b", "l", "p", "s"}
    assert _allowed_text(g, "bin") == {" "}
    assert _allowed_text(g, "pla") == {"c"}
    assert _allowed_text(g, "bin ") == {"b", "g", "r", "w"}
    assert _allowed_text(g, "bin b") == {"l"}
    assert _allowed_text(g, "bin blue at ") == set("abcdefghijklmnopqrstuvxyz")  # no "w"
    assert _allowed_text(g, "bin blue at f ") == {"z", "o", "t", "f", "s", "e", "n"}
    assert _allowed_text(g, "bin blue at f s") == {"i", "e"}
    assert _allowed_text(g, "bin blue at f seven ") == {"a", "n", "p", "s"}
    assert _allowed_text(g, "bin blue at f seven soon") == set()
    assert g.state_of(encode_text("bin bx")) is None
    assert g.state_of(encode_text("bin  blue")) is None
    assert g.state_of(encode_text("bin blue at w")) is None
    assert [g.slot_of(g.state_of(encode_text(p))) for p in ("", "bi", "bin ", "bin blue a", "bin blue at f s",
                                                            "bin blue at f six n")] == [0, 0, 1, 2, 4, 5]


def test_grid_grammar_completes_only_after_the_sixth_word() -> None:
    g = SlotGrammar()
    prefix = ""
    for i, word in enumerate(["bin", "blue", "at", "f", "two", "soon"]):
        prefix += word
        state = g.state_of(encode_text(prefix))
        assert g.is_complete(state) == (i == 5), prefix
        prefix += " "
    assert g.state_of(encode_text(prefix)) is None  # no trailing space
    assert not g.is_complete(g.state_of(encode_text("bin blue at f two so")))


def test_grid_grammar_agrees_with_is_grid_sentence() -> None:
    """Random word sequences (any GRID word in any position, 5-7 words) against vocabulary.is_grid_sentence."""
    rng = random.Random(0)
    g = SlotGrammar()
    words = sorted({w for slot in GRID_SLOTS for w in slot})
    seen = {True: 0, False: 0}
    for _ in range(400):
        if rng.random() < 0.5:
            sentence = [rng.choice(slot) for slot in GRID_SLOTS]
        else:
            sentence = [rng.choice(words) for _ in range(rng.choice([5, 6, 6, 7]))]
        expected = is_grid_sentence(sentence)
        assert g.accepts(encode_text(" ".join(sentence))) == expected, sentence
        seen[expected] += 1
    assert seen[True] > 50 and seen[False] > 50


def test_grammar_word_that_prefixes_another() -> None:
    g = SlotGrammar([("a", "ab"), ("b",)])
    assert _allowed_text(g, "a") == {" ", "b"}
    assert g.accepts(encode_text("a b")) and g.accepts(encode_text("ab b"))
    assert not g.accepts(encode_text("a")) and not g.accepts(encode_text("abb"))


def test_grammar_rejects_bad_slots() -> None:
    with pytest.raises(ValueError):
        SlotGrammar([])
    with pytest.raises(ValueError):
        SlotGrammar([("a",), ()])
    with pytest.raises(ValueError, match="spaces"):
        SlotGrammar([("a b",)])
    with pytest.raises(DataError):
        SlotGrammar([("A",)])


@pytest.mark.parametrize("frames", [3, 4, 5, 6])
def test_constrained_beam_finds_the_most_probable_sentence(frames: int) -> None:
    grammar = SlotGrammar(TINY_SLOTS)
    differs = 0
    for seed in range(10):
        lp = _random_log_probs(1000 * frames + seed, frames, 4)
        exact = _labelling_log_probs(lp)
        sentences = {lab: v for lab, v in exact.items() if _is_sentence(lab, TINY_SLOTS)}
        best = max(sentences, key=sentences.get)
        labelling, score = prefix_beam_search(lp, beam_width=WIDE, grammar=grammar, return_score=True)
        assert tuple(labelling) == best, f"seed {seed}: {decode_ids(labelling)!r}"
        assert score == pytest.approx(sentences[best], abs=1e-9)
        differs += best != max(exact, key=exact.get)
    assert differs > 0  # the grammar changed the answer at least once: the constraint is really exercised


def test_constrained_beam_with_impossible_classes() -> None:
    """The tiny grammar on a 28-class input whose classes beyond "b" have probability exactly zero (-inf)."""
    grammar = SlotGrammar(TINY_SLOTS)
    for seed in range(5):
        small = _random_log_probs(7 + seed, 5, 4)
        lp = torch.cat([small, torch.full((5, NUM_CLASSES - 4), -math.inf, dtype=torch.float64)], 1)
        exact = _labelling_log_probs(lp, classes=4)
        sentences = {lab: v for lab, v in exact.items() if _is_sentence(lab, TINY_SLOTS)}
        labelling, score = prefix_beam_search(lp, beam_width=WIDE, grammar=grammar, return_score=True)
        assert tuple(labelling) == max(sentences, key=sentences.get)
        assert score == pytest.approx(max(sentences.values()), abs=1e-9)


def _confusable_spec() -> list[dict[str, float]]:
    """"bin blue at f two soon" where the "u" of blue looks a little more like "o", and the blank between the
    two o's of soon is a little less likely than another "o": best path reads "bin bloe at f two son"."""
    spec = []
    for word in ["bin", "blue", "at", "f", "two", "soon"]:
        if word == "blue":
            spec += _clean_spec("bl") + [{"o": 0.5, "u": 0.45}] * 2 + [{"-": 0.9}] + _clean_spec("e")
        elif word == "soon":
            spec += _clean_spec("s") + [{"o": 0.9}] * 2 + [{"o": 0.55, "-": 0.44}] + _clean_spec("on")
        else:
            spec += _clean_spec(word)
        spec += _clean_spec(" ")
    return spec[:-3]  # no space after the last word


def test_grammar_recovers_a_grid_sentence_that_best_path_misreads() -> None:
    lp = _frames(_confusable_spec())
    assert lp.shape == (66, NUM_CLASSES)
    assert decode_ids(greedy_decode(lp[None])[0]) == "bin bloe at f two son"
    free = decode_ids(prefix_beam_search(lp, beam_width=16))
    assert free == "bin bloe at f two son"  # unconstrained, the most probable reading is no sentence
    labelling, score = prefix_beam_search(lp, beam_width=16, grammar=SlotGrammar(), return_score=True)
    assert decode_ids(labelling) == "bin blue at f two soon"
    # the search's score against torch's CTC forward algorithm: a lower bound, and nearly all of the mass
    target = torch.tensor([labelling])
    exact = -F.ctc_loss(lp[:, None], target, torch.tensor([len(lp)]), torch.tensor([len(labelling)]),
                        reduction="sum").item()
    assert exact - 1e-3 <= score <= exact + 1e-9


def test_constrained_beam_falls_back_to_the_best_prefix() -> None:
    """Too few frames for any sentence: the most probable grammatical prefix is returned."""
    lp = _frames(_clean_spec("bin blue"))
    labelling = prefix_beam_search(lp, beam_width=16, grammar=SlotGrammar())
    assert decode_ids(labelling) == "bin blue"
    # and the reading of an ungrammatical character is replaced by the likeliest allowed one (the spread mass)
    labelling = prefix_beam_search(_frames(_clean_spec("bix")), beam_width=16, grammar=SlotGrammar())
    assert decode_ids(labelling) == "bin"


def test_beam_decode_batch_with_lengths() -> None:
    first = _frames(_confusable_spec())
    second = _frames(_clean_spec("lay red by c nine now"))
    frames = max(len(first), len(second))
    batch = torch.stack([torch.cat([x, _frames([{"z": 0.9}] * (frames - len(x)))]) for x in (first, second)])
    lengths = torch.tensor([len(first), len(second)])
    texts = [decode_ids(ids) for ids in beam_decode(batch, lengths, beam_width=16, grammar=SlotGrammar())]
    assert texts == ["bin blue at f two soon", "lay red by c nine now"]
    # without lengths the padding's "z" frames are read too
    assert decode_ids(beam_decode(batch, beam_width=16)[1]).endswith("z")
