"""Layout statistics per domain (`LayoutProfile`) and the scene sampler: the street, its ground, the far
skyline, facades and side structures; the objects on the street come from `objects`.

See `scene` for the geometry (world coordinates, projection, parts and rasterisation).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from . import objects
from .scene import (
    BRIDGE,
    BUILDING,
    D_CURB,
    D_LANE,
    D_TRUNK,
    F_DARK,
    F_FLAT,
    F_SIDE_LEFT,
    F_SIDE_RIGHT,
    FENCE,
    GROUND,
    GUARD_RAIL,
    L_FACADE,
    L_FAR,
    L_GROUND,
    L_GROUND_TOP,
    L_SIDE_STRUCT,
    P_GROUND,
    P_SIDE,
    PARKING,
    ROAD,
    SIDEWALK,
    TERRAIN,
    UNLABELED,
    VEGETATION,
    WALL,
    Z_FAR,
    Z_NEAR,
    Builder,
    Camera,
    Layout,
    ShadowCaster,
    Street,
    log_uniform,
    poisson,
)


@dataclass(frozen=True)
class LayoutProfile:
    """Layout statistics of a domain: camera and how often each kind of object appears (Poisson means)."""

    horizon: float = 0.40  # mean horizon row, as a fraction of the image height
    horizon_jitter: float = 0.035
    cars: float = 2.2  # cars moving in lanes
    parked_rows: float = 0.45  # probability of a row of parked cars per road side
    trucks: float = 0.35
    buses: float = 0.25
    rare_vehicles: float = 0.12  # caravans and trailers (ignored ids)
    train: float = 0.10  # probability of a train (tram) in the scene
    persons: float = 2.0
    person_groups: float = 0.25
    riders: float = 0.55
    parked_bikes: float = 0.5
    building_density: float = 0.75  # probability that a stretch along the road is built up
    building_height: float = 12.0  # mean building height in metres
    skyline: float = 0.6  # probability of far buildings at the end of the street
    tree_rows: float = 0.45  # probability of a row of trees per side
    walls: float = 0.35
    fences: float = 0.35
    poles: float = 1.0  # scales street lamps, sign and light poles
    static: float = 1.2
    ego: float = 0.3  # probability of the ego-vehicle hood at the bottom
    intersection: float = 0.3

    @classmethod
    def blend(cls, a: LayoutProfile, b: LayoutProfile, t: float) -> LayoutProfile:
        """The profile a fraction ``t`` of the way from ``a`` to ``b``."""
        return cls(**{f.name: (1.0 - t) * getattr(a, f.name) + t * getattr(b, f.name) for f in fields(cls)})

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


#: The game-like source's layout, and the layout a target with a *strong* layout shift has: camera pitched
#: up (the horizon about 0.13 of the height lower, roughly a third more sky), many more people, cars and
#: ego-hood pixels, fewer and lower buildings — the kind of difference between GTA5 and Cityscapes.
SOURCE_PROFILE = LayoutProfile()
STRONG_TARGET_PROFILE = LayoutProfile(
    horizon=0.47,
    cars=4.5,
    parked_rows=0.8,
    trucks=0.2,
    buses=0.15,
    persons=6.5,
    person_groups=0.5,
    riders=1.2,
    parked_bikes=1.0,
    building_density=0.55,
    building_height=10.0,
    skyline=0.4,
    tree_rows=0.7,
    walls=0.2,
    fences=0.5,
    poles=1.4,
    ego=0.9,
    intersection=0.45,
)
LAYOUT_SHIFTS: dict[str, float] = {"none": 0.0, "mild": 0.4, "strong": 1.0}


def layout_profile(domain: str, layout_shift: str = "none") -> LayoutProfile:
    """The layout profile of ``domain`` ('source' or 'target') under a layout shift (none, mild, strong)."""
    if layout_shift not in LAYOUT_SHIFTS:
        raise ValueError(f"Unknown layout_shift {layout_shift!r}; choose one of {sorted(LAYOUT_SHIFTS)}.")
    if domain == "source":
        return SOURCE_PROFILE
    if domain != "target":
        raise ValueError(f"Unknown domain {domain!r}; choose 'source' or 'target'.")
    return LayoutProfile.blend(SOURCE_PROFILE, STRONG_TARGET_PROFILE, LAYOUT_SHIFTS[layout_shift])


def sample_layout(rng: np.random.Generator, size: tuple[int, int], profile: LayoutProfile = SOURCE_PROFILE) -> Layout:
    """Sample one street scene and rasterise it at ``size`` = (width, height)."""
    width, height = int(size[0]), int(size[1])
    p = profile
    horizon = float(np.clip(p.horizon + p.horizon_jitter * rng.standard_normal(), 0.15, 0.8))
    cam = Camera(
        width=width,
        height=height,
        f=width * float(rng.uniform(0.9, 1.1)),
        cx=width * (0.5 + 0.04 * float(rng.standard_normal())),
        cy=height * horizon,
        h=float(rng.uniform(1.3, 1.7)),
    )
    b = Builder(cam)
    st = Street(rng)
    # the intersection (a crossing road) and its Z range, kept free of buildings
    inter = None
    if rng.random() < p.intersection:
        z0 = float(rng.uniform(14.0, 45.0))
        inter = (z0, z0 + float(rng.uniform(8.0, 14.0)))

    _ground(b, rng, st, inter)
    _far(b, rng, p, st)
    _facades(b, rng, p, st, inter)
    _side_structures(b, rng, p, st, inter)
    objects.trees(b, rng, p, st, inter)
    objects.poles(b, rng, p, st, inter)
    lanes = objects.vehicles(b, rng, p, st)
    objects.train(b, rng, p, st, inter)
    objects.people(b, rng, p, st, inter)
    objects.riders(b, rng, p, st, lanes)
    objects.street_furniture(b, rng, p, st)
    if rng.random() < p.ego:
        objects.ego(b, rng)
    return b.render()


# ------------------------------------------------------------------------------------------------ ground
def _ground(b: Builder, rng, st: Street, inter) -> None:
    far = Z_FAR
    g = b.group(L_GROUND, far)
    for side, x_out in ((-1, st.out_l), (1, st.out_r)):
        base = int(rng.choice([TERRAIN, GROUND, SIDEWALK, TERRAIN], p=[0.35, 0.25, 0.25, 0.15]))
        obj = b.new_obj(base)
        xs = (-400.0, x_out) if side < 0 else (x_out, 400.0)
        b.part(g, b.ground([(xs[0], Z_NEAR), (xs[1], Z_NEAR), (xs[1], far), (xs[0], far)]), base, obj,
               face=F_FLAT, plane=P_GROUND)
        # patches of terrain / ground / parking on the verge
        for _ in range(poisson(rng, 1.2)):
            z0 = log_uniform(rng, 3.0, 60.0)
            z1 = z0 + float(rng.uniform(3.0, 20.0))
            lab = int(rng.choice([TERRAIN, GROUND, PARKING, TERRAIN], p=[0.4, 0.25, 0.15, 0.2]))
            xa = x_out + side * float(rng.uniform(0.0, 1.0))
            xb = xa + side * float(rng.uniform(1.5, 8.0))
            o = b.new_obj(lab)
            b.part(g, b.ground([(xa, z0), (xb, z0), (xb, z1), (xa, z1)]), lab, o, face=F_FLAT, plane=P_GROUND)
    # sidewalks, curbs, road
    for x0, x1, curb in ((st.out_l, st.xl, st.xl - 0.18), (st.xr, st.out_r, st.xr)):
        o = b.new_obj(SIDEWALK)
        b.part(g, b.ground([(x0, Z_NEAR), (x1, Z_NEAR), (x1, far), (x0, far)]), SIDEWALK, o, face=F_FLAT,
               plane=P_GROUND)
        b.detail(g, b.ground([(curb, Z_NEAR), (curb + 0.18, Z_NEAR), (curb + 0.18, 400), (curb, 400)]), D_CURB)
    road = b.new_obj(ROAD)
    b.part(g, b.ground([(st.xl, Z_NEAR), (st.xr, Z_NEAR), (st.xr, far), (st.xl, far)]), ROAD, road,
           face=F_FLAT, plane=P_GROUND)
    # terrain strip between road and sidewalk (a grass verge) sometimes
    for side in (-1, 1):
        if rng.random() < 0.15:
            x0 = st.xl - 0.2 if side < 0 else st.xr + 0.2
            x1 = x0 + side * float(rng.uniform(0.8, 1.8))
            z0 = float(rng.uniform(4.0, 15.0))
            z1 = z0 + float(rng.uniform(10.0, 60.0))
            o = b.new_obj(TERRAIN)
            b.part(g, b.ground([(x0, z0), (x1, z0), (x1, z1), (x0, z1)]), TERRAIN, o, face=F_FLAT, plane=P_GROUND)
    # parking bays along the road edge
    for side in (-1, 1):
        if rng.random() < 0.2:
            x0 = st.xl if side < 0 else st.xr
            x1 = x0 - side * 2.3
            z0 = float(rng.uniform(4.0, 20.0))
            z1 = z0 + float(rng.uniform(8.0, 40.0))
            o = b.new_obj(PARKING)
            b.part(g, b.ground([(x0, z0), (x1, z0), (x1, z1), (x0, z1)]), PARKING, o, face=F_FLAT, plane=P_GROUND)
    # lane markings (details of the road)
    gt = b.group(L_GROUND_TOP, far)
    dash, gap = float(rng.uniform(2.5, 4.0)), float(rng.uniform(5.0, 9.0))
    for i in range(1, st.n_lanes):
        xm = st.xl + st.lane * i
        z = float(rng.uniform(1.0, dash + gap))
        while z < 90.0:
            b.detail(gt, b.ground([(xm - 0.07, z), (xm + 0.07, z), (xm + 0.07, z + dash), (xm - 0.07, z + dash)]),
                     D_LANE)
            z += dash + gap
    if rng.random() < 0.6:
        for xm in (st.xl + 0.35, st.xr - 0.35):
            b.detail(gt, b.ground([(xm - 0.07, 1.0), (xm + 0.07, 1.0), (xm + 0.07, 200), (xm - 0.07, 200)]), D_LANE)
    if inter is not None:
        zc0, zc1 = inter
        # the crossing road, its sidewalks and a zebra crossing in front of it
        gi = b.group(L_GROUND_TOP, zc1)
        for za, zb, lab in ((zc0 - 2.5, zc0, SIDEWALK), (zc1, zc1 + 2.5, SIDEWALK), (zc0, zc1, ROAD)):
            for xa, xb in ((-400.0, st.xl), (st.xr, 400.0)):
                o = b.new_obj(lab)
                b.part(gi, b.ground([(xa, za), (xb, za), (xb, zb), (xa, zb)]), lab, o, face=F_FLAT, plane=P_GROUND)
        b.part(gi, b.ground([(st.xl, zc0), (st.xr, zc0), (st.xr, zc1), (st.xl, zc1)]), ROAD, road,
               face=F_FLAT, plane=P_GROUND)
        x = st.xl + 0.3
        while x < st.xr - 0.5:
            b.detail(gi, b.ground([(x, zc0 - 4.0), (x + 0.5, zc0 - 4.0), (x + 0.5, zc0 - 0.8), (x, zc0 - 0.8)]), D_LANE)
            x += 1.0


# ------------------------------------------------------------------------------------------------ far
def _far(b: Builder, rng, p: LayoutProfile, st: Street) -> None:
    if rng.random() < 0.35:  # unlabelled distant clutter at the end of the street
        z = float(rng.uniform(400.0, 900.0))
        g = b.group(L_FAR, z)
        o = b.new_obj(UNLABELED)
        b.part(g, b.front_rect(-z * 0.4, z * 0.4, 0.0, float(rng.uniform(3.0, 12.0)) * z / 300.0, z), UNLABELED, o,
               value=z)
    if rng.random() < p.skyline:
        x = -float(rng.uniform(120.0, 200.0))
        while x < 200.0:
            w = float(rng.uniform(12.0, 40.0))
            z = float(rng.uniform(150.0, 320.0))
            hgt = float(rng.uniform(0.6, 1.8)) * p.building_height * float(rng.uniform(1.0, 2.2))
            g = b.group(L_FAR, z)
            o = b.new_obj(BUILDING)
            wp = _window_params(rng, hgt)
            b.part(g, b.front_rect(x, x + w, 0.0, hgt, z), BUILDING, o, windows=wp, value=z)
            x += w + float(rng.uniform(-5.0, 8.0))
    if rng.random() < 0.3:  # a distant tree line
        z = float(rng.uniform(120.0, 250.0))
        g = b.group(L_FAR, z - 1.0)
        o = b.new_obj(VEGETATION)
        xs = np.linspace(-200, 200, 24)
        tops = 6.0 + 5.0 * rng.random(24)
        pts = [(-200.0, 0.0)] + [(float(x), float(t)) for x, t in zip(xs, tops, strict=True)] + [(200.0, 0.0)]
        b.part(g, b.front(pts, z), VEGETATION, o, value=z)
    if rng.random() < 0.06:  # a bridge over the road
        z = float(rng.uniform(40.0, 90.0))
        g = b.group(L_FAR, 0.5 * z)  # in front of the far buildings, behind the street's objects
        o = b.new_obj(BRIDGE)
        y0 = float(rng.uniform(5.0, 7.0))
        b.part(g, b.front_rect(-300, 300, y0, y0 + float(rng.uniform(1.2, 2.2)), z), BRIDGE, o, value=z)
        for xp in (st.xl - 1.0, st.xr + 1.0):
            b.part(g, b.front_rect(xp - 0.6, xp + 0.6, 0.0, y0, z), BRIDGE, o, value=z)


def _window_params(rng, hgt: float, shops: bool = False):
    """(period along, fill along, floor height, fill up, lowest window Y, highest, shops, offset) or None."""
    if rng.random() < 0.1:
        return None
    pa = float(rng.uniform(2.2, 4.0))
    ground_floor = float(rng.uniform(2.6, 4.0))
    return (
        pa,
        float(rng.uniform(0.3, 0.6)),
        float(rng.uniform(2.9, 3.6)),
        float(rng.uniform(0.35, 0.6)),
        ground_floor,
        hgt - 0.8,
        1.0 if shops and rng.random() < 0.45 else 0.0,
        float(rng.uniform(0.0, pa)),
    )


# ------------------------------------------------------------------------------------------------ facades
def _facades(b: Builder, rng, p: LayoutProfile, st: Street, inter) -> None:
    for side, x_line in ((-1, st.fac_l), (1, st.fac_r)):
        face = F_SIDE_LEFT if side < 0 else F_SIDE_RIGHT
        z = float(rng.uniform(1.0, 12.0))
        while z < 260.0:
            seg = float(rng.uniform(8.0, 30.0)) * (1.0 + z / 120.0)
            z0, z1 = z, z + seg
            if inter is not None and z1 > inter[0] - 2.5 and z0 < inter[1] + 2.5:
                z0, z1 = z0, inter[0] - 2.5
                z = inter[1] + 2.5 + float(rng.uniform(0.0, 6.0))
                if z1 - z0 < 3.0:
                    continue
            else:
                z = z1 + (float(rng.uniform(0.5, 6.0)) if rng.random() < 0.25 else 0.0)
            if rng.random() < p.building_density:
                hgt = max(4.0, float(rng.gamma(6.0, p.building_height / 6.0)))
                xf = x_line + side * (float(rng.uniform(0.0, 1.5)) if rng.random() < 0.5 else 0.0)
                g = b.group(L_FACADE, z0)
                o = b.new_obj(BUILDING)
                b.part(g, b.side(xf, [(z0, 0.0), (z1, 0.0), (z1, hgt), (z0, hgt)]), BUILDING, o, face=face,
                       plane=P_SIDE, value=xf, windows=_window_params(rng, hgt, shops=True))
                # the end wall facing the camera (visible above lower, nearer neighbours)
                b.part(g, b.front([(xf, 0.0), (xf + side * 25.0, 0.0), (xf + side * 25.0, hgt), (xf, hgt)], z0),
                       BUILDING, o, face=F_DARK, value=z0, windows=_window_params(rng, hgt))
                b.casters.append(ShadowCaster("facade", xf, z0, z1, hgt))
            elif rng.random() < 0.5:  # a gap with a mass of trees behind the sidewalk
                g = b.group(L_FACADE, z0)
                o = b.new_obj(VEGETATION)
                zc = 0.5 * (z0 + z1)
                for _ in range(int(rng.integers(2, 5))):
                    r = float(rng.uniform(2.5, 5.0))
                    xc = x_line + side * float(rng.uniform(1.0, 5.0))
                    zz = zc + float(rng.uniform(-0.4, 0.4)) * seg
                    yc = r + float(rng.uniform(1.0, 5.0))
                    b.part(g, b.front_ellipse(xc, yc, r, r * 0.9, max(zz, 2.0)), VEGETATION, o, value=max(zz, 2.0))
                    b.part(g, b.front_rect(xc - 0.5, xc + 0.5, 0.0, yc, max(zz, 2.0)), VEGETATION, o,
                           detail=D_TRUNK, value=max(zz, 2.0))


# ------------------------------------------------------------------------------------------------ walls, fences
def _side_structures(b: Builder, rng, p: LayoutProfile, st: Street, inter) -> None:
    for side, x_line in ((-1, st.out_l), (1, st.out_r)):
        face = F_SIDE_LEFT if side < 0 else F_SIDE_RIGHT
        z = float(rng.uniform(2.0, 15.0))
        while z < 120.0:
            seg = float(rng.uniform(6.0, 40.0))
            z0, z1 = z, z + seg
            z = z1 + float(rng.uniform(0.0, 20.0))
            if inter is not None and z1 > inter[0] - 2.5 and z0 < inter[1] + 2.5:
                continue
            u = rng.random()
            x = x_line + side * 0.15
            if u < p.walls * 0.5:
                hgt = float(rng.uniform(0.8, 2.6))
                g = b.group(L_SIDE_STRUCT, z0)
                o = b.new_obj(WALL)
                b.part(g, b.side(x, [(z0, 0.0), (z1, 0.0), (z1, hgt), (z0, hgt)]), WALL, o, face=face, plane=P_SIDE,
                       value=x)
                b.part(g, b.front_rect(min(x, x + side * 0.3), max(x, x + side * 0.3), 0.0, hgt, z0), WALL, o,
                       face=F_DARK, value=z0)
            elif u < (p.walls + p.fences) * 0.5:
                hgt = float(rng.uniform(0.9, 2.0))
                g = b.group(L_SIDE_STRUCT, z0)
                o = b.new_obj(FENCE)
                b.part(g, b.side(x, [(z0, 0.0), (z1, 0.0), (z1, hgt), (z0, hgt)]), FENCE, o, face=face, plane=P_SIDE,
                       value=x)
                b.part(g, b.front_rect(x - 0.06, x + 0.06, 0.0, hgt + 0.1, z0), FENCE, o, value=z0)
            elif u < (p.walls + p.fences) * 0.5 + 0.12:  # a hedge
                hgt = float(rng.uniform(0.7, 1.6))
                g = b.group(L_SIDE_STRUCT, z0)
                o = b.new_obj(VEGETATION)
                b.part(g, b.side(x, [(z0, 0.0), (z1, 0.0), (z1, hgt), (z0, hgt)]), VEGETATION, o, face=face,
                       plane=P_SIDE, value=x)
        if rng.random() < 0.12:  # a guard rail at the curb
            x = (st.xl - 0.3) if side < 0 else (st.xr + 0.3)
            z0 = float(rng.uniform(3.0, 10.0))
            z1 = z0 + float(rng.uniform(20.0, 80.0))
            g = b.group(L_SIDE_STRUCT + 0, z0 - 0.01)
            o = b.new_obj(GUARD_RAIL)
            b.part(g, b.side(x, [(z0, 0.45), (z1, 0.45), (z1, 0.8), (z0, 0.8)]), GUARD_RAIL, o, face=face,
                   plane=P_SIDE, value=x)
            zz = z0
            while zz < z1:
                b.part(g, b.front_rect(x - 0.05, x + 0.05, 0.0, 0.8, zz), GUARD_RAIL, o, value=zz)
                zz += 4.0


