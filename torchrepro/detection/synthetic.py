"""Synthetic road-object detection set: driver's-view scenes with exact boxes, written as a Pascal VOC folder.

Every image is a road scene from :mod:`torchrepro.render.road` (pinhole camera over a flat ground plane, sky,
curved road, asphalt, shadows, haze, trees and poles, camera photometry) with objects of five classes
(:data:`ROAD_CLASSES`) standing on the ground plane at many depths:

* ``car`` — the road renderer's car, seen from behind (same direction) or from the front (oncoming lanes);
* ``pedestrian`` — a tall thin figure (legs, torso, arms, head), facing the camera or walking sideways;
* ``cyclist`` — a rider on a two-wheel frame, seen from the side (crossing) or from behind;
* ``traffic_light`` — a dark vertical housing with three lamps (one lit) on a pole or hanging from an arm;
* ``traffic_sign`` — a coloured disc, triangle, octagon, square or diamond on a pole.

World units: the camera is ``(1 - horizon) / FOCAL_FRACTION`` ≈ 0.8-1.1 units above the ground, so one unit is
about 1.6 m (a car is ~1.1 units wide, a pedestrian ~1.1 tall, a lane ~2 wide).

Boxes are exact: every object is a list of primitive shapes (:class:`Shape`: boxes, ellipses, rings, capsules,
convex polygons) in pixel coordinates, projected from the object's 3-D placement. Each shape's coverage is
anti-aliased and zero outside the pixels its analytic extent touches, so the object's extent is the union of its
shapes' extents. The box of a traffic light or sign covers the housing or face, not the pole (as in BDD100K or
Mapillary); a car's contact shadow is shading on the road, not part of the car.

Occlusion and truncation follow the Pascal VOC annotation guidelines (VOC2007 ``guidelines.html``: "Mark the
bounding box of the visible area of the object (not the estimated total extent of the object)"; "If more than
15-20% of the object is occluded and lies outside the bounding box, mark as Truncated"; do not label an object
when "less than 10-20% of the object is visible"). Objects are painted far to near (painter's order), and

* ``box_extent="visible"`` (default, VOC): the box is the visible part's extent. A side that no nearer object
  cuts keeps the exact geometric value (the analytic extent, clipped to the image); a side cut by occlusion is
  the bounding pixel of the pixels where the object remains visible (more than :data:`VISIBLE_EPS` of the pixel).
  ``box_extent="full"``: the box is the whole object's geometric extent clipped to the image (amodal).
* ``truncated`` = more than :data:`TRUNCATED_FRACTION` (15%) of the object's area lies outside its box — cut by
  the image border or (visible boxes) hidden outside the box.
* an object of which less than :data:`MIN_VISIBLE` (15%) of its area is visible (inside the image, not hidden)
  is left out: it is drawn but not annotated.
* ``difficult`` = less than :data:`DIFFICULT_VISIBLE` (40%) visible, or a box lower than
  :data:`DIFFICULT_MIN_HEIGHT_FRACTION` of the image side (KITTI's 25 px in a 375-pixel-high image, 15 px at 224:
  Geiger et al., CVPR 2012, object benchmark, whose evaluation ignores smaller objects at every difficulty level)
  or narrower than :data:`DIFFICULT_MIN_WIDTH` pixels. VOC leaves "very small" objects to the annotator's
  discretion; its evaluation ignores difficult objects, and training still sees them (``data.train_difficult``).
  Objects are drawn down to :data:`MIN_HEIGHT_FRACTION` (8 px at 224), so the far ones stay in the picture.

Every scene is a pure function of ``(seed, split, index)`` (:func:`scene_rng`); rendering draws its pixel noise
from the scene's ``texture_seed``. On disk (:func:`generate_road_voc`), as in ``VOCdevkit/VOC2007``::

    root/JPEGImages/<id>.jpg            RGB, size x size, JPEG quality JPEG_QUALITY
    root/Annotations/<id>.xml           torchrepro.detection.voc.write_voc_annotation
    root/ImageSets/Main/{train,val,test}.txt
    root/generated.json                 the stamp (torchrepro.core.generated): parameters, counts per class

Ids are 6-digit strings ``<split digit><index>`` (train 0xxxxx, val 1xxxxx, test 2xxxxx), so the splits are
disjoint by construction and each split's scenes do not depend on the sizes of the others.
"""

from __future__ import annotations

import ctypes
import math
import multiprocessing
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
from PIL import Image

from torchrepro.core.generated import publish_once, read_stamp
from torchrepro.detection.voc import VocObject, read_split_ids, write_split_file, write_voc_annotation
from torchrepro.render import road
from torchrepro.render.raster import RGB, hsv_to_rgb, to_uint8
from torchrepro.render.road import Camera, RoadScene, RoadsideParams

__all__ = [
    "ROAD_CLASSES", "SPLITS", "GENERATOR_VERSION", "BoxExtent", "Shape", "RoadObject", "RoadObjectScene",
    "ObjectAnnotation", "sample_scene", "scene_rng", "object_shapes", "render_scene", "render_object_mask",
    "image_id", "generate_road_voc", "stamp_counts", "BOX_EXTENTS",
]

#: The class names, in label order (label k + 1 is ROAD_CLASSES[k]); pass them to ``read_voc(classes=...)``.
ROAD_CLASSES: tuple[str, ...] = ("car", "pedestrian", "cyclist", "traffic_light", "traffic_sign")
#: The split files written, in this order; the digit that starts an id is the split's position here.
SPLITS: tuple[str, ...] = ("train", "val", "test")

#: Bump when the scenes or the files change, so that cached sets are regenerated.
GENERATOR_VERSION = 2  # 2: difficult below KITTI's minimum height (was: below 8 px)
#: JPEG quality; fixed so that files are byte-identical across runs.
JPEG_QUALITY = 90

BoxExtent = Literal["visible", "full"]
BOX_EXTENTS: tuple[str, ...] = ("visible", "full")

#: A pixel counts as showing an object where its visible coverage exceeds this.
VISIBLE_EPS = 0.05
#: More than this fraction of the object's area outside its box: ``truncated`` (VOC: "15-20%").
TRUNCATED_FRACTION = 0.15
#: Less than this fraction visible: not annotated (VOC: "less than 10-20% of the object is visible").
MIN_VISIBLE = 0.15
#: Less than this fraction visible: ``difficult``.
DIFFICULT_VISIBLE = 0.4
#: Boxes lower than this fraction of the image side are ``difficult``: KITTI's object benchmark evaluates objects
#: from 25 px high in its 375-pixel-high images (its "moderate" and "hard" levels; smaller ones are ignored).
DIFFICULT_MIN_HEIGHT_FRACTION = 25 / 375
#: Boxes narrower than this (pixels) are ``difficult``.
DIFFICULT_MIN_WIDTH = 2
#: Objects are placed no farther than where their main height projects to this fraction of the image
#: (8 px at 224 x 224): far, smaller ones would only be difficult.
MIN_HEIGHT_FRACTION = 8 / 224

Rng = np.random.Generator
Window = tuple[int, int, int, int]  # (c0, c1, r0, r1): pixel columns c0..c1-1, rows r0..r1-1 (may leave the image)


# --------------------------------------------------------------------------
# Shapes: anti-aliased primitives with an exact extent
# --------------------------------------------------------------------------


def _interval(coords: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Overlap of the pixels centred at ``coords`` with [lo, hi] (exact for a 1-D interval)."""
    return np.clip(np.minimum(coords - lo, hi - coords) + 0.5, 0.0, 1.0) * min(1.0, hi - lo)


def _segment_distance(x: np.ndarray, y: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Distance of the points (x, y) from the segment (x0, y0)-(x1, y1)."""
    dx, dy = x1 - x0, y1 - y0
    length2 = dx * dx + dy * dy
    t = np.zeros_like(x) if length2 == 0 else np.clip(((x - x0) * dx + (y - y0) * dy) / length2, 0.0, 1.0)
    return np.hypot(x - (x0 + t * dx), y - (y0 + t * dy))


@dataclass(frozen=True)
class Shape:
    """One primitive in pixel coordinates (x right, y down, pixel ``i`` covering ``[i, i + 1)``).

    ``kind`` and ``geom``: ``box`` (x0, y0, x1, y1); ``ellipse`` (cx, cy, rx, ry); ``ring`` (cx, cy, r_out, r_in);
    ``capsule`` (x0, y0, x1, y1, r): a segment thickened by r; ``polygon`` (x0, y0, x1, y1, ...): convex.
    ``role``: ``body`` (opaque, inside the object's box), ``support`` (opaque, outside it: poles, arms, trees),
    ``shade`` (translucent shading on the ground: neither occludes nor counts as the object).
    ``shade``: darken toward the bottom of the shape by this factor (crude self-shadowing).
    """

    kind: str
    geom: tuple[float, ...]
    rgb: RGB
    role: str = "body"
    alpha: float = 1.0
    shade: float = 0.0

    def extent(self) -> tuple[float, float, float, float]:
        """The analytic extent ``(x0, y0, x1, y1)``: no pixel outside it is touched."""
        g = self.geom
        if self.kind == "box":
            return g[0], g[1], g[2], g[3]
        if self.kind in ("ellipse", "ring"):
            rx, ry = (g[2], g[3]) if self.kind == "ellipse" else (g[2], g[2])
            return g[0] - rx, g[1] - ry, g[0] + rx, g[1] + ry
        if self.kind == "capsule":
            r = g[4]
            return min(g[0], g[2]) - r, min(g[1], g[3]) - r, max(g[0], g[2]) + r, max(g[1], g[3]) + r
        if self.kind == "polygon":
            xs, ys = g[0::2], g[1::2]
            return min(xs), min(ys), max(xs), max(ys)
        raise ValueError(f"unknown shape kind {self.kind!r}")

    def window(self) -> Window:
        """The pixels the extent touches: columns ``floor(x0) .. ceil(x1) - 1``, rows likewise."""
        x0, y0, x1, y1 = self.extent()
        return math.floor(x0), math.ceil(x1), math.floor(y0), math.ceil(y1)

    def coverage(self, win: Window) -> np.ndarray:
        """Anti-aliased coverage in [0, 1] of the pixels of ``win`` (float32 [rows, cols]); zero outside the extent."""
        c0, c1, r0, r1 = win
        out = np.zeros((max(r1 - r0, 0), max(c1 - c0, 0)), np.float32)
        e0, e1, f0, f1 = self.window()
        a0, a1, b0, b1 = max(c0, e0), min(c1, e1), max(r0, f0), min(r1, f1)
        if a0 >= a1 or b0 >= b1:
            return out
        xs = np.arange(a0, a1, dtype=np.float64) + 0.5
        ys = np.arange(b0, b1, dtype=np.float64) + 0.5
        out[b0 - r0:b1 - r0, a0 - c0:a1 - c0] = self._cov(xs, ys)
        return out

    def _cov(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        g = self.geom
        if self.kind == "box":
            return np.outer(_interval(ys, g[1], g[3]), _interval(xs, g[0], g[2]))
        x, y = xs[None, :], ys[:, None]
        if self.kind == "ellipse":
            cx, cy, rx, ry = g
            if rx <= 0 or ry <= 0:
                return np.zeros((len(ys), len(xs)))
            r = np.hypot((x - cx) / rx, (y - cy) / ry)
            # (1 - r) * min radius approximates the signed distance to the outline in pixels
            return np.clip((1.0 - r) * min(rx, ry) + 0.5, 0.0, 1.0) * min(1.0, 2 * min(rx, ry))
        if self.kind == "ring":
            cx, cy, r_out, r_in = g
            d = np.hypot(x - cx, y - cy)
            return np.clip(np.minimum(r_out - d, d - r_in) + 0.5, 0.0, 1.0) * min(1.0, r_out - r_in)
        if self.kind == "capsule":
            x0, y0, x1, y1, r = g
            d = _segment_distance(x, y, x0, y0, x1, y1)
            return np.clip(r - d + 0.5, 0.0, 1.0) * min(1.0, 2 * r)
        if self.kind == "polygon":
            return _polygon_cov(np.asarray(g, np.float64).reshape(-1, 2), x, y)
        raise ValueError(f"unknown shape kind {self.kind!r}")


def _polygon_cov(v: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Coverage of a convex polygon: the smallest signed distance to its edges (inside > 0), anti-aliased."""
    area2 = float(np.sum(v[:, 0] * np.roll(v[:, 1], -1) - np.roll(v[:, 0], -1) * v[:, 1]))
    sign = 1.0 if area2 > 0 else -1.0  # orientation: make "inside" positive for both windings
    dist = None
    for (ax, ay), (bx, by) in zip(v, np.roll(v, -1, axis=0)):
        ex, ey = bx - ax, by - ay
        d = sign * (ex * (y - ay) - ey * (x - ax)) / math.hypot(ex, ey)
        dist = d if dist is None else np.minimum(dist, d)
    return np.clip(dist + 0.5, 0.0, 1.0)


def _clip_window(win: Window, size: int) -> Window:
    c0, c1, r0, r1 = win
    return max(c0, 0), min(c1, size), max(r0, 0), min(r1, size)


def _paint(img: np.ndarray, shape: Shape, win: Window, cov: np.ndarray) -> None:
    """Alpha-blend ``shape`` (coverage ``cov`` on ``win``) into the float image, inside the image only."""
    size = img.shape[0]
    c0, c1, r0, r1 = _clip_window(win, size)
    if c0 >= c1 or r0 >= r1:
        return
    a = cov[r0 - win[2]:r1 - win[2], c0 - win[0]:c1 - win[0]] * np.float32(shape.alpha)
    rgb = np.asarray(shape.rgb, np.float32)
    if shape.shade:
        _, y0, _, y1 = shape.extent()
        t = np.clip((np.arange(r0, r1, dtype=np.float32) + 0.5 - y0) / max(y1 - y0, 1e-6), 0, 1)
        colour = rgb[None, None, :] * (1.0 - np.float32(shape.shade) * t)[:, None, None]
    else:
        colour = rgb
    region = img[r0:r1, c0:c1]
    img[r0:r1, c0:c1] = region + (colour - region) * a[..., None]


# --------------------------------------------------------------------------
# Scene parameters
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class RoadObject:
    """One annotated object standing on the ground plane (world units; see the module docstring).

    ``lateral``: offset of the object's centre (a traffic light's housing, a sign's face) from the road centreline
    at ``depth``; ``pole_lateral``: where the pole of a light or sign stands. ``width``/``height``: a car's,
    a pedestrian's or cyclist's height (``height``; ``width`` unused), a light housing's or a sign face's size.
    ``elevation``: height above the ground of a light housing's or a sign face's bottom. ``variant``: pose or
    shape (see the ``_shapes_*`` functions). ``colours``: the object's palette, meaning per class. ``phase``:
    a free parameter in [0, 1) (stride, crank angle, lit lamp).
    """

    kind: str
    depth: float
    lateral: float
    width: float
    height: float
    variant: int
    facing: int  # +1: facing right (or towards the camera), -1: facing left (or away)
    colours: tuple[RGB, ...]
    phase: float = 0.0
    elevation: float = 0.0
    pole_lateral: float = 0.0


@dataclass(frozen=True)
class RoadObjectScene(RoadScene):
    """A road scene (its ``cars`` empty: cars are annotated objects here) with its objects."""

    objects: tuple[RoadObject, ...]


@dataclass(frozen=True)
class ObjectAnnotation:
    """What is written for one object: class, continuous pixel-aligned box ``(x1, y1, x2, y2)`` and flags.

    ``index``: the object's position in ``scene.objects``; ``visible``: fraction of its area visible;
    ``outside``: fraction of its area outside the box.
    """

    index: int
    name: str
    box: tuple[int, int, int, int]
    truncated: bool
    difficult: bool
    visible: float
    outside: float


def scene_rng(seed: int, split: int, index: int) -> Rng:
    """The generator every random choice of scene ``index`` of split number ``split`` comes from."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), 7, int(split), int(index)]))


def _sample_geometry(rng: Rng) -> dict[str, float]:
    """A two- or four-lane road ahead, the camera in a right-hand lane, bending either way."""
    half_width = rng.uniform(1.8, 3.0)
    lanes = 2 if rng.uniform() < 0.7 else 4
    lane = 2.0 * half_width / lanes
    own = lanes // 2 + int(rng.integers(0, lanes // 2))  # a lane right of the centreline
    view_depth = rng.uniform(15.0, 40.0)
    bend = rng.uniform(-0.4, 0.4)
    return dict(
        horizon=rng.uniform(0.40, 0.55),
        lateral_offset=-(-half_width + lane * (own + 0.5)) + rng.uniform(-0.2, 0.2) * lane,
        yaw=rng.uniform(-0.08, 0.08),
        curvature=2.0 * bend / view_depth,
        view_depth=view_depth,
        road_half_width=half_width,
    )


def _log_depth(rng: Rng, near: float, far: float) -> float:
    """A depth log-uniform in [near, far]: as many objects per octave of size, more small ones than near ones."""
    far = max(far, near * 1.01)
    return float(math.exp(rng.uniform(math.log(near), math.log(far))))


def _far(size: float, view_depth: float) -> float:
    """Farthest depth of an object of main height ``size`` (see MIN_HEIGHT_FRACTION), inside the visible road."""
    return min(0.8 * view_depth, road.FOCAL_FRACTION * size / MIN_HEIGHT_FRACTION)


def _dark(rng: Rng) -> RGB:
    return hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0, 0.3), rng.uniform(0.03, 0.22))


def _skin(rng: Rng) -> RGB:
    return hsv_to_rgb(rng.uniform(0.03, 0.09), rng.uniform(0.25, 0.6), rng.uniform(0.3, 0.95))


def _clothing(rng: Rng) -> RGB:
    if rng.uniform() < 0.35:  # greys, black, white
        return hsv_to_rgb(0.0, 0.0, rng.uniform(0.05, 0.95))
    return hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.25, 0.9), rng.uniform(0.15, 0.9))


def _sample_car(rng: Rng, hw: float, view_depth: float) -> RoadObject:
    width = rng.uniform(1.0, 1.35)
    height = width * (rng.uniform(0.72, 0.95) if rng.uniform() < 0.8 else rng.uniform(0.95, 1.25))  # vans
    where = rng.uniform()
    if where < 0.8:  # in a lane, jittered
        lanes = 2 if hw < 2.4 else 4
        lane = 2.0 * hw / lanes
        lateral = -hw + lane * (int(rng.integers(0, lanes)) + 0.5) + rng.uniform(-0.15, 0.15) * lane
    else:  # parked along an edge
        lateral = float(rng.choice([-1, 1])) * (hw - 0.45 * width + rng.uniform(0.0, 0.8))
    return RoadObject(
        kind="car", depth=_log_depth(rng, 0.9, _far(height, view_depth)), lateral=lateral, width=width,
        height=height, variant=0, facing=-1 if lateral < 0 and where < 0.8 else 1,  # oncoming: seen from the front
        colours=(road.sample_car_rgb(rng),),
    )


def _sample_pedestrian(rng: Rng, hw: float, view_depth: float) -> RoadObject:
    height = rng.uniform(0.95, 1.2) if rng.uniform() < 0.88 else rng.uniform(0.65, 0.9)  # adults, children
    crossing = rng.uniform() < 0.25
    if crossing:
        lateral, variant = rng.uniform(-1.0, 1.0) * hw, 1
    else:
        lateral = float(rng.choice([-1, 1])) * (hw + rng.uniform(0.3, 2.5))
        variant = 0 if rng.uniform() < 0.6 else 1
    colours = (_clothing(rng), _clothing(rng), _skin(rng), _dark(rng) if rng.uniform() < 0.8 else _clothing(rng))
    return RoadObject(
        kind="pedestrian", depth=_log_depth(rng, 0.75, _far(height, view_depth)), lateral=lateral, width=0.0,
        height=height, variant=variant if rng.uniform() < 0.85 else 2,  # 2: long coat
        facing=int(rng.choice([-1, 1])), colours=colours, phase=rng.uniform(0, 1),
    )


def _sample_cyclist(rng: Rng, hw: float, view_depth: float) -> RoadObject:
    height = rng.uniform(1.05, 1.2)
    if rng.uniform() < 0.7:  # crossing: seen from the side
        lateral, variant = rng.uniform(-1.2, 1.2) * hw, 0
    else:  # riding ahead along the right edge: seen from behind
        lateral, variant = hw - rng.uniform(0.3, 0.8), 1
    bike = hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.3, 0.9), rng.uniform(0.2, 0.9))
    colours = (bike, _clothing(rng), _clothing(rng), _skin(rng), _clothing(rng))  # frame, top, legs, skin, helmet
    return RoadObject(
        kind="cyclist", depth=_log_depth(rng, 0.85, _far(height, view_depth)), lateral=lateral, width=0.0,
        height=height, variant=variant, facing=int(rng.choice([-1, 1])), colours=colours, phase=rng.uniform(0, 1),
    )


def _sample_light(rng: Rng, hw: float, view_depth: float) -> RoadObject:
    width = rng.uniform(0.18, 0.24)
    height = width * rng.uniform(2.6, 3.1)
    overhead = rng.uniform() < 0.35
    side = float(rng.choice([-1, 1], p=[0.3, 0.7]))
    pole_lateral = side * (hw + rng.uniform(0.3, 1.0))
    lateral = side * rng.uniform(-0.3, 0.8) * hw if overhead else pole_lateral
    elevation = rng.uniform(2.6, 3.4) if overhead else rng.uniform(1.5, 2.5)
    housing = _dark(rng) if rng.uniform() < 0.85 else hsv_to_rgb(rng.uniform(0.11, 0.15), 0.8, 0.8)  # yellow
    pole = hsv_to_rgb(rng.uniform(0.2, 0.6), rng.uniform(0, 0.3), rng.uniform(0.2, 0.6))
    plate = 1.0 if rng.uniform() < 0.4 else 0.0
    return RoadObject(
        kind="traffic_light", depth=_log_depth(rng, 1.0, _far(height, view_depth)), lateral=lateral, width=width,
        height=height, variant=int(overhead), facing=1, colours=(housing, pole, (plate, plate, plate)),
        phase=rng.uniform(0, 1), elevation=elevation, pole_lateral=pole_lateral,
    )


def _sample_sign(rng: Rng, hw: float, view_depth: float) -> RoadObject:
    size = rng.uniform(0.35, 0.55)
    side = float(rng.choice([-1, 1], p=[0.3, 0.7]))
    lateral = side * (hw + rng.uniform(0.2, 1.2))
    pole = hsv_to_rgb(0.0, 0.0, rng.uniform(0.3, 0.7))
    return RoadObject(
        kind="traffic_sign", depth=_log_depth(rng, 0.9, _far(size, view_depth)), lateral=lateral, width=size,
        height=size, variant=int(rng.integers(0, len(_SIGN_SHAPES))), facing=1, colours=(pole,),
        phase=rng.uniform(0, 1), elevation=rng.uniform(1.1, 1.6), pole_lateral=lateral,
    )


#: Sampler and number-of-objects distribution (probability of 0, 1, 2, ...) per class.
_SAMPLERS = {
    "car": (_sample_car, [0.15, 0.25, 0.25, 0.2, 0.1, 0.05]),
    "pedestrian": (_sample_pedestrian, [0.3, 0.3, 0.2, 0.12, 0.08]),
    "cyclist": (_sample_cyclist, [0.5, 0.35, 0.15]),
    "traffic_light": (_sample_light, [0.5, 0.3, 0.2]),
    "traffic_sign": (_sample_sign, [0.35, 0.35, 0.2, 0.1]),
}


def _footprint(obj: RoadObject) -> tuple[float, float, float, float]:
    """Ground footprint (lateral lo, hi, depth lo, hi) used to keep objects from standing inside each other."""
    if obj.kind == "car":
        return obj.lateral - obj.width / 2, obj.lateral + obj.width / 2, obj.depth, obj.depth + 2.6
    if obj.kind == "cyclist":
        half, length = (0.5 * obj.height, 0.15) if obj.variant == 0 else (0.2, 1.0)
        return obj.lateral - half, obj.lateral + half, obj.depth - 0.1, obj.depth + length
    if obj.kind == "pedestrian":
        return obj.lateral - 0.2, obj.lateral + 0.2, obj.depth - 0.15, obj.depth + 0.15
    return obj.pole_lateral - 0.15, obj.pole_lateral + 0.15, obj.depth - 0.1, obj.depth + 0.1


def _overlaps(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]


def _in_view(obj: RoadObject, scene_fields: dict) -> bool:
    """The object's centre projects within about the image's width (nearer side objects leave the frame)."""
    x = scene_fields["lateral_offset"] + scene_fields["yaw"] * obj.depth
    x += 0.5 * scene_fields["curvature"] * obj.depth**2 + obj.lateral
    return abs(road.FOCAL_FRACTION * x / obj.depth) < 0.6


def _sample_objects(rng: Rng, fields: dict) -> tuple[RoadObject, ...]:
    """Objects of every class, each retried a few times until it is in view and stands on free ground."""
    hw, view_depth = fields["road_half_width"], fields["view_depth"]
    objects: list[RoadObject] = []
    for kind in ROAD_CLASSES:
        sampler, probs = _SAMPLERS[kind]
        for _ in range(road.count(rng, probs)):
            for _attempt in range(8):
                obj = sampler(rng, hw, view_depth)
                if _in_view(obj, fields) and not any(_overlaps(_footprint(obj), _footprint(o)) for o in objects):
                    objects.append(obj)
                    break
    return tuple(objects)


def sample_scene(rng: Rng) -> RoadObjectScene:
    """Draw one random scene from ``rng`` (all its randomness: the renderer only re-seeds its pixel noise)."""
    fields: dict = {**_sample_geometry(rng), **road.sample_sky(rng), **road.sample_surface(rng)}
    hw, view_depth = fields["road_half_width"], fields["view_depth"]
    fields["shadows"] = road.sample_shadows(rng, min(view_depth, 15.0), hw)
    fields["cars"] = ()
    fields["roadside"] = road.sample_roadside(rng, min(view_depth, 25.0), hw, max_count=5)
    fields["objects"] = _sample_objects(rng, fields)
    fields.update(road.sample_photometry(rng))
    fields = {k: float(v) if isinstance(v, np.floating) else v for k, v in fields.items()}
    return RoadObjectScene(**fields)


# --------------------------------------------------------------------------
# Objects as shapes
# --------------------------------------------------------------------------


class _Figure:
    """Maps figure coordinates (b across, a up, in units of the object's pixel height ``u``) to pixels."""

    def __init__(self, xc: float, yb: float, u: float, facing: int) -> None:
        self.xc, self.yb, self.u, self.m = xc, yb, u, facing

    def pt(self, b: float, a: float) -> tuple[float, float]:
        return self.xc + self.m * b * self.u, self.yb - a * self.u

    def capsule(self, b0: float, a0: float, b1: float, a1: float, r: float, rgb: RGB, role: str = "body") -> Shape:
        return Shape("capsule", (*self.pt(b0, a0), *self.pt(b1, a1), r * self.u), rgb, role)

    def ellipse(self, b: float, a: float, rb: float, ra: float, rgb: RGB, shade: float = 0.0) -> Shape:
        return Shape("ellipse", (*self.pt(b, a), rb * self.u, ra * self.u), rgb, shade=shade)

    def ring(self, b: float, a: float, r_out: float, r_in: float, rgb: RGB) -> Shape:
        return Shape("ring", (*self.pt(b, a), r_out * self.u, r_in * self.u), rgb)

    def box(self, b0: float, a0: float, b1: float, a1: float, rgb: RGB, shade: float = 0.0) -> Shape:
        (x0, y0), (x1, y1) = self.pt(b0, a1), self.pt(b1, a0)
        return Shape("box", (min(x0, x1), y0, max(x0, x1), y1), rgb, shade=shade)


def _anchor(obj: RoadObject, scene: RoadScene, cam: Camera, lateral: float) -> tuple[float, float, float]:
    """Pixel column of ``lateral`` (from the centreline) and ground row at the object's depth, and pixels per unit."""
    z = obj.depth
    return cam.column(float(road.centreline_x(scene, z)) + lateral, z), cam.ground_row(z), cam.focal / z


def _shapes_car(obj: RoadObject, scene: RoadScene, cam: Camera) -> list[Shape]:
    """The road renderer's car (:func:`torchrepro.render.road.car_parts`); from the front for oncoming cars."""
    car = road.CarParams(obj.depth, obj.lateral, obj.width, obj.height, obj.colours[0])
    shapes = []
    for x0, x1, y0, y1, rgb, alpha, role in road.car_parts(car, scene, cam):
        if obj.facing < 0 and role == "light":  # headlights instead of tail lights
            rgb = road.hazed((0.95, 0.93, 0.78), scene, obj.depth)
        elif obj.facing < 0 and role == "window":  # a windscreen reflects the sky
            rgb = road.mix(rgb, scene.sky_horizon, 0.35)
        shapes.append(Shape("box", (x0, y0, x1, y1), rgb, "shade" if role == "shadow" else "body", alpha,
                            shade=0.25 if role == "body" else 0.0))
    return shapes


def _shapes_pedestrian(obj: RoadObject, scene: RoadScene, cam: Camera) -> list[Shape]:
    """Legs, torso (or a long coat), arms and a head with hair; facing the camera (0) or walking sideways (1)."""
    xc, yb, s = _anchor(obj, scene, cam, obj.lateral)
    f = _Figure(xc, yb, s * obj.height, obj.facing)
    top, legs, skin, hair = (road.hazed(c, scene, obj.depth) for c in obj.colours)
    shapes: list[Shape] = []
    stride = 0.35 + 0.65 * obj.phase
    if obj.variant in (0, 2):  # front / back view
        for side in (-1, 1):
            shapes.append(f.capsule(side * 0.055, 0.47, side * 0.06, 0.05, 0.05, legs))
        if obj.variant == 2:
            shapes.append(f.capsule(0.0, 0.42, 0.0, 0.72, 0.125, top))
        shapes.append(f.capsule(0.0, 0.56, 0.0, 0.74, 0.115, top))
        for side in (-1, 1):
            shapes.append(f.capsule(side * 0.13, 0.78, side * 0.155, 0.46, 0.035, top))
        shapes.append(f.ellipse(0.0, 0.925, 0.06, 0.075, skin))
        back = obj.phase < 0.5  # seen from behind: hair covers the head
        shapes.append(f.ellipse(0.0, 0.925 if back else 0.955, 0.062, 0.075 if back else 0.045, hair))
    else:  # side view, walking
        shapes.append(f.capsule(0.0, 0.75, -0.12 * stride, 0.48, 0.035, top))  # far arm
        shapes.append(f.capsule(0.0, 0.48, -0.13 * stride, 0.05, 0.05, legs))
        shapes.append(f.capsule(0.0, 0.48, 0.16 * stride, 0.05, 0.05, legs))
        if obj.variant == 1 and obj.phase > 0.8:  # a bag on the back
            shapes.append(f.box(-0.15, 0.55, -0.06, 0.75, _dark_of(top)))
        shapes.append(f.capsule(0.0, 0.56, 0.01, 0.74, 0.08, top))
        shapes.append(f.capsule(0.0, 0.75, 0.12 * stride, 0.5, 0.035, top))  # near arm
        shapes.append(f.ellipse(0.015, 0.925, 0.055, 0.075, skin))
        shapes.append(f.ellipse(-0.005, 0.955, 0.057, 0.045, hair))
    return shapes


def _dark_of(rgb: RGB) -> RGB:
    return road.mix(rgb, (0.0, 0.0, 0.0), 0.6)


def _shapes_cyclist(obj: RoadObject, scene: RoadScene, cam: Camera) -> list[Shape]:
    """A rider on a bicycle: from the side (0; wheels, frame, rider leaning forward) or from behind (1)."""
    xc, yb, s = _anchor(obj, scene, cam, obj.lateral)
    f = _Figure(xc, yb, s * obj.height, obj.facing)
    bike, top, legs, skin, helmet = (road.hazed(c, scene, obj.depth) for c in obj.colours)
    tyre = road.hazed((0.05, 0.05, 0.05), scene, obj.depth)
    shapes: list[Shape] = []
    if obj.variant == 0:
        for b in (-0.3, 0.3):
            shapes.append(f.ring(b, 0.2, 0.2, 0.165, tyre))
            shapes.append(f.ellipse(b, 0.2, 0.025, 0.025, bike))
        rear, bb, seat, head, front = (-0.3, 0.2), (-0.03, 0.2), (-0.12, 0.5), (0.2, 0.52), (0.3, 0.2)
        angle = 2 * math.pi * obj.phase  # crank angle
        pedals = [(bb[0] + 0.09 * math.cos(angle + k * math.pi), bb[1] + 0.09 * math.sin(angle + k * math.pi))
                  for k in (1, 0)]  # far pedal first
        hip, shoulder = (-0.12, 0.55), (0.07, 0.8)
        knee = lambda p: ((hip[0] + p[0]) / 2 + 0.1, (hip[1] + p[1]) / 2 + 0.05)  # noqa: E731
        shapes.append(f.capsule(*hip, *knee(pedals[0]), 0.04, _dark_of(legs)))  # far leg
        shapes.append(f.capsule(*knee(pedals[0]), *pedals[0], 0.035, _dark_of(legs)))
        for p, q in ((rear, bb), (rear, seat), (bb, seat), (seat, head), (bb, head), (head, front)):
            shapes.append(f.capsule(*p, *q, 0.016, bike))
        shapes.append(f.capsule(*head, 0.17, 0.6, 0.016, bike))  # stem and handlebar
        shapes.append(f.capsule(*hip, *shoulder, 0.07, top))
        shapes.append(f.capsule(*shoulder, 0.17, 0.6, 0.03, top))  # arm to the handlebar
        shapes.append(f.capsule(*hip, *knee(pedals[1]), 0.04, legs))  # near leg
        shapes.append(f.capsule(*knee(pedals[1]), *pedals[1], 0.035, legs))
        shapes.append(f.ellipse(0.13, 0.925, 0.06, 0.075, skin))
        shapes.append(f.ellipse(0.12, 0.95, 0.07, 0.05, helmet))
    else:  # from behind: one thin wheel, legs on the pedals, back, arms to the bar
        shapes.append(f.box(-0.025, 0.0, 0.025, 0.4, tyre))
        left = 0.5 + 0.5 * math.sin(2 * math.pi * obj.phase)
        for side, lift in ((-1, left), (1, 1 - left)):
            shapes.append(f.capsule(side * 0.05, 0.5, side * 0.07, 0.08 + 0.12 * lift, 0.045, legs))
        shapes.append(f.box(-0.04, 0.38, 0.04, 0.5, bike))  # saddle and rear frame
        shapes.append(f.box(-0.03, 0.42, 0.03, 0.46, road.hazed((0.8, 0.05, 0.05), scene, obj.depth)))  # rear light
        shapes.append(f.box(-0.15, 0.57, 0.15, 0.6, bike))  # handlebar
        for side in (-1, 1):
            shapes.append(f.capsule(side * 0.1, 0.78, side * 0.13, 0.6, 0.03, top))
        shapes.append(f.capsule(0.0, 0.55, 0.0, 0.76, 0.1, top))
        shapes.append(f.ellipse(0.0, 0.925, 0.06, 0.075, skin))
        shapes.append(f.ellipse(0.0, 0.94, 0.066, 0.06, helmet))
    return shapes


#: Traffic-light lamp colours from the top: red, amber, green.
_LAMPS: tuple[RGB, ...] = ((0.95, 0.12, 0.06), (1.0, 0.65, 0.05), (0.15, 0.95, 0.45))


def _shapes_light(obj: RoadObject, scene: RoadScene, cam: Camera) -> list[Shape]:
    """Pole (and arm when overhead), then the housing with an optional back plate and three lamps, one lit."""
    xh, yb, s = _anchor(obj, scene, cam, obj.lateral)
    xp, _, _ = _anchor(obj, scene, cam, obj.pole_lateral)
    housing, pole = road.hazed(obj.colours[0], scene, obj.depth), road.hazed(obj.colours[1], scene, obj.depth)
    plate = obj.colours[2][0] > 0  # a back plate (colours[2] is its flag, (1, 1, 1) or (0, 0, 0))
    w, h = obj.width * s, obj.height * s
    y_bottom = yb - obj.elevation * s
    y_top = y_bottom - h
    pw = 0.07 * s  # pole thickness
    shapes = []
    if obj.variant == 1:  # overhead: pole to above the housing, arm over to it
        arm_y = y_top - 0.05 * s
        shapes.append(Shape("box", (xp - pw / 2, arm_y - pw, xp + pw / 2, yb), pole, "support"))
        shapes.append(Shape("box", (min(xp, xh), arm_y - pw, max(xp, xh), arm_y), pole, "support"))
        shapes.append(Shape("box", (xh - pw / 4, arm_y, xh + pw / 4, y_top), pole, "support"))
    else:
        shapes.append(Shape("box", (xp - pw / 2, y_bottom, xp + pw / 2, yb), pole, "support"))
    if plate:
        m = 0.2 * w
        shapes.append(Shape("box", (xh - w / 2 - m, y_top - m / 2, xh + w / 2 + m, y_bottom + m / 2),
                            road.hazed((0.85, 0.85, 0.8), scene, obj.depth)))
        shapes.append(Shape("box", (xh - w / 2 - 0.75 * m, y_top - 0.3 * m, xh + w / 2 + 0.75 * m,
                                    y_bottom + 0.3 * m), road.hazed((0.03, 0.03, 0.03), scene, obj.depth)))
    shapes.append(Shape("box", (xh - w / 2, y_top, xh + w / 2, y_bottom), housing, shade=0.3))
    lit = min(int(obj.phase * 3), 2)
    for k, rgb in enumerate(_LAMPS):
        colour = road.hazed(rgb, scene, 0.5 * obj.depth) if k == lit else road.mix(rgb, housing, 0.8)
        shapes.append(Shape("ellipse", (xh, y_top + h * (2 * k + 1) / 6, 0.32 * w, 0.32 * w), colour))
    return shapes


def _regular(cx: float, cy: float, r: float, n: int, start_deg: float) -> tuple[float, ...]:
    """Vertices of a regular n-gon of circumradius r (image y down), flattened."""
    pts = []
    for k in range(n):
        a = math.radians(start_deg + 360.0 * k / n)
        pts += [cx + r * math.cos(a), cy + r * math.sin(a)]
    return tuple(pts)


_RED, _WHITE, _BLUE, _YELLOW, _BLACK = (0.8, 0.08, 0.08), (0.95, 0.95, 0.93), (0.1, 0.3, 0.75), (0.98, 0.8, 0.1), \
    (0.08, 0.08, 0.08)


def _sign_face(kind: str, cx: float, cy: float, r: float) -> list[tuple[str, tuple[float, ...], RGB]]:
    """The face of a sign of radius r centred at (cx, cy): outer shape, inner shape, glyph."""
    if kind == "prohibitory":
        return [("ellipse", (cx, cy, r, r), _RED), ("ellipse", (cx, cy, 0.75 * r, 0.75 * r), _WHITE),
                ("box", (cx - 0.35 * r, cy - 0.3 * r, cx - 0.05 * r, cy + 0.3 * r), _BLACK),
                ("box", (cx + 0.05 * r, cy - 0.3 * r, cx + 0.35 * r, cy + 0.3 * r), _BLACK)]
    if kind == "no_entry":
        return [("ellipse", (cx, cy, r, r), _RED), ("box", (cx - 0.62 * r, cy - 0.16 * r, cx + 0.62 * r,
                                                            cy + 0.16 * r), _WHITE)]
    if kind == "mandatory":
        return [("ellipse", (cx, cy, r, r), _BLUE), ("box", (cx - 0.1 * r, cy - 0.1 * r, cx + 0.1 * r, cy + 0.6 * r),
                                                      _WHITE),
                ("polygon", (cx, cy - 0.62 * r, cx + 0.38 * r, cy - 0.08 * r, cx - 0.38 * r, cy - 0.08 * r), _WHITE)]
    if kind == "warning":
        return [("polygon", _regular(cx, cy, r, 3, -90), _RED), ("polygon", _regular(cx, cy + 0.05 * r, 0.62 * r, 3,
                                                                                     -90), _WHITE),
                ("box", (cx - 0.07 * r, cy - 0.15 * r, cx + 0.07 * r, cy + 0.25 * r), _BLACK)]
    if kind == "yield":
        return [("polygon", _regular(cx, cy, r, 3, 90), _RED), ("polygon", _regular(cx, cy - 0.05 * r, 0.6 * r, 3, 90),
                                                                 _WHITE)]
    if kind == "stop":
        return [("polygon", _regular(cx, cy, r, 8, 22.5), _WHITE), ("polygon", _regular(cx, cy, 0.88 * r, 8, 22.5),
                                                                     _RED),
                ("box", (cx - 0.55 * r, cy - 0.12 * r, cx + 0.55 * r, cy + 0.12 * r), _WHITE)]
    if kind == "info":
        return [("box", (cx - 0.8 * r, cy - 0.8 * r, cx + 0.8 * r, cy + 0.8 * r), _BLUE),
                ("box", (cx - 0.25 * r, cy - 0.5 * r, cx + 0.25 * r, cy + 0.5 * r), _WHITE)]
    # priority road: a white diamond with a yellow centre
    return [("polygon", _regular(cx, cy, r, 4, 0), _WHITE), ("polygon", _regular(cx, cy, 0.72 * r, 4, 0), _YELLOW)]


_SIGN_SHAPES: tuple[str, ...] = ("prohibitory", "no_entry", "mandatory", "warning", "yield", "stop", "info",
                                 "priority")


def _shapes_sign(obj: RoadObject, scene: RoadScene, cam: Camera) -> list[Shape]:
    """A pole and, on top, a face of one of the :data:`_SIGN_SHAPES` (outer shape, inner shape, glyph)."""
    xf, yb, s = _anchor(obj, scene, cam, obj.lateral)
    r = obj.width * s / 2
    cy = yb - (obj.elevation * s + r)
    pw = 0.05 * s
    shapes = [Shape("box", (xf - pw / 2, cy, xf + pw / 2, yb), road.hazed(obj.colours[0], scene, obj.depth), "support")]
    for kind, geom, rgb in _sign_face(_SIGN_SHAPES[obj.variant], xf, cy, r):
        shapes.append(Shape(kind, geom, road.hazed(rgb, scene, obj.depth)))
    return shapes


_SHAPERS = {
    "car": _shapes_car,
    "pedestrian": _shapes_pedestrian,
    "cyclist": _shapes_cyclist,
    "traffic_light": _shapes_light,
    "traffic_sign": _shapes_sign,
}


def object_shapes(obj: RoadObject, scene: RoadScene, cam: Camera) -> list[Shape]:
    """The shapes of ``obj`` in painting order (see :class:`Shape` for the roles)."""
    return _SHAPERS[obj.kind](obj, scene, cam)


def _roadside_shapes(obj: RoadsideParams, scene: RoadScene, cam: Camera) -> list[Shape]:
    """Unannotated clutter: a pole, or a tree (trunk and canopy), as in the road renderer."""
    z = obj.depth
    xc = cam.column(float(road.centreline_x(scene, z)) + obj.side * (scene.road_half_width + obj.distance), z)
    yb = cam.ground_row(z)
    h, w = cam.focal * obj.height / z, cam.focal * obj.width / z
    rgb = road.hazed(obj.rgb, scene, z)
    if obj.kind == "pole":
        return [Shape("box", (xc - w / 2, yb - h, xc + w / 2, yb), rgb, "support")]
    trunk = road.hazed((0.28, 0.2, 0.13), scene, z)
    return [Shape("box", (xc - 0.06 * w, yb - 0.5 * h, xc + 0.06 * w, yb), trunk, "support"),
            Shape("ellipse", (xc, yb - 0.68 * h, w / 2, 0.34 * h), rgb, "support", shade=0.25)]


# --------------------------------------------------------------------------
# Rendering and annotation
# --------------------------------------------------------------------------


@dataclass(eq=False)
class _Item:
    """Something painted: its depth, shapes (with their windows and coverages), and its object index and class
    (None for clutter)."""

    depth: float
    shapes: list[Shape]
    index: int | None
    name: str | None
    layers: list[tuple[Shape, Window, np.ndarray]] | None = None

    def rasterise(self) -> list[tuple[Shape, Window, np.ndarray]]:
        """Each shape's coverage on its own (unclipped) window, computed once."""
        if self.layers is None:
            self.layers = [(sh, sh.window(), sh.coverage(sh.window())) for sh in self.shapes]
        return self.layers


def _items(scene: RoadObjectScene, cam: Camera) -> list[_Item]:
    """Objects and clutter, far to near (painter's order; ties keep the scene's order)."""
    items = [_Item(o.depth, object_shapes(o, scene, cam), k, o.kind) for k, o in enumerate(scene.objects)]
    items += [_Item(o.depth, _roadside_shapes(o, scene, cam), None, None) for o in scene.roadside]
    return sorted(items, key=lambda it: -it.depth)


def _union(layers: list[tuple[Shape, Window, np.ndarray]], roles: tuple[str, ...], win: Window) -> np.ndarray:
    """Coverage of the union of the shapes with ``roles`` on ``win`` (``1 - prod(1 - c)``, as painting composes)."""
    c0, c1, r0, r1 = win
    out = np.zeros((r1 - r0, c1 - c0), np.float32)
    for sh, (a0, a1, b0, b1), cov in layers:
        if sh.role not in roles:
            continue
        x0, x1, y0, y1 = max(a0, c0), min(a1, c1), max(b0, r0), min(b1, r1)
        if x0 >= x1 or y0 >= y1:
            continue
        part = out[y0 - r0:y1 - r0, x0 - c0:x1 - c0]
        c = cov[y0 - b0:y1 - b0, x0 - a0:x1 - a0]
        out[y0 - r0:y1 - r0, x0 - c0:x1 - c0] = part + (1.0 - part) * c
    return out


def _extent(layers: list[tuple[Shape, Window, np.ndarray]]) -> tuple[float, float, float, float]:
    """Union of the body shapes' analytic extents."""
    boxes = np.array([sh.extent() for sh, _, _ in layers if sh.role == "body"], np.float64)
    return float(boxes[:, 0].min()), float(boxes[:, 1].min()), float(boxes[:, 2].max()), float(boxes[:, 3].max())


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Pixel-aligned continuous box ``(x1, y1, x2, y2)`` of the True pixels of ``mask``, or None."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if not len(rows):
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _annotate(items: list[_Item], size: int, box_extent: BoxExtent) -> list[ObjectAnnotation]:
    """Boxes and flags of the objects (see the module docstring), walking from the nearest item to the farthest."""
    occluded = np.zeros((size, size), np.float32)  # union of the opaque coverage of everything nearer
    out = []
    for item in reversed(items):
        layers = item.rasterise()
        if item.index is not None:
            ann = _annotate_one(item, layers, occluded, size, box_extent)
            if ann is not None:
                out.append(ann)
        windows = [w for sh, w, _ in layers if sh.role != "shade"]
        c0, c1, r0, r1 = _clip_window((min(w[0] for w in windows), max(w[1] for w in windows),
                                       min(w[2] for w in windows), max(w[3] for w in windows)), size)
        if c0 < c1 and r0 < r1:
            opaque = _union(layers, ("body", "support"), (c0, c1, r0, r1))
            occluded[r0:r1, c0:c1] += (1.0 - occluded[r0:r1, c0:c1]) * opaque
    return sorted(out, key=lambda a: a.index)


def _annotate_one(item: _Item, layers: list, occluded: np.ndarray, size: int,
                  box_extent: BoxExtent) -> ObjectAnnotation | None:
    """The annotation of one object, or None when it is left out (less than MIN_VISIBLE of it visible)."""
    x0, y0, x1, y1 = _extent(layers)
    own: Window = (math.floor(x0), math.ceil(x1), math.floor(y0), math.ceil(y1))
    body = _union(layers, ("body",), own)  # the whole object, also outside the image
    area = float(body.sum())
    if area <= 0:
        return None
    c0, c1, r0, r1 = _clip_window(own, size)
    if c0 >= c1 or r0 >= r1:
        return None
    inside = body[r0 - own[2]:r1 - own[2], c0 - own[0]:c1 - own[0]]
    visible = inside * (1.0 - occluded[r0:r1, c0:c1])
    visible_fraction = float(visible.sum()) / area
    geo = (max(own[0], 0), max(own[2], 0), min(own[1], size), min(own[3], size))  # geometric box, clipped
    box = geo
    if box_extent == "visible":
        seen, whole = _bbox(visible > VISIBLE_EPS), _bbox(inside > VISIBLE_EPS)
        if seen is None or whole is None:
            return None
        seen = (seen[0] + c0, seen[1] + r0, seen[2] + c0, seen[3] + r0)
        whole = (whole[0] + c0, whole[1] + r0, whole[2] + c0, whole[3] + r0)
        # A side that no nearer object cuts (seen == whole) and where the object's pixels reach its geometric
        # extent keeps the exact geometric value; a side cut by occlusion, or one the image border moved (a
        # figure whose head is outside the frame: its in-image part is lower than the clipped extent), is the
        # last visible pixel.
        box = tuple(g if s == w and abs(w - g) <= 1 else s
                    for g, s, w in zip(geo, seen, whole))  # type: ignore[assignment]
    bx0, by0, bx1, by1 = box
    in_box = body[max(by0 - own[2], 0):max(by1 - own[2], 0), max(bx0 - own[0], 0):max(bx1 - own[0], 0)]
    outside = 1.0 - float(in_box.sum()) / area
    if visible_fraction < MIN_VISIBLE or bx1 <= bx0 or by1 <= by0:
        return None
    difficult = (visible_fraction < DIFFICULT_VISIBLE or by1 - by0 < DIFFICULT_MIN_HEIGHT_FRACTION * size
                 or bx1 - bx0 < DIFFICULT_MIN_WIDTH)
    return ObjectAnnotation(index=item.index, name=item.name, box=(bx0, by0, bx1, by1),
                            truncated=outside > TRUNCATED_FRACTION, difficult=difficult,
                            visible=visible_fraction, outside=outside)


def render_scene(scene: RoadObjectScene, size: int,
                 box_extent: BoxExtent = "visible") -> tuple[np.ndarray, list[ObjectAnnotation]]:
    """Render ``scene`` as a ``size x size x 3`` uint8 RGB image, with the annotations of its objects.

    The annotations are in the order of ``scene.objects`` (objects left out are skipped; see the module
    docstring for the rules).
    """
    if box_extent not in BOX_EXTENTS:
        raise ValueError(f"box_extent must be one of {BOX_EXTENTS}, got {box_extent!r}")
    rng, table = road.texture_source(scene)
    cam = road.make_camera(scene, size)
    img = road.render_background(scene, cam, table, rng)
    items = _items(scene, cam)
    for item in items:
        for shape, win, cov in item.rasterise():
            _paint(img, shape, win, cov)
    return to_uint8(road.photometry(img, scene, rng)), _annotate(items, size, box_extent)


def render_object_mask(scene: RoadObjectScene, index: int, size: int, occluders: bool = True) -> np.ndarray:
    """Where object ``index`` shows, as a float (size, size) map in [0, 1], painted by the scene's painter.

    The object's body shapes are painted white on black, then (``occluders``) every nearer item's opaque shapes
    in black, in painter's order. With ``occluders=False``: the object alone, whole (inside the image). A test
    compares the bounding pixels of this map with the written box.
    """
    cam = road.make_camera(scene, size)
    img = np.zeros((size, size, 3), np.float32)
    items = _items(scene, cam)
    position = [it.index for it in items].index(index)
    for item in items[position:] if occluders else items[position:position + 1]:
        for shape, win, cov in item.rasterise():
            if item.index == index and shape.role == "body":
                _paint(img, Shape(shape.kind, shape.geom, (1.0, 1.0, 1.0)), win, cov)
            elif item.index != index and shape.role != "shade":
                _paint(img, Shape(shape.kind, shape.geom, (0.0, 0.0, 0.0)), win, cov)
    return img[..., 0]


# --------------------------------------------------------------------------
# Writing the VOC folder
# --------------------------------------------------------------------------


def image_id(split: int, index: int, width: int = 5) -> str:
    """The VOC id of image ``index`` of split number ``split``: the split's digit, then the zero-padded index."""
    return f"{split}{index:0{width}d}"


def _id_width(counts: Sequence[int]) -> int:
    return max(5, len(str(max(max(counts, default=1) - 1, 0))))


def _write_images(root: str, seed: int, size: int, box_extent: BoxExtent,
                  jobs: list[tuple[int, int, str]]) -> list[tuple[str, int, list[tuple[str, bool, bool]]]]:
    """Render and write the images and annotations of ``jobs`` ``(split, index, id)``; returns what was written.

    Runs in a worker process too: everything it needs is in its arguments.
    """
    out = []
    folder = Path(root)
    for split, index, name in jobs:
        scene = sample_scene(scene_rng(seed, split, index))
        img, anns = render_scene(scene, size, box_extent)
        Image.fromarray(img).save(folder / "JPEGImages" / f"{name}.jpg", format="JPEG", quality=JPEG_QUALITY)
        objects = [VocObject(a.name, a.box, a.truncated, a.difficult) for a in anns]
        write_voc_annotation(folder / "Annotations" / f"{name}.xml", name, size, size, objects)
        out.append((name, split, [(a.name, a.truncated, a.difficult) for a in anns]))
    return out


def _keep_freed_memory() -> None:
    """In a worker process: let glibc keep freed memory instead of returning it to the system at once.

    The renderer's temporaries (a 224 x 224 x 3 float32 image is 600 KB) are above glibc's mmap threshold, so
    each one is mapped, page-faulted in and unmapped again: about a third of the time goes to the kernel. With
    high mmap and trim thresholds they are reused from the heap (measured: 29 -> 22 ms per 224 px image). Only in
    workers, which do nothing else; anywhere but glibc this is a no-op.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 256 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 512 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def _write_set(target: Path, counts: dict[str, int], seed: int, size: int, box_extent: BoxExtent,
               max_workers: int | None) -> dict:
    """Fill the empty folder ``target``; returns the stamp's statistics (objects per class and split)."""
    for sub in ("JPEGImages", "Annotations"):
        (target / sub).mkdir(parents=True)
    width = _id_width(list(counts.values()))
    jobs = [(k, i, image_id(k, i, width)) for k, split in enumerate(SPLITS) for i in range(counts[split])]
    if max_workers is None:  # a worker process costs about a second to start: only for real-size sets
        max_workers = (os.cpu_count() or 1) if len(jobs) * size * size > 2e7 else 1
    workers = max(1, min(max_workers, len(jobs)))
    if workers == 1:
        results = _write_images(str(target), seed, size, box_extent, jobs)
    else:  # scenes are independent (own seeds): the files do not depend on the number of workers
        chunks = [jobs[k::workers * 4] for k in range(workers * 4)]
        ctx = multiprocessing.get_context("spawn")  # no fork of a process that may hold torch threads
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_keep_freed_memory) as pool:
            parts = pool.map(_write_images, *zip(*[(str(target), seed, size, box_extent, c) for c in chunks]))
            results = [r for part in parts for r in part]
    stats: dict[str, dict] = {}
    for k, split in enumerate(SPLITS):
        ids = [j[2] for j in jobs if j[0] == k]
        write_split_file(target, split, ids)
        objs = [o for name, s, anns in results if s == k for o in anns]
        stats[split] = {
            "images": len(ids),
            "objects": dict(sorted(Counter(o[0] for o in objs).items())),
            "truncated": sum(o[1] for o in objs),
            "difficult": sum(o[2] for o in objs),
        }
    return {"splits": stats}


def _is_intact(root: Path, stamp: dict) -> bool:
    """Every id of every split file has its image and annotation (a stamped set may lose files)."""
    try:
        for split in SPLITS:
            ids = read_split_ids(root, split)
            if len(ids) != stamp["params"][f"n_{split}"]:
                return False
            if not all((root / "JPEGImages" / f"{i}.jpg").is_file() and (root / "Annotations" / f"{i}.xml").is_file()
                       for i in ids):
                return False
    except Exception:  # a missing or unreadable split file (DataError), a stamp without the parameter
        return False
    return True


def generate_road_voc(
    root: Path | str,
    n_train: int = 1600,
    n_val: int = 200,
    n_test: int = 400,
    seed: int = 0,
    size: int = 224,
    box_extent: BoxExtent = "visible",
    max_workers: int | None = None,
    config_key: str = "data.synthetic_dir",
) -> Path:
    """Generate (or find) the road-object set as a VOC folder at ``root``; returns ``root``.

    Read it with ``read_voc(root, split, classes=ROAD_CLASSES)``. Deterministic: the same arguments give
    byte-identical files whatever ``max_workers`` (processes; default: one per core for sets of more than ~20 M
    pixels, else one). A folder stamped with the same parameters and generator version is reused as it is; any
    other one is regenerated into a temporary sibling and renamed into place, so an interrupted run never leaves
    a half set (:func:`torchrepro.core.generated.publish_once`; ``config_key`` is the setting named in its errors).
    """
    root = Path(root)
    counts = {"train": int(n_train), "val": int(n_val), "test": int(n_test)}
    if min(counts.values()) < 0:
        raise ValueError(f"image counts must be >= 0, got {counts}")
    if box_extent not in BOX_EXTENTS:
        raise ValueError(f"box_extent must be one of {BOX_EXTENTS}, got {box_extent!r}")
    params = {**{f"n_{k}": v for k, v in counts.items()}, "seed": int(seed), "size": int(size),
              "box_extent": box_extent}
    n = sum(counts.values())
    publish_once(
        root, lambda tmp: _write_set(tmp, counts, seed, size, box_extent, max_workers), generator=__name__,
        version=GENERATOR_VERSION, params=params, bytes_needed=n * (size * size // 4 + 8192) + 65536,
        config_key=config_key, intact=_is_intact,
    )
    return root


def stamp_counts(root: Path | str) -> dict | None:
    """The per-split statistics in a generated folder's stamp (images, objects per class, truncated, difficult)."""
    stamp = read_stamp(Path(root))
    return None if stamp is None else stamp.get("splits")
