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

from adaptseg.data.labels import label_id_palette  # noqa: E402
from adaptseg.synth import SynthesisConfig, generate_source, generate_target  # noqa: E402

logger = logging.getLogger(__name__)


def _as_folder_entries(files: dict[str, Image.Image]) -> dict[str, Image.Image]:
    """Generator paths carry ``.png``; the folder dataset keys are paths without the suffix."""
    return {str(PurePosixPath(path).with_suffix("")): image for path, image in files.items()}


def generate_domains(
    params: dict[str, Any],
) -> tuple[dict[str, Image.Image], dict[str, Image.Image], plt.Figure]:
    """Both domains and a preview figure of a few source/target pairs with colourised labels.

    Source: the game-like domain in the GTA5 layout (``images/``, ``labels/``). Target: the
    camera-like domain in the Cityscapes layout (``leftImg8bit/``, ``gtFine/``; train, val, dev).
    """
    config = SynthesisConfig.from_dict(params["generator"])
    source = _as_folder_entries(generate_source(config))
    target = _as_folder_entries(generate_target(config))
    return source, target, plot_domain_pairs(source, target, int(params.get("preview_pairs", 4)))


def _colourise_label_ids(label: Image.Image) -> np.ndarray:
    palette = np.array(label_id_palette(), dtype=np.uint8).reshape(256, 3)
    return palette[np.asarray(label)]


def plot_domain_pairs(source: dict[str, Image.Image], target: dict[str, Image.Image], count: int) -> plt.Figure:
    """A few source and target images with their colourised labels, side by side."""
    source_ids = sorted(k.split("/", 1)[1] for k in source if k.startswith("images/"))[:count]
    target_ids = sorted(k[len("leftImg8bit/") :] for k in target if k.startswith("leftImg8bit/train/"))[:count]
    fig, axes = plt.subplots(count, 4, figsize=(14, 1.9 * count), squeeze=False)
    for row, (sid, tid) in enumerate(zip(source_ids, target_ids)):
        label_tid = tid.replace("_leftImg8bit", "_gtFine_labelIds")
        panels = [
            (np.asarray(source[f"images/{sid}"]), "source (GTA5 layout)"),
            (_colourise_label_ids(source[f"labels/{sid}"]), "source label"),
            (np.asarray(target[f"leftImg8bit/{tid}"]), "target (Cityscapes layout)"),
            (_colourise_label_ids(target[f"gtFine/{label_tid}"]), "target label"),
        ]
        for ax, (picture, title) in zip(axes[row], panels):
            ax.imshow(picture)
            ax.set_axis_off()
            if row == 0:
                ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
