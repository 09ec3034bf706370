"""A quick look at the benchmark: source/target pairs with colourised labels, as one PIL image."""

from __future__ import annotations

import numpy as np
from PIL import Image

from adaptseg.data.labels import label_id_palette

from .config import SynthesisConfig
from .generator import source_sample, target_sample


def _colourise(label: Image.Image) -> Image.Image:
    palette = np.array(label_id_palette(), dtype=np.uint8).reshape(256, 3)
    return Image.fromarray(palette[np.asarray(label)])


def preview_pairs(config: SynthesisConfig, count: int = 4, split: str = "train", scale: int = 2) -> Image.Image:
    """A grid: one row per pair (source image, source label, target image, target label)."""
    sw, sh = config.source_size
    tw, th = config.target_size
    cell_h = max(sh, th) * scale
    width = (2 * sw + 2 * tw) * scale + 3 * 4
    grid = Image.new("RGB", (width, count * (cell_h + 4)), (255, 255, 255))
    for row in range(count):
        s_img, s_lab, _ = source_sample(config, row)
        t_img, t_lab, _ = target_sample(config, split, row)
        x = 0
        for picture in (s_img, _colourise(s_lab), t_img, _colourise(t_lab)):
            big = picture.convert("RGB").resize((picture.width * scale, picture.height * scale), Image.NEAREST)
            grid.paste(big, (x, row * (cell_h + 4)))
            x += big.width + 4
    return grid
