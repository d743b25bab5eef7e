"""The renderer of the simulated event drive: camera pose, lighting and a column-wise ray caster.

Grayscale linear intensity from a forward-facing pinhole camera (DAVIS346: 346 x 260, f = 200 px, ~82 deg
horizontal field of view) by ray casting, column-wise like a classic ray caster: with no roll the horizontal
direction of a ray depends only on its image column, so walls (including the side faces of set-backs) and
vertical objects are intersected once per column (vectorised over columns x buildings/objects), and each pixel
only compares heights and depths: the ground plane ``z = 0`` at forward depth ``h / v``, the column's wall up to
the building's height (sky above), the two nearest object hits per column in front. Pitch is applied to the
rays' vertical slope exactly for the central column (a small-angle approximation elsewhere). Distance fog fades
far surfaces to the horizon sky. About 3 ms per 346 x 260 frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from torchrepro.place_recognition.street import (
    GROUND_HALF_M,
    MIP_FACTOR,
    MIP_LEVELS,
    OBJECT_VIEW_M,
    SHADOW_CELL_M,
    TEXEL_M,
    VIEW_M,
    Facade,
    Street,
    sun_shadow_map,
)

if TYPE_CHECKING:
    from torchrepro.place_recognition.drive import DriveSpec

FOG_M = 70.0  # contrast halves every ~48 m


# ============================================================================================ rendering
@dataclass(frozen=True)
class CameraPose:
    """Camera on the street: route coordinate ``s``, lateral ``y``, height, yaw (left +), pitch (down +)."""

    s: float
    y: float
    height: float
    yaw: float
    pitch: float


@dataclass(frozen=True)
class Lighting:
    """Photometry of a traversal (see :class:`~torchrepro.place_recognition.drive.DriveSpec`)."""

    gain: float = 1.0
    gamma: float = 1.0
    sky: float = 0.85
    shade_left: float = 0.9
    shade_right: float = 0.85
    sun_shadow: float = 0.0
    shadow_reach: float = 0.0
    drive: int = 0  # which parked cars are present

    @classmethod
    def of(cls, spec: DriveSpec) -> Lighting:
        """The constant lighting of a drive."""
        return cls(spec.gain, spec.gamma, spec.sky, spec.shade_left, spec.shade_right, spec.sun_shadow,
                   spec.shadow_reach, spec.parked_variant)


class Renderer:
    """Column-wise ray caster for one street and one pinhole camera (see the module docstring).

    Images are computed in (width, height) layout (one image column per array row) so that a column's reads
    from the façade atlas, which is stored z-contiguous, are contiguous; the result is transposed at the end.
    """

    def __init__(self, street: Street, height: int, width: int, focal: float) -> None:
        self.street, self.h, self.w, self.f = street, height, width, float(focal)
        self.u = (np.arange(width) + 0.5 - width / 2) / self.f  # rightwards slope per column
        self.v = (np.arange(height) + 0.5 - height / 2) / self.f  # downwards slope per row
        self.texel = [TEXEL_M * MIP_FACTOR**k for k in range(MIP_LEVELS)]
        # Both façade atlases stacked along s per mip level (right side after the left): one gather per level.
        self._facade_mips = [np.concatenate([lm, rm]) for lm, rm in zip(street.left.mips, street.right.mips)]
        self._right_offset = [lm.shape[0] for lm in street.left.mips]
        self._shadow_maps: dict[tuple[float, float, int], np.ndarray] = {}

    # ------------------------------------------------------------------------------------- geometry
    @staticmethod
    def _cast_facade(fac: Facade, sc: float, yc: float, a: np.ndarray, b: np.ndarray) -> tuple:
        """Per-column hit of one side: ``b`` is the ray's lateral slope *towards* that side (only b > 0 hit).

        The solid region is ``y >= setback(s)``; a ray enters building i iff its lateral position at the end of
        the building, ``yc + b * t(s1_i)``, is beyond the set-back. The first such building is hit on its front
        face at ``t = (setback - yc) / b`` or, if the ray was already deeper when the building starts, on the
        side face at ``t = (s0 - sc) / a``.
        """
        i0 = int(np.searchsorted(fac.s1, sc, side="right"))
        i1 = max(int(np.searchsorted(fac.s0, sc + VIEW_M)), i0 + 1)
        s0 = np.maximum(fac.s0[i0:i1], sc)
        s1, back, hgt = fac.s1[i0:i1], fac.setback[i0:i1], fac.height[i0:i1]
        pos = b > 1e-9
        bb = np.where(pos, b, 1.0)
        y_end = yc + ((s1[None, :] - sc) / a[:, None]) * bb[:, None]
        solid = (y_end >= back[None, :]) & pos[:, None]
        hit = solid.any(axis=1)
        first = np.argmax(solid, axis=1)
        t_front = (back[first] - yc) / bb
        t_side = (s0[first] - sc) / a
        t = np.where(hit, np.maximum(t_front, t_side), np.inf)
        side_face = t_side > t_front
        s_hit = np.where(side_face, s0[first] + 0.5 * TEXEL_M, sc + np.where(hit, t, 0.0) * a)
        return t, s_hit, side_face, np.where(hit, hgt[first], -np.inf)

    def _walls(self, cam: CameraPose, a: np.ndarray, b: np.ndarray, light: Lighting) -> tuple:
        """Nearest wall per column over both sides: depth, s of the hit, side, height, shading, mip level."""
        st = self.street
        tl, sl, fl, hl = self._cast_facade(st.left, cam.s, cam.y, a, b)
        tr, sr, fr, hr = self._cast_facade(st.right, cam.s, -cam.y, a, -b)
        left = tl <= tr
        t = np.where(left, tl, tr)
        s_hit = np.where(left, sl, sr)
        side_face = np.where(left, fl, fr)
        hgt = np.where(left, hl, hr)
        shade = np.where(left, light.shade_left, light.shade_right) * np.where(side_face, 0.7, 1.0)
        # Footprint of a pixel on the wall (m): along s from neighbouring columns, vertically t / f.
        finite = np.isfinite(t)
        s_fin = np.where(finite, s_hit, cam.s)
        ds = np.abs(np.gradient(s_fin)) if s_fin.size > 1 else np.zeros_like(s_fin)
        foot = np.maximum(np.minimum(ds, 50.0), np.where(finite, t, 0.0) / self.f)
        level = np.clip(np.floor(np.log(np.maximum(foot / TEXEL_M, 1e-6)) / np.log(MIP_FACTOR) + 0.5), 0,
                        MIP_LEVELS - 1).astype(np.int64)
        return t, s_fin, left, hgt, shade, level

    def _object_hits(self, cam: CameraPose, a: np.ndarray, b: np.ndarray, sel: np.ndarray) -> tuple:
        """Depth of every column's ray at each selected object (inf: missed), the canopies' vertical scale per
        hit, and whether a box was entered through its end face (perpendicular to the route)."""
        ob = self.street.objects
        kind, os_, oy, rx, ry = ob.kind[sel], ob.s[sel], ob.y[sel], ob.rx[sel], ob.ry[sel]
        dx = (cam.s - os_)[None, :]
        dy = (cam.y - oy)[None, :]
        A, B = a[:, None], b[:, None]
        # Cylinders / canopies: |(dx, dy) + t (a, b)| = r  ->  quadratic in t.
        qa = A * A + B * B
        qb = 2 * (A * dx + B * dy)
        qc = dx * dx + dy * dy - (rx * rx)[None, :]
        disc = qb * qb - 4 * qa * qc
        t_cyl = np.where((disc >= 0) & (kind[None, :] != 2), (-qb - np.sqrt(np.maximum(disc, 0))) / (2 * qa), np.inf)
        # Distance of the ray from the canopy axis -> the ellipsoid's vertical half extent at that column.
        perp = np.abs(A * dy - B * dx) / np.sqrt(qa)
        ell = np.sqrt(np.clip(1 - (perp / rx[None, :]) ** 2, 0, 1))
        # Boxes: slab method in the ground plane (a > 0: the camera looks forward).
        ts0, ts1 = (os_ - rx - cam.s)[None, :] / A, (os_ + rx - cam.s)[None, :] / A
        Bs = np.where(np.abs(B) < 1e-9, 1e-9, B)
        ty0, ty1 = (oy - ry - cam.y)[None, :] / Bs, (oy + ry - cam.y)[None, :] / Bs
        ty_lo, ty_hi = np.minimum(ty0, ty1), np.maximum(ty0, ty1)
        t_in, t_out = np.maximum(ts0, ty_lo), np.minimum(ts1, ty_hi)
        t_box = np.where((t_in <= t_out) & (kind[None, :] == 2), t_in, np.inf)
        end_face = ts0 >= ty_lo  # entered through the face perpendicular to the route
        t_all = np.minimum(t_cyl, t_box)
        t_all = np.where(t_all > 0.3, t_all, np.inf)  # objects at the lens are clipped
        return t_all, ell, end_face

    def _objects(self, cam: CameraPose, a: np.ndarray, b: np.ndarray, drive: int) -> list[tuple]:
        """Two nearest object hits per column, far first: (depth, z0, z1, albedo, texture, tex column, band)."""
        ob = self.street.objects
        sel = np.flatnonzero((ob.s + ob.rx > cam.s + 0.5) & (ob.s - ob.rx < cam.s + OBJECT_VIEW_M)
                             & ob.present[:, drive])
        if sel.size == 0:
            return []
        kind, os_, oy, rx = ob.kind[sel], ob.s[sel], ob.y[sel], ob.rx[sel]
        t_all, ell, end_face = self._object_hits(cam, a, b, sel)
        layers = []
        cols = np.arange(a.size)
        for _ in range(2):
            j = np.argmin(t_all, axis=1)
            t = t_all[cols, j]
            c = np.flatnonzero(np.isfinite(t))
            if c.size == 0:
                break
            t_all[cols, j] = np.inf
            t, j = t[c], j[c]
            k = kind[j]
            z0, z1 = ob.z0[sel][j], ob.z1[sel][j]
            mid, half = (z0 + z1) / 2, (z1 - z0) / 2 * np.where(k == 1, ell[c, j], 1.0)
            z0, z1 = np.where(k == 1, mid - half, z0), np.where(k == 1, mid + half, z1)
            # Lambert-like shading: boxes' end faces darker than side faces, cylinders by the hit angle.
            hit_s, hit_y = cam.s + t * a[c] - os_[j], cam.y + t * b[c] - oy[j]
            ang = np.arctan2(hit_y, hit_s)
            shade = np.where(k == 2, np.where(end_face[c, j], 0.75, 1.0), 0.75 + 0.25 * np.cos(ang))
            tex_u = np.where(k == 2, (hit_y + hit_s) * 8.0, ang * rx[j] * 8.0)
            layers.append((c, t, z0, z1, ob.albedo[sel][j] * shade, ob.texture[sel][j], tex_u, ob.b0[sel][j],
                           ob.b1[sel][j]))
        return layers[::-1]

    def _shadow_map(self, light: Lighting) -> np.ndarray:
        """Ground shading under a low sun from the right (cached per lighting); see :func:`sun_shadow_map`."""
        key = (light.sun_shadow, light.shadow_reach, light.drive)
        if key not in self._shadow_maps:
            self._shadow_maps[key] = sun_shadow_map(self.street, light.sun_shadow, light.shadow_reach, light.drive)
        return self._shadow_maps[key]

    # ------------------------------------------------------------------------------------- layers
    def _paint_walls(self, img: np.ndarray, cam: CameraPose, t_w: np.ndarray, s_w: np.ndarray, left: np.ndarray,
                     shade: np.ndarray, level: np.ndarray, v32: np.ndarray, haze: float) -> None:
        """Façade albedo for every pixel (sky and ground are painted over later), shaded and fogged."""
        t_fin = np.where(np.isfinite(t_w), t_w, 1e6).astype(np.float32)
        fog = np.exp(-t_fin / FOG_M)
        gain = (shade * fog).astype(np.float32)
        offset = (haze * (1.0 - fog)).astype(np.float32)
        for lv in np.unique(level):
            c = np.flatnonzero(level == lv)
            atlas, inv = self._facade_mips[lv], np.float32(1.0 / self.texel[lv])
            n_left = self._right_offset[lv]
            si = ((s_w[c] - self.street.s_start) / self.texel[lv]).astype(np.int64)
            si = np.where(left[c], np.clip(si, 0, n_left - 1), n_left + np.clip(si, 0, atlas.shape[0] - n_left - 1))
            zi = ((cam.height - t_fin[c, None] * v32[None, :]) * inv).astype(np.int32)
            np.clip(zi, 0, atlas.shape[1] - 1, out=zi)
            img[c] = atlas[si[:, None], zi] * gain[c, None] + offset[c, None]

    def _paint_ground(self, img: np.ndarray, cam: CameraPose, a: np.ndarray, b: np.ndarray, t_w: np.ndarray,
                      v_eff: np.ndarray, light: Lighting, haze: float) -> None:
        """Ground rows (below the horizon) where the ground is nearer than the wall of the column."""
        st = self.street
        r0 = int(np.searchsorted(v_eff, 1e-4))
        if r0 >= self.h:
            return
        t = np.minimum(cam.height / v_eff[r0:], VIEW_M)  # forward depth of the ground along each row
        # Mip level per row from the geometric mean of the along-route and lateral footprints.
        foot = np.sqrt((t * t / (cam.height * self.f)) * (t / self.f)) / TEXEL_M
        level = np.clip(np.floor(np.log(np.maximum(foot, 1e-6)) / np.log(MIP_FACTOR) + 0.5), 0, MIP_LEVELS - 1)
        fog = np.exp(-t / FOG_M)
        # Levels are monotonic in the row, so each level is a contiguous block of rows.
        bounds = np.flatnonzero(np.diff(level)) + 1
        for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, t.size]):
            lv = int(level[lo])
            atlas, tx = st.ground[lv], self.texel[lv]
            tt = t[lo:hi].astype(np.float32)
            si = ((cam.s - st.s_start) / tx + tt[None, :] * (a / tx).astype(np.float32)[:, None]).astype(np.int32)
            yf = (cam.y + GROUND_HALF_M) / tx + tt[None, :] * (b / tx).astype(np.float32)[:, None]
            np.clip(si, 0, atlas.shape[0] - 1, out=si)
            yi = np.clip(yf.astype(np.int32), 0, atlas.shape[1] - 1)
            val = atlas[si, yi]
            if light.sun_shadow > 0:
                shadow = self._shadow_map(light)
                # Shadow-map cell of each texel: the map's 0.1 m cells are an integer ratio of the texels.
                if tx < SHADOW_CELL_M:
                    ms, my = si // int(SHADOW_CELL_M / tx), yi // int(SHADOW_CELL_M / tx)
                else:
                    ms, my = si * int(tx / SHADOW_CELL_M), yi * int(tx / SHADOW_CELL_M)
                val *= shadow[np.minimum(ms, shadow.shape[0] - 1), np.minimum(my, shadow.shape[1] - 1)]
            f = fog[lo:hi].astype(np.float32)[None, :]
            val = val * f + np.float32(haze) * (1.0 - f)
            rows = slice(r0 + lo, r0 + hi)
            mask = tt[None, :] < t_w[:, None]
            img[:, rows] = np.where(mask, val, img[:, rows])

    def _paint_objects(self, img: np.ndarray, cam: CameraPose, a: np.ndarray, b: np.ndarray, t_w: np.ndarray,
                       v32: np.ndarray, light: Lighting, haze: float) -> None:
        """Poles, trees and cars: far layer first, so the nearer layer paints over it."""
        noise = self.street.noise
        for c, t_o, z0, z1, alb, amp, tex_u, b0, b1 in self._objects(cam, a, b, light.drive):
            front = t_o < t_w[c]  # objects stand in front of the façades; the ground never hides them
            c, t_o, z0, z1, alb, amp, tex_u, b0, b1 = (x[front] for x in (c, t_o, z0, z1, alb, amp, tex_u, b0, b1))
            if c.size == 0:
                continue
            # Only rows that can see some object of this layer: z in [z0, z1] <=> v in [(h-z1)/t, (h-z0)/t].
            r0 = int(np.searchsorted(v32, np.min((cam.height - z1) / t_o)))
            r1 = int(np.searchsorted(v32, np.max((cam.height - z0) / t_o), side="right"))
            if r1 <= r0:
                continue
            rows = slice(r0, r1)
            zc = cam.height - t_o.astype(np.float32)[:, None] * v32[None, rows]
            inside = (zc >= z0[:, None]) & (zc <= z1[:, None])
            ui = (tex_u.astype(np.int64) % 64)[:, None]
            val = noise[ui, (zc * 8.0).astype(np.int64) % 64]
            fog = np.exp(-t_o / FOG_M)
            val = (alb * fog)[:, None] * (1.0 + amp[:, None] * val)
            val = np.where((zc > b0[:, None]) & (zc < b1[:, None]), val * 0.3, val)  # car windows
            val += (haze * (1.0 - fog))[:, None]
            img[c, rows] = np.where(inside, val, img[c, rows])

    def render(self, cam: CameraPose, light: Lighting) -> np.ndarray:
        """Linear intensity image (height, width) float32 of the street seen from ``cam`` under ``light``."""
        cy, sy = math.cos(cam.yaw), math.sin(cam.yaw)
        # Horizontal ray per column, parametrised by forward depth t: d(s)/dt = a, d(y)/dt = b.
        a = cy + self.u * sy
        b = sy - self.u * cy
        tp = math.tan(cam.pitch)
        v_eff = (self.v + tp) / (1.0 - self.v * tp)  # downward slope of each row per unit forward depth
        v32 = v_eff.astype(np.float32)
        haze = light.sky * 0.95

        t_w, s_w, left, hgt, shade, level = self._walls(cam, a, b, light)
        img = np.empty((self.w, self.h), dtype=np.float32)
        self._paint_walls(img, cam, t_w, s_w, left, shade, level, v32, haze)
        # Sky above each column's building (only rows above the horizon can be sky).
        r_h = int(np.searchsorted(v_eff, 0.0))
        if r_h > 0:
            z_top = cam.height - np.where(np.isfinite(t_w), t_w, 1e6)[:, None] * v_eff[None, :r_h]
            sky_row = (light.sky * (1.0 - 0.25 * np.clip(-v_eff[:r_h], 0, 1))).astype(np.float32)
            img[:, :r_h] = np.where(z_top > hgt[:, None], sky_row[None, :], img[:, :r_h])
        self._paint_ground(img, cam, a, b, t_w, v_eff, light, haze)
        self._paint_objects(img, cam, a, b, t_w, v32, light, haze)
        if light.gamma != 1.0:
            np.power(np.maximum(img, 1e-3, out=img), np.float32(light.gamma), out=img)
        img *= np.float32(light.gain)
        return np.ascontiguousarray(img.T)

