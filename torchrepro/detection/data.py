"""Detection data: the splits of a source as records, the keyed datasets and the DataModule.

Sources (``data.source``): ``synthetic`` (road scenes generated as a Pascal VOC folder, then read back by the VOC
reader, as any VOC folder), ``voc`` (:func:`torchrepro.detection.voc.read_voc`) and ``coco``
(:func:`torchrepro.detection.coco.read_coco`). Every split becomes a list of
:class:`~torchrepro.detection.records.DetectionRecord` (boxes in the original image's continuous pixels, labels
1..C, ``difficult`` flags).

* Training (:class:`KeyedDetections`): the sampler yields ``(epoch, index)`` keys; the record's image is decoded and
  SSD's augmentation (§2.2, §3.6) runs as a pure function of ``(seed, epoch, index)``
  (:func:`torchrepro.detection.transforms.apply`), so a resumed run draws exactly the same crops. Samples are
  ``(image float [3, S, S] in [0, 1], {"boxes": [n, 4] in S×S pixels, "labels": [n]})``; ``n`` may be 0 (an image
  without objects, or a crop that kept none) and :func:`~torchrepro.detection.transforms.collate_detection` keeps
  the targets as a list.
* Evaluation (:class:`EvalImages`): the image resized to S×S and ``[index, width, height]`` of its record: the task
  scales the detections back to the original image with ``(width / S, height / S)`` and scores them against the
  record's own boxes (nothing the transform could drop or move).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from torchrepro.core.config import Config
from torchrepro.core.data import ResumableLoader, ResumableSampler
from torchrepro.core.errors import DataError
from torchrepro.core.evaluation import eval_loader
from torchrepro.core.images import load_rgb
from torchrepro.detection.coco import read_coco
from torchrepro.detection.config import DetectionData, DetectionModel
from torchrepro.detection.records import DetectionRecord
from torchrepro.detection.transforms import apply, collate_detection, detection_transform, load_sample
from torchrepro.detection.voc import VOC_CLASSES, read_voc


def class_names(d: DetectionData) -> list[str]:
    """The class names of ``data``: ``data.classes``, else the source's own (the road classes, or VOC's 20)."""
    if d.classes is not None:
        return list(d.classes)
    if d.source == "synthetic":
        # the generator's constant; the VOC reader that reads the generated folder imports nothing of it
        from torchrepro.detection.synthetic import ROAD_CLASSES

        return list(ROAD_CLASSES)
    return list(VOC_CLASSES)  # coco without data.classes is refused by the config check


def synthetic_root(d: DetectionData, seed: int) -> Path:
    """The generated set's folder: one per parameter set, so that runs of several sizes do not regenerate each
    other's (each folder is stamped and published once, :func:`torchrepro.core.generated.publish_once`)."""
    counts = f"{d.synthetic_train}-{d.synthetic_val}-{d.synthetic_test}"
    return Path(d.synthetic_dir) / f"seed{seed}-n{counts}-s{d.synthetic_size}-{d.synthetic_box_extent}"


def read_split(d: DetectionData, split: str, classes: Sequence[str], seed: int) -> list[DetectionRecord]:
    """The records of one split of ``data.source`` (``split`` is a VOC split file name or a COCO split name)."""
    if d.source == "synthetic":
        return read_voc(synthetic_root(d, seed), split, classes=classes)
    bad = {"bad_boxes": d.bad_boxes} if d.bad_boxes is not None else {}
    if d.source == "voc":
        return read_voc(Path(d.root), split, classes=classes, **bad)
    root = Path(d.root)
    coco = read_coco(root / "annotations" / f"instances_{split}.json", root / split,
                     contiguous_ids=d.coco_contiguous_ids, **bad)
    if list(coco.classes) != list(classes):
        raise DataError(f"COCO annotation file '{root / 'annotations' / f'instances_{split}.json'}' has the categories "
                        f"{list(coco.classes)} (in id order), data.classes says {list(classes)}: set data.classes to "
                        f"the json's category names in id order")
    return coco.records


def without_difficult(record: DetectionRecord) -> DetectionRecord:
    """The record with its difficult (VOC) / crowd (COCO) objects left out (``data.train_difficult=false``)."""
    keep = ~record.difficult
    if keep.all():
        return record
    return DetectionRecord(image=record.image, width=record.width, height=record.height, image_id=record.image_id,
                           boxes=record.boxes[keep].copy(), labels=record.labels[keep].copy(),
                           difficult=record.difficult[keep].copy(), truncated=record.truncated[keep].copy())


class KeyedDetections(Dataset):
    """Training samples by ``(epoch, index)`` key: the augmented image and its boxes (module docstring)."""

    def __init__(self, records: list[DetectionRecord], transform: Any, seed: int) -> None:
        self.records = records
        self.transform = transform
        self.seed = seed

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        epoch, index = key
        image, target = load_sample(self.records[index])
        image, target = apply(self.transform, image, target, self.seed, epoch, index)
        # the detectors take boxes and labels; the difficult flags stay with the records (evaluation)
        return image, {"boxes": target["boxes"], "labels": target["labels"]}


class EvalImages(Dataset):
    """Evaluation samples: ``(image float [3, S, S], int64 [index, width, height])`` (module docstring)."""

    def __init__(self, records: list[DetectionRecord], transform: Any) -> None:
        self.records = records
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        record = self.records[index]
        image, target = load_sample(record)
        image, _ = self.transform(image, target)  # resize only: nothing random
        return image.as_subclass(torch.Tensor), torch.tensor([index, record.width, record.height], dtype=torch.int64)


class DetectionDataModule(pl.LightningDataModule):
    """Training, validation and (optional) test splits of ``data.source`` as records and loaders."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.d: DetectionData = cfg.data
        m: DetectionModel = cfg.model
        self.classes = class_names(self.d)
        self.image_size = m.image_size
        self.records: dict[str, list[DetectionRecord]] = {}

    @property
    def has_test_split(self) -> bool:
        """Whether a held-out split is scored once when training ends (``data.test_split``)."""
        return self.d.test_split is not None

    def prepare_data(self) -> None:
        if self.d.source == "synthetic":  # Lightning calls this on local rank 0 only
            from torchrepro.detection.synthetic import generate_road_voc

            d = self.d
            generate_road_voc(synthetic_root(d, self.cfg.seed), d.synthetic_train, d.synthetic_val, d.synthetic_test,
                              seed=self.cfg.seed, size=d.synthetic_size, box_extent=d.synthetic_box_extent,
                              config_key="data.synthetic_dir")

    def _split_names(self) -> dict[str, str]:
        d = self.d
        names = {"train": d.train_split, "val": d.val_split}
        if d.test_split is not None:
            names["test"] = d.test_split
        if d.source == "synthetic":  # the generator writes train / val / test
            names = {key: key for key in names}
        return names

    def setup(self, stage: str | None = None) -> None:
        if self.records:
            return
        if self.d.source == "synthetic" and not (synthetic_root(self.d, self.cfg.seed) / "generated.json").is_file():
            self.prepare_data()  # a rank or command that did not prepare (e.g. `torchrepro eval` under torchrun)
        # every split, whatever the stage: evaluation needs the training boxes too (the prior-box baseline)
        self._check_split_files()
        records = {key: read_split(self.d, name, self.classes, self.cfg.seed)
                   for key, name in self._split_names().items()}
        for key, recs in records.items():
            if not recs:
                raise DataError(f"the {key} split ({self._split_names()[key]}) of data.source '{self.d.source}' holds "
                                f"no images: check the split")
        self.records = records

    def _check_split_files(self) -> None:
        """A VOC split file or COCO json that is missing is named with the config key that chose it (the readers
        name the file only); a missing test split can also be switched off."""
        d = self.d
        if d.source == "synthetic":
            return
        for key, name in self._split_names().items():
            path = (Path(d.root) / "ImageSets" / "Main" / f"{name}.txt" if d.source == "voc"
                    else Path(d.root) / "annotations" / f"instances_{name}.json")
            if not path.is_file():
                tail = " or set data.test_split=null to train without a held-out split" if key == "test" else ""
                raise DataError(f"the {key} split file '{path}' is missing (data.{key}_split={name}): choose an "
                                f"existing split{tail}")

    def check_files(self) -> None:
        """Decode every image of every split (``torchrepro data``): a broken file is named before training."""
        for recs in self.records.values():
            for record in recs:
                load_rgb(record.image, check_only=True)

    def train_records(self) -> list[DetectionRecord]:
        recs = self.records["train"]
        return recs if self.d.train_difficult else [without_difficult(r) for r in recs]

    # -- loaders
    def train_dataloader(self) -> DataLoader:
        a = self.d.augment
        transform = detection_transform(True, self.image_size, zoom_out=a.zoom_out, photometric=a.photometric,
                                        iou_crop=a.iou_crop, flip_p=a.flip_p, zoom_max=a.zoom_max,
                                        crop_min_scale=a.crop_min_scale)
        dataset = KeyedDetections(self.train_records(), transform, self.cfg.seed)
        sampler = ResumableSampler(dataset, seed=self.cfg.seed, shuffle=True, keyed=True)
        # full batches only: the seed's loss is a sum over the batch's images, a short last batch would weigh less
        drop_last = len(dataset) > self.d.batch_size
        return ResumableLoader(dataset, sampler, batch_size=self.d.batch_size, drop_last=drop_last,
                               num_workers=self.d.num_workers, collate_fn=collate_detection, persistent_workers=False)

    def eval_set(self, split: str) -> EvalImages:
        """The evaluation images of ``split`` (``val`` or ``test``), resized to S×S."""
        return EvalImages(self.records[split], detection_transform(False, self.image_size))

    def val_dataloader(self) -> DataLoader:
        return eval_loader(self.eval_set("val"), self.d.eval_batch_size, self.d.num_workers, trainer=self.trainer)

    def test_dataloader(self) -> DataLoader:
        return eval_loader(self.eval_set("test"), self.d.eval_batch_size, self.d.num_workers, trainer=self.trainer)
