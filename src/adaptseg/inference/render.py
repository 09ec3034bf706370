"""Pictures of predictions: the image blended with its class colours, and one contact sheet of a folder.

Drawn with Pillow alone (no figure library): a folder of video frames makes thousands of overlays, and
each must cost no more than a blend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: Contact sheet layout, in pixels: one tile (an image or its overlay) fits in TILE = (W, H).
TILE = (256, 160)
GAP = 6
CAPTION = 16
SWATCH = 12
PAIRS_PER_ROW = 2


def overlay(rgb: np.ndarray, train_ids: np.ndarray, palette: np.ndarray, opacity: float = 0.5) -> Image.Image:
    """The image blended with each pixel's class colour: ``(1 - opacity) · image + opacity · colour``."""
    if rgb.shape[:2] != train_ids.shape:
        raise ValueError(f"image {rgb.shape[:2]} and prediction {train_ids.shape} differ in size")
    colours = palette[np.minimum(train_ids, len(palette) - 1)].astype(np.float32)
    blended = (1.0 - opacity) * rgb.astype(np.float32) + opacity * colours
    return Image.fromarray(np.rint(blended).clip(0, 255).astype(np.uint8))


def _thumbnail(image: Image.Image) -> Image.Image:
    """``image`` scaled to fit in a :data:`TILE`, keeping its aspect ratio."""
    scale = min(TILE[0] / image.width, TILE[1] / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.BILINEAR)


@dataclass(frozen=True)
class SheetEntry:
    """One image of a contact sheet: its name, and thumbnails of the image and of its overlay."""

    name: str
    image: Image.Image
    overlay: Image.Image


def sheet_entry(name: str, rgb: np.ndarray, overlay_image: Image.Image) -> SheetEntry:
    """Thumbnails of an image and its overlay: what a contact sheet keeps of each image it shows."""
    return SheetEntry(name, _thumbnail(Image.fromarray(rgb)), _thumbnail(overlay_image))


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=11)


def _fit(text: str, draw: ImageDraw.ImageDraw, font, width: int) -> str:
    """``text`` shortened from the left (``…tail``) to fit ``width`` pixels: the end of a path says most."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength("…" + text, font=font) > width:
        text = text[1:]
    return "…" + text


def contact_sheet(
    entries: Sequence[SheetEntry], classes: Sequence[str], palette: np.ndarray, title: str = ""
) -> Image.Image:
    """A grid of image / overlay pairs with their names, above a legend of every class colour."""
    font = _font()
    pair_w = 2 * TILE[0] + GAP
    columns = max(1, min(PAIRS_PER_ROW, len(entries)))
    rows = _rows(len(entries), columns)
    width = GAP + columns * (pair_w + GAP)
    legend_columns = max(1, (width - GAP) // 150)
    legend_rows = _rows(len(classes), legend_columns)
    top = CAPTION + GAP if title else GAP
    height = top + rows * (TILE[1] + CAPTION + GAP) + legend_rows * (SWATCH + 6) + GAP
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((GAP, GAP // 2), _fit(title, draw, font, width - 2 * GAP), fill=(0, 0, 0), font=font)
    for index, entry in enumerate(entries):
        x = GAP + (index % columns) * (pair_w + GAP)
        y = top + (index // columns) * (TILE[1] + CAPTION + GAP)
        sheet.paste(entry.image, (x, y))
        sheet.paste(entry.overlay, (x + TILE[0] + GAP, y))
        draw.text((x, y + TILE[1] + 2), _fit(entry.name, draw, font, pair_w), fill=(0, 0, 0), font=font)
    y0 = top + rows * (TILE[1] + CAPTION + GAP)
    column_w = (width - GAP) // legend_columns
    for index, (name, colour) in enumerate(zip(classes, palette, strict=True)):
        x = GAP + (index % legend_columns) * column_w
        y = y0 + (index // legend_columns) * (SWATCH + 6)
        draw.rectangle((x, y, x + SWATCH, y + SWATCH), fill=tuple(int(c) for c in colour), outline=(0, 0, 0))
        label = _fit(name, draw, font, column_w - SWATCH - 8)
        draw.text((x + SWATCH + 4, y), label, fill=(0, 0, 0), font=font)
    return sheet


def _rows(count: int, per_row: int) -> int:
    """Rows needed for ``count`` items at ``per_row`` a row."""
    return -(-count // per_row)
