"""Label-id → train-id remapping and class-frequency counting, vectorised with lookup tables."""

from __future__ import annotations

import numpy as np
from PIL import Image

from adaptseg.data.labels import IGNORE_INDEX, label_id_to_train_id_lut, remap_with_lut
from adaptseg.data.png16 import png_bit_depth, read_png16

_LABEL_MODES = ("L", "P", "I;16", "I")


def _check_mode(image: Image.Image, path: str) -> None:
    if image.mode not in _LABEL_MODES:
        raise ValueError(f"{path}: label PNG must be single-channel ('L' or 'P'), is {image.mode!r}")


def read_label_ids(path: str) -> np.ndarray:
    """Read a label PNG as an array of label ids.

    Paletted GTA5 PNGs give their palette indices; 16-bit PNGs (SYNTHIA's multi-channel ``GT/LABELS``) give
    channel 0, where SYNTHIA keeps the class id (channel 1 holds instance ids).
    """
    if png_bit_depth(path) == 16:
        ids = read_png16(path)
        return ids if ids.ndim == 2 else ids[:, :, 0]
    with Image.open(path) as image:
        _check_mode(image, path)
        return np.asarray(image)


def remap_label_image(image: Image.Image, lut: np.ndarray) -> np.ndarray:
    """Train-id map of a decoded 8-bit label image.

    Pillow's ``point`` applies a 256-entry table in one C pass over the pixel indices (for 'P' images the
    palette indices, which is where GTA5 stores label ids); wider images fall back to a numpy gather.
    """
    if image.mode in ("L", "P"):
        return np.asarray(image.point(lut.tolist()))
    return remap_with_lut(np.asarray(image), lut)


def remap_label_file(path: str, lut: np.ndarray) -> np.ndarray:
    """Train-id map (uint8, 255 = ignore) of one label PNG (8-bit, or SYNTHIA's 16-bit multi-channel)."""
    if png_bit_depth(path) == 16:
        ids = read_label_ids(path)
        return np.where(ids < lut.size, lut[np.minimum(ids, lut.size - 1)], IGNORE_INDEX).astype(np.uint8)
    with Image.open(path) as image:
        _check_mode(image, path)
        return remap_label_image(image, lut)


def class_pixel_counts(train_ids: np.ndarray, num_classes: int) -> np.ndarray:
    """Pixels per class (length ``num_classes + 1``; the last entry counts ignored pixels)."""
    counts = np.bincount(train_ids.ravel(), minlength=256)
    return np.append(counts[:num_classes], counts[num_classes:].sum())


def lookup_table(num_classes: int, kind: str = "cityscapes") -> np.ndarray:
    """The id → train-id table of a dataset kind for a class protocol (19, 16 or 13)."""
    return label_id_to_train_id_lut(num_classes, kind)


__all__ = ["IGNORE_INDEX", "class_pixel_counts", "lookup_table", "read_label_ids", "remap_label_file", "remap_label_image"]
