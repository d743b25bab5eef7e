"""``torchrepro tool lipread`` on the tiny LipNet run: what it prints and writes, that it feeds the network what
training and evaluation do, and its one-line errors."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers import assert_one_line_error, run_main

LINE = re.compile(r'^(?P<video>.+): "(?P<beam>[a-z ]*)" \(greedy: "(?P<greedy>[a-z ]*)"\)$')


def _videos(run: Path) -> list[Path]:
    from torchrepro.core.registry import resolve_config

    cfg = resolve_config(run / "config.yaml", [])
    videos = sorted(Path(cfg.data.synthetic_dir).glob("**/*.mpg"))
    assert len(videos) >= 2, f"no synthetic videos under {cfg.data.synthetic_dir}"
    return videos


def _lipread(*args) -> tuple[int, str, str]:
    """The CLI in-process, outside pytest's per-test capture (module-scoped fixtures use it)."""
    from torchrepro.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["tool", "lipread", *map(str, args)])
    return code, out.getvalue(), err.getvalue()


def _tokens_file(path: Path) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in path.read_text().splitlines() if not line.startswith("#"))


@pytest.fixture(scope="module")
def run(tiny_runs) -> Path:
    return tiny_runs("lipnet")


@pytest.fixture(scope="module")
def read(run: Path, tmp_path_factory) -> dict:
    """The tool on two of the run's videos, written to a fresh --out."""
    out = tmp_path_factory.mktemp("lipread")
    videos = _videos(run)[:2]
    code, stdout, stderr = _lipread("--ckpt", run / "checkpoints" / "best.ckpt", "--out", out, *videos)
    assert code == 0, stderr
    return {"videos": videos, "out": out, "stdout": stdout, "stderr": stderr,
            "lines": [LINE.match(line) for line in stdout.splitlines()[:len(videos)]]}


def _model_reading(run: Path, videos: list[Path]) -> list[tuple[list[int], str, str]]:
    """(per-frame argmax, greedy text, beam text) of each video computed here, as evaluation does it: clips padded
    to data.frames and batched together (LipClipDataset / collate), greedy_decode and the grammar beam search."""
    from torchrepro.core.engine import restore
    from torchrepro.core.registry import checkpoint_config
    from torchrepro.lipreading.data import mouth_crops, standardise
    from torchrepro.lipreading.decoding import SlotGrammar, greedy_decode, prefix_beam_search
    from torchrepro.lipreading.vocabulary import decode_ids

    ckpt = run / "checkpoints" / "best.ckpt"
    cfg = checkpoint_config(ckpt, None, ("lipnet",))
    task, _ = restore(cfg, ckpt)
    task.eval()
    clips = [standardise(mouth_crops(v, cfg.data)) for v in videos]
    batch = torch.zeros(len(clips), 1, cfg.data.frames, *clips[0].shape[1:])
    for i, clip in enumerate(clips):
        batch[i, 0, :len(clip)] = clip
    lengths = torch.tensor([len(c) for c in clips])
    with torch.no_grad():
        log_probs = task(batch, lengths)
    greedy = [decode_ids(ids) for ids in greedy_decode(log_probs, lengths)]
    beam = [decode_ids(prefix_beam_search(log_probs[i, :n], cfg.model.beam_width, SlotGrammar()))
            for i, n in enumerate(lengths.tolist())]
    return [(log_probs[i, :n].argmax(-1).tolist(), g, b)
            for i, (n, g, b) in enumerate(zip(lengths.tolist(), greedy, beam))]


def test_one_line_per_video_with_beam_and_greedy_text(read):
    assert all(read["lines"]), read["stdout"]
    assert [m["video"] for m in read["lines"]] == [str(v) for v in read["videos"]]
    assert f"to {read['out']}" in read["stdout"].splitlines()[-1]


def test_the_readings_are_the_models_on_the_evaluation_input(run, read):
    from torchrepro.lipreading.lipread import token_string

    expected = _model_reading(run, read["videos"])
    for match, video, (argmax, greedy, beam) in zip(read["lines"], read["videos"], expected):
        assert match["greedy"] == greedy
        assert match["beam"] == beam
        tokens = _tokens_file(read["out"] / f"{video.stem}_tokens.txt")
        assert tokens["tokens"] == token_string(argmax)


def test_tokens_file_matches_the_printed_line(read):
    from torchrepro.lipreading.vocabulary import CHARACTERS

    for match, video in zip(read["lines"], read["videos"]):
        tokens = _tokens_file(read["out"] / f"{video.stem}_tokens.txt")
        assert (tokens["beam"], tokens["greedy"]) == (match["beam"], match["greedy"])
        assert len(tokens["tokens"]) == int(tokens["frames"]) == 75
        assert set(tokens["tokens"]) <= set(CHARACTERS[2:]) | {"_", "|"}
        # the greedy text is the token string with repeats collapsed and blanks dropped
        collapsed = "".join(c for i, c in enumerate(tokens["tokens"]) if i == 0 or c != tokens["tokens"][i - 1])
        assert collapsed.replace("_", "").replace("|", " ") == tokens["greedy"]


def test_gif_has_one_frame_per_video_frame_at_25_fps_showing_the_crop(run, read):
    from torchrepro.core.registry import resolve_config
    from torchrepro.lipreading.data import mouth_crops
    from torchrepro.video.frames import num_frames

    cfg = resolve_config(run / "config.yaml", [])
    video = read["videos"][0]
    with Image.open(read["out"] / f"{video.stem}.gif") as gif:
        assert gif.n_frames == num_frames(video) == 75
        assert gif.info["duration"] == 40
        frames = []
        for t in (0, 40):
            gif.seek(t)
            frames.append(np.asarray(gif.convert("L")))
    crops = mouth_crops(video, cfg.data)
    h, w = crops.shape[1:]
    for t, frame in zip((0, 40), frames):  # the top left is the crop, upscaled x4 (nearest)
        assert np.abs(frame[:4 * h:4, :4 * w:4].astype(int) - crops[t]).max() <= 2
    assert not np.array_equal(frames[0][4 * h:], frames[1][4 * h:])  # the token marker and the text move on


def test_a_frames_folder_reads_as_its_video_and_a_longer_one_is_noted(run, read, tmp_path: Path):
    from torchrepro.video.frames import num_frames, read_frames

    video = read["videos"][0]
    folder = tmp_path / video.stem
    folder.mkdir()
    frames = read_frames(video, range(num_frames(video)))
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:03d}.png")
    code, stdout, stderr = _lipread("--ckpt", run / "checkpoints" / "best.ckpt", "--out", tmp_path / "o", folder)
    assert code == 0, stderr
    assert LINE.match(stdout.splitlines()[0]).groups()[1:] == read["lines"][0].groups()[1:]
    assert "more than" not in stderr
    for i in range(len(frames), len(frames) + 5):  # 80 frames: read, with a note
        Image.fromarray(frames[-1]).save(folder / f"{i:03d}.png")
    code, stdout, stderr = _lipread("--ckpt", run / "checkpoints" / "best.ckpt", "--out", tmp_path / "o", folder)
    assert code == 0 and LINE.match(stdout.splitlines()[0]), stderr
    assert "80 frames, more than the 75" in stderr
    with Image.open(tmp_path / "o" / f"{video.stem}.gif") as gif:
        assert gif.n_frames == 80


def test_default_out_is_the_runs_lipread_folder_and_options_reach_the_search(run, read, tmp_path: Path, capsys):
    copy = tmp_path / "run"
    (copy / "checkpoints").mkdir(parents=True)
    shutil.copy(run / "config.yaml", copy / "config.yaml")
    shutil.copy(run / "checkpoints" / "best.ckpt", copy / "checkpoints" / "best.ckpt")  # run_dir_of resolves links
    video = read["videos"][0]
    code, out, err = run_main(capsys, "tool", "lipread", "--ckpt", copy / "checkpoints" / "best.ckpt",
                              "--no-grammar", "--beam-width", "1", video)
    assert code == 0, err
    tokens = _tokens_file(copy / "lipread" / f"{video.stem}_tokens.txt")
    assert LINE.match(out.splitlines()[0])["beam"] == tokens["beam"]
    comment = (copy / "lipread" / f"{video.stem}_tokens.txt").read_text().splitlines()[-1]
    assert "width 1" in comment and "GRID" not in comment
    assert (copy / "lipread" / f"{video.stem}.gif").is_file()


def test_bad_inputs_are_one_line(run, read, tmp_path: Path, capsys):
    from tests.helpers import REPO

    ckpt = run / "checkpoints" / "best.ckpt"
    video = read["videos"][0]
    code, _, err = run_main(capsys, "tool", "lipread", "--ckpt", ckpt, "--out", tmp_path, tmp_path / "nope.mpg")
    assert_one_line_error(code, err, "nope.mpg", "does not exist")
    (tmp_path / "junk.mpg").write_bytes(b"not a video")
    code, _, err = run_main(capsys, "tool", "lipread", "--ckpt", ckpt, "--out", tmp_path, tmp_path / "junk.mpg")
    assert_one_line_error(code, err, "junk.mpg")
    code, _, err = run_main(capsys, "tool", "lipread", "--ckpt", ckpt, "--config",
                            REPO / "configs" / "driving_synthetic.yaml", "--out", tmp_path, video)
    assert_one_line_error(code, err, "'driving' config", "lipnet")
    (tmp_path / "bad.ckpt").write_bytes(b"garbage")
    code, _, err = run_main(capsys, "tool", "lipread", "--ckpt", tmp_path / "bad.ckpt", "--config",
                            run / "config.yaml", "--out", tmp_path, video)
    assert_one_line_error(code, err, "bad.ckpt")
    (tmp_path / "boxes.txt").write_text("0 500 0 500\n" * 75)
    code, _, err = run_main(capsys, "tool", "lipread", "--ckpt", ckpt, "--boxes", tmp_path / "boxes.txt", "--out",
                            tmp_path, video)
    assert_one_line_error(code, err, "does not fit")
    code, _, err = run_main(capsys, "tool", "lipread", "--ckpt", ckpt, "--boxes", tmp_path / "boxes.txt", "--out",
                            tmp_path, *read["videos"])
    assert_one_line_error(code, err, "--boxes", "one VIDEO")
    assert not list(tmp_path.glob("*.gif"))


def test_a_boxes_file_of_the_fixed_box_reads_the_same(run, read, tmp_path: Path):
    from torchrepro.core.registry import resolve_config

    box = resolve_config(run / "config.yaml", []).data.mouth_box
    (tmp_path / "boxes.txt").write_text((" ".join(map(str, box)) + "\n") * 75)
    code, stdout, stderr = _lipread("--ckpt", run / "checkpoints" / "best.ckpt", "--boxes", tmp_path / "boxes.txt",
                                    "--out", tmp_path, read["videos"][0])
    assert code == 0, stderr
    assert LINE.match(stdout.splitlines()[0]).groups() == read["lines"][0].groups()
