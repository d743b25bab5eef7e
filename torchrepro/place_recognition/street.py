"""The street of the simulated event drive: layout, façades, ground, objects, and the shadows of a low sun.

A straight road along world ``+x`` (straight keeps the façades planar and the per-column ray casting exact; the
place signal comes from what lines the street, not from its shape). World frame: ``x`` = distance along the
route ``s`` (m), ``y`` = lateral, positive to the left, ``z`` up; the road centre is ``y = 0``, kerbs at
``|y| = 7 m``. Both sides hold a row of buildings, 6-25 m wide, each with its own set-back, height, albedo and
façade texture (storeys of windows on varying grids, shop fronts with signs, doors, cornices, pilasters,
brick/panel/plaster/glass surfaces), occasionally a deep forecourt. The ground holds asphalt with patches, lane
markings, crosswalks, manholes, kerbs and paved sidewalks whose tiles change every 20-60 m. Poles, street signs,
bins, trees (trunk + ellipsoidal canopy; in stretches) and parked cars stand at irregular positions; about half
the parked cars differ between the two traversals (as they do between real recordings). Façade and ground albedo
are baked once into texture *atlases* (5 cm texels) with a 4x box-filtered mip pyramid, so rendering is a few
gathers per pixel (:mod:`torchrepro.place_recognition.render`).

Everything is deterministic from the seed: each part draws from its own sub-stream (:func:`stream_seed`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from torchrepro.render.raster import bilinear_lattice

TEXEL_M = 0.05  # atlas resolution (finest mip level)
MIP_FACTOR = 4
MIP_LEVELS = 4
FACADE_MAX_Z = 32.0  # atlas height; taller buildings are clipped to it
GROUND_HALF_M = 16.0  # the ground atlas spans y in [-16, 16] m
ROAD_HALF_M = 7.0  # kerb to kerb: two 2.5 m lanes per direction + 2 m parking strips
VIEW_M = 160.0  # nothing is cast beyond this distance (fog has made it invisible)
OBJECT_VIEW_M = 90.0
ROUTE_MARGIN_M = 30.0  # street built before the start of the route
SHADOW_CELL_M = 0.1
SUN_ALONG = 0.35  # the sun is also a little behind-right: shadows lean forward by this fraction of the reach

Rng = np.random.Generator


def stream_seed(seed: int, *stream: int) -> np.random.SeedSequence:
    """Independent sub-stream of ``seed`` (street, textures, objects, each drive's path and sensor)."""
    return np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *stream])


# ============================================================================================ textures
def _smooth_noise(rng: Rng, shape: tuple[int, int], cell: tuple[float, float]) -> np.ndarray:
    """Value noise: a Gaussian lattice every ``cell`` texels, bilinearly interpolated (float32, ~unit sd)."""
    axes = []
    for n, c in zip(shape, cell):
        pos = np.arange(n, dtype=np.float32) / np.float32(max(float(c), 1.0))
        i0 = pos.astype(np.int64)
        axes.append((i0, (pos - i0).astype(np.float32), int(i0[-1]) + 2 if n else 2))
    (i0, w0, n0), (j0, w1, n1) = axes
    lattice = rng.standard_normal((n0, n1), dtype=np.float32) * np.float32(1.6)  # 1.6: undo the smoothing
    return bilinear_lattice(lattice, i0, w0, j0, w1)


def _cell_values(rng: Rng, a: np.ndarray, z: np.ndarray, pa: float, pz: float, phase: float) -> np.ndarray:
    """One random N(0, 1) value per cell of a (pa x pz) grid (e.g. per window pane), for texels a x z."""
    ia = np.floor((a - phase) / pa).astype(np.int64)
    iz = np.floor(z / pz).astype(np.int64)
    ia -= ia.min()
    iz -= iz.min()
    table = rng.standard_normal((int(ia.max()) + 1, int(iz.max()) + 1), dtype=np.float32)
    return table[ia[:, None], iz[None, :]]


def _pyramid(atlas: np.ndarray) -> list[np.ndarray]:
    """Mip pyramid: ``MIP_LEVELS`` levels, each a ``MIP_FACTOR`` x ``MIP_FACTOR`` box filter of the previous.

    Sampling the level whose texels match a pixel's footprint avoids aliasing flicker (which would fire
    spurious events on distant texture).
    """
    levels = [np.ascontiguousarray(atlas, dtype=np.float32)]
    for _ in range(MIP_LEVELS - 1):
        a = levels[-1]
        n0, n1 = a.shape[0] // MIP_FACTOR, a.shape[1] // MIP_FACTOR
        a = a[: n0 * MIP_FACTOR, : n1 * MIP_FACTOR].reshape(n0, MIP_FACTOR, n1, MIP_FACTOR).mean(axis=(1, 3))
        levels.append(np.ascontiguousarray(a, dtype=np.float32))
    return levels


def _grid_mask(coord: np.ndarray, period: float, width: float, phase: float = 0.0) -> np.ndarray:
    """True where ``coord`` lies in the first ``width`` of each ``period`` (windows, stripes, dashes)."""
    return np.mod(coord - phase, period) < width


# ============================================================================================ façades
@dataclass
class Facade:
    """One side of the street: buildings ``[s0, s1)`` along the route, set-back (|y| of the façade), height."""

    s0: np.ndarray
    s1: np.ndarray
    setback: np.ndarray
    height: np.ndarray
    mips: list[np.ndarray] = field(default_factory=list)  # albedo atlases, shape (n_s, n_z), z contiguous


def _layout_buildings(rng: Rng, s_start: float, s_end: float) -> tuple[np.ndarray, ...]:
    """Contiguous buildings covering [s_start, s_end): widths 6-25 m, set-backs, heights, a few forecourts."""
    s0, s1, setback, height = [], [], [], []
    s = s_start
    base = rng.uniform(9.5, 11.0)  # kerb + sidewalk
    while s < s_end:
        w = rng.uniform(6.0, 25.0)
        if rng.uniform() < 0.08:  # deep forecourt / parking lot in front of a lower building
            back, h = rng.uniform(4.0, GROUND_HALF_M - 0.5 - base), rng.uniform(4.0, 10.0)
        else:
            back = 0.0 if rng.uniform() < 0.55 else rng.uniform(0.4, 3.5)
            storeys = int(rng.integers(2, 9))
            h = min(3.2 * storeys + rng.uniform(0.5, 2.5), FACADE_MAX_Z)
        s0.append(s)
        s1.append(s + w)
        setback.append(min(base + back, GROUND_HALF_M - 0.5))
        height.append(h)
        s += w
    return tuple(np.asarray(v, dtype=np.float64) for v in (s0, s1, setback, height))


@dataclass(frozen=True)
class _Wall:
    """Texel centres of one façade in metres: ``a`` along the street, ``z`` up; ``A``/``Z`` broadcast to 2-D."""

    a: np.ndarray
    z: np.ndarray
    width: float
    height: float

    @property
    def A(self) -> np.ndarray:  # noqa: N802 - the 2-D view, as in the formulas
        return self.a[:, None]

    @property
    def Z(self) -> np.ndarray:  # noqa: N802
        return self.z[None, :]


def _wall_surface(rng: Rng, wall: _Wall, base: float, material: str) -> np.ndarray:
    """Surface grain: large blotches + fine noise; brick gets courses, panels get joints."""
    n_a, n_z = wall.a.size, wall.z.size
    img = np.full((n_a, n_z), base, dtype=np.float32)
    img *= 1.0 + rng.uniform(0.03, 0.1) * _smooth_noise(rng, (n_a, n_z), (40, 40))
    img *= 1.0 + rng.uniform(0.02, 0.08) * _smooth_noise(rng, (n_a, n_z), (3, 3))
    if material == "brick":
        img *= np.where(_grid_mask(wall.Z, 0.3, 0.04), 0.8, 1.0).astype(np.float32)
    elif material == "panels":
        pw, ph = rng.uniform(1.2, 3.0), rng.uniform(1.0, 3.0)
        joints = _grid_mask(wall.A, pw, 0.06) | _grid_mask(wall.Z, ph, 0.06)
        img = np.where(joints, img * 0.7, img)
    return img


def _upper_floors(rng: Rng, wall: _Wall, img: np.ndarray, base: float, material: str,
                  ground: float) -> tuple[np.ndarray, np.ndarray]:
    """Upper-floor windows on a grid (varying width, spacing, height, sill), frames, cornices, pilasters.

    Returns the image and the random value of each window pane (the shop windows reuse it).
    """
    A, Z = wall.A, wall.Z
    storey = rng.uniform(2.8, 3.9)
    upper = Z >= ground
    level_z = np.mod(Z - ground, storey)
    ww = rng.uniform(0.7, 2.2)
    pitch = ww + rng.uniform(0.5, 3.0) if material != "glass" else ww + rng.uniform(0.1, 0.3)
    wh = rng.uniform(1.1, min(2.2, storey - 0.5)) if material != "glass" else storey - 0.25
    sill = rng.uniform(0.5, storey - wh) if material != "glass" else 0.1
    margin = max((wall.width - pitch * max(int(wall.width // pitch), 1)) / 2, 0.0)
    phase = margin + rng.uniform(0, 0.3)
    win = upper & _grid_mask(A, pitch, ww, phase) & (level_z >= sill) & (level_z < sill + wh)
    win &= (A > 0.4) & (A < wall.width - 0.4) & (Z < wall.height - 0.8)
    dark = rng.uniform() < 0.7
    # Each window pane has its own value (curtains, lights, reflections): noise with a cell per window.
    pane = _cell_values(rng, wall.a, wall.z - ground, pitch, storey, phase)
    wval = (rng.uniform(0.04, 0.15) if dark else rng.uniform(0.55, 0.9)) * (1.0 + 0.35 * pane)
    img = np.where(win, wval, img)
    if rng.uniform() < 0.6:  # window frames / sills
        frame = win & ~(_grid_mask(A, pitch, ww - 0.08, phase + 0.04) & (level_z >= sill + 0.08))
        img = np.where(frame, base * 1.25, img)
    if rng.uniform() < 0.5:  # cornice at every storey
        img = np.where(upper & (level_z < 0.25), img * rng.choice([0.65, 1.35]), img)
    if rng.uniform() < 0.3:  # pilasters
        img = np.where(_grid_mask(A, pitch, 0.35, phase + ww + 0.1), img * 1.2, img)
    return img, pane


def _ground_floor(rng: Rng, wall: _Wall, img: np.ndarray, ground: float, pane: np.ndarray) -> np.ndarray:
    """Ground floor: shop windows with a sign band above, or a plain wall; one or two doors."""
    A, Z = wall.A, wall.Z
    shop = rng.uniform() < 0.6
    gz = Z < ground
    if shop:
        sw = rng.uniform(1.5, 4.5)
        sp = sw + rng.uniform(0.4, 1.5)
        sval = rng.uniform(0.05, 0.35)
        shopwin = gz & _grid_mask(A, sp, sw, rng.uniform(0, sp)) & (Z > 0.5) & (Z < ground - 1.3)
        img = np.where(shopwin, sval * (1.0 + 0.3 * pane), img)
        sign_lo = ground - rng.uniform(1.1, 1.25)
        sign = (Z > sign_lo) & (Z < ground - 0.2) & (A > 0.3) & (A < wall.width - 0.3)
        sign_val = rng.choice([rng.uniform(0.03, 0.12), rng.uniform(0.75, 0.98)])
        letters = _grid_mask(A, rng.uniform(0.35, 0.7), rng.uniform(0.15, 0.3)) & (Z > sign_lo + 0.25) & (
            Z < ground - 0.45
        )
        img = np.where(sign, np.where(letters, 1.0 - sign_val, sign_val), img)
    for _ in range(int(rng.integers(1, 3))):  # doors
        d0 = rng.uniform(0.5, max(wall.width - 1.8, 0.6))
        door = (A > d0) & (A < d0 + rng.uniform(1.0, 1.8)) & (Z < 2.3)
        img = np.where(door, rng.uniform(0.05, 0.3), img)
    return img


def _paint_building(rng: Rng, n_a: int, n_z: int) -> np.ndarray:
    """Albedo of one façade, (n_a texels along the street, n_z texels up); local coords in metres."""
    a = (np.arange(n_a, dtype=np.float32) + 0.5) * TEXEL_M
    z = (np.arange(n_z, dtype=np.float32) + 0.5) * TEXEL_M
    wall = _Wall(a, z, n_a * TEXEL_M, n_z * TEXEL_M)
    base = rng.uniform(0.18, 0.75)
    material = rng.choice(["plaster", "brick", "panels", "glass"], p=[0.35, 0.3, 0.2, 0.15])
    img = _wall_surface(rng, wall, base, material)
    ground = rng.uniform(3.4, 4.8)  # ground-floor height
    img, pane = _upper_floors(rng, wall, img, base, material, ground)
    img = _ground_floor(rng, wall, img, ground, pane)
    img = np.where(wall.Z < 0.35, base * 0.6, img)  # plinth
    img = np.where(wall.Z > wall.height - rng.uniform(0.3, 0.8), base * rng.choice([0.6, 1.3]), img)  # cornice
    return np.clip(img, 0.02, 1.0)


def _build_facade(rng: Rng, s_start: float, s_end: float) -> Facade:
    """Lay out one side's buildings and bake their façades into one atlas with its mip pyramid."""
    s0, s1, setback, height = _layout_buildings(rng, s_start, s_end)
    n_s = int(round((s1[-1] - s_start) / TEXEL_M))
    n_z = int(round(FACADE_MAX_Z / TEXEL_M))
    atlas = np.zeros((n_s, n_z), dtype=np.float32)
    for i in range(len(s0)):
        a0 = int(round((s0[i] - s_start) / TEXEL_M))
        a1 = min(int(round((s1[i] - s_start) / TEXEL_M)), n_s)
        nz = min(int(round(height[i] / TEXEL_M)), n_z)
        atlas[a0:a1, :nz] = _paint_building(rng, a1 - a0, nz)
        atlas[a0:a1, nz:] = atlas[a0:a1, nz - 1 : nz]  # above the roof: never shown, keeps mips clean
    return Facade(s0, s1, setback, height, _pyramid(atlas))


# ============================================================================================ ground
def _texel_rows(s_start: float, lo: float, hi: float) -> slice:
    """Ground-atlas texel rows covering [lo, hi) along the route."""
    return slice(max(int((lo - s_start) / TEXEL_M), 0), max(int(np.ceil((hi - s_start) / TEXEL_M)), 0))


def _asphalt(rng: Rng, s_start: float, y_ax: np.ndarray, n_s: int) -> np.ndarray:
    """Asphalt albedo with large blotches, grain and repair patches (darker / lighter rectangles)."""
    n_y = y_ax.size
    s_end = s_start + n_s * TEXEL_M
    img = 0.22 * (1.0 + 0.12 * _smooth_noise(rng, (n_s, n_y), (60, 60)))  # asphalt: large blotches ...
    img *= 1.0 + 0.05 * rng.standard_normal((n_s, n_y), dtype=np.float32)  # ... and grain
    for _ in range(int(n_s * TEXEL_M / 25)):  # repair patches
        p0 = rng.uniform(s_start, s_end)
        q0, q1 = rng.uniform(-ROAD_HALF_M, ROAD_HALF_M - 1.5), rng.uniform(1.0, 4.0)
        r = _texel_rows(s_start, p0, p0 + rng.uniform(2.0, 12.0))
        cols = (y_ax > q0) & (y_ax < q0 + q1)
        img[r, cols] *= rng.uniform(0.7, 1.35)
    return img


def _paint_markings(rng: Rng, img: np.ndarray, s_start: float, s_ax: np.ndarray, y_ax: np.ndarray) -> None:
    """Lane markings (dashed centre and lane lines, solid edge lines), crosswalks, manholes; in place."""
    s_end = s_start + s_ax.size * TEXEL_M
    s, y = s_ax[:, None], y_ax[None, :]
    ay = np.abs(y)
    paint = 0.8
    centre = (np.abs(y) < 0.08) & _grid_mask(s, 9.0, 3.0, rng.uniform(0, 9))
    lanes = (np.abs(ay - 2.5) < 0.06) & _grid_mask(s, 12.0, 3.0, rng.uniform(0, 12))
    edge = np.abs(ay - 5.0) < 0.07
    img[centre | lanes | edge] = paint
    # Crosswalks every 70-160 m (zebra stripes along the route) with a stop line.
    c = s_start + rng.uniform(40.0, 90.0)
    zebra_cols = (np.abs(y_ax) < ROAD_HALF_M) & _grid_mask(y_ax, 1.0, 0.5)
    while c < s_end:
        img[_texel_rows(s_start, c, c + 4.0), zebra_cols] = paint
        img[_texel_rows(s_start, c - 2.0, c - 1.6), np.abs(y_ax) < ROAD_HALF_M - 2.0] = paint
        c += rng.uniform(70.0, 160.0)
    for _ in range(int(s_ax.size * TEXEL_M / 30)):  # manholes
        ms, my = rng.uniform(s_start, s_end), rng.uniform(-ROAD_HALF_M + 1, ROAD_HALF_M - 1)
        r = _texel_rows(s_start, ms - 0.35, ms + 0.35)
        disc = (s_ax[r, None] - ms) ** 2 + (y_ax[None, :] - my) ** 2 < 0.33**2
        img[r][disc] = 0.09


def _paint_sidewalks(rng: Rng, img: np.ndarray, s_start: float, s_ax: np.ndarray, y_ax: np.ndarray) -> None:
    """Paved sidewalks with tile joints (tile size and shade change every 20-60 m) and kerbs; in place."""
    n_s = s_ax.size
    walk_cols = np.flatnonzero(np.abs(y_ax) >= ROAD_HALF_M)
    yw = y_ax[walk_cols][None, :]
    seg_edges = np.cumsum(rng.uniform(20.0, 60.0, int(n_s * TEXEL_M / 20) + 2)) + s_start
    seg = np.searchsorted(seg_edges, s_ax)
    tile = rng.uniform(0.4, 1.2, seg_edges.size + 1).astype(np.float32)[seg][:, None]
    shade = rng.uniform(0.75, 1.25, seg_edges.size + 1).astype(np.float32)[seg][:, None]
    walk = 0.42 * shade * (1.0 + 0.05 * rng.standard_normal((n_s, walk_cols.size), dtype=np.float32))
    joints = (np.mod(s_ax[:, None], tile) < 0.04) | (np.mod(yw, tile) < 0.04)
    img[:, walk_cols] = np.where(joints, walk * 0.65, walk)
    img[:, (np.abs(y_ax) >= ROAD_HALF_M) & (np.abs(y_ax) < ROAD_HALF_M + 0.25)] = 0.55  # kerb


def _build_ground(rng: Rng, s_start: float, n_s: int) -> np.ndarray:
    """Ground albedo atlas (n_s along the route, n_y across from y = -GROUND_HALF_M), y contiguous."""
    n_y = int(round(2 * GROUND_HALF_M / TEXEL_M))
    s_ax = s_start + (np.arange(n_s, dtype=np.float32) + 0.5) * TEXEL_M
    y_ax = -GROUND_HALF_M + (np.arange(n_y, dtype=np.float32) + 0.5) * TEXEL_M
    img = _asphalt(rng, s_start, y_ax, n_s)
    _paint_markings(rng, img, s_start, s_ax, y_ax)
    _paint_sidewalks(rng, img, s_start, s_ax, y_ax)
    return np.clip(img, 0.02, 1.0).astype(np.float32)


# ============================================================================================ objects
@dataclass
class Objects:
    """Vertical objects. ``kind``: 0 cylinder (poles, trunks), 1 ellipsoid canopy, 2 axis-aligned box.

    Geometry in the ground plane: centre ``(s, y)``; cylinders/canopies have radius ``rx``; boxes half sizes
    ``rx`` (along s) and ``ry`` (across). Vertical extent ``[z0, z1]``. ``band`` is a darker horizontal band
    (car windows) ``[b0, b1]``. ``present[:, v]``: whether the object exists in parking variant ``v`` (a drive's
    ``parked_variant``).
    """

    kind: np.ndarray
    s: np.ndarray
    y: np.ndarray
    rx: np.ndarray
    ry: np.ndarray
    z0: np.ndarray
    z1: np.ndarray
    albedo: np.ndarray
    texture: np.ndarray  # relative amplitude of the object's surface noise
    b0: np.ndarray
    b1: np.ndarray
    present: np.ndarray


class _ObjectRows(list):
    """The objects placed so far, one tuple each, in the column order of :class:`Objects`."""

    def add(self, kind: int, s: float, y: float, rx: float, ry: float, z0: float, z1: float, albedo: float,
            texture: float = 0.05, band: tuple[float, float] = (0.0, 0.0),
            present: tuple[bool, bool] = (True, True)) -> None:
        """Append one object; ``present``: whether it is there in parking variants 0 and 1."""
        self.append((kind, s, y, rx, ry, z0, z1, albedo, texture, band[0], band[1], present[0], present[1]))


def _place_poles(rng: Rng, rows: _ObjectRows, side: float, s_start: float, s_end: float) -> None:
    """Poles every 20-45 m; some carry a sign plate facing the traffic."""
    s = s_start + rng.uniform(0, 20)
    while s < s_end:
        y = side * (ROAD_HALF_M + rng.uniform(0.4, 0.8))
        rows.add(0, s, y, 0.11, 0.11, 0.0, rng.uniform(5.0, 9.0), rng.uniform(0.2, 0.55))
        if rng.uniform() < 0.35:
            rows.add(2, s + 0.15, y, 0.03, rng.uniform(0.3, 0.5), rng.uniform(2.0, 2.6), rng.uniform(2.9, 3.4),
                     rng.choice([rng.uniform(0.75, 0.95), rng.uniform(0.05, 0.15)]))
        s += rng.uniform(20.0, 45.0)


def _place_trees(rng: Rng, rows: _ObjectRows, side: float, facade: Facade, s_start: float, s_end: float) -> None:
    """Trees (trunk + canopy) in stretches: a stretch of 30-120 m has trees every 7-15 m or none."""
    s = s_start
    while s < s_end:
        stretch = rng.uniform(30.0, 120.0)
        if rng.uniform() < 0.45:
            t = s + rng.uniform(0, 8)
            while t < min(s + stretch, s_end):
                back = facade.setback[min(int(np.searchsorted(facade.s1, t, side="right")), facade.s1.size - 1)]
                y = side * min(ROAD_HALF_M + rng.uniform(1.2, 2.2), back - 1.0)
                top = rng.uniform(5.0, 10.0)
                rows.add(0, t, y, rng.uniform(0.15, 0.28), 0.0, 0.0, top * 0.45, rng.uniform(0.12, 0.3), 0.15)
                r = rng.uniform(1.4, 2.8)
                rows.add(1, t, y, r, 0.0, top * 0.35, top, rng.uniform(0.1, 0.35), rng.uniform(0.3, 0.6))
                t += rng.uniform(7.0, 15.0)
        s += stretch


def _place_bins(rng: Rng, rows: _ObjectRows, side: float, s_start: float, s_end: float) -> None:
    """Bins / bollards / boxes on the sidewalk."""
    for _ in range(int((s_end - s_start) / 25)):
        rows.add(2, rng.uniform(s_start, s_end), side * (ROAD_HALF_M + rng.uniform(0.5, 1.5)),
                 rng.uniform(0.3, 0.6), rng.uniform(0.3, 0.6), 0.0, rng.uniform(0.8, 1.5), rng.uniform(0.1, 0.7),
                 0.1)


def _place_parked_cars(rng: Rng, rows: _ObjectRows, side: float, s_start: float, s_end: float) -> None:
    """Parked cars in the parking strip; about half are parked in both drives, the rest in only one."""
    s = s_start + rng.uniform(0, 10)
    while s < s_end:
        if rng.uniform() < 0.5:
            u = rng.uniform()
            present = (True, True) if u < 0.45 else ((True, False) if u < 0.72 else (False, True))
            hgt = rng.uniform(1.35, 1.9)
            rows.add(2, s, side * (ROAD_HALF_M - 1.05), rng.uniform(2.0, 2.5), 0.9, 0.15, hgt,
                     rng.uniform(0.08, 0.85), 0.05, (hgt * 0.58, hgt * 0.9), present)
        s += rng.uniform(5.5, 12.0)


def _place_objects(rng: Rng, s_start: float, s_end: float, left: Facade, right: Facade,
                   third_rng: Rng | None = None) -> Objects:
    """Poles, signs, trees (trunk + canopy), bins and parked cars at irregular positions on both sides.

    ``present`` has one column per parking variant. Variants 0 and 1 (drive1, drive2) are drawn from ``rng``
    with everything else; variant 2 (drive3) from ``third_rng`` alone, so that adding it changed nothing of
    the first two: a car parked in both drive1 and drive2 is there in drive3 too, each other car with
    probability 0.5.
    """
    third_rng = third_rng if third_rng is not None else np.random.default_rng(0)
    rows = _ObjectRows()
    for side in (1.0, -1.0):
        _place_poles(rng, rows, side, s_start, s_end)
        _place_trees(rng, rows, side, left if side > 0 else right, s_start, s_end)
        _place_bins(rng, rows, side, s_start, s_end)
        _place_parked_cars(rng, rows, side, s_start, s_end)
    cols = list(zip(*rows))
    as_f = lambda v: np.asarray(v, dtype=np.float64)  # noqa: E731
    both = np.asarray(cols[11]) & np.asarray(cols[12])
    third = both | (third_rng.uniform(size=both.size) < 0.5) & (np.asarray(cols[11]) | np.asarray(cols[12]))
    return Objects(
        kind=np.asarray(cols[0], dtype=np.int64), s=as_f(cols[1]), y=as_f(cols[2]), rx=as_f(cols[3]),
        ry=as_f(cols[4]), z0=as_f(cols[5]), z1=as_f(cols[6]), albedo=as_f(cols[7]), texture=as_f(cols[8]),
        b0=as_f(cols[9]), b1=as_f(cols[10]), present=np.stack([np.asarray(cols[11]), np.asarray(cols[12]), third], 1),
    )


# ============================================================================================ street
@dataclass
class Street:
    """A built street: façades, ground atlas pyramid, objects, and a small noise table for object textures."""

    s_start: float
    s_end: float
    left: Facade
    right: Facade
    ground: list[np.ndarray]
    objects: Objects
    noise: np.ndarray  # (64, 64) float32 in ~[-1, 1], object surface texture


def build_street(seed: int, route_length_m: float) -> Street:
    """Procedurally build the street for a route ``[0, route_length_m]`` (deterministic from ``seed``)."""
    s_start, s_end = -ROUTE_MARGIN_M, route_length_m + VIEW_M + 10.0
    left = _build_facade(np.random.default_rng(stream_seed(seed, 1, 0)), s_start, s_end)
    right = _build_facade(np.random.default_rng(stream_seed(seed, 1, 1)), s_start, s_end)
    n_s = int(round((max(left.s1[-1], right.s1[-1]) - s_start) / TEXEL_M))
    ground = _pyramid(_build_ground(np.random.default_rng(stream_seed(seed, 2)), s_start, n_s))
    objects = _place_objects(np.random.default_rng(stream_seed(seed, 3)), s_start, s_end - VIEW_M + OBJECT_VIEW_M,
                             left, right, third_rng=np.random.default_rng(stream_seed(seed, 5)))
    noise = np.random.default_rng(stream_seed(seed, 4)).uniform(-1, 1, (64, 64)).astype(np.float32)
    return Street(s_start, s_end, left, right, ground, objects, noise)


# ============================================================================================ sun shadows
def sun_shadow_map(street: Street, darkness: float, reach: float, drive: int) -> np.ndarray:
    """Multiplicative ground shading (n_s, n_y) on a 0.1 m grid for a low sun from the right.

    A point at height ``z`` casts its shadow ``z * reach`` to the left (and ``SUN_ALONG * z * reach`` forward):
    the right-hand buildings shade the road up to ``-setback + reach * height``; tree canopies (ellipsoids)
    cast elongated blobs, trunks and poles thin streaks across the road (strong moving edges in events).
    Cast by the objects present during ``drive``; edges get a 0.3 m penumbra (3x3 box blur).
    """
    cell = SHADOW_CELL_M
    n_s = int(np.ceil((street.s_end - street.s_start) / cell))
    n_y = int(round(2 * GROUND_HALF_M / cell))
    s_ax = street.s_start + (np.arange(n_s) + 0.5) * cell
    y_ax = -GROUND_HALF_M + (np.arange(n_y) + 0.5) * cell
    fac = street.right
    i = np.clip(np.searchsorted(fac.s1, s_ax, side="right"), 0, fac.s1.size - 1)
    edge = -fac.setback[i] + reach * fac.height[i]
    cover = (y_ax[None, :] < edge[:, None]).astype(np.float32)
    ob = street.objects
    for k in np.flatnonzero(ob.present[:, drive] & (ob.s > street.s_start) & (ob.s < street.s_end - 5)):
        z0, z1, r = ob.z0[k], ob.z1[k], ob.rx[k]
        # Shadow footprint: the object's ground disc swept from height z0 to z1 along the sun direction.
        cs, cy = ob.s[k] + SUN_ALONG * reach * (z0 + z1) / 2, ob.y[k] + reach * (z0 + z1) / 2
        half_len = reach * (z1 - z0) / 2
        if ob.kind[k] == 2 and ob.b1[k] == 0 and z0 > 1.0:  # sign plates: a small blob
            half_len = 0.3
        lo_s, hi_s = cs - r - 2 * half_len * SUN_ALONG - 0.5, cs + r + 2 * half_len * SUN_ALONG + 0.5
        rs = slice(max(int((lo_s - street.s_start) / cell), 0), max(int((hi_s - street.s_start) / cell), 0))
        if rs.stop <= rs.start:
            continue
        ds = s_ax[rs, None] - cs
        dy = y_ax[None, :] - cy
        # Distance to the segment (the shadow's axis) in the ground plane, in units that make it a capsule.
        u = np.clip((ds * SUN_ALONG + dy) / (1 + SUN_ALONG**2), -half_len, half_len)
        dist2 = (ds - u * SUN_ALONG) ** 2 + (dy - u) ** 2
        radius = r if ob.kind[k] != 1 else r * 0.9
        cover[rs] = np.maximum(cover[rs], dist2 < radius * radius)
    # Penumbra: 3x3 box blur.
    p = np.pad(cover, 1, mode="edge")
    cover = sum(p[a : a + n_s, b : b + n_y] for a in range(3) for b in range(3)) / 9.0
    return (1.0 - darkness * cover).astype(np.float32)

