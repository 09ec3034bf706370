"""Scene geometry: world coordinates, the camera, parts, and their rasterisation into a `Layout`.

A scene is sampled in world coordinates (metres; X to the right, Y up, Z forward, camera at height ``h``
above the ground looking along the road) and projected with a pinhole camera:
``x = cx + f·X/Z``, ``y = cy + f·(h − Y)/Z`` (``cy`` is the horizon row). Every object is made of flat parts
in one of three planes: the ground (Y = 0), a *front* plane (Z = const, facing the camera) or a *side* plane
(X = const, parallel to the road). Parts are drawn with PIL in painter's order (far to near) into:

- a primitive map (int32): which part covers each pixel; parts know their label id, object, face and plane,
- a detail map (uint8): sub-parts that keep the label but not the look (windows, lane markings, tyres,
  lamps, skin, ...); a detail shows only where no part drawn after it covers it.

From these, vectorised numpy gives the label-id map, per-pixel depth and per-pixel plane coordinates
(``coord_a``, ``coord_b``: metres along and up the plane), which both renderers use for perspective-correct
textures, window grids and haze. The layout is size-independent: the same sampler serves the 16:9 source
and the 2:1 target; class-frequency and camera differences between domains come from a `LayoutProfile`
(`layout`). What is in a street is sampled in `layout` (ground, facades, walls) and `objects` (the rest).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image, ImageDraw

from adaptseg.data.labels import LABEL_BY_NAME


def _lid(name: str) -> int:
    return LABEL_BY_NAME[name].id


# Label ids used by the scene (Cityscapes label ids, as GTA5 and Cityscapes label PNGs store them).
UNLABELED = _lid("unlabeled")
EGO = _lid("ego vehicle")
STATIC = _lid("static")
DYNAMIC = _lid("dynamic")
GROUND = _lid("ground")
ROAD = _lid("road")
SIDEWALK = _lid("sidewalk")
PARKING = _lid("parking")
RAIL = _lid("rail track")
BUILDING = _lid("building")
WALL = _lid("wall")
FENCE = _lid("fence")
GUARD_RAIL = _lid("guard rail")
BRIDGE = _lid("bridge")
POLE = _lid("pole")
POLEGROUP = _lid("polegroup")
LIGHT = _lid("traffic light")
SIGN = _lid("traffic sign")
VEGETATION = _lid("vegetation")
TERRAIN = _lid("terrain")
SKY = _lid("sky")
PERSON = _lid("person")
RIDER = _lid("rider")
CAR = _lid("car")
TRUCK = _lid("truck")
BUS = _lid("bus")
CARAVAN = _lid("caravan")
TRAILER = _lid("trailer")
TRAIN = _lid("train")
MOTORCYCLE = _lid("motorcycle")
BICYCLE = _lid("bicycle")

# Detail codes (the detail map): sub-parts that keep their part's label but get their own look.
D_NONE, D_WINDOW, D_LANE, D_GLASS, D_TYRE, D_TAIL, D_HEAD, D_SKIN, D_SECOND, D_CURB = range(10)
D_LAMP_RED, D_LAMP_AMBER, D_LAMP_GREEN, D_TRUNK, D_SHOP, D_PLATE, D_WHEEL_IN, D_SHADOW = range(10, 18)
NUM_DETAILS = 18

# Faces (for shading) and planes (for depth and plane coordinates).
F_FLAT, F_FRONT, F_SIDE_LEFT, F_SIDE_RIGHT, F_DARK = range(5)  # SIDE_LEFT: a plane left of the camera
P_GROUND, P_FRONT, P_SIDE, P_SKY = range(4)

Z_NEAR, Z_FAR, SKY_DEPTH = 0.6, 3000.0, 1.0e4


@dataclass(frozen=True)
class Camera:
    width: int
    height: int
    f: float  # focal length in pixels
    cx: float  # vanishing-point column
    cy: float  # horizon row
    h: float  # camera height in metres


@dataclass
class ShadowCaster:
    """What can cast a sun shadow on the ground: a facade (side, X, Z range, height) or a blob (tree, pole)."""

    kind: str  # "facade" or "blob"
    x: float
    z0: float
    z1: float
    size: float  # facade height, or blob radius


@dataclass
class Layout:
    """One scene, rasterised at (width, height)."""

    camera: Camera
    labels: np.ndarray  # (H, W) uint8 Cityscapes label ids
    prim: np.ndarray  # (H, W) int32 primitive index (0: sky)
    detail: np.ndarray  # (H, W) uint8 detail code
    depth: np.ndarray  # (H, W) float32 metres (sky: SKY_DEPTH)
    coord_a: np.ndarray  # (H, W) float32 metres along the plane (ground: X, front: X, side: Z)
    coord_b: np.ndarray  # (H, W) float32 metres across the plane (ground: Z, front and side: Y)
    cell: np.ndarray  # (H, W) float32 in [0, 1): a per-window random number (window pixels only)
    prim_label: np.ndarray  # (P,) uint8
    prim_obj: np.ndarray  # (P,) int32 object index (0: sky)
    prim_face: np.ndarray  # (P,) uint8
    obj_label: np.ndarray  # (O,) uint8 label id of each object (colours are drawn per object)
    casters: list[ShadowCaster]

    @property
    def obj(self) -> np.ndarray:
        """(H, W) object index of each pixel."""
        return self.prim_obj[self.prim]


# ------------------------------------------------------------------------------------------------ builder
@cache
def unit_circle(n: int) -> tuple[tuple[float, float], ...]:
    return tuple((math.cos(2 * math.pi * i / n), math.sin(2 * math.pi * i / n)) for i in range(n))


class Builder:
    """Collects parts in groups (one object, or a few tied together) and draws them in painter's order."""

    def __init__(self, camera: Camera):
        self.cam = camera
        self.groups: list[tuple[int, float, int, list[tuple]]] = []
        self.obj_label: list[int] = [SKY]
        self.casters: list[ShadowCaster] = []

    # -- objects and groups
    def new_obj(self, label: int) -> int:
        self.obj_label.append(label)
        return len(self.obj_label) - 1

    def group(self, layer: int, z: float) -> list[tuple]:
        parts: list[tuple] = []
        self.groups.append((layer, -z, len(self.groups), parts))
        return parts

    # -- projections (pure Python floats: faster than numpy for a handful of points)
    def front(self, pts, z: float) -> list[tuple[float, float]]:
        c = self.cam
        k = c.f / max(z, Z_NEAR)
        return [(c.cx + k * x, c.cy + k * (c.h - y)) for x, y in pts]

    def side(self, x: float, pts) -> list[tuple[float, float]]:
        c = self.cam
        out = []
        for z, y in pts:
            k = c.f / max(z, Z_NEAR)
            out.append((c.cx + k * x, c.cy + k * (c.h - y)))
        return out

    def ground(self, pts) -> list[tuple[float, float]]:
        c = self.cam
        out = []
        for x, z in pts:
            k = c.f / max(z, Z_NEAR)
            out.append((c.cx + k * x, c.cy + k * c.h))
        return out

    def front_rect(self, x0, x1, y0, y1, z, min_px: float = 1.0):
        c = self.cam
        k = c.f / max(z, Z_NEAR)
        px0, px1 = c.cx + k * x0, c.cx + k * x1
        if px1 - px0 < min_px:
            mid = 0.5 * (px0 + px1)
            px0, px1 = mid - 0.5 * min_px, mid + 0.5 * min_px
        py0, py1 = c.cy + k * (c.h - y1), c.cy + k * (c.h - y0)
        if py1 - py0 < min_px:
            mid = 0.5 * (py0 + py1)
            py0, py1 = mid - 0.5 * min_px, mid + 0.5 * min_px
        return [(px0, py0), (px1, py0), (px1, py1), (px0, py1)]

    def front_ellipse(self, xc, yc, rx, ry, z, n: int = 14):
        c = self.cam
        k = c.f / max(z, Z_NEAR)
        px, py, kx, ky = c.cx + k * xc, c.cy + k * (c.h - yc), k * rx, k * ry
        return [(px + kx * u, py - ky * v) for u, v in unit_circle(n)]

    def front_bar(self, x0, y0, x1, y1, width, z):
        """A straight bar of ``width`` metres between two points of a front plane (min 1 px wide)."""
        c = self.cam
        k = c.f / max(z, Z_NEAR)
        w = max(width * k, 1.0) / k
        dx, dy = x1 - x0, y1 - y0
        n = math.hypot(dx, dy) or 1.0
        ox, oy = -dy / n * w / 2, dx / n * w / 2
        return self.front([(x0 + ox, y0 + oy), (x1 + ox, y1 + oy), (x1 - ox, y1 - oy), (x0 - ox, y0 - oy)], z)

    # -- parts: (polygon, label or None for detail-only, obj, detail, face, plane, plane_value, windows)
    @staticmethod
    def part(parts, poly, label, obj, detail=D_NONE, face=F_FRONT, plane=P_FRONT, value=0.0, windows=None):
        assert plane != P_FRONT or value > 0.0, "front parts need their depth"
        parts.append((poly, label, obj, detail, face, plane, value, windows))

    @staticmethod
    def detail(parts, poly, code):
        parts.append((poly, None, 0, code, 0, 0, 0.0, None))

    # -- rasterise
    def render(self) -> Layout:
        cam = self.cam
        W, H = cam.width, cam.height
        prim_img = Image.new("I", (W, H), 0)
        det_img = Image.new("L", (W, H), 0)  # codes of detail-only parts ...
        stamp_img = Image.new("I", (W, H), 0)  # ... and how many parts had been drawn when each was
        draw_p, draw_d, draw_s = ImageDraw.Draw(prim_img), ImageDraw.Draw(det_img), ImageDraw.Draw(stamp_img)
        # primitive 0: the sky
        labels, objs, faces, planes, values, codes = [SKY], [0], [F_FLAT], [P_SKY], [0.0], [D_NONE]
        win = [None]
        for _layer, _negz, _seq, parts in sorted(self.groups, key=lambda g: (g[0], g[1], g[2])):
            for poly, label, obj, code, face, plane, value, windows in parts:
                if label is None:
                    draw_d.polygon(poly, fill=code)
                    draw_s.polygon(poly, fill=len(labels))
                    continue
                draw_p.polygon(poly, fill=len(labels))
                labels.append(label)
                objs.append(obj)
                faces.append(face)
                planes.append(plane)
                values.append(value)
                codes.append(code)
                win.append(windows)
        prim = np.asarray(prim_img, dtype=np.int32)
        # a detail-only part shows where no part drawn after it covers it (part ids grow in drawing
        # order); elsewhere a pixel takes its part's own detail code (legs, tyres, lamps ...)
        detail = np.where(
            np.asarray(stamp_img, dtype=np.int32) > prim,
            np.asarray(det_img, dtype=np.uint8),
            np.asarray(codes, dtype=np.uint8)[prim],
        )
        prim_label = np.asarray(labels, dtype=np.uint8)
        prim_plane = np.asarray(planes, dtype=np.uint8)
        prim_value = np.asarray(values, dtype=np.float32)

        # per-pixel depth and plane coordinates, one vectorised formula per plane kind (row and column
        # vectors broadcast against the (H, W) maps)
        f = np.float32(cam.f)
        dx = np.arange(W, dtype=np.float32) + np.float32(0.5 - cam.cx)  # (W,)
        dy = (np.arange(H, dtype=np.float32) + np.float32(0.5 - cam.cy))[:, None]  # (H, 1)
        safe_dx = np.where(np.abs(dx) < 0.05, np.where(dx < 0, np.float32(-0.05), np.float32(0.05)), dx)
        z_ground = np.where(dy > 0.05, f * np.float32(cam.h) / np.maximum(dy, np.float32(0.05)), np.float32(Z_FAR))
        plane = prim_plane[prim]
        value = prim_value[prim]
        depth = np.where(plane == P_SIDE, np.abs(value * (f / safe_dx)), value)
        depth = np.where(plane == P_GROUND, z_ground, depth)
        np.clip(depth, Z_NEAR, Z_FAR, out=depth)
        sky = plane == P_SKY
        depth[sky] = SKY_DEPTH
        lateral = depth * (dx / f)  # X of the pixel's ray at its depth
        height = np.float32(cam.h) - depth * (dy / f)  # Y likewise
        coord_a = np.where(plane == P_SIDE, depth, lateral)
        coord_b = np.where(plane == P_GROUND, depth, height)
        coord_a = np.where(sky, (dx + np.float32(cam.cx)) / np.float32(W), coord_a)
        coord_b = np.where(sky, -dy / np.float32(H), coord_b)

        # window grids on building parts that asked for them (perspective-correct: in plane coordinates)
        cell = np.zeros((H, W), dtype=np.float32)
        win_ids = [i for i, w in enumerate(win) if w is not None]
        if win_ids:
            n = len(labels)
            params = np.zeros((n, 8), dtype=np.float32)
            params[:, 0] = 1.0
            params[:, 2] = 1.0
            has = np.zeros(n, dtype=bool)
            for i in win_ids:
                params[i] = win[i]
                has[i] = True
            cand = has[prim] & (detail == D_NONE)
            if cand.any():
                p = params[prim[cand]]
                a = coord_a[cand] - p[:, 7]
                b = coord_b[cand]
                ua = a / p[:, 0]
                ub = b / p[:, 2]
                fa = ua - np.floor(ua)
                fb = ub - np.floor(ub)
                inside = (fa < p[:, 1]) & (np.abs(fb - 0.5) < 0.5 * p[:, 3]) & (b > p[:, 4]) & (b < p[:, 5])
                shop = (p[:, 6] > 0) & (b > 0.35) & (b < np.minimum(p[:, 4] - 0.5, 2.8)) & (
                    (a / 2.7 - np.floor(a / 2.7)) < 0.72
                )
                idx = np.flatnonzero(cand)
                flat_detail = detail.reshape(-1)
                flat_detail[idx[inside]] = D_WINDOW
                flat_detail[idx[shop & ~inside]] = D_SHOP
                # a stable random number per window cell (hash of the cell indices and the part)
                ia = np.floor(ua).astype(np.int64)
                ib = np.floor(ub).astype(np.int64)
                hsh = (ia * 73856093) ^ (ib * 19349663) ^ (prim[cand].astype(np.int64) * 83492791)
                hsh = (hsh ^ (hsh >> 13)) * 1274126177
                cell.reshape(-1)[idx] = ((hsh >> 8) & 1023).astype(np.float32) / 1024.0

        return Layout(
            camera=cam,
            labels=prim_label[prim],
            prim=prim,
            detail=detail,
            depth=depth,
            coord_a=coord_a,
            coord_b=coord_b,
            cell=cell,
            prim_label=prim_label,
            prim_obj=np.asarray(objs, dtype=np.int32),
            prim_face=np.asarray(faces, dtype=np.uint8),
            obj_label=np.asarray(self.obj_label, dtype=np.uint8),
            casters=self.casters,
        )


# ------------------------------------------------------------------------------------------------ layers
L_GROUND, L_GROUND_TOP, L_FAR, L_FACADE, L_SIDE_STRUCT, L_OBJECT, L_EGO = range(7)


def poisson(rng: np.random.Generator, mean: float) -> int:
    return int(rng.poisson(max(mean, 0.0)))


def log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


class Street:
    """The road geometry of one scene (lateral positions in metres)."""

    def __init__(self, rng: np.random.Generator):
        self.lane = 3.2
        self.n_lanes = int(rng.choice([1, 2, 3, 4], p=[0.1, 0.5, 0.15, 0.25]))
        k = int(rng.integers(0, self.n_lanes))  # the camera's lane
        self.xl = -self.lane * (k + 0.5) + float(rng.normal(0, 0.3))
        self.xr = self.xl + self.lane * self.n_lanes
        self.sw_l = float(rng.uniform(1.5, 5.0))
        self.sw_r = float(rng.uniform(1.5, 5.0))
        self.out_l = self.xl - self.sw_l  # sidewalk outer edges
        self.out_r = self.xr + self.sw_r
        self.verge_l = 0.0 if rng.random() < 0.5 else float(rng.uniform(1.0, 6.0))
        self.verge_r = 0.0 if rng.random() < 0.5 else float(rng.uniform(1.0, 6.0))
        self.fac_l = self.out_l - self.verge_l  # facade lines
        self.fac_r = self.out_r + self.verge_r
        self.camera_lane = k

    def lane_center(self, i: int) -> float:
        return self.xl + self.lane * (i + 0.5)

    def sidewalk_x(self, rng: np.random.Generator, side: int, margin: float = 0.4) -> float:
        margin = min(margin, 0.45 * (self.sw_l if side < 0 else self.sw_r))
        if side < 0:
            return float(rng.uniform(self.out_l + margin, self.xl - margin))
        return float(rng.uniform(self.xr + margin, self.out_r - margin))


