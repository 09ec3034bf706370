"""The one home of every label fact: Cityscapes label ids, train ids, class names, palette, protocols, and
the SYNTHIA class ids.

GTA5 labels use Cityscapes label ids, so one table serves both datasets. SYNTHIA-RAND-CITYSCAPES labels hold
SYNTHIA's own class ids (channel 0 of 16-bit PNGs), mapped to the 19 train ids by the table AdaptSegNet-
derived code uses. The SYNTHIA protocols (16 and 13 classes) are subsets of the 19 train classes, renumbered
compactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IGNORE_INDEX = 255


@dataclass(frozen=True)
class LabelDef:
    """One row of the Cityscapes label table (as in cityscapesscripts.helpers.labels)."""

    name: str
    id: int
    train_id: int
    category: str
    ignore_in_eval: bool
    color: tuple[int, int, int]


# fmt: off
CITYSCAPES_LABELS: tuple[LabelDef, ...] = (
    LabelDef("unlabeled",             0, 255, "void",         True,  (0, 0, 0)),
    LabelDef("ego vehicle",           1, 255, "void",         True,  (0, 0, 0)),
    LabelDef("rectification border",  2, 255, "void",         True,  (0, 0, 0)),
    LabelDef("out of roi",            3, 255, "void",         True,  (0, 0, 0)),
    LabelDef("static",                4, 255, "void",         True,  (0, 0, 0)),
    LabelDef("dynamic",               5, 255, "void",         True,  (111, 74, 0)),
    LabelDef("ground",                6, 255, "void",         True,  (81, 0, 81)),
    LabelDef("road",                  7,   0, "flat",         False, (128, 64, 128)),
    LabelDef("sidewalk",              8,   1, "flat",         False, (244, 35, 232)),
    LabelDef("parking",               9, 255, "flat",         True,  (250, 170, 160)),
    LabelDef("rail track",           10, 255, "flat",         True,  (230, 150, 140)),
    LabelDef("building",             11,   2, "construction", False, (70, 70, 70)),
    LabelDef("wall",                 12,   3, "construction", False, (102, 102, 156)),
    LabelDef("fence",                13,   4, "construction", False, (190, 153, 153)),
    LabelDef("guard rail",           14, 255, "construction", True,  (180, 165, 180)),
    LabelDef("bridge",               15, 255, "construction", True,  (150, 100, 100)),
    LabelDef("tunnel",               16, 255, "construction", True,  (150, 120, 90)),
    LabelDef("pole",                 17,   5, "object",       False, (153, 153, 153)),
    LabelDef("polegroup",            18, 255, "object",       True,  (153, 153, 153)),
    LabelDef("traffic light",        19,   6, "object",       False, (250, 170, 30)),
    LabelDef("traffic sign",         20,   7, "object",       False, (220, 220, 0)),
    LabelDef("vegetation",           21,   8, "nature",       False, (107, 142, 35)),
    LabelDef("terrain",              22,   9, "nature",       False, (152, 251, 152)),
    LabelDef("sky",                  23,  10, "sky",          False, (70, 130, 180)),
    LabelDef("person",               24,  11, "human",        False, (220, 20, 60)),
    LabelDef("rider",                25,  12, "human",        False, (255, 0, 0)),
    LabelDef("car",                  26,  13, "vehicle",      False, (0, 0, 142)),
    LabelDef("truck",                27,  14, "vehicle",      False, (0, 0, 70)),
    LabelDef("bus",                  28,  15, "vehicle",      False, (0, 60, 100)),
    LabelDef("caravan",              29, 255, "vehicle",      True,  (0, 0, 90)),
    LabelDef("trailer",              30, 255, "vehicle",      True,  (0, 0, 110)),
    LabelDef("train",                31,  16, "vehicle",      False, (0, 80, 100)),
    LabelDef("motorcycle",           32,  17, "vehicle",      False, (0, 0, 230)),
    LabelDef("bicycle",              33,  18, "vehicle",      False, (119, 11, 32)),
    LabelDef("license plate",        -1,  -1, "vehicle",      True,  (0, 0, 142)),
)
# fmt: on

LABEL_BY_NAME: dict[str, LabelDef] = {label.name: label for label in CITYSCAPES_LABELS}

#: The 19 Cityscapes train classes, indexed by train id.
TRAIN_CLASSES: tuple[str, ...] = tuple(
    label.name for label in sorted(CITYSCAPES_LABELS, key=lambda entry: entry.train_id) if 0 <= label.train_id < 255
)
NUM_TRAIN_CLASSES = len(TRAIN_CLASSES)

#: Palette indexed by train id (19 × 3, uint8), the official Cityscapes colours.
TRAIN_PALETTE: np.ndarray = np.array(
    [LABEL_BY_NAME[name].color for name in TRAIN_CLASSES], dtype=np.uint8
)

#: Label ids that may legally occur in a Cityscapes labelIds PNG or a GTA5 label PNG (0..33).
VALID_LABEL_IDS: frozenset[int] = frozenset(label.id for label in CITYSCAPES_LABELS if label.id >= 0)

#: SYNTHIA-RAND-CITYSCAPES class ids (channel 0 of its ``GT/LABELS`` PNGs) and names.
SYNTHIA_CLASSES: dict[int, str] = {
    0: "void", 1: "sky", 2: "building", 3: "road", 4: "sidewalk", 5: "fence", 6: "vegetation", 7: "pole",
    8: "car", 9: "traffic sign", 10: "pedestrian", 11: "bicycle", 12: "motorcycle", 13: "parking-slot",
    14: "road-work", 15: "traffic light", 16: "terrain", 17: "rider", 18: "truck", 19: "bus", 20: "train",
    21: "wall", 22: "lanemarking",
}

#: SYNTHIA id → 19-class train id (the de-facto map of CLAN, BDL, ADVENT-derived code, DADA); void,
#: parking-slot, road-work and lanemarking are ignored.
SYNTHIA_TO_TRAIN_ID: dict[int, int] = {
    3: 0, 4: 1, 2: 2, 21: 3, 5: 4, 7: 5, 15: 6, 9: 7, 6: 8, 16: 9, 1: 10, 10: 11, 17: 12, 8: 13, 18: 14, 19: 15,
    20: 16, 12: 17, 11: 18,
}

#: Label id → 19-class train id for every dataset kind (GTA5 uses Cityscapes label ids).
_CITYSCAPES_TO_TRAIN_ID = {label.id: label.train_id for label in CITYSCAPES_LABELS if 0 <= label.train_id < 255}
TRAIN_ID_TABLES: dict[str, dict[int, int]] = {
    "cityscapes": _CITYSCAPES_TO_TRAIN_ID,
    "gta5": _CITYSCAPES_TO_TRAIN_ID,
    "synthia": SYNTHIA_TO_TRAIN_ID,
}

#: Evaluation protocols: which of the 19 train ids each keeps, in compact order.
PROTOCOLS: dict[int, tuple[int, ...]] = {
    19: tuple(range(19)),
    16: (0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 15, 17, 18),
    13: (0, 1, 2, 6, 7, 8, 10, 11, 12, 13, 15, 17, 18),
}


def protocol_train_ids(num_classes: int) -> tuple[int, ...]:
    """The 19-class train ids kept by the ``num_classes`` protocol (19, 16 or 13)."""
    if num_classes not in PROTOCOLS:
        raise ValueError(f"Unknown class protocol {num_classes!r}; choose one of {sorted(PROTOCOLS)}.")
    return PROTOCOLS[num_classes]


def protocol_class_names(num_classes: int) -> tuple[str, ...]:
    """Class names of a protocol, in its compact train-id order."""
    return tuple(TRAIN_CLASSES[t] for t in protocol_train_ids(num_classes))


def protocol_palette(num_classes: int) -> np.ndarray:
    """Palette (num_classes × 3, uint8) indexed by the protocol's compact train ids."""
    return TRAIN_PALETTE[list(protocol_train_ids(num_classes))]


def label_id_to_train_id_lut(num_classes: int = 19, kind: str = "cityscapes") -> np.ndarray:
    """A 256-entry uint8 lookup table from a dataset kind's label ids to compact train ids of a protocol.

    Every id that the protocol does not evaluate, and every value outside the kind's table, maps to 255.
    """
    if kind not in TRAIN_ID_TABLES:
        raise ValueError(f"Unknown dataset kind {kind!r}; choose one of {sorted(TRAIN_ID_TABLES)}.")
    kept = protocol_train_ids(num_classes)
    compact = {train_id: index for index, train_id in enumerate(kept)}
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for label_id, train_id in TRAIN_ID_TABLES[kind].items():
        if train_id in compact:
            lut[label_id] = compact[train_id]
    return lut


def valid_label_ids(kind: str) -> frozenset[int]:
    """The ids a label of dataset ``kind`` may hold (Cityscapes' 0..33 for GTA5 and Cityscapes)."""
    return frozenset(SYNTHIA_CLASSES) if kind == "synthia" else VALID_LABEL_IDS


def train_id_to_label_id_lut(num_classes: int = 19) -> np.ndarray:
    """A 256-entry uint8 lookup table from compact train ids back to Cityscapes label ids (255 → 0)."""
    kept = protocol_train_ids(num_classes)
    lut = np.zeros(256, dtype=np.uint8)
    by_train_id = {label.train_id: label.id for label in CITYSCAPES_LABELS if 0 <= label.train_id < 255}
    for index, train_id in enumerate(kept):
        lut[index] = by_train_id[train_id]
    return lut


def remap_with_lut(label: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Map an integer label array through a lookup table in one vectorised gather."""
    return np.take(lut, label)


def colorize_train_ids(train_ids: np.ndarray, num_classes: int = 19) -> np.ndarray:
    """RGB image (H × W × 3, uint8) of a compact train-id map; ignore pixels are black."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[:num_classes] = protocol_palette(num_classes)
    return palette[train_ids]


def label_id_palette() -> list[int]:
    """A flat 768-entry PIL palette indexed by Cityscapes label id (as GTA5's paletted label PNGs)."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for label in CITYSCAPES_LABELS:
        if label.id >= 0:
            palette[label.id] = label.color
    return palette.flatten().tolist()


def cityscapes_to_synthia_lut() -> np.ndarray:
    """A 256-entry table from Cityscapes label ids to SYNTHIA ids (the synthetic source in the SYNTHIA layout).

    Train classes go to their SYNTHIA class; parking goes to SYNTHIA's parking-slot (an id the protocols
    drop); every other id is void (0).
    """
    by_train_id = {train_id: synthia_id for synthia_id, train_id in SYNTHIA_TO_TRAIN_ID.items()}
    lut = np.zeros(256, dtype=np.uint8)
    for label_id, train_id in _CITYSCAPES_TO_TRAIN_ID.items():
        lut[label_id] = by_train_id[train_id]
    lut[LABEL_BY_NAME["parking"].id] = 13
    return lut
