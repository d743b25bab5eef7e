"""``torchrepro tool lipread --ckpt CKPT [--config CFG] [--boxes FILE|DIR] [--out DIR] [--beam-width N]
[--no-grammar] VIDEO [VIDEO ...]``: read the lips of videos with a trained LipNet (Assael et al., 2016).

Each VIDEO (a video file or a folder of frames) is cut to the mouth exactly as the run's data were
(:func:`torchrepro.lipreading.data.mouth_crops`: the config's fixed ``data.mouth_box``, or per-frame boxes), turned
grey and standardised, and the network's per-frame log-probabilities are decoded twice: the CTC prefix beam search
(LipNet §3.2; Hannun et al. 2014), constrained to GRID sentences when the run's ``model.grammar`` says so and no ``--no-grammar`` is given, with the config's
``model.beam_width`` unless ``--beam-width``; and greedy best-path decoding. One line per video is printed::

    VIDEO: "bin blue at f two now" (greedy: "bin blue at f to now")

and written to ``--out`` (default: ``RUN_DIR/lipread/`` of the checkpoint's run):

* ``<stem>.gif``: one frame per video frame at 25 fps (GRID's rate): the mouth crop the network sees (upscaled
  ×4, grey, before standardisation), under it the raw per-frame argmax tokens of the whole video (``_`` the CTC
  blank, ``|`` the space) with the current frame's token boxed in black, the frame number, the greedy text
  decoded up to this frame and the final beam text;
* ``<stem>_tokens.txt``: the raw token string and both decodings.

Per-frame boxes (``--boxes``): a file of one ``top bottom left right`` line per frame (one VIDEO only), or a folder
holding ``<stem>.txt`` for each VIDEO. A run trained on per-frame boxes (``data.boxes``) is given its own boxes
file for a video in the GRID layout (``<boxes>/<speaker folder>/<stem>.txt``) or refused without ``--boxes``:
its fixed ``mouth_box`` would be the wrong crop.

LipNet reads a clip of any length (its convolutions and GRUs are not tied to 75 frames), so a video longer than
the run's ``data.frames`` is read, with a note on stderr that the model never saw one so long in training.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from torchrepro.core.errors import ConfigError, DataError
from torchrepro.core.registry import checkpoint_config
from torchrepro.core.rundir import run_dir_of

if TYPE_CHECKING:  # torch is imported when a tool runs, not when the CLI lists the tools
    import torch
    from PIL.Image import Image

    from torchrepro.lipreading.decoding import SlotGrammar
    from torchrepro.lipreading.model import LipNet

__all__ = ["BLANK_MARK", "FPS", "SPACE_MARK", "Reading", "lipread_main", "output_stems", "read_lips", "render_gif",
           "token_string"]

#: GRID videos are 25 frames per second; the GIF plays at the same rate
FPS = 25
#: how the token string shows the CTC blank and the space (one character per frame)
BLANK_MARK, SPACE_MARK = "_", "|"
#: the crop's upscaling in the GIF
SCALE = 4


@dataclass
class Reading:
    """What LipNet made of one clip: the per-frame argmax class indices ``[T]``, the greedy and beam decodings."""

    argmax: list[int]
    greedy: str
    beam: str

    @property
    def tokens(self) -> str:
        return token_string(self.argmax)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="torchrepro tool lipread",
                                     description="read the lips of videos with a trained LipNet: print the decoded "
                                                 "text, write a GIF of what the model sees and its tokens")
    parser.add_argument("videos", type=Path, nargs="+", metavar="VIDEO", help="video files or frames folders")
    parser.add_argument("--ckpt", type=Path, required=True, help="a .ckpt of a lipnet run")
    parser.add_argument("--config", type=Path, default=None, help="its config (default: the run's config.yaml)")
    parser.add_argument("--boxes", type=Path, default=None,
                        help="per-frame mouth boxes: a file of 'top bottom left right' lines (one VIDEO) or a folder "
                             "of <stem>.txt files (default: the config's fixed data.mouth_box)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: RUN_DIR/lipread)")
    parser.add_argument("--beam-width", type=int, default=None, help="beam width (default: model.beam_width)")
    parser.add_argument("--no-grammar", action="store_true", help="beam search without the GRID grammar")
    return parser


def token_string(argmax: Sequence[int]) -> str:
    """The raw per-frame tokens, one character a frame: the letter, :data:`SPACE_MARK` or :data:`BLANK_MARK`."""
    from torchrepro.lipreading.vocabulary import BLANK, CHARACTERS, SPACE

    return "".join(BLANK_MARK if c == BLANK else SPACE_MARK if c == SPACE else CHARACTERS[c] for c in argmax)


def output_stems(videos: Sequence[Path]) -> list[str]:
    """Output names of the videos: their stems, prefixed by the parent folder's name where two videos share a
    stem (GRID reuses sentence names across speakers: ``s1/bbaf2n.mpg`` and ``s2/bbaf2n.mpg``)."""
    stems = [Path(v).stem for v in videos]
    named = [f"{Path(v).resolve().parent.name}-{s}" if stems.count(s) > 1 else s for v, s in zip(videos, stems)]
    if len(set(named)) < len(named):
        raise ConfigError(f"two VIDEOs would be written under the same name ({named}): read them in separate calls "
                          f"with different --out folders")
    return named


def _boxes_for(video: Path, stem: str, given: Path | None, trained_on: str | None) -> Path | None:
    """The per-frame boxes file of ``video`` (module docstring), or None for the config's fixed mouth box."""
    if given is not None:
        return given / f"{stem}.txt" if given.is_dir() else given
    if trained_on is None:
        return None
    guess = Path(trained_on) / video.resolve().parent.name / f"{video.stem}.txt"
    if not guess.is_file():
        raise ConfigError(f"the run was trained on per-frame mouth boxes (data.boxes = '{trained_on}') but '{guess}' "
                          f"does not exist: pass --boxes FILE for '{video}'")
    return guess


def read_lips(net: LipNet, clip: torch.Tensor, beam_width: int, grammar: SlotGrammar | None) -> Reading:
    """LipNet's reading of one standardised clip ``[T, H, W]``: per-frame argmax, greedy (best-path) and prefix
    beam search decodings (LipNet §3.2), the network in eval mode without gradients."""
    import torch

    from torchrepro.lipreading.decoding import greedy_decode, prefix_beam_search
    from torchrepro.lipreading.vocabulary import decode_ids

    net.eval()
    with torch.inference_mode():
        log_probs = net(clip[None, None], torch.tensor([len(clip)])).float()  # [1, T, 28]
    return Reading(argmax=log_probs[0].argmax(-1).tolist(), greedy=decode_ids(greedy_decode(log_probs)[0]),
                   beam=decode_ids(prefix_beam_search(log_probs[0], beam_width, grammar)))


def lipread_main(argv: list[str]) -> int:
    """``torchrepro tool lipread`` (module docstring); exit status 0, or a UserError (one line, status 2)."""
    from torchrepro.core.engine import restore
    from torchrepro.lipreading.data import mouth_crops, standardise
    from torchrepro.lipreading.vocabulary import encode_text

    args = _parser().parse_args(argv)
    if args.beam_width is not None and args.beam_width < 1:
        raise ConfigError(f"--beam-width must be >= 1, got {args.beam_width}")
    if args.boxes is not None and not args.boxes.is_dir() and len(args.videos) > 1:
        raise ConfigError(f"--boxes '{args.boxes}' is one video's boxes file but {len(args.videos)} VIDEOs are given: "
                          f"pass a folder of <stem>.txt files, or one VIDEO")
    missing = [str(v) for v in args.videos if not v.exists()]
    if missing:  # before the model is loaded and any video is read
        more = f" (nor do {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DataError(f"video source '{missing[0]}' does not exist{more}: give video files or frames folders")
    stems = output_stems(args.videos)
    cfg = checkpoint_config(args.ckpt, args.config, ("lipnet",))
    out = _out_dir(args.out, args.ckpt)
    task, _ = restore(cfg, args.ckpt)
    beam_width = args.beam_width if args.beam_width is not None else cfg.model.beam_width
    grammar = None if args.no_grammar else task.grammar  # the config's model.grammar
    out.mkdir(parents=True, exist_ok=True)
    for video, stem in zip(args.videos, stems):
        crops = mouth_crops(video, cfg.data, _boxes_for(video, stem, args.boxes, cfg.data.boxes))
        if len(crops) > cfg.data.frames:
            print(f"note: '{video}' has {len(crops)} frames, more than the {cfg.data.frames} of the run's clips "
                  f"(data.frames): read in full, though the model never saw a clip so long", file=sys.stderr)
        reading = read_lips(task.net, standardise(crops), beam_width, grammar)
        if grammar is not None and not grammar.accepts(encode_text(reading.beam)):
            print(f"note: no whole GRID sentence survived the beam search of '{video}': the best partial one is "
                  f"printed (try a wider --beam-width, or --no-grammar)", file=sys.stderr)
        print(f'{video}: "{reading.beam}" (greedy: "{reading.greedy}")', flush=True)
        _save_gif(render_gif(crops, reading), out / f"{stem}.gif")
        _write_tokens(out / f"{stem}_tokens.txt", video, reading, grammar is not None, beam_width)
    print(f"wrote {len(stems)} GIF(s) and token file(s) to {out}")
    return 0


def _out_dir(out: Path | None, ckpt: Path) -> Path:
    if out is not None:
        return out
    run = run_dir_of(ckpt)
    if run is None:
        raise ConfigError(f"checkpoint '{ckpt}' is not in a run directory: pass --out FOLDER")
    return run / "lipread"


def _write_tokens(path: Path, video: Path, reading: Reading, grammar: bool, beam_width: int) -> None:
    path.write_text(f"video: {video}\n"
                    f"frames: {len(reading.argmax)}\n"
                    f"tokens: {reading.tokens}\n"
                    f"beam: {reading.beam}\n"
                    f"greedy: {reading.greedy}\n"
                    f"# tokens: the per-frame argmax, '{BLANK_MARK}' the CTC blank, '{SPACE_MARK}' the space; beam: "
                    f"prefix beam search of width {beam_width}{' constrained to GRID sentences' if grammar else ''}\n")


# --- the GIF ---------------------------------------------------------------------------------------------------


def _save_gif(frames: list[Image], path: Path) -> None:
    """An animated GIF at :data:`FPS` (40 ms a frame), looping."""
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=1000 // FPS, loop=0)


def _wrap(text: str, columns: int) -> list[str]:
    """``text`` cut into rows of ``columns`` characters (at least one row)."""
    return [text[i:i + columns] for i in range(0, len(text), columns)] or [""]


def render_gif(crops: np.ndarray, reading: Reading) -> list[Image]:
    """The GIF's frames (PIL "L" images), one per video frame (module docstring): the crop ×:data:`SCALE` on top,
    then the token rows with frame t's token boxed, ``frame t+1/T``, ``greedy:`` the best-path text of frames 0…t
    and ``beam:`` the final beam text. Every character sits in a fixed cell, so the rows line up with any font."""
    import torch
    from PIL import Image, ImageDraw, ImageFont

    from torchrepro.lipreading.decoding import greedy_decode
    from torchrepro.lipreading.vocabulary import NUM_CLASSES, decode_ids

    font = ImageFont.load_default()
    glyphs = "abcdefghijklmnopqrstuvwxyz:" + BLANK_MARK + SPACE_MARK
    cell_w = int(np.ceil(max(font.getlength(c) for c in glyphs))) + 1
    cell_h = max(font.getbbox(c)[3] for c in glyphs) + 3
    width = max(crops.shape[2] * SCALE, 32 * cell_w)
    columns = width // cell_w
    tokens = reading.tokens
    token_rows = _wrap(tokens, columns)
    text_rows = 1 + len(_wrap(f"greedy: {reading.greedy}", columns)) + len(_wrap(f"beam: {reading.beam}", columns))
    top = crops.shape[1] * SCALE + 4
    height = top + (len(token_rows) + text_rows) * cell_h + cell_h // 2 + 2
    # the greedy text so far, frame t: best-path decoding of the argmax path's first t + 1 frames
    path = torch.full((1, len(tokens), NUM_CLASSES), -1.0).scatter_(2, torch.tensor(reading.argmax)[None, :, None], 0.0)
    frames = []
    for t, crop in enumerate(crops):
        picture = Image.new("L", (width, height), 255)
        picture.paste(Image.fromarray(crop).resize((crop.shape[1] * SCALE, crop.shape[0] * SCALE), Image.NEAREST))
        draw = ImageDraw.Draw(picture)
        for i, c in enumerate(tokens):
            x, y = (i % columns) * cell_w, top + (i // columns) * cell_h
            if i == t:
                draw.rectangle((x, y, x + cell_w - 1, y + cell_h - 1), fill=0)
            draw.text((x + 1, y + 1), c, fill=255 if i == t else 0, font=font)
        y = top + len(token_rows) * cell_h + cell_h // 2
        so_far = decode_ids(greedy_decode(path, torch.tensor([t + 1]))[0])
        lines = [f"frame {t + 1}/{len(crops)}", *_wrap(f"greedy: {so_far}", columns),
                 *_wrap(f"beam: {reading.beam}", columns)]
        for line in lines:
            draw.text((1, y), line, fill=0, font=font)
            y += cell_h
        frames.append(picture)
    return frames
