"""Data of SuperPoint's joint training (SuperPoint §3.4, §6) and of its HPatches evaluation (§7).

* :class:`LabelledPairSet`: training pairs built from one photograph and its pseudo ground truth (the points that
  Homographic Adaptation exported, pytorch-superpoint's ``<stem>.npz`` with ``pts`` = (x, y, score)): image X
  with its points, and X' = X warped by a random homography with the warped points (those leaving the image
  dropped) and the cells the warp left inside the image; both photometrically augmented (the reference's
  ``superpoint_coco`` config: photometric on both, homographic only for the warped pair). A sample is a pure
  function of ``(seed, epoch, index)``.
* :class:`HPatchesEvalSet`: the ``(1, k)`` pairs of an HPatches-layout folder, grey, shrunk to ``max_side`` (H
  rescaled) and zero-padded at the bottom and right to multiples of 8 (H unchanged: the padding adds pixels
  after the image's own, so no coordinate moves); the true size travels with the pair.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from torchrepro.core.config import Config
from torchrepro.core.data import ResumableLoader, ResumableSampler
from torchrepro.core.errors import DataError
from torchrepro.core.evaluation import eval_loader
from torchrepro.core.seeding import derive_seed
from torchrepro.nn.superpoint import CELL
from torchrepro.superpoint.augment_config import HomographyConfig, PhotometricConfig
from torchrepro.superpoint.homography import inside_mask, sample_homography, valid_mask, warp_image, warp_points
from torchrepro.superpoint.hpatches import HPatchesPairs
from torchrepro.superpoint.losses import cell_labels, cell_valid
from torchrepro.superpoint.photometric import photometric_augment
from torchrepro.superpoint.image_folder import list_images, read_grey

__all__ = ["HPatchesEvalSet", "LabelledPairSet", "SuperPointDataModule", "export_size", "read_labels"]


def read_labels(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """Exported points (x, y) [N, 2] of one image from pytorch-superpoint's ``<stem>.npz`` (key ``pts``: x, y, score)."""
    try:
        with np.load(path) as npz:
            pts = np.asarray(npz["pts"], dtype=np.float32)
    except (OSError, ValueError, KeyError) as err:
        raise DataError(f"labels file '{path}' is not an export .npz with a 'pts' array ({err}): export the labels "
                        f"again with `torchrepro tool superpoint-export`") from None
    if pts.ndim != 2 or pts.shape[1] < 2:
        raise DataError(f"labels file '{path}' holds pts of shape {pts.shape}, expected [N, 3] (x, y, score)")
    xy = pts[:, :2]
    outside = ~inside_mask(xy, shape)
    if outside.any():
        raise DataError(f"labels file '{path}' has a point {xy[outside][0].tolist()} outside its {shape[1]}x{shape[0]} "
                        f"image: the labels were exported at another image size; export them again")
    return xy


def export_size(labels_dir: Path) -> tuple[int, int] | None:
    """The image size (rows, cols) the export's points refer to (``export.json``), or None when not recorded."""
    meta = labels_dir / "export.json"
    if not meta.is_file():
        return None
    size = json.loads(meta.read_text()).get("image_size")
    return None if size is None else (int(size[0]), int(size[1]))


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32) / 255.0)[None]


class LabelledPairSet(Dataset):
    """(image, warped image) training pairs with their cell labels, valid cells and the homography."""

    def __init__(self, images: list[Path], labels_dir: Path, size: tuple[int, int], photometric: PhotometricConfig,
                 homographic: HomographyConfig, border_margin: int, seed: int) -> None:
        self.images, self.labels_dir, self.size, self.seed = images, labels_dir, tuple(size), seed
        self.photometric, self.homographic, self.border_margin = photometric, homographic, border_margin
        missing = [p for p in images if not (labels_dir / f"{p.stem}.npz").is_file()]
        if missing:
            raise DataError(f"no labels for {len(missing)} of {len(images)} images in '{labels_dir}' (e.g. "
                            f"'{missing[0].stem}.npz'): export them with `torchrepro tool superpoint-export`")

    def __len__(self) -> int:
        return len(self.images)

    def _labels(self, points: np.ndarray, key: tuple[Any, ...]) -> torch.Tensor:
        tie_break = torch.Generator().manual_seed(derive_seed(self.seed, "labels", *key))
        return cell_labels([torch.from_numpy(np.asarray(points, np.float32))], *self.size, tie_break)[0]

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        rng = np.random.default_rng(derive_seed(self.seed, "pairs", epoch, index))
        path = self.images[index]
        image = read_grey(path, self.size)
        points = read_labels(self.labels_dir / f"{path.stem}.npz", self.size)
        homography = sample_homography(rng, self.size, self.homographic)
        warped = warp_image(image, homography, self.size)
        warped_points = warp_points(points, homography)
        warped_points = warped_points[inside_mask(warped_points, self.size)]
        valid = valid_mask(self.size, homography, self.size, erosion=self.border_margin)
        if self.photometric.enable:
            image = photometric_augment(image, rng, self.photometric)
            warped = photometric_augment(warped, rng, self.photometric)
        return {"image": _to_tensor(image), "labels": self._labels(points, (epoch, index, 0)),
                "warped": _to_tensor(warped), "warped_labels": self._labels(warped_points, (epoch, index, 1)),
                "warped_valid": cell_valid(torch.from_numpy(valid)[None])[0],
                "homography": torch.from_numpy(homography)}


def pad_to_cells(image: np.ndarray) -> np.ndarray:
    """Zero-pad the bottom and right so both sides are multiples of 8 (SuperPointNet's cell)."""
    h, w = image.shape
    return np.pad(image, ((0, -h % CELL), (0, -w % CELL)))


class HPatchesEvalSet(Dataset):
    """HPatches ``(1, k)`` pairs for the network: grey [1, H, W] tensors padded to cells, H, sizes and kind."""

    def __init__(self, root: Path, max_side: int | None, max_pairs: int | None = None) -> None:
        self.pairs = HPatchesPairs(root, max_side=max_side, grey=True)
        if len(self.pairs) == 0:
            raise DataError(f"HPatches folder '{root}' has no sequences: point the config at "
                            f"hpatches-sequences-release/ (i_*/ and v_* folders)")
        n = len(self.pairs)
        # a quick run's subset, spread evenly so that both kinds (i_* sort before v_*) are in it
        self.chosen = list(range(n)) if max_pairs is None or max_pairs >= n else \
            [int(i) for i in np.linspace(0, n - 1, max_pairs).round()]

    def __len__(self) -> int:
        return len(self.chosen)

    def __getitem__(self, index: int) -> dict[str, Any]:
        pair = self.pairs[self.chosen[index]]
        return {"image1": _to_tensor(pad_to_cells(pair.image1)), "image2": _to_tensor(pad_to_cells(pair.image2)),
                "shape1": torch.tensor(pair.image1.shape), "shape2": torch.tensor(pair.image2.shape),
                "homography": torch.from_numpy(np.asarray(pair.H, np.float64)),
                "viewpoint": pair.kind == "viewpoint", "index": index}


class SuperPointDataModule(pl.LightningDataModule):
    """Training pairs from pictures + exported labels; HPatches-layout folders for validation and test.

    ``data.source``: ``photos`` builds everything from scikit-image's photographs under ``data.synthetic_dir``
    (:mod:`torchrepro.superpoint.photos`: training crops, ``hpatches_val`` from training photos, ``hpatches_test``
    from held-out ones); ``folders`` reads ``data.images`` (e.g. COCO ``train2014/``) and the HPatches folders
    ``data.val_hpatches`` / ``data.test_hpatches``. Labels: ``data.labels`` when given, else exported once by
    Homographic Adaptation (§5) with ``data.labeler`` into ``<images>/../labels_<labeler>/``.
    """

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg, self.d = cfg, cfg.data
        self.train_set: LabelledPairSet | None = None
        self.val_set: HPatchesEvalSet | None = None
        self.test_set: HPatchesEvalSet | None = None

    @property
    def has_test_split(self) -> bool:
        return self.d.source == "photos" or self.d.test_hpatches is not None

    def _photos_root(self) -> Path:
        d = self.d
        size = "x".join(map(str, d.image_size)) + "-" + "x".join(map(str, d.hpatches_size))
        return Path(d.synthetic_dir) / f"seed{self.cfg.seed}-c{d.crops_per_photo}-s{size}"

    def images_dir(self) -> Path:
        return self._photos_root() / "train" if self.d.source == "photos" else Path(self.d.images)

    def hpatches_dir(self, split: str) -> Path:
        if self.d.source == "photos":
            return self._photos_root() / f"hpatches_{split}"
        return Path(self.d.val_hpatches if split == "val" else self.d.test_hpatches)

    def labels_dir(self) -> Path:
        if self.d.labels is not None:
            return Path(self.d.labels)
        name = Path(self.d.labeler).parent.parent.name if self.d.labeler.endswith(".ckpt") else self.d.labeler
        return self.images_dir().parent / f"labels_{name}"

    def prepare_data(self) -> None:  # Lightning calls this on local rank 0 only
        d = self.d
        if d.source == "photos":
            from torchrepro.superpoint.photos import write_photo_sets

            write_photo_sets(self._photos_root(), seed=self.cfg.seed, crops_per_photo=d.crops_per_photo,
                             crop_size=tuple(d.image_size), sequence_size=tuple(d.hpatches_size))
        if d.labels is None:
            from torchrepro.superpoint.adaptation import export_with_labeler

            export_with_labeler(d.labeler, list_images(self.images_dir()), self.labels_dir(), d.adaptation,
                                seed=self.cfg.seed, image_size=tuple(d.image_size))

    def setup(self, stage: str | None = None) -> None:
        d = self.d
        if self.train_set is None and stage in (None, "fit"):
            size = tuple(d.image_size)
            recorded = export_size(self.labels_dir())
            if recorded is not None and recorded != size:
                raise DataError(f"the labels in '{self.labels_dir()}' were exported at {recorded[1]}x{recorded[0]}, "
                                f"but data.image_size is {size[1]}x{size[0]}: set data.image_size={list(recorded)} "
                                f"or export the labels again at this size")
            self.train_set = LabelledPairSet(list_images(self.images_dir()), self.labels_dir(), size,
                                             d.photometric, d.homographic, d.valid_border_margin, self.cfg.seed)
        if self.val_set is None:
            self.val_set = HPatchesEvalSet(self.hpatches_dir("val"), d.hpatches_max_side, d.hpatches_pairs)
        if self.test_set is None and self.has_test_split and stage in (None, "fit", "test"):
            self.test_set = HPatchesEvalSet(self.hpatches_dir("test"), d.hpatches_max_side, d.hpatches_pairs)

    def train_dataloader(self) -> DataLoader:
        sampler = ResumableSampler(self.train_set, seed=self.cfg.seed, shuffle=True, keyed=True)
        return ResumableLoader(self.train_set, sampler, batch_size=self.d.batch_size, drop_last=False,
                               num_workers=self.d.num_workers, persistent_workers=False)

    def val_dataloader(self) -> DataLoader:
        return eval_loader(self.val_set, 1, self.d.num_workers, trainer=self.trainer)  # pairs differ in size

    def test_dataloader(self) -> DataLoader:
        return eval_loader(self.test_set, 1, self.d.num_workers, trainer=self.trainer)
