"""Synthesis: the embedded default data, a procedural street-scene domain shift in real dataset layouts."""

from __future__ import annotations

import logging
from pathlib import PurePosixPath
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from adaptseg.data.labels import colorize_train_ids, label_id_to_train_id_lut  # noqa: E402
from adaptseg.synth import SynthesisConfig, generate_source, generate_target  # noqa: E402

logger = logging.getLogger(__name__)


def _as_folder_entries(files: dict[str, Any]) -> dict[str, Any]:
    """Generator paths carry ``.png``; the folder dataset keys are paths without the suffix."""
    return {str(PurePosixPath(path).with_suffix("")): image for path, image in files.items()}


#: Per source layout: the image folder, the label folder, and the dataset kind whose label ids they hold.
SOURCE_FOLDERS = {"gta5": ("images", "labels"), "synthia": ("RGB", "GT/LABELS")}


def generate_domains(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Image.Image], plt.Figure]:
    """Both domains and a preview figure of a few source/target pairs with colourised labels.

    Source: the game-like domain in the GTA5 layout (``images/``, ``labels/``) or, with
    ``source_layout: synthia``, the SYNTHIA layout (``RGB/``, ``GT/LABELS/`` 16-bit). Target: the
    camera-like domain in the Cityscapes layout (``leftImg8bit/``, ``gtFine/``; train, val, dev).
    """
    config = SynthesisConfig.from_dict(params["generator"])
    layout = params.get("source_layout", "gta5")
    source = _as_folder_entries(generate_source(config, layout=layout))
    target = _as_folder_entries(generate_target(config))
    return source, target, plot_domain_pairs(source, target, int(params.get("preview_pairs", 4)), layout)


def _colourise(ids: Any, kind: str) -> np.ndarray:
    """Train-id colours of a label image or array of dataset ``kind``'s label ids (SYNTHIA: channel 0)."""
    ids = np.asarray(ids)
    ids = ids[:, :, 0] if ids.ndim == 3 else ids
    lut = label_id_to_train_id_lut(19, kind)
    return colorize_train_ids(np.where(ids < 256, lut[np.minimum(ids, 255)], 255).astype(np.uint8))


def plot_domain_pairs(
    source: dict[str, Any], target: dict[str, Image.Image], count: int, layout: str = "gta5"
) -> plt.Figure:
    """A few source and target images with their colourised labels, side by side."""
    images, labels = SOURCE_FOLDERS[layout]
    source_ids = sorted(k[len(images) + 1 :] for k in source if k.startswith(f"{images}/"))[:count]
    target_ids = sorted(k[len("leftImg8bit/") :] for k in target if k.startswith("leftImg8bit/train/"))[:count]
    fig, axes = plt.subplots(count, 4, figsize=(14, 1.9 * count), squeeze=False)
    for row, (sid, tid) in enumerate(zip(source_ids, target_ids, strict=False)):
        label_tid = tid.replace("_leftImg8bit", "_gtFine_labelIds")
        panels = [
            (np.asarray(source[f"{images}/{sid}"]), f"source ({layout.upper()} layout)"),
            (_colourise(source[f"{labels}/{sid}"], layout), "source label"),
            (np.asarray(target[f"leftImg8bit/{tid}"]), "target (Cityscapes layout)"),
            (_colourise(target[f"gtFine/{label_tid}"], "cityscapes"), "target label"),
        ]
        for ax, (picture, title) in zip(axes[row], panels, strict=True):
            ax.imshow(picture)
            ax.set_axis_off()
            if row == 0:
                ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
