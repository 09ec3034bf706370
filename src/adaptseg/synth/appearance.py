"""Appearance: the game-like source renderer and the camera-like target renderer of a `Layout`.

Both domains share one renderer, ``render(layout, rng, strengths)``. With every strength at 0 it is the
*source* renderer: saturated flat class colours with a little per-instance jitter, clean textures (window
grids, lane markings, sidewalk tiles, brick courses, fence lattices), fixed game lighting, crisp edges and
little noise. Each strength moves one aspect of the image towards the *camera-like* target:

==================  ==============================================================================
strength            what it does at 1 (0: the source's behaviour; values above 1 exaggerate)
==================  ==============================================================================
palette_shift       class colours move towards the target palette (other colours than the source's), per
                    image and per class by a random fraction U(0.35, 1) of the strength
palette_overlap     target class palettes overlap: colours pulled to their group's mean (road~sidewalk,
                    vegetation~terrain, car~truck~bus, building~wall~fence, person~rider), wider spread,
                    and a third of the instances take a sibling class's colour
instance_variation  per-instance colours drawn from class-specific mixtures (car paints, clothes,
                    facade colours ...) instead of one colour per class
class_variation     per image and per class: a random gain and tint (wet road, autumn trees, ...), log-normal
                    around 1 (so no shift of the mean colour), on whichever palette the class has
texture             source textures replaced by target ones: noise of class-specific frequencies,
                    siding stripes on facades, fine slats on fences, leaf noise, clouds, reflections
shadows             local sun shadows of facades, trees and off-screen objects over several classes
illumination        per image: sunny or overcast shading of facades, exposure, gamma, a smooth light field
color_cast          per image: white balance gains and a colour cast
haze                per image: haze colour and density, increasing with depth (strongest at the horizon)
vignetting          per image: radial fall-off with a random centre and strength
blur                per image: Gaussian blur of random radius
noise               per image: signal-dependent luminance and chroma sensor noise
jpeg                per image: JPEG re-encoding at a random quality
==================  ==============================================================================

Every random number is drawn whatever the strengths (strengths only scale them; the few draws that only a
non-zero strength needs come last), so a target rendered with all strengths at 0 is the source renderer's
image of the same layout, pixel for pixel.

Why per class, per image and local: one global colour transform would be "a statistics problem" that
re-estimating normalisation statistics on target images (AdaBN) solves. Here the shift differs per class
(palettes move differently and overlap, textures change), per image (how far each class's colour moves,
light, white balance, haze, blur, noise, compression) and locally (shadows, per-instance colours), so that
normalisation statistics alone cannot undo it, while the scene structure still tells the classes apart.
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass, fields
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from adaptseg.config import from_mapping

from . import scene as S

# --------------------------------------------------------------------------------------------- strengths


@dataclass(frozen=True)
class AppearanceStrengths:
    """How far the target's appearance departs from the source's, one knob per aspect (0: not at all)."""

    palette_shift: float = 1.0
    palette_overlap: float = 1.0
    instance_variation: float = 1.0
    class_variation: float = 1.0
    texture: float = 1.0
    shadows: float = 1.0
    illumination: float = 1.0
    color_cast: float = 1.0
    haze: float = 1.0
    vignetting: float = 1.0
    blur: float = 1.0
    noise: float = 1.0
    jpeg: float = 1.0

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"Appearance strength {f.name!r} must be a finite number >= 0, got {value!r}.")
            object.__setattr__(self, f.name, float(value))

    @classmethod
    def zeros(cls) -> AppearanceStrengths:
        """All strengths 0: the target renderer then renders exactly like the source renderer."""
        return cls(**{f.name: 0.0 for f in fields(cls)})

    @classmethod
    def from_dict(cls, data: dict) -> AppearanceStrengths:
        return from_mapping(cls, data, "appearance strength")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


# --------------------------------------------------------------------------------------------- palettes
NUM_IDS = 34


def _rgb(c) -> np.ndarray:
    return np.asarray(c, dtype=np.float32) / 255.0


#: Source ("game-like"): one saturated base colour per label id.
_SOURCE = {
    S.UNLABELED: (120, 105, 135), S.EGO: (25, 25, 30), S.STATIC: (225, 130, 30), S.DYNAMIC: (170, 60, 180),
    S.GROUND: (165, 120, 70), S.ROAD: (72, 70, 96), S.SIDEWALK: (215, 175, 130), S.PARKING: (120, 95, 140),
    S.RAIL: (120, 80, 55), S.BUILDING: (200, 105, 70), S.WALL: (225, 215, 140), S.FENCE: (150, 95, 40),
    S.GUARD_RAIL: (205, 210, 225), S.BRIDGE: (140, 130, 120), S.POLE: (60, 70, 90), S.POLEGROUP: (60, 70, 90),
    S.LIGHT: (40, 45, 30), S.SIGN: (30, 90, 225), S.VEGETATION: (45, 175, 40), S.TERRAIN: (160, 210, 60),
    S.SKY: (80, 160, 245), S.PERSON: (230, 45, 70), S.RIDER: (250, 140, 20), S.CAR: (30, 60, 210),
    S.TRUCK: (20, 130, 115), S.BUS: (235, 200, 25), S.CARAVAN: (245, 240, 225), S.TRAILER: (150, 150, 165),
    S.TRAIN: (195, 30, 45), S.MOTORCYCLE: (125, 40, 175), S.BICYCLE: (35, 205, 205),
}
#: Source second colours (trousers, sign symbols, poster columns).
_SOURCE_SECOND = {S.PERSON: (40, 50, 150), S.RIDER: (30, 30, 30), S.SIGN: (245, 245, 245), S.STATIC: (240, 60, 60)}

_WHITE, _BLACK, _SILVER, _DGREY = (205, 205, 205), (32, 32, 35), (150, 152, 156), (82, 85, 90)
_VEHICLE_PAINT = [(_WHITE, 1.0), (_BLACK, 1.0), (_SILVER, 1.0), (_DGREY, 0.8), ((135, 30, 30), 0.3),
                  ((40, 60, 110), 0.3), ((170, 160, 140), 0.2)]
_CLOTHES = [((38, 38, 42), 1.0), ((70, 70, 80), 0.8), ((32, 42, 72), 0.6), ((120, 108, 96), 0.5),
            ((185, 180, 175), 0.4), ((130, 40, 40), 0.3), ((60, 82, 60), 0.3)]
#: Target ("camera-like"): per label id a mixture of (colour, weight) components and a spread.
_TARGET = {
    S.UNLABELED: ([((105, 100, 98), 1.0)], 0.06),
    S.EGO: ([((40, 40, 45), 1.0), ((150, 150, 155), 0.3)], 0.03),
    S.STATIC: ([((95, 90, 85), 1.0), ((150, 120, 60), 0.4), ((60, 90, 70), 0.4)], 0.06),
    S.DYNAMIC: ([((80, 78, 85), 1.0)], 0.06),
    S.GROUND: ([((118, 108, 92), 1.0), ((100, 95, 85), 0.5)], 0.04),
    S.ROAD: ([((98, 98, 102), 1.0), ((80, 79, 82), 0.5), ((116, 112, 108), 0.4)], 0.03),
    S.SIDEWALK: ([((122, 120, 117), 1.0), ((138, 128, 120), 0.5), ((106, 105, 108), 0.4)], 0.04),
    S.PARKING: ([((104, 100, 103), 1.0)], 0.04),
    S.RAIL: ([((92, 84, 76), 1.0)], 0.04),
    S.BUILDING: ([((160, 150, 135), 1.0), ((125, 121, 118), 1.0), ((188, 182, 172), 0.6), ((140, 96, 80), 0.5),
                  ((176, 160, 122), 0.4)], 0.05),
    S.WALL: ([((150, 145, 135), 1.0), ((120, 116, 110), 0.6), ((172, 162, 140), 0.4)], 0.05),
    S.FENCE: ([((124, 120, 110), 1.0), ((92, 90, 86), 0.6), ((142, 132, 116), 0.3)], 0.05),
    S.GUARD_RAIL: ([((150, 150, 150), 1.0)], 0.04),
    S.BRIDGE: ([((128, 126, 122), 1.0)], 0.04),
    S.POLE: ([((100, 100, 102), 1.0), ((70, 72, 70), 0.6), ((130, 128, 120), 0.3)], 0.04),
    S.POLEGROUP: ([((100, 100, 102), 1.0)], 0.04),
    S.LIGHT: ([((45, 45, 42), 1.0), ((80, 80, 78), 0.4)], 0.03),
    S.SIGN: ([((190, 190, 185), 1.0), ((165, 42, 42), 0.6), ((42, 72, 150), 0.6), ((205, 172, 52), 0.3)], 0.05),
    S.VEGETATION: ([((72, 92, 48), 1.0), ((92, 106, 56), 0.6), ((58, 74, 44), 0.5), ((112, 110, 62), 0.3)], 0.04),
    S.TERRAIN: ([((106, 116, 72), 1.0), ((122, 116, 82), 0.6), ((90, 104, 60), 0.4)], 0.04),
    S.SKY: ([((200, 208, 215), 1.0)], 0.03),
    S.PERSON: (_CLOTHES, 0.06),
    S.RIDER: (_CLOTHES, 0.06),
    S.CAR: (_VEHICLE_PAINT, 0.04),
    S.TRUCK: (_VEHICLE_PAINT[:4] + [((60, 80, 120), 0.3), ((150, 40, 35), 0.3)], 0.04),
    S.BUS: ([(_WHITE, 1.0), ((180, 50, 40), 0.6), ((210, 180, 60), 0.4), (_SILVER, 0.4), (_DGREY, 0.3)], 0.04),
    S.CARAVAN: ([(_WHITE, 1.0), ((175, 165, 145), 0.5)], 0.04),
    S.TRAILER: ([(_SILVER, 1.0), (_DGREY, 0.6), (_WHITE, 0.5)], 0.04),
    S.TRAIN: ([(_WHITE, 1.0), ((170, 40, 40), 0.6), (_SILVER, 0.5), ((200, 170, 60), 0.3)], 0.04),
    S.MOTORCYCLE: ([(_BLACK, 1.0), ((82, 82, 88), 0.6), ((150, 32, 32), 0.3), ((170, 170, 170), 0.3)], 0.05),
    S.BICYCLE: ([(_BLACK, 1.0), ((82, 82, 88), 0.6), ((150, 32, 32), 0.3), ((170, 170, 170), 0.3)], 0.05),
}
_TARGET_SECOND = {
    S.PERSON: [((40, 48, 70), 1.0), ((30, 30, 32), 1.0), ((95, 92, 88), 0.5), ((150, 135, 110), 0.3)],
    S.RIDER: [((40, 48, 70), 1.0), ((30, 30, 32), 1.0), ((95, 92, 88), 0.5), ((150, 135, 110), 0.3)],
    S.SIGN: [((235, 235, 230), 1.0), ((30, 30, 30), 0.5), ((170, 40, 40), 0.4)],
    S.STATIC: [((180, 170, 150), 1.0), ((60, 100, 150), 0.5), ((160, 60, 50), 0.5)],
}
_SKIN_SOURCE = (245, 195, 150)
_SKIN_TARGET = [((222, 182, 158), 1.0), ((190, 140, 110), 0.6), ((118, 84, 62), 0.4), ((238, 208, 190), 0.4)]

#: Groups whose target palettes overlap (palette_overlap pulls them to the group's mean colour).
_GROUPS = [
    [S.ROAD, S.SIDEWALK, S.PARKING, S.GROUND, S.RAIL],
    [S.BUILDING, S.WALL, S.FENCE, S.BRIDGE, S.GUARD_RAIL],
    [S.VEGETATION, S.TERRAIN],
    [S.PERSON, S.RIDER],
    [S.CAR, S.TRUCK, S.BUS, S.CARAVAN, S.TRAILER, S.TRAIN],
    [S.MOTORCYCLE, S.BICYCLE],
    [S.POLE, S.POLEGROUP, S.LIGHT, S.SIGN, S.STATIC, S.DYNAMIC],
]

#: Detail colours: source and target (window, shop and shadow details are special-cased).
_DETAIL_SOURCE = {
    S.D_WINDOW: (70, 120, 190), S.D_LANE: (250, 250, 250), S.D_GLASS: (60, 95, 150), S.D_TYRE: (18, 18, 20),
    S.D_TAIL: (235, 20, 20), S.D_HEAD: (255, 250, 190), S.D_CURB: (235, 235, 235), S.D_LAMP_RED: (255, 30, 20),
    S.D_LAMP_AMBER: (255, 190, 0), S.D_LAMP_GREEN: (20, 255, 90), S.D_TRUNK: (120, 75, 30),
    S.D_SHOP: (40, 60, 95), S.D_PLATE: (245, 245, 245), S.D_WHEEL_IN: (95, 95, 100),
}
_DETAIL_TARGET = {
    S.D_WINDOW: (60, 66, 72), S.D_LANE: (196, 196, 190), S.D_GLASS: (42, 46, 52), S.D_TYRE: (30, 30, 32),
    S.D_TAIL: (140, 35, 32), S.D_HEAD: (205, 205, 195), S.D_CURB: (150, 148, 145), S.D_LAMP_RED: (210, 80, 60),
    S.D_LAMP_AMBER: (215, 170, 70), S.D_LAMP_GREEN: (90, 200, 150), S.D_TRUNK: (72, 62, 52),
    S.D_SHOP: (55, 56, 60), S.D_PLATE: (200, 200, 190), S.D_WHEEL_IN: (88, 88, 90),
}

# texture maps: 0 coarse noise, 1 mid noise, 2 fine noise, 3 pixel grain, 4 tiles, 5 bricks, 6 lattice,
# 7 horizontal stripes (plane Y), 8 vertical stripes (plane along), 9 vertical sheen (height above ground)
_K = 10
_TEX_SOURCE = {
    S.ROAD: {0: 0.03}, S.SIDEWALK: {4: 0.2}, S.PARKING: {4: 0.12}, S.BUILDING: {0: 0.02}, S.WALL: {5: 0.22},
    S.FENCE: {6: 0.45}, S.VEGETATION: {1: 0.07}, S.TERRAIN: {1: 0.04}, S.CAR: {9: 0.12}, S.TRUCK: {9: 0.1},
    S.BUS: {9: 0.1}, S.TRAIN: {9: 0.1}, S.GROUND: {1: 0.03},
}
_TEX_TARGET = {
    S.ROAD: {0: 0.11, 1: 0.04, 3: 0.06}, S.SIDEWALK: {0: 0.05, 1: 0.10, 2: 0.08, 3: 0.05},
    S.PARKING: {0: 0.08, 2: 0.06, 3: 0.05}, S.GROUND: {1: 0.12, 2: 0.1, 3: 0.06}, S.RAIL: {8: 0.2, 3: 0.06},
    S.BUILDING: {0: 0.10, 1: 0.07, 7: 0.07, 3: 0.03}, S.WALL: {0: 0.12, 1: 0.12, 3: 0.04},
    S.FENCE: {8: 0.28, 1: 0.10}, S.BRIDGE: {0: 0.1, 3: 0.04}, S.GUARD_RAIL: {3: 0.05},
    S.VEGETATION: {1: 0.2, 2: 0.25, 3: 0.1}, S.TERRAIN: {1: 0.14, 2: 0.16, 3: 0.08}, S.SKY: {0: 0.10},
    S.CAR: {0: 0.10, 9: 0.22, 3: 0.02}, S.TRUCK: {0: 0.1, 9: 0.18, 3: 0.02}, S.BUS: {0: 0.1, 9: 0.18, 3: 0.02},
    S.TRAIN: {0: 0.1, 9: 0.18}, S.CARAVAN: {0: 0.1, 9: 0.15}, S.TRAILER: {0: 0.1, 9: 0.15},
    S.PERSON: {1: 0.10, 3: 0.05}, S.RIDER: {1: 0.10, 3: 0.05}, S.POLE: {0: 0.05, 3: 0.05},
    S.SIGN: {0: 0.05, 3: 0.03}, S.LIGHT: {3: 0.04}, S.MOTORCYCLE: {3: 0.05}, S.BICYCLE: {3: 0.05},
    S.STATIC: {1: 0.08, 3: 0.04}, S.UNLABELED: {1: 0.1, 3: 0.05},
}

_FACE_SOURCE = np.array([1.0, 0.92, 0.80, 0.68, 0.60], dtype=np.float32)
_SKY_SOURCE = (_rgb((55, 135, 240)), _rgb((170, 210, 252)))  # (top, horizon)
_SKY_TARGET = [  # (top, horizon, weight): overcast, blue, hazy/warm
    (_rgb((198, 204, 212)), _rgb((226, 229, 232)), 0.5),
    (_rgb((112, 150, 205)), _rgb((200, 214, 230)), 0.3),
    (_rgb((172, 178, 190)), _rgb((230, 220, 202)), 0.2),
]
_CASTS = _rgb([(255, 200, 140), (150, 190, 255), (170, 255, 170), (255, 160, 220), (255, 255, 170)])


def _table(mapping: dict, default) -> np.ndarray:
    out = np.tile(_rgb(default), (NUM_IDS, 1))
    for k, v in mapping.items():
        out[k] = _rgb(v)
    return out


def _mixture_tables(mapping: dict, default):
    """(ids, K, 3) component colours, (ids, K) cumulative weights, (ids, 3) means, (ids,) spreads."""
    k = max(len(comps) for comps, _ in mapping.values())
    cols = np.tile(_rgb(default), (NUM_IDS, k, 1))
    cum = np.ones((NUM_IDS, k), dtype=np.float32)
    mean = np.tile(_rgb(default), (NUM_IDS, 1))
    spread = np.full(NUM_IDS, 0.04, dtype=np.float32)
    for lid, (comps, sigma) in mapping.items():
        w = np.array([c[1] for c in comps], dtype=np.float32)
        c = _rgb([c[0] for c in comps])
        cols[lid, : len(comps)] = c
        cols[lid, len(comps) :] = c[-1]
        cum[lid, : len(comps)] = np.cumsum(w) / w.sum()
        mean[lid] = (w[:, None] * c).sum(0) / w.sum()
        spread[lid] = sigma
    return cols, cum, mean, spread


SOURCE_COLORS = _table(_SOURCE, (128, 128, 128))
SOURCE_SECOND = SOURCE_COLORS * 0.55
for _k, _v in _SOURCE_SECOND.items():
    SOURCE_SECOND[_k] = _rgb(_v)
TGT_COLS, TGT_CUM, TGT_MEAN, TGT_SPREAD = _mixture_tables(_TARGET, (110, 110, 110))
_second = {k: (v, 0.05) for k, v in _TARGET_SECOND.items()}
TGT2_COLS, TGT2_CUM, TGT2_MEAN, _ = _mixture_tables(_second, (60, 60, 60))
_has_second = np.zeros(NUM_IDS, dtype=bool)
_has_second[list(_TARGET_SECOND)] = True
SKIN_COLS, SKIN_CUM, _, _ = _mixture_tables({0: (_SKIN_TARGET, 0.03)}, (200, 160, 130))

GROUP_MEAN = TGT_MEAN.copy()
GROUP_OF = np.arange(NUM_IDS)  # a class's siblings (including itself), padded by repetition
_sib = np.tile(np.arange(NUM_IDS)[:, None], (1, 6))
_nsib = np.ones(NUM_IDS, dtype=np.int64)
for _grp in _GROUPS:
    GROUP_MEAN[_grp] = TGT_MEAN[_grp].mean(0)
    for _lid in _grp:
        _sib[_lid, : len(_grp)] = _grp
        _nsib[_lid] = len(_grp)

DETAIL_SOURCE = _table(_DETAIL_SOURCE, (128, 128, 128))[: S.NUM_DETAILS]
DETAIL_TARGET = _table(_DETAIL_TARGET, (110, 110, 110))[: S.NUM_DETAILS]


def _weights(mapping: dict) -> np.ndarray:
    w = np.zeros((NUM_IDS, _K), dtype=np.float32)
    for lid, ks in mapping.items():
        for k, v in ks.items():
            w[lid, k] = v
    return w


TEX_SOURCE = _weights(_TEX_SOURCE)
TEX_TARGET = _weights(_TEX_TARGET)


def _lerp(a, b, t):
    return a + (b - a) * t


# --------------------------------------------------------------------------------------------- helpers
def _value_noise(rng: np.random.Generator, width: int, height: int, cell_px: float) -> np.ndarray:
    """Smooth noise, zero-mean and about unit std, with features about ``cell_px`` pixels across."""
    gw = max(2, int(math.ceil(width / cell_px)) + 1)
    gh = max(2, int(math.ceil(height / cell_px)) + 1)
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    field = np.asarray(Image.fromarray(grid, mode="F").resize((width, height), Image.BICUBIC), dtype=np.float32)
    return field * _noise_scale(width, height, gw, gh)


@lru_cache(maxsize=64)
def _noise_scale(width: int, height: int, gw: int, gh: int) -> np.float32:
    """1 / the std that bicubic upsampling of a unit-normal (gh, gw) grid leaves (measured once, fixed seed)."""
    grid = np.random.default_rng(12345).standard_normal((16, gh, gw)).astype(np.float32)
    fields = [np.asarray(Image.fromarray(g, mode="F").resize((width, height), Image.BICUBIC)) for g in grid]
    return np.float32(1.0 / (np.std(fields) + 1e-6))


def _frac(x: np.ndarray) -> np.ndarray:
    return x - np.floor(x)


def _pick(cum: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Index of the mixture component chosen by uniforms ``u`` given per-row cumulative weights."""
    return np.minimum((u[:, None] > cum).sum(1), cum.shape[1] - 1)


def palette_fractions(rng: np.random.Generator, s: AppearanceStrengths) -> np.ndarray:
    """How far each class's colour moves from the source palette to the target palette in one image:
    ``palette_shift`` × U(0.35, 1), drawn per image and per class, so that the colour shift is not one
    fixed (and, for normalisation statistics, learnable) map but changes from image to image."""
    return (s.palette_shift * (0.35 + 0.65 * rng.random(NUM_IDS))).astype(np.float32)


def _object_colours(layout: S.Layout, rng: np.random.Generator, s: AppearanceStrengths):
    """Per-object (main, second, skin) colours, (O, 3) each, and the per-class palette fractions."""
    lab = layout.obj_label.astype(np.int64)
    n = len(lab)
    u = rng.random((n, 8)).astype(np.float32)
    z = rng.standard_normal((n, 12)).astype(np.float32)
    cls_gain = rng.standard_normal((NUM_IDS, 4)).astype(np.float32)
    shift = palette_fractions(rng, s)

    # source: the class colour with a little per-instance jitter
    src = SOURCE_COLORS[lab] + 0.03 * z[:, 0:3] + 0.03 * z[:, 3:4]
    src2 = SOURCE_SECOND[lab] + 0.03 * z[:, 0:3]
    skin_src = np.tile(_rgb(_SKIN_SOURCE), (n, 1)) + 0.02 * z[:, 3:6]

    # target: mixtures per class; with overlap, some instances take a sibling class's colour
    ov, iv = s.palette_overlap, s.instance_variation
    sibling = _sib[lab, np.minimum((u[:, 1] * _nsib[lab]).astype(np.int64), 5)]
    eff = np.where(u[:, 0] < 0.35 * min(ov, 2.0), sibling, lab)
    comp = TGT_COLS[eff, _pick(TGT_CUM[eff], u[:, 2])]
    spread = TGT_SPREAD[eff][:, None] * (1.0 + ov)
    inst = comp + spread * z[:, 6:9] + 0.5 * spread * z[:, 9:10]
    tgt = _lerp(TGT_MEAN[lab], inst, iv)
    tgt = _lerp(tgt, GROUP_MEAN[lab], min(0.45 * ov, 0.9))
    comp2 = TGT2_COLS[lab, _pick(TGT2_CUM[lab], u[:, 3])] + 0.04 * z[:, 0:3]
    tgt2 = np.where(_has_second[lab][:, None], _lerp(TGT2_MEAN[lab], comp2, iv), tgt * 0.6)
    skin_t = _lerp(SKIN_COLS[0, 0], SKIN_COLS[0, _pick(np.tile(SKIN_CUM[0], (n, 1)), u[:, 4])], iv)

    # per image and class: a gain and a tint (wet roads, autumn trees, dirty facades ...), centred on 1 in log
    # space so that it varies colours without moving their mean (nothing for normalisation statistics to learn)
    gain = np.exp(s.class_variation * (0.2 * cls_gain[:, 0:1] + 0.06 * cls_gain[:, 1:4])).astype(np.float32)[lab]

    t = shift[lab][:, None]
    main = _lerp(src, tgt, t) * gain
    second = _lerp(src2, tgt2, t) * gain
    skin = _lerp(skin_src, skin_t, t)
    return np.clip(main, 0, 1.2), np.clip(second, 0, 1.2), np.clip(skin, 0, 1.2), shift


@dataclass(frozen=True)
class _Sun:
    side: int  # −1: the sun is on the left, +1: on the right
    length: float  # shadow length per metre of height
    shear: float  # shadows also lean along the road
    extra: tuple  # off-screen casters: (radius, x, z, stretch) each


def _draw_sun(rng: np.random.Generator) -> _Sun:
    side = -1 if rng.random() < 0.5 else 1
    length, shear = float(rng.uniform(0.3, 1.2)), float(rng.uniform(-0.5, 0.5))
    u = rng.random((int(rng.integers(0, 4)), 4)).tolist()
    extra = tuple((2.0 + 4.0 * r, -10.0 + 20.0 * x, 4.0 + 30.0 * z, 1.0 + 0.3 * e) for r, x, z, e in u)
    return _Sun(side, length, shear, extra)


def _shadow_mask(layout: S.Layout, sun: _Sun) -> np.ndarray:
    """A soft (H, W) mask in [0, 1] of sun shadows on the ground (facades, trees, poles, off-screen things)."""
    cam = layout.camera
    img = Image.new("L", (cam.width, cam.height), 0)
    draw = ImageDraw.Draw(img)

    def ground(pts):
        return [(cam.cx + cam.f * x / max(z, S.Z_NEAR), cam.cy + cam.f * cam.h / max(z, S.Z_NEAR)) for x, z in pts]

    circle = [(math.cos(t), math.sin(t)) for t in np.linspace(0, 2 * math.pi, 10, endpoint=False).tolist()]
    for c in layout.casters:
        if c.kind == "facade":
            if (c.x < 0) != (sun.side < 0):  # only facades on the sun's side throw shadows onto the street
                continue
            reach, dz = -sun.side * sun.length * c.size, sun.shear * c.size
            draw.polygon(ground([(c.x, c.z0), (c.x + reach, c.z0 + dz), (c.x + reach, c.z1 + dz), (c.x, c.z1)]), fill=255)
        else:
            cx = c.x - sun.side * sun.length * 3.0
            draw.polygon(ground([(cx + c.size * u, c.z0 + sun.shear + 0.8 * c.size * v) for u, v in circle]), fill=255)
    for r, x, z, e in sun.extra:
        draw.polygon(ground([(x + r * e * u, z + r * v) for u, v in circle]), fill=255)
    return np.asarray(img, dtype=np.float32) * np.float32(1.0 / 255.0)  # the camera's blur softens the edges


def _texture_map(k, n_lo, n_mid, n_hi, a, bb, depth, sc) -> np.ndarray:
    """Texture map ``k`` (see ``_K``), computed only when some class present uses it."""
    if k == 0:
        return n_lo
    if k == 1:
        return n_mid
    if k == 2:
        return n_hi
    if k in (4, 5):  # perspective-correct tiles and brick courses, faded out where they would alias
        near = np.clip(1.6 - depth / 18.0, 0.0, 1.0)
        if k == 4:
            return -(((_frac(a / 0.6) < 0.07) | (_frac(bb / 0.6) < 0.07)) * near)
        row = np.floor(bb / 0.3)
        return -(((_frac(bb / 0.3) < 0.12) | (_frac((a + 0.35 * (row % 2)) / 0.7) < 0.06)) * near)
    if k == 6:  # a lattice: slats and rails
        return -((_frac(a / 0.25) > 0.4) & (_frac(bb / 0.9) > 0.14)).astype(np.float32)
    if k == 7:
        return np.sin(bb * np.float32(2 * math.pi / (0.25 + 0.35 * sc[5])))
    if k == 8:
        return np.sin(a * np.float32(2 * math.pi / (0.08 + 0.07 * sc[6])))
    return np.clip((bb - 0.9) / 0.8, -1.0, 1.0)  # k == 9: sheen, darker low and brighter high


# --------------------------------------------------------------------------------------------- renderer
@lru_cache(maxsize=8)
def _row_index(height: int, width: int) -> np.ndarray:
    index = np.repeat(np.arange(height, dtype=np.int64)[:, None], width, axis=1)
    index.setflags(write=False)
    return index


#: How each detail code picks its colour: 0 the part's own colour, 1 its second colour, 2 skin, 3 the code's.
_SELECT = np.full(S.NUM_DETAILS, 3, dtype=np.int64)
_SELECT[[S.D_NONE, S.D_SHADOW, S.D_WINDOW]] = 0
_SELECT[S.D_SECOND] = 1
_SELECT[S.D_SKIN] = 2
_DETAIL_GAIN = np.ones(S.NUM_DETAILS, dtype=np.float32)
_DETAIL_GAIN[S.D_SHADOW] = 0.45  # contact shadows under vehicles
_DETAIL_TEXTURE = np.full(S.NUM_DETAILS, 0.3, dtype=np.float32)  # details (lamps, glass ...) stay cleaner
_DETAIL_TEXTURE[[S.D_NONE, S.D_SHADOW, S.D_SECOND]] = 1.0
_SHADOW_TINT = np.array([1.0, 0.96, 0.82], dtype=np.float32)[:, None, None]  # shade is lit by the blue sky


def render(layout: S.Layout, rng: np.random.Generator, strengths: AppearanceStrengths) -> Image.Image:
    """Render a layout; ``strengths`` all 0 gives the source look, the defaults the target look.

    The random numbers are drawn in a fixed order whatever the strengths; the only draws that depend on
    them (pixel grain, sensor noise) come last, so they cannot change anything drawn before them.
    """
    s = strengths
    cam = layout.camera
    H, W = layout.labels.shape
    labels, prim, detail = layout.labels, layout.prim, layout.detail

    # ---- per-image random numbers (Python floats: numpy scalars would promote float32 to float64)
    sc = rng.random(24).tolist()
    gz = rng.standard_normal(16).tolist()
    n_lo = _value_noise(rng, W, H, W / 5.0)
    n_mid = _value_noise(rng, W, H, 7.0)
    n_hi = _value_noise(rng, W, H, 2.2)
    n_light = _value_noise(rng, W, H, W / 3.0)
    main, second, skin, shift = _object_colours(layout, rng, s)
    sun = _draw_sun(rng)
    sunny = sc[1] < 0.55

    # ---- albedo: one gather from a table of part colours, second colours, skin, detail colours and,
    #      for the sky, one row per image row of a vertical gradient (game: deep blue; camera: overcast,
    #      blue or hazy)
    n_obj = len(main)
    det_cols = _lerp(DETAIL_SOURCE, DETAIL_TARGET, s.palette_shift)
    j = int(np.searchsorted(np.cumsum([w for _, _, w in _SKY_TARGET]), sc[0]))
    top_t, hor_t, _ = _SKY_TARGET[min(j, len(_SKY_TARGET) - 1)]
    top = _lerp(_SKY_SOURCE[0], top_t, float(shift[S.SKY]))
    hor = _lerp(_SKY_SOURCE[1], hor_t, float(shift[S.SKY]))
    rows = np.clip((cam.cy - np.arange(H, dtype=np.float32)) / max(cam.cy, 1.0), 0.0, 1.0) ** 0.7
    grad = _lerp(hor[None, :], top[None, :], rows[:, None])
    table = np.ascontiguousarray(np.concatenate([main, second, skin, det_cols, grad]).astype(np.float32).T)
    sel = _SELECT[detail]
    obj = layout.prim_obj[prim]
    index = np.where(sel == 3, 3 * n_obj + detail.astype(np.int64), obj + n_obj * sel)
    index = np.where(prim == 0, (3 * n_obj + S.NUM_DETAILS) + _row_index(H, W), index)
    img = np.take(table, index, axis=1)  # channel-first (3, H, W): broadcasting (H, W) maps stays fast
    win = detail == S.D_WINDOW
    if win.any():  # target windows: each pane its own mix of dark glass, reflected sky and lit rooms
        c = layout.cell[win][None, :]
        pane = _lerp(_rgb((28, 32, 38))[:, None], _rgb((150, 160, 172))[:, None], c**1.5)
        pane = np.where(c > 0.93, _rgb((200, 175, 120))[:, None], pane)
        img[:, win] = _lerp(DETAIL_SOURCE[S.D_WINDOW][:, None], pane, min(s.palette_shift, 1.0))

    # ---- one per-pixel gain: face shading (game: fixed sun; camera: sunny or overcast, either side),
    #      contact shadows, class textures (source → target) and a smooth light field
    lit, shade = (1.0, 0.5 + 0.15 * sc[2]) if sunny else (0.92, 0.82 + 0.08 * sc[2])
    left, right = (lit, shade) if sun.side < 0 else (shade, lit)
    face_t = np.array([1.0, 0.78 + 0.15 * sc[3], left, right, 0.45 + 0.2 * sc[4]], dtype=np.float32)
    face = _lerp(_FACE_SOURCE, face_t, min(s.illumination, 1.0))
    gain = face[layout.prim_face][prim] * _DETAIL_GAIN[detail]

    per_image = np.clip(np.exp(0.25 * np.asarray(gz[:_K], dtype=np.float32)), 0.6, 1.6)  # vary per image
    tex_w = _lerp(TEX_SOURCE, TEX_TARGET * per_image[None, :], s.texture).astype(np.float32)
    present = np.bincount(layout.prim_label, minlength=NUM_IDS)[:NUM_IDS] > 0
    a, bb, depth = layout.coord_a, layout.coord_b, layout.depth
    mod = np.zeros((H, W), dtype=np.float32)
    for k in range(_K):
        if np.any(tex_w[present, k]):
            if k == 3:  # pixel grain: drawn only when used (after every fixed draw)
                tmap = rng.standard_normal((H, W), dtype=np.float32)
            else:
                tmap = _texture_map(k, n_lo, n_mid, n_hi, a, bb, depth, sc)
            mod += tex_w[:, k][labels] * tmap
    gain *= np.maximum(1.0 + mod * _DETAIL_TEXTURE[detail], 0.05)
    if s.illumination > 0:
        gain *= 1.0 + np.float32(0.15 * s.illumination) * n_light
    img *= gain

    # ---- local sun shadows, bluish
    k_shadow = s.shadows * ((0.3 + 0.3 * sc[7]) if sunny else 0.1 * sc[7])
    if k_shadow > 0:
        sm = _shadow_mask(layout, sun) * np.float32(k_shadow)
        img *= 1.0 - np.minimum(sm * _SHADOW_TINT, 0.9)

    # ---- haze, increasing with depth (strongest at the horizon)
    haze_amt = s.haze * (0.12 + 0.45 * sc[8])
    if haze_amt > 0:
        alpha = np.minimum(np.float32(haze_amt) * (1.0 - np.exp(depth * np.float32(-1.0 / (60.0 + 240.0 * sc[9])))), 1.0)
        haze_col = _lerp(_rgb((205, 208, 212)), _rgb((225, 215, 195)), sc[10])
        img += alpha * (haze_col[:, None, None] - img)

    # ---- camera: exposure, vignetting, white balance and colour cast
    exposure = 2.0 ** (s.illumination * 0.35 * gz[10]) * (1.0 + 0.04 * gz[11])
    wb = np.exp(s.color_cast * 0.08 * np.asarray(gz[12:15], dtype=np.float32)) * np.float32(exposure * 255.0)
    cast = _CASTS[int(sc[11] * len(_CASTS)) % len(_CASTS)] * np.float32(s.color_cast * 0.05 * sc[12] * 255.0)
    img *= wb[:, None, None]
    vig = s.vignetting * (0.1 + 0.3 * sc[13])
    if vig > 0:
        yy = (np.arange(H, dtype=np.float32) - H * (0.5 + 0.15 * (sc[15] - 0.5))) / (0.5 * H)
        xx = (np.arange(W, dtype=np.float32) - W * (0.5 + 0.15 * (sc[14] - 0.5))) / (0.5 * W)
        img *= 1.0 - np.float32(0.5 * vig) * (yy[:, None] ** 2 + xx[None, :] ** 2)
    img += cast[:, None, None]  # from here on, 0..255

    # ---- optics blur, sensor noise (signal-dependent luminance, blotchier chroma), tone curve, JPEG
    radius = float(s.blur * (0.35 + 0.75 * sc[16]))
    if radius > 0.05:
        img = _gaussian_blur(img, radius)
    sigma = s.noise * (0.006 + 0.028 * sc[17]) * 255.0
    if sigma > 0:
        z = rng.standard_normal((H, W), dtype=np.float32)
        zc = rng.standard_normal((3, (H + 1) // 2, (W + 1) // 2), dtype=np.float32)
        zc = zc.repeat(2, axis=1).repeat(2, axis=2)[:, :H, :W]
        lum = np.clip(img[0] + img[1] + img[2], 0.0, 765.0) * np.float32(1.0 / 765.0)
        img += (np.float32(sigma) * (0.5 + lum)) * (z + 0.6 * zc)
    assert img.dtype == np.float32, img.dtype
    u8 = np.clip(img + 0.5, 0.0, 255.0).astype(np.uint8)
    gamma = math.exp(s.illumination * 0.15 * gz[15])
    if gamma != 1.0:
        u8 = np.clip(255.0 * (np.arange(256) / 255.0) ** gamma + 0.5, 0, 255).astype(np.uint8)[u8]
    out = Image.fromarray(np.ascontiguousarray(u8.transpose(1, 2, 0)))
    if s.jpeg > 0:
        # quality falls from 100 towards a per-image 25..80; chroma subsampling from half strength on
        quality = int(np.clip(round(100 - min(s.jpeg, 1.5) * (100 - (25 + 55 * sc[18]))), 5, 100))
        buf = io.BytesIO()
        out.save(buf, format="JPEG", quality=quality, subsampling=2 if s.jpeg >= 0.5 else 0)
        buf.seek(0)
        out = Image.open(buf).convert("RGB")
    return out


def _gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of a (C, H, W) float image, edges replicated."""
    r = max(1, int(math.ceil(2.5 * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1, dtype=np.float32) / np.float32(sigma)) ** 2)
    k /= k.sum()
    _, H, W = img.shape
    p = np.pad(img, ((0, 0), (r, r), (0, 0)), mode="edge")
    out = k[0] * p[:, 0:H]
    for i in range(1, 2 * r + 1):
        out += k[i] * p[:, i : i + H]
    p = np.pad(out, ((0, 0), (0, 0), (r, r)), mode="edge")
    out = k[0] * p[:, :, 0:W]
    for i in range(1, 2 * r + 1):
        out += k[i] * p[:, :, i : i + W]
    return out


def render_source(layout: S.Layout, rng: np.random.Generator) -> Image.Image:
    """The game-like look."""
    return render(layout, rng, AppearanceStrengths.zeros())


def render_target(layout: S.Layout, rng: np.random.Generator, strengths: AppearanceStrengths | None = None) -> Image.Image:
    """The camera-like look (default strengths when ``strengths`` is None)."""
    return render(layout, rng, strengths if strengths is not None else AppearanceStrengths())
