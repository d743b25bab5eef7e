"""publish_once: a generated data set is stamped, written aside, published atomically and reused only if it matches."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from torchrepro.core.errors import DataError
from torchrepro.core.generated import STAMP_NAME, publish_once, read_stamp

KEY = "data.synthetic_dir"


class Writer:
    """Writes ``files`` (name -> text) into the folder it is given; counts its calls; may fail after one file."""

    def __init__(self, files: dict[str, str], fail: bool = False) -> None:
        self.files, self.fail, self.calls = files, fail, 0

    def __call__(self, folder: Path) -> dict:
        self.calls += 1
        assert folder.is_dir() and not any(folder.iterdir())  # an empty temporary sibling of the target
        assert folder.parent.is_dir() and folder.name.startswith(".")
        for i, (name, text) in enumerate(self.files.items()):
            if self.fail and i == 1:
                raise RuntimeError("generator crashed")
            (folder / name).write_text(text)
        return {"counts": {"files": len(self.files)}}


def _publish(target: Path, write: Writer, params: dict, **kwargs) -> bool:
    return publish_once(target, write, generator="tests.gen", version=1, params=params, bytes_needed=1000,
                        config_key=KEY, **kwargs)


def test_publish_writes_files_and_stamp(tmp_path: Path) -> None:
    target = tmp_path / "sets" / "a"
    assert _publish(target, Writer({"x.txt": "1", "y.txt": "2"}), {"seed": 0, "size": (4, 4)}) is True
    assert sorted(p.name for p in target.iterdir()) == [STAMP_NAME, "x.txt", "y.txt"]
    stamp = read_stamp(target)
    assert stamp == {"generator": "tests.gen", "version": 1, "params": {"seed": 0, "size": [4, 4]},
                     "counts": {"files": 2}}
    assert json.loads((target / STAMP_NAME).read_text()) == stamp
    assert [p.name for p in target.parent.iterdir()] == ["a"]  # no temporary folder left
    assert target.stat().st_mode & 0o755 == 0o755


def test_reuse_when_the_stamp_matches(tmp_path: Path) -> None:
    target = tmp_path / "a"
    first = Writer({"x.txt": "1"})
    _publish(target, first, {"seed": 0, "size": (4, 4)})
    (target / "marker").write_text("kept")
    again = Writer({"x.txt": "other"})
    assert _publish(target, again, {"seed": 0, "size": (4, 4)}) is False
    assert again.calls == 0 and (target / "marker").exists() and (target / "x.txt").read_text() == "1"


@pytest.mark.parametrize("change", [{"params": {"seed": 1, "size": (4, 4)}}, {"version": 2}, {"generator": "b"}])
def test_regenerate_when_parameters_or_version_change(tmp_path: Path, change: dict) -> None:
    target = tmp_path / "a"
    _publish(target, Writer({"x.txt": "old"}), {"seed": 0, "size": (4, 4)})
    (target / "stale").write_text("from the old set")
    args = {"generator": "tests.gen", "version": 1, "params": {"seed": 0, "size": (4, 4)}, **change}
    assert publish_once(target, Writer({"x.txt": "new"}), bytes_needed=1, config_key=KEY, **args) is True
    assert (target / "x.txt").read_text() == "new" and not (target / "stale").exists()  # replaced as a whole
    assert read_stamp(target)["params"] == json.loads(json.dumps(args["params"]))
    assert [p.name for p in tmp_path.iterdir()] == ["a"]  # the old set's graveyard is gone too


def test_regenerate_when_intact_check_fails(tmp_path: Path) -> None:
    target = tmp_path / "a"
    intact = lambda root, stamp: (root / "x.txt").is_file()  # noqa: E731
    _publish(target, Writer({"x.txt": "1"}), {"seed": 0}, intact=intact)
    (target / "x.txt").unlink()
    write = Writer({"x.txt": "1"})
    assert _publish(target, write, {"seed": 0}, intact=intact) is True and write.calls == 1
    assert (target / "x.txt").is_file()


def test_free_space_error_names_folder_sizes_and_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    usage = SimpleNamespace(total=10**12, used=10**12 - 5 * 10**6, free=5 * 10**6)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage)
    write = Writer({"x.txt": "1"})
    with pytest.raises(DataError) as err:
        publish_once(tmp_path / "a", write, generator="g", version=1, params={}, bytes_needed=2 * 10**9,
                     config_key=KEY)
    message = str(err.value)
    assert "\n" not in message and str(tmp_path) in message and KEY in message
    assert "2 GB" in message and "5 MB" in message
    assert write.calls == 0 and list(tmp_path.iterdir()) == []  # checked before anything is written


def test_failure_mid_generation_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="crashed"):
        _publish(tmp_path / "a", Writer({"x.txt": "1", "y.txt": "2"}, fail=True), {"seed": 0})
    assert list(tmp_path.iterdir()) == []  # no half-made target, no temporary folder


def test_failure_keeps_the_previous_set(tmp_path: Path) -> None:
    target = tmp_path / "a"
    _publish(target, Writer({"x.txt": "old"}), {"seed": 0})
    with pytest.raises(RuntimeError):
        _publish(target, Writer({"x.txt": "new", "y.txt": "2"}, fail=True), {"seed": 1})
    assert (target / "x.txt").read_text() == "old" and read_stamp(target)["params"] == {"seed": 0}
    assert [p.name for p in tmp_path.iterdir()] == ["a"]


def test_refuses_a_foreign_folder_unless_recognised_as_legacy(tmp_path: Path) -> None:
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("my data")
    write = Writer({"x.txt": "1"})
    with pytest.raises(DataError, match=f"not empty and holds no {STAMP_NAME}.*{KEY}"):
        _publish(target, write, {"seed": 0})
    assert write.calls == 0 and (target / "notes.txt").exists()
    assert _publish(target, write, {"seed": 0}, legacy=lambda p: (p / "notes.txt").exists()) is True
    assert not (target / "notes.txt").exists() and (target / "x.txt").exists()
    (tmp_path / "empty").mkdir()
    assert _publish(tmp_path / "empty", Writer({"x.txt": "1"}), {"seed": 0}) is True  # an empty folder is fine
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(DataError, match="is a file"):
        _publish(tmp_path / "file", Writer({"x.txt": "1"}), {"seed": 0})
    assert (tmp_path / "file").read_text() == "not a folder"


def test_concurrent_run_that_published_first_wins(tmp_path: Path) -> None:
    target = tmp_path / "a"

    class Racer(Writer):
        def __call__(self, folder: Path) -> dict:  # another process publishes the same set while we write ours
            _publish(target, Writer({"x.txt": "theirs"}), {"seed": 0})
            return super().__call__(folder)

    assert _publish(target, Racer({"x.txt": "ours"}), {"seed": 0}) is True
    assert (target / "x.txt").read_text() == "theirs"  # readers of the first published set are not disturbed
    assert [p.name for p in tmp_path.iterdir()] == ["a"]


def test_concurrent_run_with_other_parameters_is_replaced(tmp_path: Path) -> None:
    target = tmp_path / "a"

    class Racer(Writer):
        def __call__(self, folder: Path) -> dict:
            _publish(target, Writer({"x.txt": "theirs"}), {"seed": 1})
            return super().__call__(folder)

    assert _publish(target, Racer({"x.txt": "ours"}), {"seed": 0}) is True
    assert (target / "x.txt").read_text() == "ours" and read_stamp(target)["params"] == {"seed": 0}
    assert [p.name for p in tmp_path.iterdir()] == ["a"]


def test_an_unwritable_folder_names_the_config_key(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")  # a file in the path fails for root too (permission bits do not)
    write = Writer({"x.txt": "1"})
    with pytest.raises(DataError, match=f"cannot write the generated data under .*set {KEY}"):
        _publish(blocker / "sets" / "a", write, {"seed": 0})
    assert write.calls == 0
