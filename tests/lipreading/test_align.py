"""GRID alignment files: parsing a real one, the transcript rules, and every malformed input."""

from __future__ import annotations

import pytest

from torchrepro.core.errors import DataError
from torchrepro.lipreading.align import format_align, read_align
from tests.lipreading import BBAF2N_ALIGN


def test_reads_grid_alignment(tmp_path):
    path = tmp_path / "bbaf2n.align"
    path.write_text(BBAF2N_ALIGN)
    alignment = read_align(path)
    assert alignment.words == ["bin", "blue", "at", "f", "two", "now"]
    assert alignment.text == "bin blue at f two now"
    assert alignment.n_frames == 75  # 74500 / 1000 rounded up
    assert alignment.word_frames()[0] == (23.75, 29.5, "bin")


def test_sp_is_not_a_word_and_blank_lines_are_ignored(tmp_path):
    path = tmp_path / "a.align"
    path.write_text("0 1000 sil\n1000 2000 set\n2000 2500 sp\n\n2500 4000 red\n4000 5000 sil\n")
    assert read_align(path).text == "set red"


def test_format_round_trip(tmp_path):
    intervals = [(0, 1000, "sil"), (1000, 3000, "lay"), (3000, 4100, "sil")]
    path = tmp_path / "x.align"
    path.write_text(format_align(intervals))
    assert read_align(path).intervals == tuple(intervals)
    assert read_align(path).n_frames == 5


@pytest.mark.parametrize("text, message", [
    ("0 1000 sil\n1000 2000\n", "expected 'start end word'"),
    ("0 1000 sil\n1000 2x00 bin\n", "must be integers"),
    ("0 1000 sil\n900 2000 bin\n", "must be sorted and must not overlap"),
    ("0 1000 sil\n2000 3000 bin\n1000 2000 red\n", "must be sorted and must not overlap"),
    ("0 1000 sil\n1000 1000 bin\n", "empty or negative"),
    ("0 1000 sil\n1000 2000 hello\n", "unknown word 'hello'"),
    ("0 1000 sil\n1000 2000 sp\n", "holds no words"),
    ("", "holds no words"),
])
def test_bad_alignments_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "bad.align"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as err:
        read_align(path)
    assert str(path) in str(err.value)


def test_unknown_words_allowed_without_a_lexicon(tmp_path):
    path = tmp_path / "a.align"
    path.write_text("0 1000 sil\n1000 2000 hello\n")
    assert read_align(path, known_words=None).text == "hello"


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="cannot be read"):
        read_align(tmp_path / "none.align")
