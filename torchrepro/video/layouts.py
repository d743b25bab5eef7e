"""The on-disk layouts of video classification data sets: a generic frames-folder + CSV layout and
Something-Something V2.

Generic layout (what the synthetic generators write, and the simplest way to bring one's own videos)::

    root/classes.txt            one class name per line; the order of the (non-blank) lines is the class index
    root/<split>.csv            header "video,label", then rows "<video name>,<class name>"
    root/frames/<video name>/   the video's frames, e.g. 00001.png, 00002.png … (natural order)

Something-Something V2 (Goyal et al., ICCV 2017), as downloaded from Qualcomm / 20BN::

    root/labels.json        {"Approaching something with your camera": "0", ...}  template → class index (string)
    root/train.json         [{"id": "78687", "label": "holding potato next to vicks vaporub bottle",
                              "template": "Holding [something] next to [something]", "placeholders": [...]}, ...]
    root/validation.json    same shape
    root/test.json          [{"id": "1420"}, ...]   no labels
    root/20bn-something-something-v2/<id>.webm      the videos

or, instead of the videos, frames extracted per video as the TSM code base does (Lin et al., ICCV 2019,
``tools/vid2img_sthv2.py``): ``root/<frames_dir>/<id>/000001.jpg …``. The class of an entry is its ``template``
with the square brackets removed, looked up in ``labels.json`` (TSM's ``tools/gen_label_sthv2.py``).

Every reader checks that each item's source exists, so a missing video is reported when the data set is
built, not in a DataLoader worker halfway through an epoch.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torchrepro.core.errors import DataError

CSV_HEADER = ["video", "label"]
SSV2_VIDEOS_DIR = "20bn-something-something-v2"
# Said whenever part of an SSv2 download is missing, so the user knows what a complete one looks like.
_SSV2_CONTENTS = (f"the Something-Something V2 download holds labels.json, train.json, validation.json, test.json "
                  f"and the folder {SSV2_VIDEOS_DIR}/ of <id>.webm videos")


@dataclass(frozen=True)
class VideoItem:
    """One labelled video: its name (the CSV name or the SSv2 id), its frames folder or video file, its class."""

    name: str
    source: Path
    label: int


# --------------------------------------------------------------------------------------------------------------
# Generic frames-folder + CSV layout
# --------------------------------------------------------------------------------------------------------------

def read_class_list(root: Path) -> list[str]:
    """The class names of ``root/classes.txt`` in index order; blank lines are ignored, duplicates refused."""
    path = Path(root) / "classes.txt"
    if not path.is_file():
        raise DataError(f"class list '{path}' does not exist: write one class name per line "
                        f"(line order = class index)")
    classes: list[str] = []
    first_line: dict[str, int] = {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        name = line.strip()
        if not name:
            continue
        if name in first_line:
            raise DataError(f"'{path}' line {line_no}: class '{name}' repeats line {first_line[name]}: "
                            f"class names must be unique")
        first_line[name] = line_no
        classes.append(name)
    if not classes:
        raise DataError(f"class list '{path}' is empty: write one class name per line")
    return classes


def _check_csv_header(path: Path, row: list[str] | None) -> None:
    if row is None or [c.strip() for c in row] != CSV_HEADER:
        got = "nothing" if row is None else repr(",".join(row))
        raise DataError(f"'{path}' line 1: expected the header 'video,label', got {got}")


def _csv_item(root: Path, path: Path, line_no: int, row: list[str], class_index: dict[str, int]) -> VideoItem:
    """One row of a split CSV as a VideoItem, with its label and frames folder checked."""
    if len(row) != 2 or not row[0].strip():
        raise DataError(f"'{path}' line {line_no}: expected '<video name>,<class name>', got {','.join(row)!r}")
    name, label = row[0].strip(), row[1].strip()
    if label not in class_index:
        raise DataError(f"'{path}' line {line_no}: label '{label}' is not in '{root / 'classes.txt'}': "
                        f"add it there or fix the row")
    source = root / "frames" / name
    if not source.is_dir():
        raise DataError(f"'{path}' line {line_no}: frames folder '{source}' of video '{name}' does not exist: "
                        f"extract its frames there or remove the row")
    return VideoItem(name=name, source=source, label=class_index[label])


def read_frames_csv(root: Path, split: str, classes: list[str]) -> list[VideoItem]:
    """The videos of ``root/<split>.csv`` (generic layout, see the module docstring), every row checked."""
    root = Path(root)
    path = root / f"{split}.csv"
    if not path.is_file():
        raise DataError(f"split file '{path}' does not exist: write '{split}.csv' with the header 'video,label'")
    class_index = {name: index for index, name in enumerate(classes)}
    items: list[VideoItem] = []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        _check_csv_header(path, next(reader, None))
        for row in reader:
            if not any(cell.strip() for cell in row):  # blank line, e.g. a trailing one
                continue
            items.append(_csv_item(root, path, reader.line_num, row, class_index))
    if not items:
        raise DataError(f"split file '{path}' lists no videos: the split is empty")
    return items


# --------------------------------------------------------------------------------------------------------------
# Something-Something V2
# --------------------------------------------------------------------------------------------------------------

def _load_json(path: Path, what: str) -> Any:
    """A JSON file of the SSv2 download, or a DataError naming it."""
    if not path.is_file():
        raise DataError(f"{what} '{path}' does not exist: {_SSV2_CONTENTS}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{what} '{path}' is not valid JSON ({err}): download it again") from None


def _check_root(root: Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"Something-Something V2 root '{root}' does not exist: {_SSV2_CONTENTS}")
    return root


def _class_index(path: Path, template: str, value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise DataError(f"'{path}': class index {value!r} of '{template}' is not an integer: "
                        f"labels.json maps templates to \"0\", \"1\", …") from None


def read_sthv2_classes(root: Path) -> list[str]:
    """The 174 SSv2 class names (templates without brackets) of ``root/labels.json``, ordered by index.

    The indices must be exactly ``0 .. K-1``: a gap or a repeat would silently shift every label after it."""
    path = _check_root(root) / "labels.json"
    labels = _load_json(path, "SSv2 label file")
    if not isinstance(labels, dict) or not labels:
        raise DataError(f"'{path}' must map each template to its class index, e.g. "
                        f"{{\"Approaching something with your camera\": \"0\"}}")
    by_index: dict[int, str] = {}
    for template, value in labels.items():
        index = _class_index(path, template, value)
        if index in by_index:
            raise DataError(f"'{path}': class index {index} is given to both '{by_index[index]}' and '{template}'")
        by_index[index] = template
    expected = set(range(len(by_index)))
    if set(by_index) != expected:
        wrong = sorted(set(by_index) - expected)[0]
        raise DataError(f"'{path}': class index {wrong} is out of range: the {len(by_index)} classes must be "
                        f"numbered 0..{len(by_index) - 1}")
    return [by_index[i] for i in range(len(by_index))]


def sthv2_class_name(template: str) -> str:
    """The SSv2 class of a template: its square brackets removed, as TSM's ``tools/gen_label_sthv2.py`` does
    ("Holding [something] next to [something]" → "Holding something next to something")."""
    return template.replace("[", "").replace("]", "")


def _entry_label(path: Path, position: int, entry: Any, class_index: dict[str, int]) -> tuple[str, int]:
    """The (video id, class index) of one entry of an SSv2 split file."""
    if not isinstance(entry, dict) or "id" not in entry:
        raise DataError(f"'{path}' entry {position}: expected an object with an \"id\", got {str(entry)[:80]!r}")
    video_id = str(entry["id"])
    if "template" not in entry:
        raise DataError(f"'{path}' entry {position} (video {video_id}) has no \"template\": this split has no "
                        f"labels (SSv2's test.json is unlabelled); use train.json or validation.json")
    name = sthv2_class_name(str(entry["template"]))
    if name not in class_index:
        raise DataError(f"'{path}' video {video_id}: template '{entry['template']}' is a label missing from "
                        f"labels.json: use the labels.json of the same download")
    return video_id, class_index[name]


def _existing_names(folder: Path, want_dirs: bool) -> set[str]:
    """Names of the sub-folders (``want_dirs``) or files of ``folder``: one directory listing instead of
    one ``stat`` per video, which matters for SSv2's 220k videos."""
    with os.scandir(folder) as entries:
        return {e.name for e in entries if (e.is_dir() if want_dirs else e.is_file())}


def _check_sources(items: list[VideoItem], folder: Path, want_dirs: bool, split_path: Path) -> None:
    """One DataError naming the first missing video of ``items`` and how many are missing."""
    if not folder.is_dir():
        hint = "extract the frames there or fix frames_dir" if want_dirs else _SSV2_CONTENTS
        raise DataError(f"SSv2 {'frames' if want_dirs else 'videos'} folder '{folder}' does not exist: {hint}")
    present = _existing_names(folder, want_dirs)
    missing = [item for item in items if item.source.name not in present]
    if missing:
        kind = "frames folder" if want_dirs else "video"
        raise DataError(f"{len(missing)} of the {len(items)} videos of '{split_path}' are missing, the first: "
                        f"{kind} '{missing[0].source}' (video {missing[0].name}): complete the download or extraction")


def read_sthv2_split(root: Path, split_file: str, *, videos_dir: str = SSV2_VIDEOS_DIR,
                     frames_dir: str | None = None) -> list[VideoItem]:
    """The labelled videos of an SSv2 split file (``train.json`` or ``validation.json``).

    The source of each item is ``root/<frames_dir>/<id>`` when ``frames_dir`` is given (frames extracted as in
    the TSM code base), else the video ``root/<videos_dir>/<id>.webm``. Every source is checked to exist."""
    root = _check_root(root)
    class_index = {name: index for index, name in enumerate(read_sthv2_classes(root))}
    path = root / split_file
    entries = _load_json(path, "SSv2 split file")
    if not isinstance(entries, list):
        raise DataError(f"'{path}' must be a JSON list of videos, e.g. [{{\"id\": \"78687\", \"template\": ...}}]")
    if not entries:
        raise DataError(f"SSv2 split file '{path}' lists no videos: the split is empty")
    folder = root / (frames_dir if frames_dir is not None else videos_dir)
    items: list[VideoItem] = []
    for position, entry in enumerate(entries):
        video_id, label = _entry_label(path, position, entry, class_index)
        source = folder / (video_id if frames_dir is not None else f"{video_id}.webm")
        items.append(VideoItem(name=video_id, source=source, label=label))
    _check_sources(items, folder, want_dirs=frames_dir is not None, split_path=path)
    return items
