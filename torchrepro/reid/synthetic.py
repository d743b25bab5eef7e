"""Deterministic synthetic people with aligned full textures, written in the Market-1501 layout.

This is our small analogue of the *Paired-Image-Texture* (PIT) set of SAN (Jin et al., "Semantics-Aligned
Representation Learning for Person Re-identification", AAAI 2020, Sec. "Pseudo Groundtruth Texture Images
Generation" / PIT): every rendered person image is paired with the identity's *full* texture in a fixed UV
layout, so an encoder-decoder can learn to regress a densely semantics-aligned texture from one view.  Unlike
PIT (rendered SURREAL textures over COCO backgrounds) everything here is procedural and offline, and the images
also carry re-ID labels so the same set trains and evaluates the re-ID recipe end to end.

Texture (``texture_size`` x ``texture_size`` RGB, rows = v, columns = u; the UV layout is :data:`UV_LAYOUT`)::

    v 0.00-0.25 | head (u 0-0.5)      | left arm (u 0.5-0.75) | right arm (u 0.75-1) |
    v 0.25-0.55 | torso: front half (u 0-0.5) | back half (u 0.5-1)                  |
    v 0.55-1.00 | left leg (u 0-0.5)  | right leg (u 0.5-1); the last 20 % rows of a leg are the shoe

Each part is unwrapped cylindrically: inside its rectangle, u goes once around the part (the front, i.e. the
direction the person faces, at a quarter of the rectangle's width, the back at three quarters) and v from the
part's top to its bottom.  Garments come from *shared* palettes of colours and patterns (solid, horizontal /
vertical stripes, checks, dots), so identities share parts; the front and the back differ (an optional logo on
the chest, an optional backpack with front straps or a back stripe), so one view never shows everything.

Rendering: an articulated body (ellipsoid head, elliptic-cylinder torso, cylindrical arms and legs swinging
with a walking phase) is ray-cast orthographically with a z-buffer in vectorised NumPy; each hit looks up the
texture through the same cylindrical UV map and is Lambert-shaded.  Images vary in yaw (each camera has a main
walking direction, people walk either way along it, plus jitter: front, back and side views), walking phase,
scale, horizontal shift, partial occlusion (a pole or a box in front) and cluttered background; each of the six
cameras has its own colour cast, gain, contrast, blur, noise and background palette.

On disk (``root`` = the Market-1501 root that :func:`torchrepro.reid.datasets.read_market1501` reads)::

    root/bounding_box_train/{pid:04d}_c{cam}s1_{frame:06d}_{box:02d}.jpg   train identities
    root/query/...                                                         one image per (test id, camera) for
                                                                           up to ``queries_per_id`` cameras
    root/bounding_box_test/...                                             the other test images, extra
                                                                           identities never queried, a few
                                                                           0000_ (bad crops) and -1_ (junk)
    root/texture/<split folder>/<image stem>.png                           the full texture of the person shown
    root/synthetic_persons.json                                            parameter stamp (written last)

:func:`torchrepro.reid.datasets.texture_path` (the readers' side of the layout) maps an image path to its texture
path; it is our analogue of the SAN code's ``img_path.replace('images_labeled', 'texture_...')``.  Textures are
written once per identity and the per-image files are hard links (copies where the file system has no hard
links).  Every query identity has gallery images in at least one camera that holds none of its queries, so no
query is dropped by the same-pid-same-camera rule of the Market protocol.  ``0000_`` and ``-1_`` images show
badly cropped people of hidden identities (never in train or query), so they too have a texture.

Default set (``generate_persons(root)``): 200 train identities and 100 test identities with 12 images each
(test: 1-2 queries, the rest gallery), 20 gallery-only distractor identities with 6 images each, 20 ``0000_``
and 10 ``-1_`` images: 2,400 train, ~180 query and ~1,170 gallery JPEGs of 128 x 64 plus 64 x 64 textures
(~24 MB; ~20 s on one core).  The colour-histogram baseline (:func:`torchrepro.reid.baselines.colour_histogram_
features`, cosine, Market protocol) reaches rank-1 0.31 / mAP 0.18 with seed 0 and 0.20 / 0.12 with seed 1.

Deterministic: the same parameters give byte-identical JPEGs and PNGs (fixed JPEG quality, no metadata, every
random draw from a ``SeedSequence`` keyed by (seed, stream, index)).  Idempotent: a complete set with the same
parameters is returned at once; otherwise the set is generated in a temporary sibling directory and published
by a rename, so readers never see a half-written set (:func:`torchrepro.core.generated.publish_once`).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from torchrepro.core.errors import DataError
from torchrepro.core.generated import publish_once
from torchrepro.reid.datasets import TEXTURE_DIR, texture_path
from torchrepro.render.raster import RGB, bilinear_lattice, camera_response, hsv_to_rgb, to_uint8

__all__ = [
    "NUM_CAMERAS",
    "UV_LAYOUT",
    "CameraParams",
    "Garment",
    "PersonParams",
    "ViewParams",
    "generate_persons",
    "make_texture",
    "render_person",
    "sample_cameras",
    "sample_person",
    "sample_view",
]

Rng = np.random.Generator

NUM_CAMERAS = 6
#: Bump when the rendering changes, so that cached sets are regenerated.
GENERATOR_VERSION = 1
#: Fixed so that files are byte-identical across runs.
JPEG_QUALITY = 92
STAMP_NAME = "synthetic_persons.json"
TRAIN_DIR, QUERY_DIR, GALLERY_DIR = "bounding_box_train", "query", "bounding_box_test"
SPLIT_DIRS = (TRAIN_DIR, QUERY_DIR, GALLERY_DIR)

#: Part -> (v0, v1, u0, u1) rectangle of the texture, as fractions of its size (see the module docstring).
UV_LAYOUT: dict[str, tuple[float, float, float, float]] = {
    "head": (0.0, 0.25, 0.0, 0.5),
    "left_arm": (0.0, 0.25, 0.5, 0.75),
    "right_arm": (0.0, 0.25, 0.75, 1.0),
    "torso": (0.25, 0.55, 0.0, 1.0),
    "left_leg": (0.55, 1.0, 0.0, 0.5),
    "right_leg": (0.55, 1.0, 0.5, 1.0),
}
SHOE_FROM = 0.8  # legs: v >= SHOE_FROM (within the leg rectangle) is the shoe

# Shared palettes (sRGB in [0, 1]).  Few entries on purpose: identities must share garment colours so that a
# colour histogram alone cannot tell them apart.
TOP_COLOURS: tuple[RGB, ...] = (
    (0.92, 0.92, 0.90), (0.08, 0.08, 0.09), (0.50, 0.50, 0.52), (0.75, 0.10, 0.12), (0.10, 0.15, 0.40),
    (0.15, 0.35, 0.75), (0.15, 0.50, 0.22), (0.90, 0.80, 0.15), (0.92, 0.45, 0.10), (0.45, 0.20, 0.55),
    (0.90, 0.55, 0.65), (0.45, 0.30, 0.18),
)
BOTTOM_COLOURS: tuple[RGB, ...] = (
    (0.20, 0.30, 0.55), (0.12, 0.15, 0.28), (0.07, 0.07, 0.08), (0.45, 0.45, 0.47), (0.70, 0.62, 0.45),
    (0.88, 0.88, 0.85), (0.35, 0.25, 0.15), (0.30, 0.35, 0.20),
)
SKIN_TONES: tuple[RGB, ...] = (
    (0.96, 0.80, 0.69), (0.90, 0.70, 0.55), (0.78, 0.57, 0.42), (0.63, 0.43, 0.30), (0.45, 0.30, 0.20),
    (0.33, 0.22, 0.15),
)
HAIR_COLOURS: tuple[RGB, ...] = (
    (0.05, 0.04, 0.04), (0.22, 0.14, 0.08), (0.45, 0.30, 0.15), (0.80, 0.68, 0.40), (0.60, 0.60, 0.60),
    (0.55, 0.20, 0.10),
)
SHOE_COLOURS: tuple[RGB, ...] = (
    (0.06, 0.06, 0.06), (0.90, 0.90, 0.90), (0.35, 0.22, 0.12), (0.45, 0.45, 0.48), (0.70, 0.12, 0.12),
)
TOP_PATTERNS: tuple[str, ...] = ("solid", "hstripes", "vstripes", "checks", "dots")
TOP_PATTERN_P = (0.4, 0.15, 0.15, 0.15, 0.15)
BOTTOM_PATTERNS: tuple[str, ...] = ("solid", "checks", "vstripes")
BOTTOM_PATTERN_P = (0.8, 0.1, 0.1)

# Body geometry in units of the body height (feet at y = 0, top of the head at y ~ 1), before the per-identity
# width factor.  x: the person's left, y: up, z: the direction the person faces.
_HIP_Y, _HIP_X, _LEG_LEN, _LEG_R = 0.49, 0.068, 0.47, 0.056
_TORSO_TOP, _TORSO_BOTTOM, _TORSO_RX, _TORSO_RZ = 0.80, 0.46, 0.135, 0.085
_SHOULDER_Y, _SHOULDER_X, _ARM_LEN, _ARM_R = 0.785, 0.165, 0.35, 0.042
_HEAD_Y, _HEAD_R = 0.895, (0.062, 0.075, 0.068)  # radii: lateral, vertical, depth
_LIGHT = np.array([-0.35, 0.55, 1.0]) / np.linalg.norm([-0.35, 0.55, 1.0])
_AMBIENT, _DIFFUSE = 0.45, 0.6

# Difficulty knobs, tuned so that the colour-histogram baseline (baselines.py) gets rank-1 ~0.2-0.3 on the default
# set: background and camera cast are what make colour alone fail (grey background, no cast: rank-1 ~0.9).
#: Std of the per-camera RGB gain (colour cast); brightness and contrast ranges of a camera.
CAST_STD, BRIGHTNESS, CONTRAST = 0.05, (0.9, 1.05), (0.95, 1.05)
#: Probability that a background colour comes from the camera's scene palette rather than anywhere.
SCENE_P = 0.25
#: Maximum saturation of background colours (real scenes are mostly greyish; clothes stand out).
BG_SATURATION = 0.25
#: Number of clutter rectangles (range) and their maximum size as a fraction of the image side.
BG_RECTS, BG_RECT_SIZE = (12, 30), 0.33


# --------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Garment:
    """A garment's look: base colour, pattern, second colour and pattern period (texture fraction)."""

    base: RGB
    second: RGB
    pattern: str
    period: float


@dataclass(frozen=True)
class PersonParams:
    """Everything that identifies a person: the texture content and the body shape."""

    skin: RGB
    hair: RGB
    long_hair: bool
    top: Garment
    long_sleeves: bool
    logo: RGB | None  # chest logo colour (front only)
    logo_round: bool
    back: str  # "none", "backpack" (front straps too) or "stripe"
    back_rgb: RGB
    bottom: Garment
    shorts: bool
    shoes: RGB
    height: float  # relative body height (scales the person in the crop)
    width: float  # relative body width


@dataclass(frozen=True)
class CameraParams:
    """A camera's photometry and scene: colour cast, exposure, blur, noise, background palette, walking axis."""

    gain: RGB
    brightness: float
    contrast: float
    blur: int  # number of [1, 2, 1] blur passes
    noise: float
    walk_yaw: float  # main walking direction seen by this camera (radians)
    palette: tuple[RGB, ...]  # background colours


@dataclass(frozen=True)
class ViewParams:
    """One image of a person: pose, viewpoint, framing and occlusion."""

    yaw: float  # radians; 0 = facing the camera
    phase: float  # walking phase (radians)
    swing: float  # leg swing amplitude (radians); arms swing 0.8 of it
    scale: float  # person height / image height
    shift: float  # horizontal offset of the body axis, fraction of the width
    foot: float  # row of the feet, fraction of the height (> 1: feet cut off)
    occluder: str  # "none", "pole" or "box"
    occ_pos: float
    occ_size: float
    occ_rgb: RGB


def _jitter(rgb: RGB, rng: Rng, amount: float) -> RGB:
    v = np.clip(np.asarray(rgb) + rng.uniform(-amount, amount, 3), 0.0, 1.0)
    return (float(v[0]), float(v[1]), float(v[2]))


def _pick(palette: tuple[RGB, ...], rng: Rng) -> RGB:
    return palette[int(rng.integers(len(palette)))]


def _garment(palette: tuple[RGB, ...], patterns: tuple[str, ...], p: tuple[float, ...], rng: Rng) -> Garment:
    base_i = int(rng.integers(len(palette)))
    second_i = (base_i + 1 + int(rng.integers(len(TOP_COLOURS) - 1))) % len(TOP_COLOURS)
    return Garment(
        base=_jitter(palette[base_i], rng, 0.03),
        second=_jitter(TOP_COLOURS[second_i], rng, 0.03),
        pattern=str(rng.choice(patterns, p=p)),
        period=float(rng.uniform(0.06, 0.12)),
    )


def sample_person(rng: Rng) -> PersonParams:
    """Draw one identity from the shared palettes (small per-identity jitter keeps colours near-identical)."""
    back = str(rng.choice(("none", "backpack", "stripe"), p=(0.45, 0.35, 0.2)))
    return PersonParams(
        skin=_jitter(_pick(SKIN_TONES, rng), rng, 0.03),
        hair=_jitter(_pick(HAIR_COLOURS, rng), rng, 0.03),
        long_hair=bool(rng.random() < 0.35),
        top=_garment(TOP_COLOURS, TOP_PATTERNS, TOP_PATTERN_P, rng),
        long_sleeves=bool(rng.random() < 0.5),
        logo=_jitter(_pick(TOP_COLOURS, rng), rng, 0.03) if rng.random() < 0.5 else None,
        logo_round=bool(rng.random() < 0.5),
        back=back,
        back_rgb=_jitter(_pick(TOP_COLOURS + BOTTOM_COLOURS, rng), rng, 0.03),
        bottom=_garment(BOTTOM_COLOURS, BOTTOM_PATTERNS, BOTTOM_PATTERN_P, rng),
        shorts=bool(rng.random() < 0.25),
        shoes=_jitter(_pick(SHOE_COLOURS, rng), rng, 0.03),
        height=float(rng.uniform(0.92, 1.05)),
        width=float(rng.uniform(0.88, 1.15)),
    )


def sample_cameras(rng: Rng, num_cameras: int = NUM_CAMERAS) -> tuple[CameraParams, ...]:
    """Per-camera photometry and scene; strong enough casts that raw colour does not transfer across cameras."""
    cams = []
    for i in range(num_cameras):
        cast = rng.normal(0.0, CAST_STD, 3)
        hue = rng.random()
        palette = tuple(
            hsv_to_rgb(hue + rng.normal(0, 0.08), rng.uniform(0.0, BG_SATURATION), rng.uniform(0.2, 0.85))
            for _ in range(5)
        )
        cams.append(
            CameraParams(
                gain=tuple(float(g) for g in np.clip(1.0 + cast - cast.mean(), 0.7, 1.3)),  # type: ignore[misc]
                brightness=float(rng.uniform(*BRIGHTNESS)),
                contrast=float(rng.uniform(*CONTRAST)),
                blur=int(rng.integers(0, 3)),
                noise=float(rng.uniform(0.01, 0.035)),
                # spread the walking axes so cameras see people from different sides
                walk_yaw=float(np.pi * i / num_cameras + rng.normal(0, 0.15)),
                palette=palette,
            )
        )
    return tuple(cams)


def sample_view(rng: Rng, camera: CameraParams, crop: str = "good") -> ViewParams:
    """A view of a person by ``camera``; ``crop`` "bad" (pid 0) or "junk" (pid -1) frames the person badly."""
    yaw = camera.walk_yaw + (np.pi if rng.random() < 0.5 else 0.0) + rng.normal(0.0, 0.5)
    occluder = str(rng.choice(("none", "pole", "box"), p=(0.7, 0.15, 0.15)))
    scale, shift, foot = rng.uniform(0.84, 0.97), rng.normal(0.0, 0.06), rng.uniform(0.96, 1.0)
    if crop == "bad":  # detector false alarm: person far off-centre or cut in half
        scale, shift, foot = rng.uniform(0.8, 1.5), rng.choice((-1, 1)) * rng.uniform(0.3, 0.5), rng.uniform(1.0, 1.5)
    elif crop == "junk":  # mostly outside the box
        scale, shift, foot = rng.uniform(1.2, 2.0), rng.choice((-1, 1)) * rng.uniform(0.55, 0.75), rng.uniform(1.2, 2.0)
    return ViewParams(
        yaw=float(yaw % (2 * np.pi)),
        phase=float(rng.uniform(0, 2 * np.pi)),
        swing=float(rng.uniform(0.0, BG_SATURATION)),
        scale=float(scale),
        shift=float(shift),
        foot=float(foot),
        occluder=occluder,
        occ_pos=float(rng.uniform(0.0, 1.0)),
        occ_size=float(rng.uniform(0.15, 0.4)),
        occ_rgb=hsv_to_rgb(rng.random(), rng.uniform(0, 0.6), rng.uniform(0.15, 0.8)),
    )


# --------------------------------------------------------------------------
# Texture
# --------------------------------------------------------------------------


def _pattern_mask(g: Garment, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """1 where the garment shows its second colour; x, y in texture fractions."""
    p = g.period
    if g.pattern == "hstripes":
        return ((y / p) % 1.0) < 0.5
    if g.pattern == "vstripes":
        return ((x / p) % 1.0) < 0.5
    if g.pattern == "checks":
        return (np.floor(x / p) + np.floor(y / p)) % 2 == 1
    if g.pattern == "dots":
        dx, dy = (x / p) % 1.0 - 0.5, (y / p) % 1.0 - 0.5
        return dx * dx + dy * dy < 0.09
    return np.zeros(np.broadcast(x, y).shape, dtype=bool)


def _fill_garment(tex: np.ndarray, g: Garment, sl: tuple[slice, slice], x: np.ndarray, y: np.ndarray) -> None:
    mask = _pattern_mask(g, x, y)
    tex[sl] = np.where(mask[..., None], np.asarray(g.second, np.float32), np.asarray(g.base, np.float32))


def _region(size: int, part: str) -> tuple[slice, slice, np.ndarray, np.ndarray]:
    """Slices of a part's rectangle and its local (u, v) in [0, 1) at pixel centres."""
    v0, v1, u0, u1 = UV_LAYOUT[part]
    r0, r1, c0, c1 = round(v0 * size), round(v1 * size), round(u0 * size), round(u1 * size)
    v = (np.arange(r1 - r0, dtype=np.float32) + 0.5) / (r1 - r0)
    u = (np.arange(c1 - c0, dtype=np.float32) + 0.5) / (c1 - c0)
    return slice(r0, r1), slice(c0, c1), u[None, :], v[:, None]


def make_texture(person: PersonParams, size: int = 64) -> np.ndarray:
    """The person's full texture, ``size x size x 3`` uint8, in the :data:`UV_LAYOUT`."""
    tex = np.zeros((size, size, 3), np.float32)
    skin, hair = np.asarray(person.skin, np.float32), np.asarray(person.hair, np.float32)

    # Head: face in the front half (u < 0.5, centred at 0.25), hair on top and over the back half.
    rs, cs, u, v = _region(size, "head")
    back = np.abs(u - 0.75) < 0.3
    hair_mask = (v < 0.3) | (back & (v < (0.95 if person.long_hair else 0.6)))
    eyes = (np.abs(v - 0.45) < 0.06) & (np.abs(np.abs(u - 0.25) - 0.07) < 0.03)
    head = np.where(hair_mask[..., None], hair, skin)
    tex[rs, cs] = np.where(eyes[..., None], np.float32(0.1), head)

    # Torso: garment pattern in absolute texture units so it continues across the seam.
    rs, cs, u, v = _region(size, "torso")
    x, y = u * (cs.stop - cs.start) / size, v * (rs.stop - rs.start) / size
    _fill_garment(tex, person.top, (rs, cs), x, y)
    part = tex[rs, cs]
    if person.logo is not None:  # front only
        if person.logo_round:
            logo = ((u - 0.25) / 0.07) ** 2 + ((v - 0.38) / 0.16) ** 2 < 1.0
        else:
            logo = (np.abs(u - 0.25) < 0.07) & (np.abs(v - 0.38) < 0.15)
        part[logo] = person.logo
    back_rgb = np.asarray(person.back_rgb, np.float32)
    if person.back == "backpack":
        bag = (np.abs(u - 0.75) < 0.13) & (v > 0.08) & (v < 0.75)
        straps = (np.abs(np.abs(u - 0.25) - 0.1) < 0.02) & (v < 0.55)  # seen from the front
        part[bag | straps] = back_rgb
    elif person.back == "stripe":
        part[(np.abs(u - 0.75) < 0.25) & (np.abs(v - 0.35) < 0.12)] = back_rgb

    # Arms: sleeves in the top's pattern, then skin (hands at least).
    for name in ("left_arm", "right_arm"):
        rs, cs, u, v = _region(size, name)
        _fill_garment(tex, person.top, (rs, cs), u * 0.25, v * 0.25)
        sleeve = 0.88 if person.long_sleeves else 0.3
        tex[rs, cs] = np.where((v >= sleeve)[..., None], skin, tex[rs, cs])

    # Legs: trousers or shorts, skin, shoes.
    for name in ("left_leg", "right_leg"):
        rs, cs, u, v = _region(size, name)
        _fill_garment(tex, person.bottom, (rs, cs), u * 0.5, v * 0.45)
        cloth_to = 0.4 if person.shorts else SHOE_FROM
        part = tex[rs, cs]
        part[np.broadcast_to(v >= cloth_to, part.shape[:2])] = skin
        part[np.broadcast_to(v >= SHOE_FROM, part.shape[:2])] = person.shoes
    return to_uint8(tex)


# --------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------


def _rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rot_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


@dataclass(frozen=True)
class _Part:
    """A textured primitive in world coordinates: ellipsoid or open elliptic cylinder.

    ``axes`` rows are the local unit vectors (lateral e1, forward e2, down-the-axis e3) and ``radii`` the
    matching semi-axes (for a cylinder the third is its length, measured from ``origin``).
    """

    name: str
    kind: str  # "cylinder" or "ellipsoid"
    origin: np.ndarray
    axes: np.ndarray
    radii: np.ndarray


def _body_parts(person: PersonParams, view: ViewParams) -> list[_Part]:
    """The articulated body posed by ``view`` (walking swing, yaw) in world units (body height 1)."""
    yaw = _rot_y(view.yaw)
    w = person.width
    base = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])  # e1 = x, e2 = z (forward), e3 = -y (down)
    swing = view.swing * np.sin(view.phase)

    def limb(name: str, joint: tuple[float, float, float], angle: float, abduct: float, r: float, length: float):
        rot = yaw @ _rot_z(abduct) @ _rot_x(angle)
        return _Part(name, "cylinder", yaw @ np.asarray(joint), (rot @ base.T).T, np.array([r * w, r, length]))

    parts = [
        _Part(
            "torso", "cylinder", yaw @ np.array([0.0, _TORSO_TOP, 0.0]), (yaw @ base.T).T,
            np.array([_TORSO_RX * w, _TORSO_RZ * w, _TORSO_TOP - _TORSO_BOTTOM]),
        ),
        _Part(
            "head", "ellipsoid", yaw @ np.array([0.0, _HEAD_Y, 0.0]), (yaw @ base.T).T,
            np.array([_HEAD_R[0], _HEAD_R[2], _HEAD_R[1]]),  # radii in (e1, e2, e3) order
        ),
        # legs: the left leg swings forward while the left arm swings back
        limb("left_leg", (_HIP_X * w, _HIP_Y, 0.0), -swing, 0.0, _LEG_R, _LEG_LEN),
        limb("right_leg", (-_HIP_X * w, _HIP_Y, 0.0), swing, 0.0, _LEG_R, _LEG_LEN),
        limb("left_arm", (_SHOULDER_X * w, _SHOULDER_Y, 0.0), 0.8 * swing, 0.1, _ARM_R, _ARM_LEN),
        limb("right_arm", (-_SHOULDER_X * w, _SHOULDER_Y, 0.0), -0.8 * swing, -0.1, _ARM_R, _ARM_LEN),
    ]
    return parts


def _intersect(part: _Part, px: np.ndarray, py: np.ndarray) -> tuple[np.ndarray, ...]:
    """Orthographic rays (x, y, t) for t from +inf down (camera at +z): nearest hit of one primitive.

    Returns (hit mask, depth t, u, v, Lambert shade) per pixel.  Working in the primitive's local frame scaled
    by its radii turns the ellipsoid into a unit sphere and the elliptic cylinder into a unit circular one.
    """
    e, r = part.axes, part.radii
    ox, oy = px - part.origin[0], py - part.origin[1]
    oz = -part.origin[2]
    q = [(ox * e[i, 0] + oy * e[i, 1] + oz * e[i, 2]) / r[i] for i in range(3)]  # local coordinates at t = 0
    d = [e[i, 2] / r[i] for i in range(3)]  # local ray direction
    used = 3 if part.kind == "ellipsoid" else 2
    a = sum(d[i] * d[i] for i in range(used))
    b = sum(q[i] * d[i] for i in range(used))
    c = sum(q[i] * q[i] for i in range(used)) - 1.0
    disc = b * b - a * c
    hit = disc > 0
    t = (-b + np.sqrt(np.maximum(disc, 0.0))) / a  # the larger root is nearer to the camera
    q1, q2, q3 = (q[i] + t * d[i] for i in range(3))
    if part.kind == "cylinder":
        hit &= (q3 >= 0.0) & (q3 < 1.0)  # open cylinder: ends are hidden by the neighbouring parts
        v = q3
    else:
        v = np.arccos(np.clip(q3, -1.0, 1.0)) / np.pi  # e3 points down: q3 = -1 at the top
        v = 1.0 - v
    u = (np.arctan2(q1, q2) / (2 * np.pi) + 0.25) % 1.0  # front (e2) at u = 0.25
    # Surface normal = gradient of the implicit function, back in world coordinates.
    grad = [q1 / r[0], q2 / r[1], (q3 / r[2]) if part.kind == "ellipsoid" else 0.0 * q3]
    n = [sum(grad[i] * e[i, k] for i in range(3)) for k in range(3)]
    norm = np.sqrt(n[0] ** 2 + n[1] ** 2 + n[2] ** 2) + 1e-9
    lambert = np.maximum((n[0] * _LIGHT[0] + n[1] * _LIGHT[1] + n[2] * _LIGHT[2]) / norm, 0.0)
    return hit, t, u, v, _AMBIENT + _DIFFUSE * lambert


def _sample_texture(tex: np.ndarray, part: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Nearest-neighbour look-up of local (u, v) in a part's texture rectangle."""
    size = tex.shape[0]
    v0, v1, u0, u1 = UV_LAYOUT[part]
    r0, r1, c0, c1 = round(v0 * size), round(v1 * size), round(u0 * size), round(u1 * size)
    rows = np.clip(r0 + (v * (r1 - r0)).astype(np.int64), r0, r1 - 1)
    cols = np.clip(c0 + (u * (c1 - c0)).astype(np.int64), c0, c1 - 1)
    return tex[rows, cols]


def _render_body(
    img: np.ndarray, tex: np.ndarray, person: PersonParams, view: ViewParams
) -> None:
    """Z-buffered ray casting of the body into ``img`` (float32, H x W x 3), in place."""
    h, w = img.shape[:2]
    s = view.scale * h * person.height  # pixels per body unit
    cx, foot = (0.5 + view.shift) * w, view.foot * h
    px = ((np.arange(w) + 0.5 - cx) / s)[None, :].repeat(h, 0)
    py = ((foot - (np.arange(h) + 0.5)) / s)[:, None].repeat(w, 1)
    zbuf = np.full((h, w), -np.inf)
    texf = tex.astype(np.float32) / 255.0
    for part in _body_parts(person, view):
        hit, t, u, v, shade = _intersect(part, px, py)
        front = hit & (t > zbuf)
        if not front.any():
            continue
        zbuf[front] = t[front]
        img[front] = _sample_texture(texf, part.name, u[front], v[front]) * shade[front, None]


def _value_noise(rng: Rng, h: int, w: int, cells: int) -> np.ndarray:
    """Smooth noise in [-1, 1]: a coarse random grid, bilinearly upsampled."""
    grid = rng.uniform(-1, 1, (cells + 1, cells + 1)).astype(np.float32)
    y = np.linspace(0, cells, h, dtype=np.float32)
    x = np.linspace(0, cells, w, dtype=np.float32)
    y0, x0 = np.minimum(y.astype(int), cells - 1), np.minimum(x.astype(int), cells - 1)
    return bilinear_lattice(grid, y0, y - y0, x0, x - x0)


def _bg_colour(rng: Rng, palette: np.ndarray) -> np.ndarray:
    """A scene colour: the camera's palette (a camera cue, as real scenes are) or any colour (clutter)."""
    if rng.random() < SCENE_P:
        return palette[rng.integers(len(palette))]
    return np.asarray(hsv_to_rgb(rng.random(), rng.uniform(0.0, BG_SATURATION), rng.uniform(0.15, 0.9)), np.float32)


def _background(rng: Rng, camera: CameraParams, h: int, w: int) -> np.ndarray:
    """Cluttered scene: wall and floor, many small rectangles, smooth shading.

    Many small, mostly greyish patches (rather than a few big saturated ones) keep the background from
    dominating every colour histogram, as the clothes do in real pedestrian crops.
    """
    pal = np.asarray(camera.palette, np.float32)
    wall, floor = _bg_colour(rng, pal), _bg_colour(rng, pal)
    horizon = int(rng.uniform(0.45, 0.8) * h)
    ramp = np.linspace(1.1, 0.85, h, dtype=np.float32)[:, None, None]
    img = np.empty((h, w, 3), np.float32)
    img[:horizon] = wall
    img[horizon:] = floor * 0.85
    img *= ramp
    for _ in range(int(rng.integers(*BG_RECTS))):
        y0, x0 = int(rng.integers(-h // 4, h)), int(rng.integers(-w // 2, w))
        y1 = y0 + int(rng.integers(4, max(5, int(h * BG_RECT_SIZE))))
        x1 = x0 + int(rng.integers(3, max(4, int(w * BG_RECT_SIZE))))
        colour = _bg_colour(rng, pal)
        img[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = colour * rng.uniform(0.7, 1.1)
    img *= (1.0 + 0.15 * _value_noise(rng, h, w, 4))[..., None]
    return img


def _occlude(img: np.ndarray, view: ViewParams) -> None:
    """A pole or a box (bin, bench, car) in front of the person."""
    h, w = img.shape[:2]
    colour = np.asarray(view.occ_rgb, np.float32)
    if view.occluder == "pole":
        half = max(1, int(view.occ_size * 0.3 * w))
        x = int(view.occ_pos * w)
        img[:, max(x - half, 0) : x + half] = colour
    elif view.occluder == "box":
        top = int(h * (1.0 - view.occ_size))
        x0 = int((view.occ_pos - 0.5) * w)
        img[top:, max(x0, 0) : max(x0 + w, 0)] = colour


def render_person(
    person: PersonParams,
    texture: np.ndarray,
    view: ViewParams,
    camera: CameraParams,
    rng: Rng,
    height: int = 128,
    width: int = 64,
) -> np.ndarray:
    """One ``height x width x 3`` uint8 image of ``person`` (textured by ``texture``) seen by ``camera``.

    ``rng`` draws the background clutter and the sensor noise only; all else comes from the parameters.
    """
    img = _background(rng, camera, height, width)
    _render_body(img, texture, person, view)
    _occlude(img, view)
    img = camera_response(img, camera.contrast, camera.brightness, camera.gain, camera.blur, camera.noise, rng)
    return to_uint8(img)


# --------------------------------------------------------------------------
# Data set layout
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Shot:
    """One image to write: where, who (identity index into the identity table) and how."""

    folder: str
    pid: int  # the pid in the file name (0 / -1 for distractor crops)
    identity: int
    cam: int  # 1-based
    crop: str  # "good", "bad" or "junk"
    index: int  # per-image random stream


def _cameras_for(rng: Rng, n_images: int) -> list[int]:
    """Cameras (1-based) of an identity's images: at least two different cameras, each used at least once."""
    n_cams = int(rng.integers(2, NUM_CAMERAS + 1)) if n_images >= 2 else 1
    n_cams = min(n_cams, n_images)
    cams = [int(c) + 1 for c in rng.permutation(NUM_CAMERAS)[:n_cams]]
    extra = [cams[int(i)] for i in rng.integers(0, n_cams, n_images - n_cams)]
    return cams + extra  # the first n_cams entries are the distinct cameras, in random order


def _plan(
    seed: int,
    num_train_ids: int,
    num_test_ids: int,
    images_per_id: int,
    queries_per_id: int,
    num_distractor_ids: int,
    num_background: int,
    num_junk: int,
) -> tuple[list[_Shot], int]:
    """Every image of the set and the number of identities (rows of the identity table)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2]))
    n_named = num_train_ids + num_test_ids + num_distractor_ids
    if n_named > 9999:
        raise DataError(f"at most 9999 identities fit the Market-1501 names (pid:04d), got {n_named}")
    pids = [int(p) + 1 for p in rng.permutation(n_named)]  # interleave train and test pids, as Market does
    shots: list[_Shot] = []

    def add(folder: str, pid: int, identity: int, cam: int, crop: str = "good") -> None:
        shots.append(_Shot(folder, pid, identity, cam, crop, len(shots)))

    for i in range(num_train_ids):
        for cam in _cameras_for(rng, images_per_id):
            add(TRAIN_DIR, pids[i], i, cam)
    for i in range(num_train_ids, num_train_ids + num_test_ids):
        cams = _cameras_for(rng, images_per_id)
        n_distinct = len(set(cams))
        # Leave at least one camera query-free: its images are then valid cross-camera matches for every query.
        query_cams = set(cams[: min(queries_per_id, n_distinct - 1)])
        for cam in cams:
            if cam in query_cams:
                query_cams.discard(cam)
                add(QUERY_DIR, pids[i], i, cam)
            else:
                add(GALLERY_DIR, pids[i], i, cam)
    for i in range(num_train_ids + num_test_ids, n_named):
        for cam in _cameras_for(rng, max(1, images_per_id // 2)):
            add(GALLERY_DIR, pids[i], i, cam)
    # 0000_ / -1_ crops show hidden identities (never named, never queried) so that they too have a texture.
    n_hidden = max(1, (num_background + num_junk + 1) // 2) if num_background + num_junk else 0
    for k in range(num_background):
        add(GALLERY_DIR, 0, n_named + k % n_hidden, int(rng.integers(1, NUM_CAMERAS + 1)), "bad")
    for k in range(num_junk):
        add(GALLERY_DIR, -1, n_named + (k + num_background) % n_hidden, int(rng.integers(1, NUM_CAMERAS + 1)), "junk")
    return shots, n_named + n_hidden


def _image_name(shot: _Shot, frame: int) -> str:
    pid = f"{shot.pid:04d}" if shot.pid >= 0 else "-1"
    return f"{pid}_c{shot.cam}s1_{frame:06d}_01.jpg"


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # e.g. a file system without hard links
        shutil.copyfile(src, dst)


def _write_set(target: Path, params: dict, shots: list[_Shot], n_identities: int) -> dict[str, int]:
    """Render and write every image and texture into ``target`` (an empty dir); returns the file counts."""
    seed, h, w, tsize = params["seed"], params["height"], params["width"], params["texture_size"]
    for folder in SPLIT_DIRS:
        (target / folder).mkdir()
        (target / TEXTURE_DIR / folder).mkdir(parents=True)
    cameras = sample_cameras(np.random.default_rng(np.random.SeedSequence([seed, 0])))
    persons = [sample_person(np.random.default_rng(np.random.SeedSequence([seed, 1, i]))) for i in range(n_identities)]
    textures: dict[int, np.ndarray] = {}
    first_texture_file: dict[int, Path] = {}
    frames = [0] * (NUM_CAMERAS + 1)
    counts = dict.fromkeys(SPLIT_DIRS, 0)
    for shot in shots:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 3, shot.index]))
        person = persons[shot.identity]
        if shot.identity not in textures:
            textures[shot.identity] = make_texture(person, tsize)
        camera = cameras[shot.cam - 1]
        img = render_person(person, textures[shot.identity], sample_view(rng, camera, shot.crop), camera, rng, h, w)
        frames[shot.cam] += int(rng.integers(1, 50))  # increasing frame numbers per camera, like a video
        image_path = target / shot.folder / _image_name(shot, frames[shot.cam])
        Image.fromarray(img).save(image_path, format="JPEG", quality=JPEG_QUALITY)
        tex_file = texture_path(target, image_path)
        if shot.identity in first_texture_file:
            _link_or_copy(first_texture_file[shot.identity], tex_file)
        else:
            Image.fromarray(textures[shot.identity]).save(tex_file, format="PNG")
            first_texture_file[shot.identity] = tex_file
        counts[shot.folder] += 1
    return counts


def _is_intact(root: Path, stamp: dict) -> bool:
    """True if every split folder of a stamped set still holds the number of images the stamp counted."""
    counts = stamp.get("counts", {})
    return all(
        (root / folder).is_dir() and sum(1 for _ in (root / folder).glob("*.jpg")) == counts.get(folder)
        for folder in SPLIT_DIRS
    )


def _bytes_needed(params: dict, n_images: int, n_identities: int) -> int:
    """Estimated size on disk: a JPEG (~1 byte per pixel, at least a block) per image, a PNG per identity."""
    image = params["height"] * params["width"] + 4096
    texture = 3 * params["texture_size"] ** 2 + 4096
    return n_images * (image + 512) + n_identities * texture + 65536


def generate_persons(
    root: Path,
    seed: int = 0,
    num_train_ids: int = 200,
    num_test_ids: int = 100,
    images_per_id: int = 12,
    height: int = 128,
    width: int = 64,
    texture_size: int = 64,
    queries_per_id: int = 2,
    num_distractor_ids: int = 20,
    num_background: int = 20,
    num_junk: int = 10,
) -> Path:
    """Generate (or reuse) the synthetic PIT-like re-ID set under ``root``; returns ``root``.

    ``images_per_id`` images per train/test identity spread over 2-6 cameras; each test identity gives one query
    per camera for up to ``queries_per_id`` cameras (always leaving a query-free camera), the rest go to the
    gallery.  ``num_distractor_ids`` gallery-only identities get ``images_per_id // 2`` images each;
    ``num_background`` ``0000_`` and ``num_junk`` ``-1_`` crops are added to the gallery.  Refuses to replace
    a non-empty ``root`` that it did not generate.
    """
    root = Path(root)
    if num_train_ids < 1 or num_test_ids < 1:
        raise DataError(f"need at least one train and one test identity, got {num_train_ids} and {num_test_ids}")
    if images_per_id < 2:
        raise DataError(f"images_per_id must be >= 2 (an identity is seen by two cameras), got {images_per_id}")
    if min(height, width, texture_size) < 8 or min(queries_per_id, num_distractor_ids, num_background, num_junk) < 0:
        raise DataError("height, width and texture_size must be >= 8 and the distractor/query counts >= 0")
    params = {
        "seed": int(seed), "num_train_ids": int(num_train_ids),
        "num_test_ids": int(num_test_ids), "images_per_id": int(images_per_id), "height": int(height),
        "width": int(width), "texture_size": int(texture_size), "queries_per_id": int(queries_per_id),
        "num_distractor_ids": int(num_distractor_ids), "num_background": int(num_background),
        "num_junk": int(num_junk),
    }
    shots, n_identities = _plan(
        params["seed"], num_train_ids, num_test_ids, images_per_id, queries_per_id,
        num_distractor_ids, num_background, num_junk,
    )
    publish_once(
        root, lambda tmp: {"counts": _write_set(tmp, params, shots, n_identities)}, generator=__name__,
        version=GENERATOR_VERSION, params=params, bytes_needed=_bytes_needed(params, len(shots), n_identities),
        config_key="data.synthetic_dir", stamp_name=STAMP_NAME, intact=_is_intact,
    )
    return root
