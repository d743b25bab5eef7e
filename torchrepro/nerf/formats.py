"""Readers and writers of the NeRF data layouts (Mildenhall et al., ECCV 2020, §5.1 "Datasets").

Two layouts, read exactly as the released data ship them:

* **tiny NeRF** (``tiny_nerf_data.npz`` of the seed's notebook, the lego scene at 100×100): keys ``images``
  ``[N, H, W, 3]`` float in [0, 1], ``poses`` ``[N, 4, 4]`` camera-to-world, ``focal`` a scalar (pixels). Our
  embedded scene also writes ``depths`` ``[N, H, W]``, read when present.
* **Blender / NeRF-synthetic** (``nerf_synthetic/<scene>/``)::

      transforms_train.json   {"camera_angle_x": fov, "frames": [{"file_path": "./train/r_0",
      transforms_val.json                                         "rotation": ..., "transform_matrix": 4x4}, ...]}
      transforms_test.json
      train/r_0.png ...       RGBA 8-bit (straight alpha); composited on white (or black) when read

  ``file_path`` is relative to the root and, in the official files, has no ``.png`` suffix (both are accepted).
  Our writer may add a depth map ``<file_path>_depth.npy`` (float32 ``[H, W]``) beside each PNG.

Conventions: poses are OpenGL camera-to-world (see :mod:`torchrepro.nerf.cameras`); a **depth** is the camera
depth along the optical axis (= the ray parameter ``t`` of :func:`~torchrepro.nerf.cameras.pixel_rays`), and
**background pixels have depth 0** (finite, so statistics never meet inf; no real surface lies at depth 0).

This module is the readers' side: it never imports the scene generator (:mod:`torchrepro.nerf.scene`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from torchrepro.core.errors import DataError
from torchrepro.nerf.cameras import check_poses, focal_from_fov, fov_from_focal

__all__ = ["BLENDER_SPLITS", "SceneData", "read_blender", "read_llff", "read_tiny_nerf", "split_tiny_nerf",
           "write_blender", "write_tiny_nerf"]

#: The three transform files of the Blender layout, in the order their frames are concatenated.
BLENDER_SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass
class SceneData:
    """One scene in memory: images, camera-to-world poses, intrinsics, splits, bounds and optional depths.

    ``images`` ``[N, H, W, 3]`` float32 RGB in [0, 1] (composited on the background when the source is RGBA);
    ``poses`` ``[N, 4, 4]`` float32; ``splits`` maps "train", "val", "test" to disjoint index arrays (val may be
    empty); ``depths`` ``[N, H, W]`` float32 camera depth, 0 on background, or None.
    """

    images: np.ndarray
    poses: np.ndarray
    focal: float
    height: int
    width: int
    splits: dict[str, np.ndarray]
    near: float
    far: float
    depths: np.ndarray | None = None
    name: str = "scene"
    white_background: bool = field(default=True)

    def __post_init__(self) -> None:
        where = f"scene {self.name!r}"
        self.images = np.asarray(self.images, dtype=np.float32)
        self.poses = np.asarray(self.poses, dtype=np.float32)
        if self.images.ndim != 4 or self.images.shape[-1] != 3:
            raise DataError(f"{where}: images must be [N, H, W, 3] RGB, got shape {list(self.images.shape)}")
        n, h, w = self.images.shape[:3]
        if (h, w) != (self.height, self.width):
            raise DataError(f"{where}: images are {h}x{w} (HxW) but height/width say {self.height}x{self.width}")
        if len(self.poses) != n:
            raise DataError(f"{where}: {n} images but {len(self.poses)} camera poses; every image needs one pose")
        if not np.isfinite(self.images).all() or self.images.min(initial=0) < 0 or self.images.max(initial=0) > 1:
            raise DataError(f"{where}: image values must be finite and in [0, 1]; rescale 8-bit images by 1/255")
        check_poses(self.poses, where)
        if not (math.isfinite(self.focal) and self.focal > 0):
            raise DataError(f"{where}: focal length must be a positive number of pixels, got {self.focal}")
        self.focal = float(self.focal)
        if not (math.isfinite(self.near) and math.isfinite(self.far) and 0 <= self.near < self.far):
            raise DataError(f"{where}: need 0 <= near < far, got near={self.near}, far={self.far}; fix the bounds")
        self._check_splits(where, n)
        if self.depths is not None:
            self.depths = np.asarray(self.depths, dtype=np.float32)
            if self.depths.shape != (n, h, w):
                raise DataError(f"{where}: depths must be [N, H, W] = {[n, h, w]}, got {list(self.depths.shape)}")
            if not np.isfinite(self.depths).all() or self.depths.min(initial=0) < 0:
                raise DataError(f"{where}: depths must be finite and >= 0 (0 marks background)")

    def _check_splits(self, where: str, n: int) -> None:
        missing = [s for s in BLENDER_SPLITS if s not in self.splits]
        if missing:
            raise DataError(f"{where}: splits must hold 'train', 'val' and 'test', missing {missing}")
        self.splits = {k: np.asarray(v, dtype=np.int64).reshape(-1) for k, v in self.splits.items()}
        if len(self.splits["train"]) == 0:
            raise DataError(f"{where}: the train split is empty; a scene needs training views")
        seen: set[int] = set()
        for name, idx in self.splits.items():
            if len(idx) and (idx.min() < 0 or idx.max() >= n):
                raise DataError(f"{where}: split {name!r} holds index {int(idx.max())} outside 0..{n - 1}")
            overlap = seen.intersection(idx.tolist())
            if overlap or len(set(idx.tolist())) != len(idx):
                raise DataError(f"{where}: splits must be disjoint without repeats; split {name!r} repeats "
                                f"image {sorted(overlap)[:3] or 'indices'}")
            seen.update(idx.tolist())


# -------------------------------------------------------------------------------------------------------- tiny NeRF
def split_tiny_nerf(n_images: int, n_train: int = 100, test_index: int = 101) -> dict[str, np.ndarray]:
    """The seed's split of ``tiny_nerf_data.npz``: images ``0..n_train-1`` train, ``test_index`` test, and the
    remaining images (100 and 102–105 for the lego file) as validation — the seed leaves those unused."""
    if not 0 < n_train <= test_index < n_images:
        raise DataError(f"tiny NeRF split needs 0 < n_train <= test_index < number of images ({n_images}), got "
                        f"n_train={n_train}, test_index={test_index}; lower them for a smaller file")
    val = [i for i in range(n_train, n_images) if i != test_index]
    return {"train": np.arange(n_train), "val": np.asarray(val, dtype=np.int64), "test": np.asarray([test_index])}


def _npz_array(data: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
    if key not in data.files:
        raise DataError(f"{path} has no {key!r} array (found {sorted(data.files)}); a tiny NeRF file needs 'images', "
                        f"'poses' and 'focal' — re-download or regenerate it")
    return data[key]


def read_tiny_nerf(path: Path, near: float = 2.0, far: float = 6.0, n_train: int = 100,
                   test_index: int = 101) -> SceneData:
    """Read a ``tiny_nerf_data.npz`` file (split by :func:`split_tiny_nerf`; ``depths`` read when present)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"tiny NeRF file {path} does not exist; download tiny_nerf_data.npz there or point the data "
                        f"path at it (or use the embedded scene)")
    try:
        with np.load(path, allow_pickle=False) as data:
            images, poses, focal = (_npz_array(data, k, path) for k in ("images", "poses", "focal"))
            depths = data["depths"] if "depths" in data.files else None
    except DataError:
        raise
    except (OSError, ValueError) as err:
        raise DataError(f"{path} is not a readable .npz file ({err}); re-download or regenerate it") from None
    if images.ndim != 4 or images.shape[-1] != 3:
        raise DataError(f"{path}: 'images' must be [N, H, W, 3], got shape {list(images.shape)}; the file is not a "
                        f"tiny NeRF file")
    images = images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images.astype(np.float32)
    if np.size(focal) != 1:
        raise DataError(f"{path}: 'focal' must be one number (pixels), got shape {list(np.shape(focal))}")
    check_poses(poses, str(path))
    if len(poses) != len(images):
        raise DataError(f"{path}: {len(images)} images but {len(poses)} poses; every image needs one pose")
    if depths is not None and depths.shape != images.shape[:3]:
        raise DataError(f"{path}: 'depths' must be [N, H, W] = {list(images.shape[:3])}, got {list(depths.shape)}")
    return SceneData(images=images, poses=poses, focal=float(np.reshape(focal, ())), height=images.shape[1],
                     width=images.shape[2], splits=split_tiny_nerf(len(images), n_train, test_index), near=near,
                     far=far, depths=depths, name=path.stem)


def write_tiny_nerf(path: Path, images: np.ndarray, poses: np.ndarray, focal: float,
                    depths: np.ndarray | None = None) -> Path:
    """Write the tiny NeRF layout (``images`` float32, ``poses`` float32, ``focal`` float64 scalar, optional
    ``depths`` float32) as an uncompressed ``.npz``, like the seed's file."""
    path = Path(path)
    arrays = {"images": np.asarray(images, np.float32), "poses": np.asarray(poses, np.float32),
              "focal": np.asarray(focal, np.float64)}
    if depths is not None:
        arrays["depths"] = np.asarray(depths, np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:  # a file handle: np.savez would append .npz to a name lacking it
        np.savez(f, **arrays)
    return path


# ---------------------------------------------------------------------------------------------------------- Blender
def _read_transforms(root: Path, split: str) -> dict:
    path = root / f"transforms_{split}.json"
    if not path.is_file():
        raise DataError(f"Blender scene {root} has no {path.name}; a NeRF-synthetic scene needs transforms_train/val/"
                        f"test.json — point the data path at the scene folder (e.g. nerf_synthetic/lego)")
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{path} is not valid JSON ({err}); restore it from the data set") from None
    if not isinstance(meta, dict) or "camera_angle_x" not in meta:
        raise DataError(f"{path} has no 'camera_angle_x' (horizontal field of view in radians); add it or restore "
                        f"the file")
    if not isinstance(meta.get("frames"), list):
        raise DataError(f"{path} has no 'frames' list; restore the file from the data set")
    return meta


def _image_path(root: Path, file_path: str) -> Path:
    """``root/<file_path>.png``; ``file_path`` comes without ``.png`` in the official files, with it in others."""
    rel = file_path if file_path.lower().endswith(".png") else f"{file_path}.png"
    return (root / rel).resolve()


def _read_png(path: Path) -> np.ndarray:
    """An RGB or RGBA PNG as float32 in [0, 1] ``[H, W, 3|4]`` (8 or 16 bit)."""
    if not path.is_file():
        raise DataError(f"image {path} listed in the transforms file is missing; restore it or drop its frame")
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise DataError(f"{path} is not a readable image; restore it from the data set")
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise DataError(f"{path} must be an RGB or RGBA image, got {image.shape[2] if image.ndim == 3 else 1} "
                        f"channel(s); convert it")
    scale = 65535.0 if image.dtype == np.uint16 else 255.0
    order = [2, 1, 0, 3] if image.shape[2] == 4 else [2, 1, 0]
    return image[..., order].astype(np.float32) / scale


def _frame_pose(frame: object, path: Path, k: int) -> np.ndarray:
    matrix = frame.get("transform_matrix") if isinstance(frame, dict) else None
    try:
        pose = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError):
        pose = np.zeros(0)
    if pose.shape != (4, 4):
        raise DataError(f"{path}: frame {k} needs a 4x4 'transform_matrix' (camera-to-world); fix the frame")
    return pose


def _resize(images: np.ndarray, depths: np.ndarray | None, masks: np.ndarray | None, size: tuple[int, int]):
    """Area-downscale images to ``size`` = (W, H); depths are averaged over foreground pixels only (a pixel whose
    area is mostly background becomes background, 0), so edges do not blend surface and background depths."""
    images = np.stack([cv2.resize(im, size, interpolation=cv2.INTER_AREA) for im in images])
    if depths is not None:
        fg = (depths > 0).astype(np.float32) if masks is None else masks
        d_sum = np.stack([cv2.resize(d * m, size, interpolation=cv2.INTER_AREA) for d, m in zip(depths, fg)])
        m_sum = np.stack([cv2.resize(m, size, interpolation=cv2.INTER_AREA) for m in fg])
        depths = np.where(m_sum >= 0.5, d_sum / np.maximum(m_sum, 1e-6), 0.0).astype(np.float32)
    return images, depths


def read_blender(root: Path, white_background: bool = True, near: float = 2.0, far: float = 6.0,
                 max_side: int | None = None) -> SceneData:
    """Read a NeRF-synthetic (Blender) scene folder; splits in the order train, val, test.

    RGBA images are composited ``rgb * a + (1 - a) * bg`` on white (black when not ``white_background``); a
    folder mixing RGBA and RGB files is refused. Depth maps ``<file_path>_depth.npy`` are read when every frame
    has one (some but not all is an error). ``max_side`` area-downscales images (and scales focal) when their
    long side exceeds it.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"Blender scene folder {root} does not exist; point the data path at a NeRF-synthetic scene "
                        f"(the folder holding transforms_train.json)")
    metas = {split: _read_transforms(root, split) for split in BLENDER_SPLITS}
    fov = float(metas["train"]["camera_angle_x"])
    for split, meta in metas.items():
        if not math.isclose(float(meta["camera_angle_x"]), fov, rel_tol=1e-6):
            raise DataError(f"{root}/transforms_{split}.json has camera_angle_x {meta['camera_angle_x']} but "
                            f"transforms_train.json has {fov}; all splits must share one camera")
    images, poses, depth_paths, splits, first_kind = [], [], [], {}, None
    for split, meta in metas.items():
        json_path = root / f"transforms_{split}.json"
        start = len(images)
        for k, frame in enumerate(meta["frames"]):
            pose = _frame_pose(frame, json_path, k)
            if not isinstance(frame.get("file_path"), str):
                raise DataError(f"{json_path}: frame {k} needs a 'file_path' string (e.g. './{split}/r_{k}')")
            png = _image_path(root, frame["file_path"])
            image = _read_png(png)
            kind = "RGBA" if image.shape[2] == 4 else "RGB"
            first_kind = first_kind or (kind, png)
            if kind != first_kind[0]:
                raise DataError(f"{root} mixes {first_kind[0]} ({first_kind[1]}) and {kind} ({png}) images; convert "
                                f"all images to one kind (the NeRF-synthetic data are RGBA)")
            if images and image.shape[:2] != images[0].shape[:2]:
                raise DataError(f"{png} is {image.shape[1]}x{image.shape[0]} but the first image is "
                                f"{images[0].shape[1]}x{images[0].shape[0]} (WxH); all views need one size")
            images.append(image)
            poses.append(pose)
            depth_paths.append(png.with_name(png.stem + "_depth.npy"))
        splits[split] = np.arange(start, len(images))
    if not images:
        raise DataError(f"Blender scene {root} lists no frames in its transforms files; restore them")
    stack = np.stack(images)
    rgb = stack[..., :3]
    masks = None
    if stack.shape[-1] == 4:
        masks = stack[..., 3]
        background = 1.0 if white_background else 0.0
        rgb = rgb * masks[..., None] + (1.0 - masks[..., None]) * background
    depths = _read_depths(root, depth_paths, stack.shape[1:3])
    height, width = rgb.shape[1:3]
    focal = focal_from_fov(width, fov)
    if max_side is not None and max(height, width) > max_side:
        scale = max_side / max(height, width)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        rgb, depths = _resize(rgb, depths, masks, (new_w, new_h))
        focal *= new_w / width
        height, width = new_h, new_w
    return SceneData(images=np.clip(rgb, 0.0, 1.0), poses=np.stack(poses), focal=focal, height=height, width=width,
                     splits=splits, near=near, far=far, depths=depths, name=root.name,
                     white_background=white_background)


def _read_depths(root: Path, paths: list[Path], shape: tuple[int, int]) -> np.ndarray | None:
    present = [p.is_file() for p in paths]
    if not any(present):
        return None
    if not all(present):
        missing = paths[present.index(False)]
        raise DataError(f"{root} has depth maps for some frames but not for {missing}; depths must be given for all "
                        f"frames or none — regenerate the scene or remove the *_depth.npy files")
    depths = []
    for path in paths:
        try:
            depth = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise DataError(f"{path} is not a readable .npy depth map ({err}); regenerate it") from None
        if depth.shape != shape:
            raise DataError(f"{path}: depth map is {list(depth.shape)} but its image is {list(shape)} (HxW)")
        depths.append(depth.astype(np.float32))
    return np.stack(depths)


def _to_png_bytes(rgb: np.ndarray, alpha: np.ndarray | None) -> bytes:
    """8-bit PNG bytes of a straight-alpha RGBA image (or RGB when ``alpha`` is None)."""
    channels = [rgb[..., 2], rgb[..., 1], rgb[..., 0]] + ([alpha] if alpha is not None else [])
    image = np.clip(np.round(np.stack(channels, -1) * 255.0), 0, 255).astype(np.uint8)
    ok, png = cv2.imencode(".png", image)
    if not ok:
        raise DataError("could not encode a PNG image")
    return png.tobytes()


def write_blender(root: Path, images: np.ndarray, poses: np.ndarray, focal: float, splits: dict[str, np.ndarray],
                  depths: np.ndarray | None = None, alphas: np.ndarray | None = None) -> Path:
    """Write the Blender layout: ``transforms_{train,val,test}.json`` + ``<split>/r_<k>.png`` (+ ``_depth.npy``).

    ``images`` are RGB composited on white; with ``alphas`` the PNGs are RGBA with straight (un-premultiplied)
    colour ``(rgb - (1 - a)) / a``, so compositing on white gives ``images`` back (up to 8-bit rounding), else RGB.
    ``file_path`` is written without ``.png`` and ``camera_angle_x`` is derived from ``focal``, as in the
    official files.
    """
    root = Path(root)
    images = np.asarray(images, dtype=np.float32)
    width = images.shape[2]
    for split in BLENDER_SPLITS:
        (root / split).mkdir(parents=True, exist_ok=True)
        frames = []
        for k, index in enumerate(np.asarray(splits.get(split, []), dtype=np.int64).tolist()):
            rgb, alpha = images[index], None
            if alphas is not None:
                alpha = np.asarray(alphas[index], dtype=np.float32)
                a = alpha[..., None]
                rgb = np.where(a > 0, (rgb - (1.0 - a)) / np.maximum(a, 1e-6), 0.0)
            (root / split / f"r_{k}.png").write_bytes(_to_png_bytes(np.clip(rgb, 0, 1), alpha))
            if depths is not None:
                np.save(root / split / f"r_{k}_depth.npy", np.asarray(depths[index], dtype=np.float32))
            frames.append({"file_path": f"./{split}/r_{k}", "rotation": 0.0,
                           "transform_matrix": np.asarray(poses[index], dtype=np.float64).tolist()})
        meta = {"camera_angle_x": fov_from_focal(width, focal), "frames": frames}
        (root / f"transforms_{split}.json").write_text(json.dumps(meta, indent=4) + "\n")
    return root


# ------------------------------------------------------------------------------------------------------------- LLFF
def read_llff(root: Path, llffhold: int = 8, images_dir: str = "images") -> SceneData:
    """Read an LLFF scene (``root/poses_bounds.npy`` + ``root/<images_dir>/*``), as ``load_llff_data`` does.

    ``poses_bounds.npy`` is ``[N, 17]``: a 3×5 matrix per image (3×4 camera-to-world with LLFF's axes
    [down, right, backwards], then the column ``[H, W, focal]``) and the scene's near/far depth bounds. The
    rotation is turned into our [right, up, backwards] axes; focal is scaled to the images found (e.g.
    ``images_4``). As in the reference, every ``llffhold``-th image is a test view; val is empty. Not done here:
    recentring, spherifying and NDC rays (forward-facing scenes); near/far are ``0.9 min`` / ``max`` of the bounds.
    """
    root = Path(root)
    path = root / "poses_bounds.npy"
    if not path.is_file():
        raise DataError(f"LLFF scene {root} has no poses_bounds.npy; point the data path at an LLFF scene folder")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataError(f"{path} is not a readable .npy file ({err}); restore it") from None
    if array.ndim != 2 or array.shape[1] != 17 or len(array) == 0:
        raise DataError(f"{path} must be [N, 17] (3x5 pose + near/far per image), got {list(array.shape)}")
    folder = root / images_dir
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in (".png", ".jpg", ".jpeg")) \
        if folder.is_dir() else []
    if len(files) != len(array):
        raise DataError(f"{folder} holds {len(files)} images but {path.name} has {len(array)} poses; every image needs "
                        f"one pose")
    images = np.stack([_read_png(f)[..., :3] for f in files])
    p = array[:, :15].reshape(-1, 3, 5)
    c2w = np.concatenate([p[:, :, 1:2], -p[:, :, 0:1], p[:, :, 2:4]], 2)
    poses = np.concatenate([c2w, np.broadcast_to([[[0.0, 0.0, 0.0, 1.0]]], (len(p), 1, 4))], 1)
    height, width = images.shape[1:3]
    focal = float(p[0, 2, 4]) * width / float(p[0, 1, 4])
    bounds = array[:, 15:17]
    test = np.arange(len(array))[::llffhold]
    splits = {"train": np.setdiff1d(np.arange(len(array)), test), "val": np.zeros(0, np.int64), "test": test}
    return SceneData(images=images, poses=poses, focal=focal, height=height, width=width, splits=splits,
                     near=float(bounds.min()) * 0.9, far=float(bounds.max()), name=root.name)
