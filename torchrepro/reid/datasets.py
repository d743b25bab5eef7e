"""Re-ID data sets: Market-1501, DukeMTMC-reID and CUHK03 (new protocol) readers.

Follows torchreid (``torchreid/data/datasets/image/{market1501,dukemtmcreid,cuhk03}.py``): pid -1 is junk and
skipped everywhere, pid 0 (Market background/distractors) is kept in the gallery only, camera ids become 0-based,
and training pids are relabelled to ``0..N-1`` (query/gallery keep raw pids so that evaluation matches them).

The validation split is made of training identities (:func:`hold_out_identities`): a seeded draw among those
seen by at least two cameras, removed from training, split into query and gallery as Market-1501 builds its
query set (Zheng et al., ICCV 2015, §3). The data set's own query/gallery is the held-out test split.

Aligned textures (SAN: Jin et al., "Semantics-Aligned Representation Learning for Person Re-identification",
AAAI 2020, the PIT set) live beside the images of a Market-1501-style root: :func:`texture_path`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import numpy as np

from torchrepro.core.errors import ConfigError, DataError

__all__ = [
    "ReidItem",
    "ReidSplit",
    "parse_market_name",
    "read_market1501",
    "read_dukemtmc",
    "read_cuhk03_new",
    "combine_sources",
    "hold_out_identities",
    "market_query_split",
    "relabel_pids",
    "require_matches",
    "require_subsets",
    "texture_path",
    "validation_candidates",
]

_MARKET_RE = re.compile(r"^(-?\d+)_c(\d+)")
_MARKET_PATTERN = "<pid>_c<camera>..., e.g. 0002_c1s1_000451_03.jpg"
#: Folder under a data set root that holds the aligned textures, one sub-folder per image folder.
TEXTURE_DIR = "texture"


@dataclass(frozen=True)
class ReidItem:
    path: Path
    pid: int
    camid: int


@dataclass
class ReidSplit:
    train: list[ReidItem]
    query: list[ReidItem]
    gallery: list[ReidItem]
    #: where each subset (``train``, ``query``, ``gallery``) was read from: its folder, or the split file
    folders: dict[str, Path] = field(default_factory=dict, compare=False)

    def summary(self) -> str:
        """One line per subset with its number of identities, images and cameras (like torchreid's table)."""
        lines = []
        for name in ("train", "query", "gallery"):
            items = getattr(self, name)
            pids = len({it.pid for it in items})
            cams = len({it.camid for it in items})
            lines.append(f"{name:<8s}| {pids:6d} ids | {len(items):7d} images | {cams:3d} cameras")
        return "\n".join(lines)


def parse_market_name(name: str) -> tuple[int, int]:
    """``0002_c1s1_000451_03.jpg`` / ``0001_c2_f0046182.jpg`` -> ``(pid, camid)`` with a 0-based camid."""
    m = _MARKET_RE.match(Path(name).name)
    if m is None:
        raise DataError(
            f"re-ID image {name!r} does not match the expected name pattern {_MARKET_PATTERN} "
            f"(regex ^(-?\\d+)_c(\\d+)); rename or remove the file"
        )
    return int(m.group(1)), int(m.group(2)) - 1


def _read_market_dir(folder: Path, num_cameras: int, keep_background: bool) -> list[tuple[Path, int, int]]:
    if not folder.is_dir():
        raise DataError(
            f"re-ID data folder {folder} is missing; expected the standard layout with "
            f"bounding_box_train/, query/ and bounding_box_test/ under the data root"
        )
    out = []
    for path in sorted(folder.glob("*.jpg")):
        pid, camid = parse_market_name(str(path))  # the error then names the full path
        if pid == -1:
            continue  # junk
        if pid == 0 and not keep_background:
            continue  # background/distractor: gallery only
        if not 0 <= camid < num_cameras:
            raise DataError(
                f"re-ID image {path} has camera c{camid + 1}, outside 1..{num_cameras} for this data set; "
                f"check the file name or the data set choice"
            )
        out.append((path, pid, camid))
    return out


def relabel_pids(items: list[ReidItem]) -> list[ReidItem]:
    """Training pids → ``0..N-1`` in sorted pid order (torchreid's ``relabel=True``): the classifier's labels."""
    pid2label = {pid: i for i, pid in enumerate(sorted({it.pid for it in items}))}
    return [ReidItem(it.path, pid2label[it.pid], it.camid) for it in items]


def texture_path(root: Path, image_path: Path) -> Path:
    """``root/<split>/<stem>.jpg`` -> ``root/texture/<split>/<stem>.png``: where an image's aligned texture lives.

    Our analogue of the SAN loader's look-up (``img_path.replace('images_labeled', 'texture_...')``); the
    synthetic persons and ``torchrepro tool reid-textures`` write textures there.
    """
    image_path = Path(image_path)
    return Path(root) / TEXTURE_DIR / image_path.parent.name / f"{image_path.stem}.png"


def read_market1501(root: Path, num_cameras: int = 6) -> ReidSplit:
    """Read a Market-1501-style folder (``bounding_box_train``, ``query``, ``bounding_box_test``)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"re-ID data root {root} does not exist; set the data path to the extracted data set folder")
    train = _read_market_dir(root / "bounding_box_train", num_cameras, keep_background=False)
    query = _read_market_dir(root / "query", num_cameras, keep_background=False)
    gallery = _read_market_dir(root / "bounding_box_test", num_cameras, keep_background=True)
    return ReidSplit(
        train=relabel_pids([ReidItem(*t) for t in train]),
        query=[ReidItem(*t) for t in query],
        gallery=[ReidItem(*t) for t in gallery],
        folders={"train": root / "bounding_box_train", "query": root / "query", "gallery": root / "bounding_box_test"},
    )


def read_dukemtmc(root: Path) -> ReidSplit:
    """DukeMTMC-reID: the Market-1501 layout with 8 cameras."""
    return read_market1501(root, num_cameras=8)


_CUHK03_KEYS = ("train_idx", "query_idx", "gallery_idx", "labels", "camId", "filelist")


def _cell_str(cell: object) -> str:
    """One entry of a MATLAB cell array of strings, as loadmat returns it (nested 1-element arrays or a str)."""
    while isinstance(cell, np.ndarray):
        if cell.size != 1:
            break
        cell = cell.reshape(-1)[0]
    if isinstance(cell, np.ndarray):  # a char matrix row
        cell = "".join(str(c) for c in cell.reshape(-1))
    return str(cell).strip()


def read_cuhk03_new(root: Path, variant: Literal["labeled", "detected"]) -> ReidSplit:
    """CUHK03 under the new 767/700 protocol (Zhong et al. 2017) from ``cuhk03_new_protocol_config_<variant>.mat``."""
    import scipy.io

    if variant not in ("labeled", "detected"):
        raise DataError(f"CUHK03 variant {variant!r} is unknown; use 'labeled' or 'detected'")
    root = Path(root)
    mat_path = root / f"cuhk03_new_protocol_config_{variant}.mat"
    if not mat_path.is_file():
        raise DataError(
            f"CUHK03 split file {mat_path} is missing; download cuhk03_new_protocol_config_{variant}.mat "
            f"(Zhong et al. 2017 re-ranking repo) into {root}"
        )
    try:
        mat = scipy.io.loadmat(str(mat_path))
    except Exception as err:  # noqa: BLE001 - any parse failure is a corrupt user file
        raise DataError(f"CUHK03 split file {mat_path} could not be read ({err}); re-download it") from err
    missing = [k for k in _CUHK03_KEYS if k not in mat]
    if missing:
        raise DataError(
            f"CUHK03 split file {mat_path} lacks key(s) {', '.join(missing)}; "
            f"expected {', '.join(_CUHK03_KEYS)} (re-download the new-protocol .mat)"
        )
    filelist = [_cell_str(c) for c in np.asarray(mat["filelist"], dtype=object).reshape(-1)]
    labels = np.asarray(mat["labels"]).reshape(-1).astype(np.int64)
    cams = np.asarray(mat["camId"]).reshape(-1).astype(np.int64)
    n = len(filelist)
    if len(labels) != n or len(cams) != n:
        raise DataError(
            f"CUHK03 split file {mat_path} has {n} filelist entries but {len(labels)} labels and {len(cams)} "
            f"camId entries; re-download the new-protocol .mat"
        )
    img_dir = root / f"images_{variant}"

    def indices(key: str) -> np.ndarray:
        idx = np.asarray(mat[key]).reshape(-1).astype(np.int64)
        bad = idx[(idx < 1) | (idx > n)]
        if bad.size:
            raise DataError(
                f"CUHK03 split file {mat_path}: {key} holds index {int(bad[0])} outside 1..{n} "
                f"(indices are 1-based into filelist); re-download the new-protocol .mat"
            )
        return idx - 1

    def items(idx: np.ndarray) -> list[ReidItem]:
        out = []
        for i in idx:
            cam = int(cams[i]) - 1
            if cam < 0:
                raise DataError(
                    f"CUHK03 split file {mat_path}: camId of {filelist[i]} is {cam + 1}, expected >= 1; "
                    f"re-download the new-protocol .mat"
                )
            out.append(ReidItem(img_dir / filelist[i], int(labels[i]), cam))
        return out

    train = items(indices("train_idx"))
    query = items(indices("query_idx"))
    gallery = items(indices("gallery_idx"))
    return ReidSplit(train=relabel_pids(train), query=query, gallery=gallery,
                     folders={"train": mat_path, "query": mat_path, "gallery": mat_path})


def require_subsets(split: ReidSplit, name: str, subsets: tuple[str, ...], key: str) -> None:
    """DataError naming the folder of the first of ``subsets`` of data set ``name`` (listed in config ``key``) that
    holds no usable image (junk, pid -1, is skipped everywhere; background, pid 0, is kept in the gallery only)."""
    for subset in subsets:
        if not getattr(split, subset):
            where = split.folders.get(subset, f"the {subset} set")
            skipped = "junk -1_* images" if subset == "gallery" else "junk -1_* and background 0000_* images"
            raise DataError(f"re-ID {subset} set {where} of data set '{name}' ({key}) holds no usable image ({skipped} "
                            f"do not count): put the data set's {subset} images there, or remove '{name}' from {key}")


def require_matches(split: ReidSplit, name: str) -> None:
    """DataError unless some query's identity is in the gallery from another camera: the Market-1501 protocol
    skips the other queries, and with none left nothing can be scored."""
    seen: dict[int, set[int]] = {}
    for it in split.gallery:
        seen.setdefault(it.pid, set()).add(it.camid)
    if not any(seen.get(q.pid, set()) - {q.camid} for q in split.query):
        where = {k: split.folders.get(k, f"the {k} set") for k in ("query", "gallery")}
        raise DataError(f"no query of {where['query']} (data set '{name}') has a match in {where['gallery']}: the "
                        f"Market-1501 protocol needs the query's identity in the gallery seen by another camera; "
                        f"check that the two folders are the data set's query and gallery")


def combine_sources(splits: list[ReidSplit]) -> list[ReidItem]:
    """Merge the training sets of several data sets, offsetting pids so identities never collide.

    As torchreid's ``ImageDataManager`` (dataset ``__add__``): each data set's train pids are shifted by the number
    of train identities of the data sets before it (``max pid + 1``, since train pids are ``0..N-1``).
    """
    merged: list[ReidItem] = []
    offset = 0
    for split in splits:
        if not split.train:
            continue
        merged.extend(ReidItem(it.path, it.pid + offset, it.camid) for it in split.train)
        offset += max(it.pid for it in split.train) + 1
    return merged


# --- validation split: identities held out of the training set -----------------------------------------------


def validation_candidates(items: list[ReidItem]) -> list[int]:
    """Training identities that can be held out for validation, sorted: seen by ≥ 2 cameras, with more images
    than cameras.

    After one query per camera (:func:`market_query_split`) such an identity keeps at least one gallery image,
    and the query of any other camera has it as a valid cross-camera match under the Market-1501 protocol
    (same-id-same-camera gallery images are junk): no held-out identity is lost to the protocol."""
    cams: dict[int, set[int]] = {}
    counts: dict[int, int] = {}
    for it in items:
        cams.setdefault(it.pid, set()).add(it.camid)
        counts[it.pid] = counts.get(it.pid, 0) + 1
    return sorted(pid for pid, seen in cams.items() if len(seen) >= 2 and counts[pid] > len(seen))


def market_query_split(items: list[ReidItem], rng: np.random.Generator) -> tuple[list[ReidItem], list[ReidItem]]:
    """Market-1501's query construction (Zheng et al., "Scalable Person Re-identification: A Benchmark", ICCV
    2015, §3): for every identity, one image per camera that sees it, chosen at random, is a query; the other
    images form the gallery. Returns ``(query, gallery)``, each in the order of ``items``.

    The choice is a pure function of ``rng``'s state and the order of ``items``: groups are visited in sorted
    ``(pid, camid)`` order and each draws one index."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, it in enumerate(items):
        groups.setdefault((it.pid, it.camid), []).append(i)
    chosen = {members[int(rng.integers(len(members)))] for _, members in sorted(groups.items())}
    query = [it for i, it in enumerate(items) if i in chosen]
    gallery = [it for i, it in enumerate(items) if i not in chosen]
    return query, gallery


def hold_out_identities(items: list[ReidItem], num_ids: int, seed: int, min_train_ids: int = 1,
                        ) -> tuple[list[int], list[ReidItem], list[ReidItem]]:
    """A validation split made of training identities (the practice of open-reid's ``num_val``), chosen on the
    training data only, so that the test split is never used to choose a setting, an epoch or a checkpoint.

    ``num_ids`` identities are drawn without replacement, by a generator seeded with ``seed``, among the
    :func:`validation_candidates`; their images leave the training set and are split into query and gallery by
    :func:`market_query_split`. At least ``min_train_ids`` identities stay for training (a P×K batch needs P).

    Returns ``(indices of the items kept for training, validation query, validation gallery)``; the held-out
    items keep their pids (distinct from each other, which is all the evaluation needs).
    """
    candidates = validation_candidates(items)
    n_ids = len({it.pid for it in items})
    most = min(len(candidates), n_ids - min_train_ids)
    if not 1 <= num_ids <= most:
        spare = (f"set data.val_ids between 1 and {most}" if most >= 1
                 else "use a training set with more identities")
        raise ConfigError(
            f"data.val_ids={num_ids}: the training data has {n_ids} identities, {len(candidates)} of them can be "
            f"held out for validation (seen by >= 2 cameras, more images than cameras) and at least {min_train_ids} "
            f"must stay for training (a P x K batch needs P = data.batch_size / data.num_instances); {spare}")
    rng = np.random.default_rng(seed)
    held = {int(p) for p in rng.choice(np.asarray(candidates), size=num_ids, replace=False)}
    keep = [i for i, it in enumerate(items) if it.pid not in held]
    query, gallery = market_query_split([it for it in items if it.pid in held], rng)
    return keep, query, gallery


#: the readers by data-set name (``data.sources`` / ``data.targets``)
DATASETS: dict[str, Callable[[Path], ReidSplit]] = {
    "market1501": read_market1501,
    "dukemtmc": read_dukemtmc,
    "cuhk03_labeled": lambda root: read_cuhk03_new(root, "labeled"),
    "cuhk03_detected": lambda root: read_cuhk03_new(root, "detected"),
    "synthetic": read_market1501,  # the generator writes the Market-1501 layout
}
