"""Homographic Adaptation (SuperPoint, DeTone, Malisiewicz & Rabinovich, CVPRW 2018, §5, Fig. 5–7, Eq. 10–11).

A detector trained on synthetic shapes misses and hallucinates points on real images, and it is not covariant
to the warps a camera sees. The paper labels real images with a self-supervised ensemble instead: warp the image
by N_h random homographies, run the base detector f_θ on every warp, map each response back into the source
frame and aggregate (Eq. 10–11)::

    F̂(I; f_θ) = 1/N_h · Σ_i H_i⁻¹ f_θ(H_i(I))

The aggregated heatmap is then thresholded, non-maximum suppressed and written as the pseudo ground truth that
trains the next detector (Fig. 5: MagicPoint → adaptation → SuperPoint; Fig. 7: N_h = 100).

Reference behaviour (rpautrat/SuperPoint ``models/homographies.py`` ``homography_adaptation``, eric-yyjau/
pytorch-superpoint ``export.py`` ``export_detector_homoAdapt_gpu``), which this module follows:

* the identity is the first of the N_h "warps" (the reference runs the plain image, then N_h - 1 random warps);
* the mean is not over N_h but over the warps that *see* a pixel: each warp contributes, in the source frame, a
  count mask -- the pixels whose warp lands inside the warped image, eroded by ``valid_border_margin`` -- and
  both the un-warped response and the count are multiplied by it (``aggregation: sum``); ``max`` takes the
  largest masked response instead. The identity counts everywhere, so every pixel has a count of at least 1;
* the labels are the points of the aggregated heatmap above ``detection_threshold`` after NMS (4 px), the best
  ``top_k`` kept, written as eric-yyjau's ``<name>.npz`` with ``pts`` = [N, 3] (x, y, score).

Homography conventions are those of :mod:`torchrepro.superpoint.homography`: ``H`` maps source pixels to warped
pixels, pixel centres at integer coordinates. On the CPU the warps are OpenCV loops (measured faster than the
batched ``grid_sample`` path there); on a GPU they are :func:`~torchrepro.superpoint.homography.warp_images_torch`.
The network forward dominates either way (~98 % of the time on the CPU), so the batched mode's gain is the
network's: ``batch_size`` warps per forward instead of one (``loop=True``, kept as the reference for the benchmark
and the tests). That pays on an accelerator; on the CPU one warp per forward is measured fastest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from torchrepro.core.errors import ConfigError, DataError
from torchrepro.core.generated import publish_once
from torchrepro.core.seeding import derive_seed
from torchrepro.nn.superpoint import CELL, SuperPointNet
from torchrepro.superpoint.augment_config import AGGREGATIONS, AdaptationConfig
from torchrepro.superpoint.corners import CORNER_DETECTORS, corner_heatmap
from torchrepro.superpoint.image_folder import read_grey
from torchrepro.superpoint.homography import sample_homographies, valid_mask, warp_image, warp_images_torch
from torchrepro.superpoint.keypoints import extract_keypoints, heatmap_from_logits

__all__ = ["ACCELERATOR_BATCH", "CPU_BATCH", "EXPORT_GENERATOR", "EXPORT_NAME", "EXPORT_VERSION",
           "WARP_BACKENDS", "CornerDetector", "Detector", "NetworkDetector", "adapt_heatmap",
           "adaptation_homographies", "classical_detector", "count_masks", "export_labels", "label_image",
           "export_with_labeler", "load_labeler", "network_detector"]

log = logging.getLogger(__name__)

#: a detector: grey images [b, 1, H, W] in [0, 1] → interest point heatmaps [b, H, W]
Detector = Callable[[Tensor], Tensor]

#: the export's stamp and summary, beside the ``<stem>.npz`` files (written last by publish_once)
EXPORT_NAME = "export.json"
EXPORT_GENERATOR = "superpoint-homographic-adaptation"
#: bump whenever the exported points would change for the same parameters
EXPORT_VERSION = 1
#: what --images may hold (hidden files and sub-folders are ignored)


# ---------------------------------------------------------------------------------------------------- detectors
@dataclass
class NetworkDetector:
    """A SuperPointNet / MagicPoint as a :data:`Detector`: ``semi`` → softmax heatmap (§3.2), in eval mode.

    Eval mode matters beyond inference: with BatchNorm in training mode a warp's response would depend on the
    other warps of its batch, and batched adaptation would no longer equal the per-warp loop. Images whose sides
    are not multiples of 8 are zero-padded at the bottom/right for the forward and the heatmap cropped back
    (warped images carry such black borders anyway).
    """

    net: SuperPointNet
    name: str = "network"

    def __post_init__(self) -> None:
        self.net.eval()

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        h, w = images.shape[-2:]
        x = images.to(self.device, torch.float32)
        pad_h, pad_w = -h % CELL, -w % CELL
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        heat = heatmap_from_logits(self.net(x)["semi"])[:, :h, :w]
        return heat.to(images.device)


@dataclass
class CornerDetector:
    """A classical corner detector (:func:`~torchrepro.superpoint.corners.corner_heatmap`: Harris, Shi-Tomasi,
    FAST) as a :data:`Detector`, run per image on its uint8 version -- homographic adaptation of a cheap,
    deterministic labeler (tests, baselines)."""

    detector: str

    @property
    def name(self) -> str:
        return self.detector

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def __call__(self, images: Tensor) -> Tensor:
        grey = (images[:, 0].detach().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu().numpy()
        heats = np.stack([corner_heatmap(g, self.detector) for g in grey])
        return torch.from_numpy(heats).to(images.device)


def network_detector(net: SuperPointNet, name: str = "network") -> NetworkDetector:
    """``net`` (SuperPointNet or MagicPoint) as a detector callable; puts ``net`` in eval mode."""
    return NetworkDetector(net, name)


def classical_detector(name: str) -> CornerDetector:
    """``"harris"``, ``"shi"`` or ``"fast"`` as a detector callable (one ``corner_heatmap`` per image)."""
    if name not in CORNER_DETECTORS:
        raise ConfigError(f"unknown detector '{name}': choose one of {', '.join(CORNER_DETECTORS)}")
    return CornerDetector(name)


# ---------------------------------------------------------------------------------------------------- adaptation
def adaptation_homographies(seed: int, key: str, shape: tuple[int, int], cfg: AdaptationConfig) -> np.ndarray:
    """The N_h homographies [N_h, 3, 3] (source → warped) of one image: the identity first, as the reference,
    then ``num_homographies - 1`` draws of :func:`sample_homographies` from ``derive_seed(seed, "adaptation",
    key)`` -- a pure function of (seed, key, shape, cfg), so any image's labels can be reproduced alone."""
    rng = np.random.default_rng(derive_seed(seed, "adaptation", key))
    random = sample_homographies(rng, shape, cfg.homographies, cfg.num_homographies - 1)
    return np.concatenate([np.eye(3)[None], random.reshape(-1, 3, 3)])


def count_masks(shape: tuple[int, int], homographies: np.ndarray, margin: int) -> np.ndarray:
    """Bool [N, H, W]: which source pixels each warp sees -- those whose warp lands inside the warped image (of the
    same ``shape``), at least ``margin`` px from its invalid area (the reference's ``compute_valid_mask`` of the
    inverse warp with ``valid_border_margin``). The image frame itself does not erode, so the identity (and any
    warp that keeps the whole image inside) sees every pixel."""
    inverses = np.linalg.inv(np.asarray(homographies, np.float64).reshape(-1, 3, 3))
    # pixel p of the source is seen iff H p is inside: the valid output pixels of the warp by H⁻¹
    return np.stack([valid_mask(shape, inv, shape, erosion=margin) for inv in inverses])


#: ``adapt_heatmap``'s warp backends: "auto" = cv2 for CPU tensors (faster there), torch elsewhere
WARP_BACKENDS: tuple[str, ...] = ("auto", "cv2", "torch")

#: warps per network call when ``AdaptationConfig.batch_size`` is null. On the CPU (one thread) a 120×160
#: MagicPoint forward costs ~51 ms per warp one at a time, ~58 ms in batches of 4 and ~66 ms in batches of 25
#: (benchmarks/superpoint_adaptation.py: the activations of a batch leave the cache), so one warp per call; an
#: accelerator wants large batches (32: not measured, no GPU was available when this was written)
CPU_BATCH, ACCELERATOR_BATCH = 1, 32


def _warp_images(images: Tensor, homographies: np.ndarray, shape: tuple[int, int], backend: str = "auto") -> Tensor:
    """Warp [1 or b, 1, H, W] by each of the b homographies: cv2 on the CPU, ``grid_sample`` on an accelerator."""
    if backend == "torch" or (backend == "auto" and images.device.type != "cpu"):
        return warp_images_torch(images, torch.as_tensor(homographies, device=images.device), shape)
    planes = images[:, 0].detach().cpu().numpy()
    warped = [warp_image(planes[0 if len(planes) == 1 else i], H, shape) for i, H in enumerate(homographies)]
    return torch.from_numpy(np.stack(warped))[:, None].to(images.device)


def _unwarp_heatmaps(heatmaps: Tensor, inverses: np.ndarray, shape: tuple[int, int], backend: str = "auto") -> Tensor:
    """Bring each warp's heatmap [b, H, W] back into the source frame by its inverse homography (Eq. 10's
    H_i⁻¹ f_θ(H_i(I))); zero where the warped image does not reach."""
    return _warp_images(heatmaps[:, None].contiguous(), inverses, shape, backend)[:, 0]


def _check_adapt_inputs(image: Tensor, homographies: np.ndarray, aggregation: str, batch_size: int,
                        warp: str) -> None:
    if image.dim() != 4 or image.shape[:2] != (1, 1):
        raise ValueError(f"adapt_heatmap takes one grey image [1, 1, H, W], got shape {tuple(image.shape)}")
    if homographies.ndim != 3 or homographies.shape[1:] != (3, 3) or len(homographies) == 0:
        raise ValueError(f"adapt_heatmap takes homographies [N >= 1, 3, 3], got shape {homographies.shape}")
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {aggregation!r}: choose one of {', '.join(AGGREGATIONS)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if warp not in WARP_BACKENDS:
        raise ValueError(f"unknown warp backend {warp!r}: choose one of {', '.join(WARP_BACKENDS)}")


def adapt_heatmap(detect: Detector, image: Tensor, homographies: np.ndarray, margin: int = 3,
                  aggregation: str = "sum", batch_size: int = CPU_BATCH, loop: bool = False,
                  warp: str = "auto") -> Tensor:
    """Homographic adaptation of one image (§5, Eq. 10–11): the aggregated heatmap [H, W] in the source frame.

    ``image`` [1, 1, H, W] float in [0, 1]; ``homographies`` [N, 3, 3] source → warped (include the identity
    first, as :func:`adaptation_homographies` does: the reference's first "warp" is the plain image). Each warp
    of the image goes through ``detect``; its heatmap is un-warped and masked by its count mask
    (:func:`count_masks` with ``margin``). ``"sum"``: the masked responses summed and divided by the per-pixel
    count (the mean over the warps that see the pixel; a pixel no warp sees gets 0); ``"max"``: their maximum.

    ``batch_size`` warps per ``detect`` call; ``loop=True`` is the reference's one warp per call. Both add the
    warps in the same order, so they differ only by the detector's batching (~1e-8 for a network in eval mode).
    ``warp``: ``"cv2"`` (``warpPerspective`` loops, CPU tensors only), ``"torch"`` (batched ``grid_sample``, any
    device) or ``"auto"`` (cv2 for CPU tensors); the two agree to ~1e-5 on [0, 1] images.
    """
    homographies = np.asarray(homographies, np.float64)
    _check_adapt_inputs(image, homographies, aggregation, batch_size, warp)
    shape = (int(image.shape[2]), int(image.shape[3]))
    inverses = np.linalg.inv(homographies)
    step = 1 if loop else batch_size
    total = torch.zeros(shape, dtype=torch.float32, device=image.device)
    counts = torch.zeros(shape, dtype=torch.float32, device=image.device)
    for start in range(0, len(homographies), step):
        chunk = slice(start, start + step)
        heats = detect(_warp_images(image.float(), homographies[chunk], shape, warp))
        if heats.shape != (len(homographies[chunk]), *shape):
            raise ValueError(f"the detector returned heatmaps of shape {tuple(heats.shape)} for "
                             f"{len(homographies[chunk])} images of {shape}: it must return [b, H, W]")
        masks = torch.from_numpy(count_masks(shape, homographies[chunk], margin)).to(image.device, torch.float32)
        back = _unwarp_heatmaps(heats.float(), inverses[chunk], shape, warp) * masks
        # warp by warp, in order, so that the batched and per-warp modes add the same numbers in the same order
        for response, mask in zip(back, masks):
            if aggregation == "sum":
                total += response
                counts += mask
            else:
                torch.maximum(total, response, out=total)
    return total / counts.clamp_min(1.0) if aggregation == "sum" else total


def label_image(detect: Detector, image: np.ndarray, homographies: np.ndarray, cfg: AdaptationConfig,
                device: torch.device | str = "cpu") -> np.ndarray:
    """The pseudo ground truth of one grey image [H, W] float32 in [0, 1]: float32 [N, 3] = (x, y, score) by
    decreasing score -- the adapted heatmap's points above ``detection_threshold``, ``border`` px from the edge,
    after NMS (``nms_radius``), the best ``top_k`` (eric-yyjau's ``pts``)."""
    x = torch.from_numpy(np.ascontiguousarray(image, np.float32))[None, None].to(device)
    batch = cfg.batch_size or (CPU_BATCH if x.device.type == "cpu" else ACCELERATOR_BATCH)
    heat = adapt_heatmap(detect, x, homographies, cfg.valid_border_margin, cfg.aggregation, batch)
    xy, scores = extract_keypoints(heat, cfg.detection_threshold, cfg.nms_radius, cfg.top_k, cfg.border)
    return torch.cat([xy.float(), scores.float()[:, None]], dim=1).cpu().numpy().astype(np.float32)


def _check_stems(images: list[Path]) -> None:
    seen: dict[str, Path] = {}
    for path in images:
        if path.stem in seen:
            raise DataError(f"'{seen[path.stem]}' and '{path}' would both be labelled '{path.stem}.npz': rename one")
        seen[path.stem] = path


def _images_digest(images: list[Path]) -> str:
    """A digest of the inputs (name, size, modification time) for the export's stamp: changed images re-export."""
    digest = hashlib.sha256()
    for path in images:
        stat = path.stat()
        digest.update(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------------- export
def _export_params(detector: str, images: list[Path], cfg: AdaptationConfig, seed: int,
                   image_size: Sequence[int] | None) -> dict[str, Any]:
    config = dataclasses.asdict(cfg)
    config.pop("batch_size")  # warps per forward: does not change the labels, so an export is reused across it
    return {"detector": detector, "seed": int(seed), "image_size": None if image_size is None else list(image_size),
            "adaptation": config, "num_images": len(images), "images_sha256": _images_digest(images)}


def _intact(target: Path, stamp: dict[str, Any]) -> bool:
    counts = stamp.get("counts")
    return isinstance(counts, dict) and all((target / f"{stem}.npz").is_file() for stem in counts)


def export_labels(detect: Detector, images: list[Path], out: Path, cfg: AdaptationConfig, seed: int,
                  image_size: Sequence[int] | None, progress: bool = True, detector_name: str | None = None,
                  force: bool = False) -> dict[str, Any]:
    """Write the homographic-adaptation pseudo ground truth of ``images`` into ``out`` (SuperPoint §5, Fig. 5).

    Layout (eric-yyjau/pytorch-superpoint's export): ``<out>/<image stem>.npz`` holding ``pts`` float32 [N, 3] =
    (x, y, score) in the pixels of the image *as the network saw it* -- resized to ``image_size`` (rows, cols)
    when given, else its own size -- and ``<out>/export.json``: image_size, num_homographies, thresholds, the
    detector (``detector_name`` or the detector's ``name``), the seed and the per-image point counts. The folder
    is published atomically (:func:`~torchrepro.core.generated.publish_once`): a reader never sees a half-written
    export; an export with the same parameters is reused (``force``: regenerated), a non-empty folder that is not
    an export is refused. Image ``stem``'s warps are :func:`adaptation_homographies` ``(seed, stem, …)``.

    Returns ``{"out", "images", "points", "mean_points", "seconds", "generated", "counts"}``.
    """
    cfg.check("adaptation")
    images = [Path(p) for p in images]
    if not images:
        raise DataError("no images to label: pass a folder holding images")
    if image_size is not None and (len(image_size) != 2 or min(int(s) for s in image_size) < CELL):
        raise ConfigError(f"image size {list(image_size)} must be two sides (rows, cols) of at least {CELL} pixels")
    _check_stems(images)
    name = detector_name or str(getattr(detect, "name", type(detect).__name__))
    device = getattr(detect, "device", torch.device("cpu"))
    started = time.perf_counter()

    def write(folder: Path) -> dict[str, Any]:
        counts: dict[str, int] = {}
        every = max(1, len(images) // 10)
        for i, path in enumerate(images, start=1):
            grey = read_grey(path, image_size).astype(np.float32) / 255.0
            homographies = adaptation_homographies(seed, path.stem, grey.shape, cfg)
            pts = label_image(detect, grey, homographies, cfg, device)
            np.savez_compressed(folder / f"{path.stem}.npz", pts=pts)
            counts[path.stem] = int(len(pts))
            if progress and (i % every == 0 or i == len(images)):
                elapsed = time.perf_counter() - started
                log.info("homographic adaptation: %d/%d images (%.0f%%), %.2f images/s", i, len(images),
                         100.0 * i / len(images), i / max(elapsed, 1e-9))
        seconds = time.perf_counter() - started
        return {"detector": name, "image_size": None if image_size is None else list(image_size),
                "num_homographies": cfg.num_homographies, "detection_threshold": cfg.detection_threshold,
                "nms_radius": cfg.nms_radius, "top_k": cfg.top_k, "border": cfg.border,
                "valid_border_margin": cfg.valid_border_margin, "aggregation": cfg.aggregation, "seed": int(seed),
                "counts": counts, "mean_points": float(np.mean(list(counts.values()))), "seconds": seconds}

    params = _export_params(name, images, cfg, seed, image_size)
    generated = publish_once(out, write, generator=EXPORT_GENERATOR, version=EXPORT_VERSION, params=params,
                             bytes_needed=len(images) * (12 * (cfg.top_k or 2000) + 1024), config_key="--out",
                             stamp_name=EXPORT_NAME, intact=lambda t, s: not force and _intact(t, s))
    return _summary(Path(out), generated, time.perf_counter() - started)


def _summary(out: Path, generated: bool, seconds: float) -> dict[str, Any]:
    stamp = json.loads((out / EXPORT_NAME).read_text())
    counts = stamp["counts"]
    return {"out": str(out), "images": len(counts), "points": int(sum(counts.values())),
            "mean_points": float(stamp["mean_points"]), "seconds": seconds, "generated": generated, "counts": counts}


# ---------------------------------------------------------------------------------------------------- labelers
#: recipes whose restored module holds the detector as ``.net`` (a SuperPointNet)
LABELER_RECIPES: tuple[str, ...] = ("magicpoint", "superpoint")


def load_labeler(labeler: str | Path, config: Path | None = None,
                 device: torch.device | str = "cpu") -> tuple[Detector, list[int] | None]:
    """A labeler named in a config or on the command line: ``harris`` / ``shi`` / ``fast``, or a MagicPoint /
    SuperPoint checkpoint (restored as ``torchrepro eval`` restores it; its config is ``config`` or its run's
    ``config.yaml``). Returns the detector (named by the checkpoint's path and SHA-256) and the image size its
    config trained at (None for a classical detector, which labels each image at its own size)."""
    if str(labeler) in CORNER_DETECTORS:
        return classical_detector(str(labeler)), None
    from torchrepro.core.engine import file_sha256, restore
    from torchrepro.core.registry import checkpoint_config

    ckpt = Path(labeler)
    cfg = checkpoint_config(ckpt, config, LABELER_RECIPES)
    module, _ = restore(cfg, ckpt)
    name = f"{ckpt.resolve()} (sha256 {file_sha256(ckpt)[:16]})"
    return network_detector(module.net.to(device), name=name), list(cfg.data.image_size)


def export_with_labeler(labeler: str, images: list[Path], out: Path, cfg: AdaptationConfig, seed: int,
                        image_size: Sequence[int] | None) -> dict[str, Any]:
    """:func:`export_labels` with :func:`load_labeler`'s detector, at ``image_size`` (the training size)."""
    detect, _ = load_labeler(labeler)
    return export_labels(detect, images, out, cfg, seed, image_size)
