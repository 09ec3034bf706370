"""Predictions in the Cityscapes results format: label-id PNGs the official evaluation finds, plus colours.

``cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling`` walks a results folder recursively and
matches a ground-truth file ``<city>_<seq>_<frame>_gtFine_labelIds.png`` to the one prediction whose
name matches ``<city>_<seq>_<frame>*.png``; two matches are an error. So the label-id PNGs go to a folder
of their own (``<city>/<city>_<seq>_<frame>.png``) and the colour PNGs to another one; pointing
``CITYSCAPES_RESULTS`` at the label-id folder evaluates exactly our predictions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import numpy as np
from PIL import Image

from adaptseg.data.labels import protocol_palette, train_id_to_label_id_lut

#: A Cityscapes sample id: ``<city>_<6-digit sequence>_<6-digit frame>``.
CITYSCAPES_STEM = re.compile(r"^(?P<city>.+)_(?P<seq>\d{6})_(?P<frame>\d{6})$")

Loader = Callable[[], Image.Image]


def result_key(sample_id: str) -> str:
    """Relative path (no suffix) of a prediction: ``<city>/<sample_id>`` for Cityscapes ids, else the id.

    The file name starts with ``<city>_<seq>_<frame>``, which is all the official script's matching needs;
    the city folder mirrors the ground-truth layout.
    """
    match = CITYSCAPES_STEM.match(sample_id)
    return f"{match['city']}/{sample_id}" if match else sample_id


def label_id_image(train_ids: np.ndarray, num_classes: int = 19) -> Image.Image:
    """Greyscale PNG-ready image of Cityscapes label ids (the results format) from a compact train-id map."""
    lut = train_id_to_label_id_lut(num_classes)
    return Image.fromarray(np.take(lut, np.asarray(train_ids, dtype=np.uint8)))


def colour_image(train_ids: np.ndarray, num_classes: int = 19) -> Image.Image:
    """Paletted image of a compact train-id map in the official Cityscapes colours (ignore pixels black).

    A palette PNG (as the original's ``_color.png``) looks the same as RGB at a third of the pixels to encode.
    """
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[:num_classes] = protocol_palette(num_classes)
    image = Image.fromarray(np.asarray(train_ids, dtype=np.uint8))
    image.putpalette(palette.flatten().tolist())
    return image


def prediction_exports(
    predictions: Mapping[str, np.ndarray], num_classes: int, *, colour: bool = True
) -> tuple[dict[str, Loader], dict[str, Loader]]:
    """``({key: label-id image loader}, {key_color: colour image loader})`` for ``FolderDataset`` saves.

    Loaders are lazy, so only one PNG-ready image exists at a time while the catalog writes the folders;
    the colour dict is empty when ``colour`` is false.
    """
    label_ids = {
        result_key(name): (lambda p=pred: label_id_image(p, num_classes)) for name, pred in predictions.items()
    }
    colours = (
        {f"{result_key(name)}_color": (lambda p=pred: colour_image(p, num_classes)) for name, pred in predictions.items()}
        if colour
        else {}
    )
    return label_ids, colours
