"""Publish a generated data set once: stamped, written aside, renamed into place.

A generator hands :func:`publish_once` its target folder, the parameters that determine the files, a version
and a function that writes the files into an empty folder. The set is written into a temporary sibling of the
target, a stamp (``{"generator", "version", "params", ...}``) is written last, and the folder is renamed into
place, so a reader sees the old set or the new one, never a mixture and never a half-written one.

* A target whose stamp matches (same generator, version and parameters) is reused as it is.
* A target with another stamp (or an unreadable one) is ours but stale: it is regenerated, never reused.
* A non-empty target without a stamp is not ours: it is left alone and a :class:`DataError` says so.
* A concurrent run that published the same set first wins; our copy is discarded.
* Before anything is written, the free space must cover the caller's estimate of the set's size.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from collections.abc import Callable, Mapping
from typing import Any

from torchrepro.core.errors import DataError

__all__ = ["STAMP_NAME", "check_free_space", "publish_once", "read_stamp", "stamp_matches"]

#: Default name of the stamp file inside a generated folder.
STAMP_NAME = "generated.json"

#: Fills an empty folder with the set; may return extra JSON-able stamp entries (counts, statistics).
Writer = Callable[[Path], Mapping[str, Any] | None]


def read_stamp(folder: Path, stamp_name: str = STAMP_NAME) -> dict[str, Any] | None:
    """The stamp of ``folder`` as a dict, or None when it is missing or unreadable."""
    try:
        stamp = json.loads((Path(folder) / stamp_name).read_text())
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) else None


def _plain(params: Mapping[str, Any]) -> Any:
    """``params`` as they read back from JSON (tuples become lists), so stamps compare equal."""
    return json.loads(json.dumps(params))


def stamp_matches(folder: Path, generator: str, version: int, params: Mapping[str, Any],
                  stamp_name: str = STAMP_NAME) -> bool:
    """True when ``folder`` holds a set stamped with exactly this generator, version and parameters."""
    stamp = read_stamp(folder, stamp_name)
    return (stamp is not None and stamp.get("generator") == generator and stamp.get("version") == version
            and stamp.get("params") == _plain(params))


def _size(n_bytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n_bytes < 1000:
            return f"{n_bytes:.0f} {unit}"
        n_bytes /= 1000
    return f"{n_bytes:.1f} TB"


def check_free_space(folder: Path, bytes_needed: int, config_key: str) -> None:
    """Raise :class:`DataError` unless the disk holding ``folder`` has ``bytes_needed`` bytes free."""
    free = shutil.disk_usage(folder).free
    if free < bytes_needed:
        raise DataError(
            f"not enough free space in {folder} for the generated data: it needs about {_size(bytes_needed)} and "
            f"{_size(free)} are free; free some space or set {config_key} to a folder on a larger disk"
        )


def _check_ours(target: Path, stamp_name: str, legacy: Callable[[Path], bool] | None, config_key: str) -> None:
    """Refuse to replace a non-empty folder that holds no stamp (unless ``legacy`` recognises it as ours)."""
    if not target.exists():
        return
    if not target.is_dir():
        raise DataError(f"{target} is a file, not a generated data set folder; move it or set {config_key} "
                        f"to another folder")
    if not any(target.iterdir()) or (target / stamp_name).exists() or (legacy is not None and legacy(target)):
        return
    raise DataError(
        f"{target} is not empty and holds no {stamp_name}, so it is not a generated data set and is left "
        f"untouched; empty the folder or set {config_key} to another folder"
    )


def _swap_in(tmp: Path, target: Path, published: Callable[[], bool]) -> None:
    """Rename ``tmp`` to ``target``; a stale ``target`` is moved aside first, a matching one is kept."""
    if published():  # a concurrent run published the same set while we generated ours
        return
    if target.exists():
        graveyard = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        try:
            os.rename(target, graveyard / "old")
        except FileNotFoundError:  # a concurrent run moved it aside already
            pass
        shutil.rmtree(graveyard, ignore_errors=True)
    try:
        os.rename(tmp, target)
    except OSError:
        if not published():  # the target reappeared: fine only if it is the set we wanted
            raise


def publish_once(
    target: Path,
    write: Writer,
    *,
    generator: str,
    version: int,
    params: Mapping[str, Any],
    bytes_needed: int,
    config_key: str,
    stamp_name: str = STAMP_NAME,
    intact: Callable[[Path, dict[str, Any]], bool] | None = None,
    legacy: Callable[[Path], bool] | None = None,
) -> bool:
    """Make ``target`` hold the set that ``write`` generates for ``params``; returns True if it was generated.

    ``write(folder)`` fills an empty folder and may return extra JSON-able stamp entries (counts, statistics).
    ``params`` (JSON-able) and ``version`` identify the set: bump ``version`` whenever the files would change.
    ``bytes_needed`` estimates the set's size for the free-space check, whose error names ``config_key`` (the
    config key that chooses the folder). ``intact(target, stamp)`` may check a matching set's files (a set
    with missing files is regenerated); ``legacy(target)`` may recognise an unstamped folder written by an
    older version of the generator, which may then be replaced.
    """
    target = Path(target)

    def published() -> bool:
        if not stamp_matches(target, generator, version, params, stamp_name):
            return False
        return intact is None or intact(target, read_stamp(target, stamp_name) or {})

    if published():
        return False
    _check_ours(target, stamp_name, legacy, config_key)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        probe = tempfile.mkdtemp(prefix=f".{target.name}.probe-", dir=target.parent)
        os.rmdir(probe)
    except OSError as err:
        raise DataError(f"cannot write the generated data under {target.parent} ({err.strerror or type(err).__name__}): "
                        f"set {config_key} to a folder you can write") from None
    check_free_space(target.parent, bytes_needed, config_key)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp creates 0o700; the published set should be readable
        extra = dict(write(tmp) or {})
        stamp = {**extra, "generator": generator, "version": version, "params": _plain(params)}
        (tmp / stamp_name).write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n")  # last: marks completion
        _swap_in(tmp, target, published)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return True
