"""The GRID layout reader and LipNet's overlapped / unseen speaker splits, on real MPEG-1 fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from torchrepro.core.errors import DataError
from torchrepro.lipreading.grid import Utterance, align_folder, list_speakers, read_speaker, split_grid
from tests.lipreading import SENTENCES, grid_code, write_grid


def test_reads_speakers_and_both_alignment_layouts(tmp_path):
    write_grid(tmp_path, {"s2": SENTENCES[:2]})
    write_grid(tmp_path, {"s10": SENTENCES[2:4]}, nested_align=True)  # alignments/s10/align/*.align
    (tmp_path / "s21").mkdir()  # GRID's s21 has no videos: an empty folder is still a speaker folder
    (tmp_path / "notes").mkdir()
    assert list_speakers(tmp_path) == ["s2", "s10", "s21"]
    s2 = read_speaker(tmp_path, "s2")
    assert [u.name for u in s2] == sorted(grid_code(t.split()) for t in SENTENCES[:2])
    assert all(u.source.suffix == ".mpg" and u.align.is_file() and u.speaker == "s2" for u in s2)
    assert align_folder(tmp_path, "s10").name == "align"
    assert len(read_speaker(tmp_path, "s10")) == 2


def test_video_without_alignment_is_left_out_with_a_warning(tmp_path):
    write_grid(tmp_path, {"s1": SENTENCES[:3]})
    (tmp_path / "alignments" / "s1" / "bbaf2n.align").unlink()
    with pytest.warns(UserWarning, match="1 video"):
        names = [u.name for u in read_speaker(tmp_path, "s1")]
    assert "bbaf2n" not in names and len(names) == 2


def test_frames_folder_variant(tmp_path):
    write_grid(tmp_path, {"s1": SENTENCES[:1]})
    (tmp_path / "s1" / "bbaf2n.mpg").rename(tmp_path / "s1" / "other.mpg")
    (tmp_path / "s1" / "bbaf2n").mkdir()
    with pytest.warns(UserWarning, match="first: other"):  # the renamed video has no alignment
        (u,) = read_speaker(tmp_path, "s1")
    assert u.source == tmp_path / "s1" / "bbaf2n" and u.source.is_dir()


def test_bad_layouts_are_clear_errors(tmp_path):
    root = tmp_path / "grid"
    with pytest.raises(DataError, match="GRID root .* does not exist"):
        list_speakers(root)
    with pytest.raises(DataError, match="speaker s1 has no video folder"):
        read_speaker(root, "s1")
    (root / "s1").mkdir(parents=True)
    with pytest.raises(DataError, match="no alignments for speaker s1"):
        read_speaker(root, "s1")
    (root / "alignments" / "s1").mkdir(parents=True)
    with pytest.raises(DataError, match="no video in"):
        read_speaker(root, "s1")


def _utterances(speaker: str, n: int) -> list[Utterance]:
    return [Utterance(speaker, f"{speaker}_{i}", Path(f"{speaker}/{i}.mpg"), Path(f"{speaker}/{i}.align"))
            for i in range(n)]


def test_split_sizes_disjoint_and_unseen():
    per = {s: _utterances(s, 20) for s in ("s1", "s2", "s3", "s4")}
    splits = split_grid(per, ["s2"], test_per_speaker=5, val_per_speaker=3, split_seed=0)
    assert len(splits.test_unseen) == 20 and {u.speaker for u in splits.test_unseen} == {"s2"}
    for part, per_speaker in ((splits.test_overlapped, 5), (splits.val, 3), (splits.train, 12)):
        assert sorted(u.speaker for u in part) == sorted(["s1", "s3", "s4"] * per_speaker)
    names = [u.name for part in (splits.train, splits.val, splits.test_overlapped, splits.test_unseen) for u in part]
    assert len(names) == len(set(names)) == 80


def test_split_is_fixed_by_split_seed_and_per_speaker():
    per = {s: _utterances(s, 30) for s in ("s1", "s2")}
    a = split_grid(per, [], 5, 3, split_seed=0)
    b = split_grid({"s1": per["s1"]}, [], 5, 3, split_seed=0)  # another speaker does not move s1's draw
    c = split_grid(per, [], 5, 3, split_seed=1)
    s1 = lambda part: sorted(u.name for u in part if u.speaker == "s1")  # noqa: E731
    assert s1(a.test_overlapped) == s1(b.test_overlapped) and s1(a.val) == s1(b.val)
    assert s1(a.test_overlapped) != s1(c.test_overlapped)


def test_split_errors():
    per = {"s1": _utterances("s1", 6)}
    with pytest.raises(DataError, match="not among the speakers"):
        split_grid(per, ["s9"], 1, 1, 0)
    with pytest.raises(DataError, match="lower them"):
        split_grid(per, [], 4, 2, 0)
    with pytest.raises(DataError, match="no training sentences"):
        split_grid(per, ["s1"], 1, 1, 0)
