"""The objects of a street scene: trees, poles with signs and lights, vehicles, trains, people, riders on
bicycles and motorcycles, street furniture and the ego-vehicle hood. Each is drawn as flat parts in front
(Z = const) or side (X = const) planes; see `scene`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .scene import (
    BICYCLE,
    BUS,
    CAR,
    CARAVAN,
    D_GLASS,
    D_HEAD,
    D_LAMP_AMBER,
    D_LAMP_GREEN,
    D_LAMP_RED,
    D_PLATE,
    D_SECOND,
    D_SHADOW,
    D_SKIN,
    D_TAIL,
    D_TRUNK,
    D_TYRE,
    D_WHEEL_IN,
    DYNAMIC,
    EGO,
    F_FLAT,
    F_SIDE_LEFT,
    F_SIDE_RIGHT,
    L_EGO,
    L_GROUND_TOP,
    L_OBJECT,
    LIGHT,
    MOTORCYCLE,
    P_FRONT,
    P_GROUND,
    P_SIDE,
    PERSON,
    POLE,
    POLEGROUP,
    RAIL,
    RIDER,
    SIGN,
    STATIC,
    TRAILER,
    TRAIN,
    TRUCK,
    VEGETATION,
    Z_FAR,
    Builder,
    ShadowCaster,
    Street,
    log_uniform,
    poisson,
    unit_circle,
)

if TYPE_CHECKING:
    from .layout import LayoutProfile

# ------------------------------------------------------------------------------------------------ trees
def _tree(b: Builder, rng, x: float, z: float, scale: float = 1.0) -> None:
    g = b.group(L_OBJECT, z)
    o = b.new_obj(VEGETATION)
    trunk_h = float(rng.uniform(1.8, 3.5)) * scale
    r = float(rng.uniform(1.2, 2.6)) * scale
    b.part(g, b.front_rect(x - 0.15 * scale, x + 0.15 * scale, 0.0, trunk_h + r * 0.5, z), VEGETATION, o,
           detail=D_TRUNK, value=z)
    for _ in range(int(rng.integers(3, 6))):
        cx = x + float(rng.uniform(-0.6, 0.6)) * r
        cy = trunk_h + r * float(rng.uniform(0.6, 1.4))
        rr = r * float(rng.uniform(0.55, 0.9))
        b.part(g, b.front_ellipse(cx, cy, rr, rr * float(rng.uniform(0.8, 1.1)), z), VEGETATION, o, value=z)
    b.casters.append(ShadowCaster("blob", x, z, z, r))


def trees(b: Builder, rng, p: LayoutProfile, st: Street, inter) -> None:
    for side in (-1, 1):
        if rng.random() < p.tree_rows:
            sw = st.sw_l if side < 0 else st.sw_r
            out = st.out_l if side < 0 else st.out_r
            x = out - side * min(0.8, 0.3 * sw) if sw > 2.0 else out + side * 0.8
            z = float(rng.uniform(3.0, 14.0))
            spacing = float(rng.uniform(7.0, 15.0))
            while z < 90.0:
                if not (inter is not None and inter[0] - 2.0 < z < inter[1] + 2.0) and rng.random() < 0.85:
                    _tree(b, rng, x + float(rng.normal(0, 0.15)), z)
                z += spacing * float(rng.uniform(0.8, 1.2))
    for _ in range(poisson(rng, 0.5)):  # single trees in the verge
        side = -1 if rng.random() < 0.5 else 1
        x = (st.out_l - float(rng.uniform(0.5, 4.0))) if side < 0 else (st.out_r + float(rng.uniform(0.5, 4.0)))
        _tree(b, rng, x, log_uniform(rng, 5.0, 60.0), scale=float(rng.uniform(0.8, 1.5)))


# ------------------------------------------------------------------------------------------------ poles
def _sign(b: Builder, g, rng, x: float, y: float, z: float) -> None:
    o = b.new_obj(SIGN)
    kind = rng.random()
    s = float(rng.uniform(0.28, 0.4))
    if kind < 0.4:  # round
        b.part(g, b.front_ellipse(x, y, s, s, z, n=12), SIGN, o, value=z)
        b.part(g, b.front_ellipse(x, y, s * 0.72, s * 0.72, z, n=12), SIGN, o, detail=D_SECOND, value=z)
    elif kind < 0.65:  # triangle
        pts = [(x - s * 1.1, y - s * 0.7), (x + s * 1.1, y - s * 0.7), (x, y + s * 1.1)]
        if rng.random() < 0.3:
            pts = [(x - s * 1.1, y + s * 0.7), (x + s * 1.1, y + s * 0.7), (x, y - s * 1.1)]
        b.part(g, b.front(pts, z), SIGN, o, value=z)
        cx, cy = x, y - 0.03
        b.part(g, b.front([(cx + 0.55 * (px - cx), cy + 0.55 * (py - cy)) for px, py in pts], z), SIGN, o,
               detail=D_SECOND, value=z)
    elif kind < 0.9:  # rectangle
        w, hh = s * float(rng.uniform(1.0, 2.2)), s * float(rng.uniform(0.8, 1.2))
        b.part(g, b.front_rect(x - w, x + w, y - hh, y + hh, z), SIGN, o, value=z)
        b.part(g, b.front_rect(x - 0.7 * w, x + 0.7 * w, y - 0.6 * hh, y + 0.6 * hh, z), SIGN, o,
               detail=D_SECOND, value=z)
    else:  # octagon
        pts = [(x + s * math.cos(math.pi / 8 + i * math.pi / 4), y + s * math.sin(math.pi / 8 + i * math.pi / 4))
               for i in range(8)]
        b.part(g, b.front(pts, z), SIGN, o, value=z)


def _light(b: Builder, g, rng, x: float, y_top: float, z: float) -> None:
    o = b.new_obj(LIGHT)
    w, hh = 0.17, float(rng.uniform(0.45, 0.55))
    b.part(g, b.front_rect(x - w, x + w, y_top - 2 * hh, y_top, z), LIGHT, o, value=z)
    lit = int(rng.integers(0, 3))
    codes = (D_LAMP_RED, D_LAMP_AMBER, D_LAMP_GREEN)
    for i in range(3):
        yc = y_top - hh * (0.36 + 0.64 * i)
        code = codes[i] if i == lit else D_TYRE
        b.part(g, b.front_ellipse(x, yc, 0.1, 0.1, z, n=8), LIGHT, o, detail=code, value=z)


def _pole_group(b: Builder, rng, x: float, z: float, kind: str, side: int, st: Street) -> None:
    g = b.group(L_OBJECT, z)
    label = POLEGROUP if rng.random() < 0.04 else POLE
    o = b.new_obj(label)
    if kind == "lamp":
        hgt = float(rng.uniform(6.0, 9.0))
        b.part(g, b.front_rect(x - 0.08, x + 0.08, 0.0, hgt, z), label, o, value=z)
        arm = -side * float(rng.uniform(1.0, 2.5))
        b.part(g, b.front_bar(x, hgt - 0.05, x + arm, hgt + 0.3, 0.08, z), label, o, value=z)
        b.part(g, b.front_rect(min(x + arm, x + arm - side * 0.5), max(x + arm, x + arm - side * 0.5), hgt + 0.1,
                               hgt + 0.35, z), label, o, detail=D_HEAD, value=z)
    elif kind == "sign":
        hgt = float(rng.uniform(2.3, 3.3))
        b.part(g, b.front_rect(x - 0.04, x + 0.04, 0.0, hgt, z), label, o, value=z)
        _sign(b, g, rng, x, hgt, z)
        if rng.random() < 0.3:
            _sign(b, g, rng, x, hgt - 0.8, z)
    elif kind == "light":
        if rng.random() < 0.45:  # over the road on an arm
            hgt = float(rng.uniform(5.5, 7.0))
            b.part(g, b.front_rect(x - 0.1, x + 0.1, 0.0, hgt, z), label, o, value=z)
            reach = -side * float(rng.uniform(3.0, 7.0))
            b.part(g, b.front_bar(x, hgt - 0.15, x + reach, hgt - 0.15, 0.12, z), label, o, value=z)
            _light(b, g, rng, x + reach * 0.8, hgt - 0.15, z)
            if rng.random() < 0.5:
                _light(b, g, rng, x + reach * 0.45, hgt - 0.15, z)
        else:
            hgt = float(rng.uniform(2.8, 4.0))
            b.part(g, b.front_rect(x - 0.06, x + 0.06, 0.0, hgt, z), label, o, value=z)
            _light(b, g, rng, x, hgt + 0.9, z)
        if rng.random() < 0.4:
            _sign(b, g, rng, x, float(rng.uniform(2.0, 2.6)), z)
    b.casters.append(ShadowCaster("blob", x, z, z, 0.3))


def poles(b: Builder, rng, p: LayoutProfile, st: Street, inter) -> None:
    curb = {-1: st.xl - 0.45, 1: st.xr + 0.45}
    for side in (-1, 1):  # street lamps
        if rng.random() < 0.55 * p.poles:
            z = float(rng.uniform(5.0, 25.0))
            spacing = float(rng.uniform(18.0, 32.0))
            while z < 120.0:
                _pole_group(b, rng, curb[side], z, "lamp", side, st)
                z += spacing
    for _ in range(poisson(rng, 1.6 * p.poles)):
        side = -1 if rng.random() < 0.5 else 1
        _pole_group(b, rng, curb[side] + side * float(rng.uniform(0.0, 0.5)), log_uniform(rng, 5.0, 60.0),
                    "sign", side, st)
    n_lights = poisson(rng, 0.6 * p.poles)
    for _ in range(n_lights):
        side = -1 if rng.random() < 0.5 else 1
        _pole_group(b, rng, curb[side], log_uniform(rng, 6.0, 60.0), "light", side, st)
    if inter is not None:
        for side in (-1, 1):
            if rng.random() < 0.8:
                _pole_group(b, rng, curb[side], inter[0] - 1.0, "light", side, st)


# ------------------------------------------------------------------------------------------------ vehicles
_VEHICLE_DIMS = {  # width, height, length ranges
    CAR: ((1.65, 1.9), (1.35, 1.6), (3.9, 4.7)),
    TRUCK: ((2.3, 2.5), (2.9, 3.8), (6.5, 10.0)),
    BUS: ((2.45, 2.55), (3.0, 3.3), (11.0, 13.0)),
    CARAVAN: ((2.1, 2.3), (2.4, 2.8), (5.0, 7.0)),
    TRAILER: ((2.2, 2.5), (2.0, 3.5), (5.0, 9.0)),
    TRAIN: ((2.4, 2.65), (3.3, 3.7), (25.0, 40.0)),
}


def _vehicle(b: Builder, rng, label: int, xc: float, z: float, facing_us: bool) -> None:
    (w0, w1), (h0, h1), (l0, l1) = _VEHICLE_DIMS[label]
    w, hv, ln = float(rng.uniform(w0, w1)), float(rng.uniform(h0, h1)), float(rng.uniform(l0, l1))
    g = b.group(L_OBJECT, z)
    o = b.new_obj(label)
    x0, x1 = xc - w / 2, xc + w / 2
    clear = 0.18 if label == CAR else 0.35
    car = label == CAR
    # contact shadow on the ground
    b.detail(g, b.ground([(x0 - 0.1, z - 0.3), (x1 + 0.1, z - 0.3), (x1 + 0.1, z + ln), (x0 - 0.1, z + ln)]),
             D_SHADOW)
    # the side face that faces the camera, if any
    side_x = x1 if x1 < -0.2 else (x0 if x0 > 0.2 else None)
    if side_x is not None:
        face = F_SIDE_LEFT if side_x < 0 else F_SIDE_RIGHT
        if car:
            belt = 0.55 * hv + 0.1
            prof = [(z, clear), (z + ln, clear), (z + ln, belt), (z + ln - 0.9, belt + 0.05), (z + ln - 1.4, hv),
                    (z + 1.0, hv), (z + 0.4, belt + 0.05), (z, belt)]
        elif label == TRUCK:
            cab = min(2.2, 0.35 * ln)
            prof = [(z, clear), (z + ln, clear), (z + ln, 0.75 * hv), (z + ln - 0.3, 0.8 * hv), (z + ln - cab, 0.8 * hv),
                    (z + ln - cab, hv), (z, hv)]
        else:
            prof = [(z, clear), (z + ln, clear), (z + ln, hv), (z, hv)]
        b.part(g, b.side(side_x, prof), label, o, face=face, plane=P_SIDE, value=side_x)
        if car:
            b.detail(g, b.side(side_x, [(z + 0.6, belt + 0.12), (z + ln - 1.0, belt + 0.12), (z + ln - 1.5, hv - 0.08),
                                        (z + 1.1, hv - 0.08)]), D_GLASS)
        elif label in (BUS, TRAIN, CARAVAN):
            b.detail(g, b.side(side_x, [(z + 0.8, 0.45 * hv), (z + ln - 0.5, 0.45 * hv), (z + ln - 0.5, 0.8 * hv),
                                        (z + 0.8, 0.8 * hv)]), D_GLASS)
        r = 0.33 if car else 0.5
        for wz in (z + 0.8 + r, z + ln - 0.8 - r) if label != TRAIN else ():
            pts = [(wz + r * u, r + r * v) for u, v in unit_circle(10)]
            b.part(g, b.side(side_x, pts), label, o, detail=D_TYRE, face=face, plane=P_SIDE, value=side_x)
    # wheels under the rear/front face
    if label != TRAIN:
        for wx0 in (x0 + 0.08, x1 - 0.33):
            b.part(g, b.front_rect(wx0, wx0 + 0.25, 0.0, clear + 0.1, z + 0.4), label, o, detail=D_TYRE, value=z + 0.4)
    # the rear (or front) face
    if car:
        belt = 0.55 * hv + 0.1
        b.part(g, b.front_rect(x0, x1, clear, belt, z), label, o, value=z)
        cab = [(x0 + 0.08, belt), (x1 - 0.08, belt), (x1 - 0.25, hv), (x0 + 0.25, hv)]
        b.part(g, b.front(cab, z), label, o, value=z)
        b.detail(g, b.front([(x0 + 0.2, belt + 0.06), (x1 - 0.2, belt + 0.06), (x1 - 0.32, hv - 0.08),
                             (x0 + 0.32, hv - 0.08)], z), D_GLASS)
        lamp = D_HEAD if facing_us else D_TAIL
        for lx in (x0 + 0.05, x1 - 0.3):
            b.detail(g, b.front_rect(lx, lx + 0.25, belt - 0.2, belt - 0.05, z), lamp)
        b.detail(g, b.front_rect(xc - 0.26, xc + 0.26, clear + 0.12, clear + 0.24, z), D_PLATE)
    else:
        b.part(g, b.front_rect(x0, x1, clear, hv, z), label, o, value=z)
        if label in (BUS, TRAIN) or (facing_us and label in (TRUCK, CARAVAN)):
            b.detail(g, b.front_rect(x0 + 0.15, x1 - 0.15, 0.55 * hv, 0.88 * hv, z), D_GLASS)
        lamp = D_HEAD if facing_us else D_TAIL
        for lx in (x0 + 0.05, x1 - 0.3):
            b.detail(g, b.front_rect(lx, lx + 0.25, clear + 0.2, clear + 0.4, z), lamp)
        if label == TRAIN:  # pantograph
            b.part(g, b.front_bar(xc - 0.5, hv, xc + 0.2, hv + 0.8, 0.05, z + 3.0), label, o, value=z + 3.0)
            b.part(g, b.front_bar(xc - 0.6, hv + 0.8, xc + 0.6, hv + 0.8, 0.05, z + 3.0), label, o, value=z + 3.0)


def vehicles(b: Builder, rng, p: LayoutProfile, st: Street) -> dict[int, list[tuple[float, float]]]:
    occupied: dict[int, list[tuple[float, float]]] = {i: [] for i in range(st.n_lanes)}

    def free(lane: int, z0: float, z1: float) -> bool:
        return all(z1 + 1.5 < a or z0 > b_ + 1.5 for a, b_ in occupied[lane])

    todo = [CAR] * poisson(rng, p.cars) + [TRUCK] * poisson(rng, p.trucks) + [BUS] * poisson(rng, p.buses)
    for _ in range(poisson(rng, p.rare_vehicles)):
        todo.append(CARAVAN if rng.random() < 0.5 else TRAILER)
    for label in todo:
        lane = int(rng.integers(0, st.n_lanes))
        z = log_uniform(rng, 5.5 if lane != st.camera_lane else 7.0, 90.0)
        ln = _VEHICLE_DIMS[label][2][1]
        if not free(lane, z, z + ln):
            continue
        occupied[lane].append((z, z + ln))
        facing = lane < st.camera_lane and st.n_lanes > 1 and rng.random() < 0.8
        _vehicle(b, rng, label, st.lane_center(lane) + float(rng.normal(0, 0.25)), z, facing)
    for side in (-1, 1):  # parked cars at the road edge
        if rng.random() < p.parked_rows:
            x = (st.xl + 1.1) if side < 0 else (st.xr - 1.1)
            z = float(rng.uniform(3.5, 12.0))
            for _ in range(int(rng.integers(2, 7))):
                if rng.random() < 0.8:
                    label = CAR if rng.random() < 0.93 else int(rng.choice([TRUCK, CARAVAN, TRAILER]))
                    _vehicle(b, rng, label, x + float(rng.normal(0, 0.1)), z, False)
                z += float(rng.uniform(5.0, 8.0))
    return occupied


def train(b: Builder, rng, p: LayoutProfile, st: Street, inter) -> None:
    if rng.random() >= p.train:
        return
    if inter is not None or rng.random() < 0.5:
        # a tram crossing the scene on its own rails, seen from the side
        zc = inter[0] + 0.5 * (inter[1] - inter[0]) if inter is not None else float(rng.uniform(20.0, 60.0))
        g = b.group(L_GROUND_TOP, zc)
        o = b.new_obj(RAIL)
        b.part(g, b.ground([(-400, zc - 1.0), (400, zc - 1.0), (400, zc + 1.0), (-400, zc + 1.0)]), RAIL, o,
               face=F_FLAT, plane=P_GROUND)
        gt = b.group(L_OBJECT, zc)
        o = b.new_obj(TRAIN)
        x0 = float(rng.uniform(-40.0, 5.0))
        x1 = x0 + float(rng.uniform(25.0, 60.0))
        hv = float(rng.uniform(3.3, 3.8))
        b.part(gt, b.front_rect(x0, x1, 0.4, hv, zc), TRAIN, o, value=zc)
        b.detail(gt, b.front_rect(x0 + 0.5, x1 - 0.5, 1.4, 2.6, zc), D_GLASS)
        x = x0 + float(rng.uniform(4.0, 9.0))
        while x < x1 - 1.0:  # doors and pillars between the windows
            b.part(gt, b.front_rect(x, x + 0.25, 1.3, 2.7, zc), TRAIN, o, value=zc)
            x += float(rng.uniform(2.0, 4.0))
        b.part(gt, b.front_bar(0.5 * (x0 + x1), hv, 0.5 * (x0 + x1) + 1.0, hv + 0.9, 0.06, zc), TRAIN, o, value=zc)
    else:
        lane = int(rng.integers(0, st.n_lanes))
        xc = st.lane_center(lane)
        g = b.group(L_GROUND_TOP, Z_FAR)
        o = b.new_obj(RAIL)
        b.part(g, b.ground([(xc - 0.8, 2.0), (xc + 0.8, 2.0), (xc + 0.8, 400), (xc - 0.8, 400)]), RAIL, o,
               face=F_FLAT, plane=P_GROUND)
        _vehicle(b, rng, TRAIN, xc, log_uniform(rng, 12.0, 70.0), lane < st.camera_lane)


# ------------------------------------------------------------------------------------------------ people
def _person(b: Builder, g, rng, label: int, x: float, z: float, hp: float | None = None) -> None:
    o = b.new_obj(label)
    hp = hp or float(rng.uniform(1.55, 1.95))
    stride = float(rng.uniform(0.0, 0.35)) * hp
    sh = 0.12 * hp  # half shoulder width
    hip_y, sh_y = 0.5 * hp, 0.82 * hp
    leg_w = 0.075 * hp
    for sgn in (-1, 1):
        b.part(g, b.front([(x + sgn * 0.02 * hp, hip_y), (x + sgn * (0.02 * hp + leg_w * 1.3), hip_y),
                           (x + sgn * (stride / 2 + leg_w), 0.0), (x + sgn * stride / 2, 0.0)], z), label, o,
               detail=D_SECOND, value=z)
    swing = float(rng.uniform(-0.15, 0.15)) * hp
    for sgn in (-1, 1):
        b.part(g, b.front_bar(x + sgn * (sh - 0.02 * hp), sh_y - 0.02 * hp, x + sgn * (sh + 0.01 * hp) + sgn * swing * 0.3,
                              hip_y - 0.02 * hp, 0.055 * hp, z), label, o, value=z)
    b.part(g, b.front([(x - sh, sh_y), (x + sh, sh_y), (x + 0.09 * hp, hip_y - 0.03 * hp),
                       (x - 0.09 * hp, hip_y - 0.03 * hp)], z), label, o, value=z)
    b.part(g, b.front_rect(x - 0.025 * hp, x + 0.025 * hp, sh_y - 0.01, sh_y + 0.05 * hp, z), label, o,
           detail=D_SKIN, value=z)
    b.part(g, b.front_ellipse(x, hp - 0.065 * hp, 0.05 * hp, 0.066 * hp, z, n=10), label, o, detail=D_SKIN, value=z)
    if rng.random() < 0.25:  # a bag
        bx = x + (sh + 0.02 * hp) * (1 if rng.random() < 0.5 else -1)
        b.part(g, b.front_rect(bx - 0.07 * hp, bx + 0.07 * hp, hip_y - 0.05 * hp, hip_y + 0.12 * hp, z), label, o,
               detail=D_SECOND, value=z)


def people(b: Builder, rng, p: LayoutProfile, st: Street, inter) -> None:
    n = poisson(rng, p.persons)
    for _ in range(n):
        side = -1 if rng.random() < 0.5 else 1
        z = log_uniform(rng, 4.0, 50.0)
        x = st.sidewalk_x(rng, side)
        members = 1 + (poisson(rng, 1.5) if rng.random() < p.person_groups else 0)
        for m in range(members):
            zz = z + (float(rng.uniform(-1.0, 1.5)) if m else 0.0)
            xx = x + (float(rng.uniform(-0.9, 0.9)) if m else 0.0)
            g = b.group(L_OBJECT, zz)
            hp = float(rng.uniform(1.0, 1.3)) if rng.random() < 0.08 else None
            _person(b, g, rng, PERSON, xx, max(zz, 3.0), hp)
    if inter is not None and rng.random() < 0.6:  # pedestrians on the zebra crossing
        for _ in range(int(rng.integers(1, 5))):
            zz = inter[0] - float(rng.uniform(1.0, 3.5))
            g = b.group(L_OBJECT, zz)
            _person(b, g, rng, PERSON, float(rng.uniform(st.xl, st.xr)), zz)


def _bike_side(b: Builder, g, rng, label: int, x: float, z: float, facing: int, o: int) -> tuple[float, float]:
    """A bicycle or motorcycle seen from the side, centred at ``x``; returns (seat x, seat y)."""
    moto = label == MOTORCYCLE
    r = 0.32 if moto else 0.34
    base = 0.72 if moto else 0.52
    xr, xf = x - facing * base, x + facing * base
    for wx in (xr, xf):
        b.part(g, b.front_ellipse(wx, r, r, r, z, n=12), label, o, detail=D_TYRE, value=z)
        b.part(g, b.front_ellipse(wx, r, r * 0.72, r * 0.72, z, n=12), label, o, detail=D_WHEEL_IN, value=z)
    seat = (x - facing * 0.18, 0.95 if not moto else 0.85)
    bar = (x + facing * (0.42 if not moto else 0.55), 1.02)
    if moto:
        body = [(xr + facing * 0.2, 0.45), (xf - facing * 0.25, 0.4), (xf - facing * 0.1, 0.85),
                (x + facing * 0.2, 0.95), (x - facing * 0.45, 0.88), (xr - facing * 0.05, 0.7)]
        b.part(g, b.front(body, z), label, o, value=z)
        b.part(g, b.front_bar(xf, r, bar[0], bar[1], 0.07, z), label, o, value=z)
        b.detail(g, b.front_ellipse(xf - facing * 0.05, 0.85, 0.07, 0.07, z, n=6), D_HEAD)
    else:
        pedal = (x, 0.3)
        for a, c in ((xr, seat), (seat, pedal), (pedal, (xr, r)), (seat, bar), (bar, (xf, r)), (pedal, bar)):
            a = a if isinstance(a, tuple) else (a, r)
            b.part(g, b.front_bar(a[0], a[1], c[0], c[1], 0.045, z), label, o, value=z)
        b.part(g, b.front_bar(seat[0] - 0.1, seat[1] + 0.03, seat[0] + 0.1, seat[1] + 0.03, 0.05, z), label, o,
               detail=D_TYRE, value=z)
    b.part(g, b.front_bar(bar[0] - facing * 0.05, bar[1], bar[0] + facing * 0.08, bar[1] + 0.08, 0.05, z), label, o,
           value=z)
    return seat, bar


def _rider_side(b: Builder, g, rng, x_seat: float, y_seat: float, bar: tuple[float, float], z: float, facing: int):
    o = b.new_obj(RIDER)
    hp = float(rng.uniform(1.6, 1.9))
    sh = (x_seat + facing * 0.22 * hp * 0.5, y_seat + 0.34 * hp)
    b.part(g, b.front_bar(x_seat, y_seat + 0.05, sh[0], sh[1], 0.17 * hp, z), RIDER, o, value=z)
    b.part(g, b.front_bar(x_seat + facing * 0.05, y_seat + 0.05, x_seat + facing * 0.3, y_seat - 0.15, 0.09 * hp, z),
           RIDER, o, detail=D_SECOND, value=z)
    b.part(g, b.front_bar(x_seat + facing * 0.3, y_seat - 0.15, x_seat + facing * 0.22, 0.25, 0.07 * hp, z),
           RIDER, o, detail=D_SECOND, value=z)
    b.part(g, b.front_bar(sh[0], sh[1] - 0.03, bar[0], bar[1] + 0.03, 0.05 * hp, z), RIDER, o, value=z)
    b.part(g, b.front_ellipse(sh[0] + facing * 0.04, sh[1] + 0.12 * hp * 0.7 + 0.02, 0.05 * hp, 0.065 * hp, z, n=10),
           RIDER, o, detail=D_SKIN if rng.random() < 0.5 else D_SECOND, value=z)


def _rider_rear(b: Builder, g, rng, label: int, x: float, z: float) -> None:
    """A rider on a bicycle or motorcycle seen from behind (riding in a lane)."""
    moto = label == MOTORCYCLE
    ob = b.new_obj(label)
    hw = 0.06 if not moto else 0.09
    b.part(g, b.front_rect(x - hw, x + hw, 0.0, 0.68, z), label, ob, detail=D_TYRE, value=z)
    if moto:
        b.part(g, b.front([(x - 0.25, 0.35), (x + 0.25, 0.35), (x + 0.3, 0.85), (x - 0.3, 0.85)], z), label, ob,
               value=z)
        b.detail(g, b.front_rect(x - 0.08, x + 0.08, 0.6, 0.7, z), D_TAIL)
    else:
        b.part(g, b.front_bar(x - 0.3, 1.0, x + 0.3, 1.0, 0.04, z), label, ob, value=z)
        b.part(g, b.front_rect(x - 0.03, x + 0.03, 0.3, 1.0, z), label, ob, value=z)
    o = b.new_obj(RIDER)
    hp = float(rng.uniform(1.6, 1.9))
    y0 = 0.85 if moto else 0.95
    for sgn in (-1, 1):
        b.part(g, b.front_bar(x + sgn * 0.1, y0, x + sgn * 0.16, 0.3, 0.07 * hp, z), RIDER, o, detail=D_SECOND,
               value=z)
    b.part(g, b.front([(x - 0.11 * hp, y0 + 0.33 * hp), (x + 0.11 * hp, y0 + 0.33 * hp), (x + 0.09 * hp, y0),
                       (x - 0.09 * hp, y0)], z), RIDER, o, value=z)
    b.part(g, b.front_ellipse(x, y0 + 0.33 * hp + 0.07 * hp, 0.055 * hp, 0.068 * hp, z, n=10), RIDER, o,
           detail=D_SKIN if not moto else D_SECOND, value=z)


def riders(b: Builder, rng, p: LayoutProfile, st: Street, lanes) -> None:
    for _ in range(poisson(rng, p.riders)):
        label = BICYCLE if rng.random() < 0.6 else MOTORCYCLE
        z = log_uniform(rng, 5.0, 45.0)
        g = b.group(L_OBJECT, z)
        if rng.random() < 0.5:  # in the road, seen from behind
            side = -1 if rng.random() < 0.5 else 1
            x = (st.xl + 0.8) if side < 0 else (st.xr - 0.8)
            if st.n_lanes > 1 and rng.random() < 0.5:
                x = st.lane_center(int(rng.integers(0, st.n_lanes)))
            _rider_rear(b, g, rng, label, x + float(rng.normal(0, 0.2)), z)
        else:  # crossing or turning, seen from the side
            x = float(rng.uniform(st.xl - 2.0, st.xr + 2.0))
            facing = -1 if rng.random() < 0.5 else 1
            ob = b.new_obj(label)
            seat, bar = _bike_side(b, g, rng, label, x, z, facing, ob)
            _rider_side(b, g, rng, seat[0], seat[1], bar, z, facing)
    for _ in range(poisson(rng, p.parked_bikes)):  # parked, without riders
        label = BICYCLE if rng.random() < 0.7 else MOTORCYCLE
        side = -1 if rng.random() < 0.5 else 1
        z = log_uniform(rng, 4.0, 35.0)
        g = b.group(L_OBJECT, z)
        for k in range(1 + (poisson(rng, 1.0) if label == BICYCLE else 0)):
            ob = b.new_obj(label)
            x = st.sidewalk_x(rng, side, margin=0.9)
            _bike_side(b, g, rng, label, x + 0.3 * k, z + 0.6 * k, -1 if rng.random() < 0.5 else 1, ob)


# ------------------------------------------------------------------------------------------------ furniture
def street_furniture(b: Builder, rng, p: LayoutProfile, st: Street) -> None:
    for _ in range(poisson(rng, p.static)):
        side = -1 if rng.random() < 0.5 else 1
        z = log_uniform(rng, 4.0, 50.0)
        x = st.sidewalk_x(rng, side, margin=0.3)
        g = b.group(L_OBJECT, z)
        kind = rng.random()
        if kind < 0.12:  # a dynamic object: a handcart / stroller
            o = b.new_obj(DYNAMIC)
            b.part(g, b.front_rect(x - 0.35, x + 0.35, 0.25, 0.9, z), DYNAMIC, o, value=z)
            for wx in (x - 0.25, x + 0.25):
                b.part(g, b.front_ellipse(wx, 0.12, 0.12, 0.12, z, n=8), DYNAMIC, o, detail=D_TYRE, value=z)
            continue
        o = b.new_obj(STATIC)
        if kind < 0.45:  # a bin / box
            w, hh = float(rng.uniform(0.4, 1.2)), float(rng.uniform(0.6, 1.4))
            b.part(g, b.front_rect(x - w / 2, x + w / 2, 0.0, hh, z), STATIC, o, value=z)
        elif kind < 0.7:  # bollards
            for k in range(int(rng.integers(2, 5))):
                b.part(g, b.front_rect(x - 0.07 + 0.8 * k * -side, x + 0.07 + 0.8 * k * -side, 0.0, 0.9, z), STATIC,
                       o, value=z)
        elif kind < 0.85:  # a bench
            b.part(g, b.front_rect(x - 0.9, x + 0.9, 0.42, 0.5, z), STATIC, o, value=z)
            b.part(g, b.front_rect(x - 0.9, x + 0.9, 0.6, 0.85, z), STATIC, o, value=z)
            for lx in (x - 0.8, x + 0.75):
                b.part(g, b.front_rect(lx, lx + 0.05, 0.0, 0.45, z), STATIC, o, value=z)
        else:  # an advertising column / kiosk
            b.part(g, b.front_rect(x - 0.6, x + 0.6, 0.0, float(rng.uniform(2.2, 3.0)), z), STATIC, o,
                   detail=D_SECOND, value=z)


def ego(b: Builder, rng) -> None:
    cam = b.cam
    W, H = cam.width, cam.height
    top = H * (1.0 - float(rng.uniform(0.06, 0.14)))
    bend = H * float(rng.uniform(0.03, 0.08))
    xs = np.linspace(-0.1 * W, 1.1 * W, 16)
    u = (xs - 0.5 * W) / (0.6 * W)
    pts = [(float(x), float(top + bend * uu * uu)) for x, uu in zip(xs, u, strict=True)]
    pts += [(1.1 * W, H + 2.0), (-0.1 * W, H + 2.0)]
    g = b.group(L_EGO, 0.0)
    o = b.new_obj(EGO)
    b.part(g, pts, EGO, o, face=F_FLAT, plane=P_FRONT, value=1.0)

