"""HPatches sequences: the on-disk format of ``hpatches-sequences-release`` (Balntas et al., CVPR 2017), as used by
SuperPoint §7 (DeTone et al., CVPRW 2018) for its detector and descriptor evaluation.

Layout (the real release, 116 sequences)::

    <root>/i_ajuntament/1.ppm … 6.ppm, H_1_2 … H_1_6     # 57 illumination sequences (H_1_k ≈ identity)
    <root>/v_boat/1.ppm … 6.ppm, H_1_2 … H_1_6           # 59 viewpoint sequences

``H_1_k`` is a text file with three lines of three whitespace-separated numbers; it maps pixel coordinates
``(x, y, 1)`` of image 1 to those of image ``k`` (OpenCV convention: pixel centres at integer coordinates). Each
sequence gives five pairs ``(1, k)``, k = 2..6: 285 illumination + 295 viewpoint pairs in the full release.

Images are returned RGB ``uint8`` (``H×W×3``) or, with ``grey=True``, ``H×W`` ``uint8``. Resizing (``max_side``)
keeps the aspect ratio and rescales the homography consistently: ``H' = S2 · H · S1⁻¹`` where ``S`` maps the
original pixel grid onto the resized one. We use OpenCV's resize geometry ``x' + ½ = s·(x + ½)``; the references
(rpautrat/SuperPoint ``datasets/patches_dataset.py``) use a pure scale ``x' = s·x``, which differs by < ½ px.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from torchrepro.core.errors import DataError

Kind = Literal["illumination", "viewpoint"]
KIND_PREFIX: dict[str, Kind] = {"i": "illumination", "v": "viewpoint"}
N_IMAGES = 6  # every HPatches sequence: a reference image 1 and five targets 2..6


@dataclass
class HPatchesPair:
    """One evaluation pair of an HPatches sequence: image 1, image ``index`` and ``H`` (= ``H_1_<index>``),
    which maps pixel ``(x, y)`` of ``image1`` to ``image2``."""

    sequence: str
    kind: Kind
    index: int
    image1: np.ndarray
    image2: np.ndarray
    H: np.ndarray


# ---------------------------------------------------------------------------------------------------------- reading
def sequence_kind(name: str) -> Kind:
    """``"illumination"`` for ``i_*`` sequences, ``"viewpoint"`` for ``v_*``; DataError otherwise."""
    prefix = name.split("_", 1)[0]
    if "_" not in name or prefix not in KIND_PREFIX:
        raise DataError(f"HPatches sequence name {name!r} must start with 'i_' (illumination) or 'v_' (viewpoint)")
    return KIND_PREFIX[prefix]


def list_sequences(root: str | Path, kinds: Sequence[str] = ("i", "v")) -> list[Path]:
    """The sorted sequence folders ``<root>/<i_*|v_*>`` whose kind prefix is in ``kinds`` (``"i"``, ``"v"``).

    Raises:
        DataError: if ``root`` is not a folder or holds no matching sequence folder.
    """
    root = Path(root)
    bad = [k for k in kinds if k not in KIND_PREFIX]
    if bad or not kinds:
        raise DataError(f"HPatches kinds {list(kinds)!r} invalid: use a subset of ('i', 'v')")
    if not root.is_dir():
        raise DataError(
            f"HPatches root {root} does not exist or is not a folder: point it at the extracted "
            "hpatches-sequences-release/ folder (the one holding i_*/ and v_*/ sequences)"
        )
    found = sorted(p for p in root.iterdir() if p.is_dir() and p.name[:2] in {f"{k}_" for k in kinds})
    if not found:
        wanted = " or ".join(f"{k}_*" for k in kinds)
        raise DataError(
            f"no HPatches sequence folders ({wanted}) in {root}: point the root at the extracted "
            "hpatches-sequences-release/ folder"
        )
    return found


def read_homography(path: str | Path) -> np.ndarray:
    """Read an ``H_1_k`` text file: a finite, non-singular 3×3 ``float64`` matrix.

    Raises:
        DataError: naming the file if it is missing, unparsable, not 3×3, not finite or singular.
    """
    path = Path(path)
    where = f"{path.name} in {path.parent}"
    if not path.is_file():
        raise DataError(f"{where} is missing: every HPatches sequence needs H_1_2 … H_1_6")
    try:
        values = [float(v) for v in path.read_text().split()]
    except (ValueError, UnicodeDecodeError) as err:
        raise DataError(f"{where} is not a text file of 9 numbers ({err}); restore it from the release") from err
    if len(values) != 9:
        raise DataError(f"{where} holds {len(values)} numbers, not a 3x3 matrix (9); restore it from the release")
    H = np.asarray(values, dtype=np.float64).reshape(3, 3)
    if not np.all(np.isfinite(H)):
        raise DataError(f"{where} holds non-finite values (nan/inf); restore it from the release")
    det = float(np.linalg.det(H))
    # Relative test: a homography is defined up to scale, so judge its conditioning, not its raw determinant.
    if det == 0.0 or np.linalg.cond(H) > 1e12:
        raise DataError(f"{where} is singular (det {det:.3g}); restore it from the release")
    return H


def read_image(path: str | Path, grey: bool = False) -> np.ndarray:
    """Read one sequence image: RGB ``uint8`` ``H×W×3`` (or ``H×W`` with ``grey``).

    Raises:
        DataError: naming the file if it is missing or not a readable image.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path.name} in {path.parent} is missing: every HPatches sequence needs 1.ppm … 6.ppm")
    # cv2.imread returns None (no exception) on undecodable files; np.fromfile + imdecode also handles odd paths.
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise DataError(f"{path} is not a readable image (PPM expected): re-extract it from the release")
    return image if grey else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def resize_scale_matrix(old_hw: tuple[int, int], new_hw: tuple[int, int]) -> np.ndarray:
    """The 3×3 matrix ``S`` mapping pixel ``(x, y)`` of an ``old_hw`` image to the ``new_hw`` image that
    ``cv2.resize`` produces: ``x' = sx·x + (sx − 1)/2`` (pixel centres at integers, edges at ``−½``)."""
    sy, sx = new_hw[0] / old_hw[0], new_hw[1] / old_hw[1]
    return np.array([[sx, 0.0, 0.5 * (sx - 1.0)], [0.0, sy, 0.5 * (sy - 1.0)], [0.0, 0.0, 1.0]])


def resize_max_side(image: np.ndarray, max_side: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Shrink ``image`` so its longer side is ≤ ``max_side`` (aspect ratio kept; never enlarged).

    Returns:
        ``(resized, S)``, ``S`` the 3×3 pixel-coordinate map of :func:`resize_scale_matrix` (identity if unchanged).
    """
    h, w = image.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return image, np.eye(3)
    s = max_side / max(h, w)
    new_hw = (max(1, round(h * s)), max(1, round(w * s)))
    # INTER_AREA: the anti-aliased choice for shrinking (what a detector should see).
    resized = cv2.resize(image, (new_hw[1], new_hw[0]), interpolation=cv2.INTER_AREA)
    return resized, resize_scale_matrix((h, w), new_hw)


def rescale_homography(H: np.ndarray, S1: np.ndarray, S2: np.ndarray) -> np.ndarray:
    """``H' = S2 · H · S1⁻¹``: the homography between the resized images, normalised so ``H'[2, 2] = 1``."""
    Hr = S2 @ H @ np.linalg.inv(S1)
    return Hr / Hr[2, 2] if abs(Hr[2, 2]) > 1e-12 else Hr


def _check_sequence_files(seq_dir: Path) -> None:
    """Fail early, naming the first missing image or H file of ``seq_dir``."""
    for k in range(1, N_IMAGES + 1):
        if not (seq_dir / f"{k}.ppm").is_file():
            raise DataError(f"{k}.ppm in {seq_dir} is missing: every HPatches sequence needs 1.ppm … 6.ppm")
    for k in range(2, N_IMAGES + 1):
        if not (seq_dir / f"H_1_{k}").is_file():
            raise DataError(f"H_1_{k} in {seq_dir} is missing: every HPatches sequence needs H_1_2 … H_1_6")


def read_pair(seq_dir: str | Path, index: int, max_side: int | None = None, grey: bool = False) -> HPatchesPair:
    """Read pair ``(1, index)`` of one sequence folder, optionally resized (see the module docstring)."""
    seq_dir = Path(seq_dir)
    if index not in range(2, N_IMAGES + 1):
        raise DataError(f"HPatches pair index {index} invalid: use 2..6")
    H = read_homography(seq_dir / f"H_1_{index}")
    image1, S1 = resize_max_side(read_image(seq_dir / "1.ppm", grey), max_side)
    image2, S2 = resize_max_side(read_image(seq_dir / f"{index}.ppm", grey), max_side)
    return HPatchesPair(seq_dir.name, sequence_kind(seq_dir.name), index, image1, image2, rescale_homography(H, S1, S2))


def read_sequence(seq_dir: str | Path, max_side: int | None = None, grey: bool = False) -> list[HPatchesPair]:
    """The five pairs ``(1, k)``, k = 2..6, of one sequence folder.

    Raises:
        DataError: naming the missing/corrupt image or H file.
    """
    seq_dir = Path(seq_dir)
    sequence_kind(seq_dir.name)
    _check_sequence_files(seq_dir)
    return [read_pair(seq_dir, k, max_side, grey) for k in range(2, N_IMAGES + 1)]


class HPatchesPairs:
    """All ``(1, k)`` pairs of the selected sequences, in sorted sequence order, Dataset-like (``len``, indexing,
    iteration). Files are checked (existence, H validity) at construction; images are read lazily.

    Args:
        root: the ``hpatches-sequences-release/`` folder.
        kinds: sequence prefixes to keep, ``("i", "v")`` by default.
        max_side: if given, images are shrunk so their longer side is ≤ ``max_side`` and H rescaled.
        grey: return ``H×W`` grey images instead of RGB.
    """

    def __init__(
        self, root: str | Path, kinds: Sequence[str] = ("i", "v"), max_side: int | None = None, grey: bool = False
    ) -> None:
        if max_side is not None and max_side < 1:
            raise DataError(f"HPatches max_side={max_side} invalid: use a positive integer or None")
        self.root = Path(root)
        self.max_side = max_side
        self.grey = grey
        self.sequences = list_sequences(self.root, kinds)
        for seq in self.sequences:
            _check_sequence_files(seq)
            for k in range(2, N_IMAGES + 1):
                read_homography(seq / f"H_1_{k}")
        #: (sequence folder, k) of each pair ``(1, k)``, in order: names a pair without reading its images
        self.keys: list[tuple[Path, int]] = [(seq, k) for seq in self.sequences for k in range(2, N_IMAGES + 1)]

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int) -> HPatchesPair:
        seq, k = self.keys[i]
        return read_pair(seq, k, self.max_side, self.grey)

    def __iter__(self) -> Iterator[HPatchesPair]:
        for i in range(len(self)):
            yield self[i]


# ---------------------------------------------------------------------------------------------------------- writing
def format_homography(H: np.ndarray) -> str:
    """Three lines of three numbers in scientific notation, as the Oxford-derived HPatches files
    (e.g. ``v_graffiti/H_1_2``: ``   8.7976964e-01   3.1245438e-01  -3.9430589e+01``)."""
    return "".join("".join(f"{v:16.7e}" for v in row) + "\n" for row in np.asarray(H, dtype=np.float64))


def write_sequence(
    root: str | Path, name: str, images: Sequence[np.ndarray], homographies: Sequence[np.ndarray]
) -> Path:
    """Write one sequence in the release layout: ``<root>/<name>/1.ppm … 6.ppm`` (binary P6) and ``H_1_2 … H_1_6``.

    Args:
        root: the data-set folder (created if needed).
        name: ``i_*`` or ``v_*``.
        images: six RGB ``uint8`` images ``H×W×3`` (``H×W`` grey is written as 3 equal channels).
        homographies: five 3×3 matrices, ``homographies[k - 2]`` mapping image 1 to image ``k``.

    Returns:
        The sequence folder.
    """
    sequence_kind(name)
    if len(images) != N_IMAGES or len(homographies) != N_IMAGES - 1:
        raise DataError(
            f"write_sequence({name!r}): got {len(images)} images and {len(homographies)} homographies, "
            "need 6 and 5"
        )
    seq_dir = Path(root) / name
    seq_dir.mkdir(parents=True, exist_ok=True)
    for k, image in enumerate(images, start=1):
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
            raise DataError(
                f"write_sequence({name!r}): image {k} is {image.dtype} {image.shape}, need uint8 HxWx3 (or HxW)"
            )
        bgr = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR if image.ndim == 2 else cv2.COLOR_RGB2BGR)
        path = seq_dir / f"{k}.ppm"
        if not cv2.imwrite(str(path), bgr, [cv2.IMWRITE_PXM_BINARY, 1]):
            raise DataError(f"could not write {path}: check the folder is writable")
    for k, H in enumerate(homographies, start=2):
        H = np.asarray(H, dtype=np.float64)
        if H.shape != (3, 3) or not np.all(np.isfinite(H)):
            raise DataError(f"write_sequence({name!r}): homography H_1_{k} is not a finite 3x3 matrix")
        (seq_dir / f"H_1_{k}").write_text(format_homography(H))
    return seq_dir
