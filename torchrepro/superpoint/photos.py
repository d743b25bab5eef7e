"""Real-photograph data sets for SuperPoint, built offline from scikit-image's bundled photographs.

SuperPoint (DeTone et al., CVPRW 2018) trains its detector by homographic adaptation and its descriptor jointly on
real photographs (MS-COCO 2014 ``train2014/``, §7) and evaluates on HPatches (Balntas et al., CVPR 2017: 116
sequences, 57 illumination ``i_*`` + 59 viewpoint ``v_*``, six images each, ``H_1_k`` mapping image 1 to image
``k``). Neither set is reachable offline, so this module builds small stand-ins in the same on-disk formats from
the real photographs that ship inside scikit-image (``skimage.data``), so that the rest of the recipe reads them
exactly as it would read COCO and the HPatches release:

    <root>/train/<photo>_<k>.png          # the training image folder (the role of COCO train2014/)
    <root>/hpatches_val/<v_|i_><photo>/   # HPatches-layout sequences from *training* photos (model selection)
    <root>/hpatches_test/<v_|i_><photo>/  # HPatches-layout sequences from *held-out* photos (evaluation)
    <root>/generated.json                 # the publish_once stamp, with the counts

The photographs (:data:`PHOTO_SOURCES`)
---------------------------------------
Every bundled photograph that loads offline and is large enough: astronaut, brick, camera, cell, chelsea (``cat()``
is the same photo and is not used twice), clock, coffee, coins, grass, gravel, hubble_deep_field,
immunohistochemistry, moon, page, retina, rocket, text, and both views of stereo_motorcycle. Skipped: horse
(a binary clip-art silhouette from openclipart, not a photograph), microaneurysms (102×102, too small for a
240×320 crop), and the synthetic logo, colorwheel, checkerboard, binary_blobs and shepp_logan_phantom.

The split (:data:`TRAIN_PHOTOS` / :data:`HELDOUT_PHOTOS`, 13 / 6 photographs)
-----------------------------------------------------------------------------
Fixed, so that evaluation numbers are comparable between runs, and chosen so that each side covers every kind of
content (the detector must not be evaluated on a kind of image it never saw, and vice versa):

==========================  ===============================================  ==================================
kind                        training                                         held-out
==========================  ===============================================  ==================================
texture                     grass, gravel                                    brick (a regular grid, façade-like)
objects / people, indoors   astronaut, chelsea, clock, motorcycle L + R      coffee, coins
outdoor scene               camera (cameraman)                               rocket
text                        page                                             text
science / natural imaging   hubble_deep_field, retina, cell,                 moon
                            immunohistochemistry
==========================  ===============================================  ==================================

Colour photographs are on both sides (training: astronaut, chelsea, hubble, immunohistochemistry, retina,
motorcycle; held-out: coffee, rocket). The two stereo_motorcycle views show the same scene, so both are on the
training side: a view in each split would leak the test scene into training. The validation sequences
(:data:`VAL_PHOTOS`) come from training photos only (different random windows from the training crops), so
checkpoints and settings can be chosen without looking at the held-out photographs.

How the sequences imitate HPatches
----------------------------------
* Viewpoint (``v_<photo>``): image 1 is a window of the photograph resized to ``sequence_size``. Image ``k`` is
  the same scene seen by a camera that orbits the scene centre: an out-of-plane tilt (a rotation homography
  ``K R K⁻¹``), an in-plane rotation, a zoom and a small shift, whose magnitudes grow with ``k`` (HPatches'
  viewpoint sequences get harder from 2 to 6); the directions are fixed per sequence, as a camera moving
  steadily. Image ``k`` is rendered from the whole photograph (not from image 1), so it shows real content where
  image 1 has none; a homography whose view would read outside the photograph is rejected and redrawn, so no
  image has a black border (after repeated failures all magnitudes shrink; the stamp records the factor kept).
  ``H_1_k`` maps image-1 pixels to image-``k`` pixels (OpenCV pixel-centre convention, as
  :mod:`torchrepro.superpoint.homography`). Zooming out (image ``k`` showing more of the scene than image 1)
  needs room around the window, so on the smaller photographs most sequences zoom in; the protocol's measures
  (repeatability, homography estimation, matching score) use both images of a pair, so a zoom-in 1→k is also
  a zoom-out k→1.
* Illumination (``i_<photo>``): ``H_1_k`` is the identity; images 2..6 change, with growing strength, the global
  exposure (a gain in linear light, darker more often, and only darker for images without headroom), the colour
  of the light (a warm/cool cast, colour photographs only), a smooth spatial light falloff (a gradient plus a
  vignette), the tone curve (gamma) and add slight sensor noise; highlights roll off (a camera-like shoulder)
  instead of clipping. A change that would still clip more than 2 % of additional pixels to black or white is
  scaled down (the stamp records the factor kept). The directions are fixed per sequence, so the difference
  to image 1 grows from image 2 to 6.

The training folder is read by :func:`torchrepro.superpoint.image_folder.list_images` (no scikit-image there).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from torchrepro.core.errors import ConfigError, DataError
from torchrepro.core.generated import publish_once, read_stamp
from torchrepro.core.seeding import derive_seed
from torchrepro.superpoint.homography import inside_mask, warp_image, warp_points
from torchrepro.superpoint.hpatches import N_IMAGES, list_sequences, resize_scale_matrix, write_sequence

__all__ = ["GENERATOR_VERSION", "HELDOUT_PHOTOS", "IMAGE_SUFFIXES", "PHOTO_SOURCES", "TRAIN_PHOTOS", "VAL_PHOTOS",
           "illumination_sequence", "load_photo", "training_crops", "viewpoint_sequence",
           "write_photo_sets"]

logger = logging.getLogger(__name__)

#: bump whenever the written files would change for the same parameters (see publish_once)
GENERATOR_VERSION = 1
GENERATOR = "torchrepro.superpoint.photos"

#: photo name → (``skimage.data`` function, index into its returned tuple or None)
PHOTO_SOURCES: dict[str, tuple[str, int | None]] = {
    "astronaut": ("astronaut", None), "brick": ("brick", None), "camera": ("camera", None),
    "cell": ("cell", None), "chelsea": ("chelsea", None), "clock": ("clock", None), "coffee": ("coffee", None),
    "coins": ("coins", None), "grass": ("grass", None), "gravel": ("gravel", None),
    "hubble_deep_field": ("hubble_deep_field", None), "immunohistochemistry": ("immunohistochemistry", None),
    "moon": ("moon", None), "page": ("page", None), "retina": ("retina", None), "rocket": ("rocket", None),
    "text": ("text", None), "motorcycle_left": ("stereo_motorcycle", 0), "motorcycle_right": ("stereo_motorcycle", 1),
}

#: the training photographs (training crops and the validation sequences); see the module docstring
TRAIN_PHOTOS: tuple[str, ...] = ("astronaut", "camera", "cell", "chelsea", "clock", "grass", "gravel",
                                 "hubble_deep_field", "immunohistochemistry", "motorcycle_left", "motorcycle_right",
                                 "page", "retina")
#: the held-out photographs: only in ``hpatches_test`` (one ``v_`` and one ``i_`` sequence each)
HELDOUT_PHOTOS: tuple[str, ...] = ("brick", "coffee", "coins", "moon", "rocket", "text")
#: training photographs that also give validation sequences: a person, a texture, a scene and text
VAL_PHOTOS: tuple[str, ...] = ("astronaut", "gravel", "motorcycle_left", "page")

#: file suffixes the training image folder may hold (lower case)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

# Training crops: a random fraction of the largest window of the output aspect ratio (40-100 % of its side).
CROP_SCALE = (0.4, 1.0)
# Never enlarge a window by more than this (small photos such as page or text): beyond it a crop is mostly blur.
MAX_UPSCALE = 2.0
# Window of image 1 of a viewpoint sequence: small enough to leave the photograph room for the later views.
VIEWPOINT_WINDOW = (0.5, 0.75)
ZOOM_OUT_WINDOW = (0.35, 0.5)
ILLUMINATION_WINDOW = (0.6, 1.0)

# Viewpoint magnitudes at full strength (image 6); image k has strength (k - 1) / 5 times a jitter in [0.85, 1],
# which keeps the strengths strictly increasing (0.85·t_k > t_(k-1) for t_k = 0.2 … 1.0).
MAX_TILT_DEG = 40.0  # out-of-plane camera rotation; HPatches' hardest views (e.g. v_graffiti) reach ~60°
MAX_ROLL_DEG = 30.0  # in-plane rotation
MAX_ZOOM = 1.5  # scale change factor (either way)
MAX_SHIFT = 0.08  # translation, as a fraction of the image width
FOCAL = 1.0  # focal length of the tilt homography, in image widths (a ~53° horizontal field of view)
STRENGTH_JITTER = (0.85, 1.0)
DRAWS_PER_VIEW = 25  # homography redraws for one view before the whole sequence is redrawn
SEQUENCE_DRAWS_PER_GAIN = 8  # sequence redraws before all magnitudes are scaled down by GAIN_DECAY
GAIN_DECAY = 0.85

# Illumination: the largest extra fraction of pixels clipped to black/white, and the amplitude decay when exceeded.
MAX_EXTRA_CLIPPED = 0.02
BRIGHT = 230  # an image whose 99th percentile reaches this is only ever darkened
SHOULDER_KNEE = 0.8  # linear level above which highlights roll off
GAMMA = 2.2  # sRGB ≈ linear light ** (1 / 2.2): gains are applied in linear light, like a change of exposure


def load_photo(name: str) -> np.ndarray:
    """One bundled photograph as ``uint8``: ``H×W`` (grey) or ``H×W×3`` (RGB). Imports scikit-image.

    Raises:
        ConfigError: if ``name`` is not in :data:`PHOTO_SOURCES`.
        DataError: if scikit-image cannot provide it offline.
    """
    if name not in PHOTO_SOURCES:
        raise ConfigError(f"unknown photo {name!r}: use one of {', '.join(sorted(PHOTO_SOURCES))}")
    import skimage.data  # here, not at module level: the readers must not need scikit-image

    function, index = PHOTO_SOURCES[name]
    try:
        image = getattr(skimage.data, function)()
    except Exception as err:  # noqa: BLE001 - pooch/OSError/...: any failure means the photo is unavailable
        raise DataError(f"scikit-image cannot load its photo {function}() offline ({type(err).__name__}: {err}); "
                        f"reinstall scikit-image with its bundled data") from err
    image = np.asarray(image if index is None else image[index])
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise DataError(f"skimage.data.{function}() returned {image.dtype} {image.shape}, not a uint8 photograph")
    return np.ascontiguousarray(image[..., :3] if image.ndim == 3 else image)


def _check_size(value: Sequence[int], key: str) -> tuple[int, int]:
    ok = (isinstance(value, (list, tuple)) and len(value) == 2
          and all(isinstance(v, int) and not isinstance(v, bool) and v >= 16 for v in value))
    if not ok:
        raise ConfigError(f"write_photo_sets {key}={value!r} invalid: give (rows, cols), two integers >= 16, "
                          f"e.g. (240, 320)")
    return int(value[0]), int(value[1])


# ------------------------------------------------------------------------------------------------------ windows
def _window(rng: np.random.Generator, photo_hw: tuple[int, int], out_hw: tuple[int, int],
            scale_range: tuple[float, float]) -> tuple[int, int, int, int]:
    """A random window ``(x0, y0, width, height)`` of the output's aspect ratio inside the photograph, whose side is
    a fraction in ``scale_range`` of the largest such window (raised so it is enlarged by at most MAX_UPSCALE)."""
    H, W = photo_hw
    h, w = out_hw
    aspect = w / h
    largest_h = min(H, W / aspect)
    low = min(1.0, max(scale_range[0], h / (MAX_UPSCALE * largest_h)))
    high = max(low, scale_range[1])
    wh = max(2, min(H, round(largest_h * rng.uniform(low, high))))
    ww = max(2, min(W, round(wh * aspect)))
    x0 = int(rng.integers(0, W - ww + 1))
    y0 = int(rng.integers(0, H - wh + 1))
    return x0, y0, ww, wh


def _resize(image: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """Resize to ``out_hw``: INTER_AREA when shrinking (anti-aliased), INTER_LINEAR when enlarging (INTER_AREA
    degenerates to nearest-neighbour blocks when enlarging)."""
    h, w = out_hw
    shrink = image.shape[0] >= h and image.shape[1] >= w
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _crop(photo: np.ndarray, window: tuple[int, int, int, int], out_hw: tuple[int, int]) -> np.ndarray:
    x0, y0, ww, wh = window
    return _resize(photo[y0:y0 + wh, x0:x0 + ww], out_hw)


def _window_matrix(window: tuple[int, int, int, int], out_hw: tuple[int, int]) -> np.ndarray:
    """The 3×3 map from photo pixels to the pixels of ``_crop(photo, window, out_hw)`` (OpenCV resize geometry)."""
    x0, y0, ww, wh = window
    shift = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]])
    return resize_scale_matrix((wh, ww), out_hw) @ shift


def training_crops(photo: np.ndarray, rng: np.random.Generator, n: int, out_hw: tuple[int, int]) -> list[np.ndarray]:
    """``n`` random crops of ``photo`` (random scale 40-100 % of the largest window, random position), resized to
    ``out_hw``; colour is kept. These play the role of COCO images in SuperPoint's training (§7)."""
    return [_crop(photo, _window(rng, photo.shape[:2], out_hw, CROP_SCALE), out_hw) for _ in range(n)]


# ------------------------------------------------------------------------------------------------------ viewpoint
def _translation(dx: float, dy: float) -> np.ndarray:
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])


def _local_scale(H: np.ndarray, point: np.ndarray) -> float:
    """sqrt(|det J|) of the homography ``H`` at ``point`` (x, y): how much it magnifies areas there."""
    p = H @ np.array([point[0], point[1], 1.0])
    jac = (H[:2, :2] - np.outer(p[:2] / p[2], H[2, :2])) / p[2]
    return math.sqrt(abs(float(np.linalg.det(jac))))


def _tilt(angle: float, axis: float, focal: float) -> np.ndarray:
    """The homography ``K R K⁻¹`` (centred coordinates) of a camera rotating by ``angle`` about the in-plane axis
    at angle ``axis``, re-centred and re-scaled so the image centre stays fixed with unit local scale: only the
    perspective foreshortening is left (the camera orbits the scene centre)."""
    u = np.array([math.cos(axis), math.sin(axis), 0.0])
    rot, _ = cv2.Rodrigues(u * angle)
    K = np.diag([focal, focal, 1.0])
    H = K @ rot @ np.linalg.inv(K)
    centre = warp_points(np.zeros((1, 2)), H)[0]
    H = _translation(-centre[0], -centre[1]) @ H
    s = _local_scale(H, np.zeros(2))
    return np.diag([1.0 / s, 1.0 / s, 1.0]) @ H


def _view_homography(params: Mapping[str, float], strength: float, out_hw: tuple[int, int]) -> np.ndarray:
    """``G``: image-1 pixels → image-``k`` pixels for a view of the given strength (0: identity)."""
    h, w = out_hw
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    tilt = _tilt(math.radians(MAX_TILT_DEG) * strength * params["tilt_sign"], params["tilt_axis"], FOCAL * w)
    roll = math.radians(MAX_ROLL_DEG) * strength * params["roll_sign"]
    zoom = MAX_ZOOM ** (strength * params["zoom_sign"])
    c, s = math.cos(roll), math.sin(roll)
    similarity = np.array([[zoom * c, -zoom * s, 0.0], [zoom * s, zoom * c, 0.0], [0.0, 0.0, 1.0]])
    shift = MAX_SHIFT * w * strength
    dx, dy = shift * math.cos(params["shift_angle"]), shift * math.sin(params["shift_angle"])
    G = _translation(cx + dx, cy + dy) @ similarity @ tilt @ _translation(-cx, -cy)
    return G / G[2, 2]


def _view_params(rng: np.random.Generator) -> dict[str, float]:
    """The directions of a viewpoint sequence, fixed for its five views (a camera moving steadily one way)."""
    signs = rng.choice([-1.0, 1.0], size=3)
    return {"tilt_sign": float(signs[0]), "tilt_axis": float(rng.uniform(0.0, math.pi)), "roll_sign": float(signs[1]),
            "zoom_sign": float(signs[2]), "shift_angle": float(rng.uniform(0.0, 2.0 * math.pi))}


def _reads_inside(M: np.ndarray, photo_hw: tuple[int, int], out_hw: tuple[int, int]) -> bool:
    """True when every pixel of the ``out_hw`` view rendered by ``M`` (photo → view) comes from inside the photo:
    the view's corners map inside the photo's pixel-centre hull, in front of the camera. The view is the
    homographic image of a rectangle (a convex quadrilateral when all corners are in front), so the corners
    decide for the whole frame."""
    h, w = out_hw
    corners = np.array([[0.0, 0.0], [w - 1.0, 0.0], [w - 1.0, h - 1.0], [0.0, h - 1.0]])
    inv = np.linalg.inv(M)
    depth = np.c_[corners, np.ones(4)] @ inv[2]
    if not (np.all(depth > 0) or np.all(depth < 0)):
        return False
    return bool(inside_mask(warp_points(corners, inv), photo_hw).all())


def _render(photo: np.ndarray, M: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """The ``out_hw`` view of ``photo`` under ``M`` (photo → view). The photo is first shrunk (INTER_AREA) to the
    view's scale at its centre, so a zoomed-out view is anti-aliased like image 1 (bilinear alone would alias);
    a view at or above the photo's own resolution is warped from the full-resolution photo."""
    h, w = out_hw
    centre_src = warp_points(np.array([[(w - 1) / 2.0, (h - 1) / 2.0]]), np.linalg.inv(M))[0]
    scale = min(1.0, _local_scale(M, centre_src))
    if scale < 0.95:
        new_hw = (max(2, round(photo.shape[0] * scale)), max(2, round(photo.shape[1] * scale)))
        source = cv2.resize(photo, (new_hw[1], new_hw[0]), interpolation=cv2.INTER_AREA)
        M = M @ np.linalg.inv(resize_scale_matrix(photo.shape[:2], new_hw))
    else:
        source = photo
    return warp_image(source, M, out_hw)


def _draw_views(rng: np.random.Generator, photo_hw: tuple[int, int], out_hw: tuple[int, int],
                gain: float) -> tuple[tuple[int, int, int, int], list[np.ndarray]] | None:
    """One attempt at a viewpoint sequence: image 1's window and ``G_2 … G_6``, or None if a view cannot stay
    inside the photo after DRAWS_PER_VIEW redraws."""
    params = _view_params(rng)
    # a zoomed-out view shows more of the photo than image 1: give it a smaller window, hence room around it
    window = _window(rng, photo_hw, out_hw, VIEWPOINT_WINDOW if params["zoom_sign"] > 0 else ZOOM_OUT_WINDOW)
    A1 = _window_matrix(window, out_hw)
    views: list[np.ndarray] = []
    for k in range(2, N_IMAGES + 1):
        base = (k - 1) / (N_IMAGES - 1)
        for _ in range(DRAWS_PER_VIEW):
            G = _view_homography(params, gain * base * rng.uniform(*STRENGTH_JITTER), out_hw)
            if _reads_inside(G @ A1, photo_hw, out_hw):
                views.append(G)
                break
        else:
            return None
    return window, views


def viewpoint_sequence(photo: np.ndarray, rng: np.random.Generator,
                       out_hw: tuple[int, int]) -> tuple[list[np.ndarray], list[np.ndarray], float]:
    """A synthetic HPatches viewpoint sequence of a photograph (see the module docstring).

    Returns:
        ``(images, homographies, gain)``: six images ``out_hw`` (colour kept), the five ``H_1_k`` (image-1 pixels →
        image-``k`` pixels) and the fraction of the full magnitudes that fitted inside the photograph (1.0 unless
        the photo is too small for the strongest views).
    """
    photo_hw = photo.shape[:2]
    gain, attempts = 1.0, 0
    while True:  # terminates: as the gain decays the views tend to the identity, which always fits
        drawn = _draw_views(rng, photo_hw, out_hw, gain)
        if drawn is not None:
            break
        attempts += 1
        if attempts % SEQUENCE_DRAWS_PER_GAIN == 0:
            gain *= GAIN_DECAY
    window, views = drawn
    A1 = _window_matrix(window, out_hw)
    images = [_crop(photo, window, out_hw)] + [_render(photo, G @ A1, out_hw) for G in views]
    return images, views, gain


# ------------------------------------------------------------------------------------------------------ illumination
def _light_params(rng: np.random.Generator, first: np.ndarray) -> dict[str, Any]:
    """The light change of an illumination sequence of image ``first`` at full strength (image 6), in stops
    (log2 of a gain)."""
    colour = first.ndim == 3
    # darkening more often, and always when the image has no headroom (1 % of its values ≥ BRIGHT): brightening
    # would push large bright areas (the astronaut's suit, paper) to flat white
    darker = bool(rng.random() < 0.6) or float(np.percentile(first, 99)) >= BRIGHT
    warm = rng.uniform(-1.0, 1.0)  # > 0: warmer (tungsten-like), < 0: cooler (daylight/shade)
    cast = np.array([0.45 * warm, 0.1 * rng.uniform(-1.0, 1.0), -0.45 * warm]) if colour else np.zeros(3)
    return {
        # a well-exposed photo has little headroom: brighter views get a smaller exposure change than darker ones
        "exposure": -rng.uniform(1.2, 2.5) if darker else rng.uniform(0.6, 1.5),
        "cast": cast,
        "gradient": rng.uniform(0.8, 1.8),  # stops of difference across the image
        "gradient_angle": rng.uniform(0.0, 2.0 * math.pi),
        "vignette": rng.uniform(0.2, 0.8),  # stops lost in the corners
        "vignette_centre": rng.uniform(-0.3, 0.3, size=2),
        "gamma": rng.uniform(-0.25, 0.25),  # log2 of the tone-curve exponent change
        "noise": rng.uniform(1.0, 3.0),  # grey levels
    }


def _shoulder(linear: np.ndarray, knee: float = SHOULDER_KNEE) -> np.ndarray:
    """A camera-like highlight roll-off in linear light: identity below ``knee``, then a tanh shoulder that
    approaches 1, so a brighter exposure compresses highlights instead of clipping them flat."""
    over = np.maximum(linear - knee, 0.0)
    return np.where(linear > knee, knee + (1.0 - knee) * np.tanh(over / (1.0 - knee)), np.maximum(linear, 0.0))


def _relight(image: np.ndarray, light: Mapping[str, Any], strength: float, amplitude: float,
             rng: np.random.Generator) -> np.ndarray:
    """``image`` under the light change at ``strength`` ∈ [0, 1] (scaled by ``amplitude``), as uint8."""
    h, w = image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    xn, yn = (2 * xs - (w - 1)) / (w - 1), (2 * ys - (h - 1)) / (h - 1)  # [-1, 1]
    a = light["gradient_angle"]
    ramp = 0.5 * (math.cos(a) * xn + math.sin(a) * yn) / math.sqrt(2.0)  # within ±0.5
    cx, cy = light["vignette_centre"]
    radius2 = ((xn - cx) ** 2 + (yn - cy) ** 2) / 4.0
    t = strength * amplitude
    stops = t * (light["exposure"] + light["gradient"] * ramp - light["vignette"] * radius2)
    linear = (image.astype(np.float32) / 255.0) ** GAMMA
    if image.ndim == 3:
        gains = np.exp2(stops[..., None] + t * light["cast"].astype(np.float32))
    else:
        gains = np.exp2(stops)
    lit = _shoulder(linear * gains) ** (2.0 ** (t * light["gamma"]) / GAMMA)
    noisy = 255.0 * lit + strength * light["noise"] * rng.standard_normal(lit.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def _clipped(image: np.ndarray) -> float:
    """Fraction of pixels whose brightness (mean of the channels) is black (≤ 2) or white (≥ 253). Per-channel
    tests would count every saturated colour (a red saucer has a blue channel near 0) as clipped."""
    grey = image.mean(axis=2) if image.ndim == 3 else image
    return float(((grey <= 2) | (grey >= 253)).mean())


def illumination_sequence(photo: np.ndarray, rng: np.random.Generator,
                          out_hw: tuple[int, int]) -> tuple[list[np.ndarray], list[np.ndarray], float]:
    """A synthetic HPatches illumination sequence of a photograph (see the module docstring).

    Returns:
        ``(images, homographies, amplitude)``: six images ``out_hw``, five identity ``H_1_k`` and the fraction of
        the drawn light change kept after limiting clipping to MAX_EXTRA_CLIPPED.
    """
    window = _window(rng, photo.shape[:2], out_hw, ILLUMINATION_WINDOW)
    first = _crop(photo, window, out_hw)
    light = _light_params(rng, first)
    noise_seed = int(rng.integers(0, 2**63 - 1))
    base_clipped = _clipped(first)
    amplitude = 1.0
    while True:
        # the same noise for every amplitude tried: only the light changes between attempts
        noise_rng = np.random.default_rng(noise_seed)
        images = [_relight(first, light, (k - 1) / (N_IMAGES - 1), amplitude, noise_rng)
                  for k in range(2, N_IMAGES + 1)]
        if max(_clipped(im) for im in images) - base_clipped <= MAX_EXTRA_CLIPPED or amplitude < 0.05:
            break
        amplitude *= 0.8
    return [first] + images, [np.eye(3) for _ in images], amplitude


# ------------------------------------------------------------------------------------------------------ writing
def _rng(seed: int, *parts: int | str) -> np.random.Generator:
    return np.random.default_rng(derive_seed(seed, GENERATOR, *parts))


def _write_png(path: Path, image: np.ndarray) -> None:
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    if not cv2.imwrite(str(path), bgr):
        raise DataError(f"could not write {path}: check the folder is writable")


def _write_train(folder: Path, photos: Mapping[str, np.ndarray], seed: int, n: int,
                 out_hw: tuple[int, int]) -> int:
    folder.mkdir(parents=True)
    digits = max(3, len(str(n - 1)))
    for name in TRAIN_PHOTOS:
        for k, crop in enumerate(training_crops(photos[name], _rng(seed, "train", name), n, out_hw)):
            _write_png(folder / f"{name}_{k:0{digits}d}.png", crop)
    return len(TRAIN_PHOTOS) * n


def _write_sequences(folder: Path, photos: Mapping[str, np.ndarray], names: Sequence[str], seed: int,
                     out_hw: tuple[int, int], role: str) -> dict[str, float]:
    """One ``v_<photo>`` and one ``i_<photo>`` sequence per photo; returns each sequence's strength factor."""
    folder.mkdir(parents=True)
    strengths: dict[str, float] = {}
    for name in names:
        images, homographies, gain = viewpoint_sequence(photos[name], _rng(seed, role, "v", name), out_hw)
        write_sequence(folder, f"v_{name}", images, homographies)
        strengths[f"v_{name}"] = round(gain, 4)
        images, homographies, amplitude = illumination_sequence(photos[name], _rng(seed, role, "i", name), out_hw)
        write_sequence(folder, f"i_{name}", images, homographies)
        strengths[f"i_{name}"] = round(amplitude, 4)
    return strengths


def _intact(root: Path, stamp: Mapping[str, Any]) -> bool:
    """A matching stamp whose folders still hold the counted files (a partly deleted set is regenerated)."""
    counts = stamp.get("counts", {})
    try:
        n_train = sum(1 for p in (root / "train").iterdir() if p.suffix == ".png")
        n_val = len(list_sequences(root / "hpatches_val"))
        n_test = len(list_sequences(root / "hpatches_test"))
    except (OSError, DataError):
        return False
    return (n_train, n_val, n_test) == (counts.get("train_images"), counts.get("val_sequences"),
                                        counts.get("test_sequences"))


def write_photo_sets(root: Path, seed: int, crops_per_photo: int = 40, crop_size: Sequence[int] = (240, 320),
                     sequence_size: Sequence[int] = (240, 320),
                     config_key: str = "data.synthetic_dir") -> dict[str, Any]:
    """Generate (once) the training image folder and the HPatches-layout validation and test sets under ``root``.

    Written atomically through :func:`torchrepro.core.generated.publish_once`: a ``root`` already stamped with the
    same parameters (and intact) is reused as it is. Deterministic for a seed (and scikit-image/OpenCV versions:
    the scikit-image version is part of the parameters, as its bundled photographs are the source).

    Args:
        root: the output folder (``train/``, ``hpatches_val/``, ``hpatches_test/`` and ``generated.json``).
        seed: the data seed.
        crops_per_photo: training crops per training photo.
        crop_size: ``(rows, cols)`` of the training crops.
        sequence_size: ``(rows, cols)`` of the sequence images.
        config_key: the config key choosing ``root``, named in disk-space / permission errors.

    Returns:
        ``{"generated": bool, "root", "train", "hpatches_val", "hpatches_test": Path, "stamp": dict}``; the stamp
        holds ``counts`` (train_images, val_sequences, test_sequences, val_pairs, test_pairs), the photo lists and
        each sequence's strength factor.
    """
    import skimage  # the version identifies the source photographs

    if isinstance(crops_per_photo, bool) or not isinstance(crops_per_photo, int) or crops_per_photo < 1:
        raise ConfigError(f"write_photo_sets crops_per_photo={crops_per_photo!r} invalid: use an integer >= 1, "
                          f"e.g. 40")
    crop_hw, seq_hw = _check_size(crop_size, "crop_size"), _check_size(sequence_size, "sequence_size")
    root = Path(root)
    params = {"seed": int(seed), "crops_per_photo": crops_per_photo, "crop_size": list(crop_hw),
              "sequence_size": list(seq_hw), "train_photos": list(TRAIN_PHOTOS),
              "heldout_photos": list(HELDOUT_PHOTOS), "val_photos": list(VAL_PHOTOS),
              "skimage": skimage.__version__}
    n_seq = 2 * (len(VAL_PHOTOS) + len(HELDOUT_PHOTOS))
    bytes_needed = (len(TRAIN_PHOTOS) * crops_per_photo * crop_hw[0] * crop_hw[1] * 3
                    + n_seq * N_IMAGES * seq_hw[0] * seq_hw[1] * 3 + (1 << 20))

    def write(folder: Path) -> dict[str, Any]:
        photos = {name: load_photo(name) for name in PHOTO_SOURCES}
        logger.info("photos: loaded %d scikit-image photographs", len(photos))
        n_train = _write_train(folder / "train", photos, seed, crops_per_photo, crop_hw)
        logger.info("photos: wrote %d training crops to %s", n_train, root / "train")
        val = _write_sequences(folder / "hpatches_val", photos, VAL_PHOTOS, seed, seq_hw, "val")
        logger.info("photos: wrote %d validation sequences to %s", len(val), root / "hpatches_val")
        test = _write_sequences(folder / "hpatches_test", photos, HELDOUT_PHOTOS, seed, seq_hw, "test")
        logger.info("photos: wrote %d test sequences to %s", len(test), root / "hpatches_test")
        pairs = N_IMAGES - 1
        counts = {"train_images": n_train, "val_sequences": len(val), "test_sequences": len(test),
                  "val_pairs": pairs * len(val), "test_pairs": pairs * len(test)}
        return {"counts": counts, "sequence_strength": {"val": val, "test": test}}

    generated = publish_once(root, write, generator=GENERATOR, version=GENERATOR_VERSION, params=params,
                             bytes_needed=bytes_needed, config_key=config_key, intact=_intact)
    if not generated:
        logger.info("photos: reusing the photo sets in %s", root)
    return {"generated": generated, "root": root, "train": root / "train", "hpatches_val": root / "hpatches_val",
            "hpatches_test": root / "hpatches_test", "stamp": read_stamp(root) or {}}
