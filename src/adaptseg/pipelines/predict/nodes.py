"""The predict node: the inference library between the catalog's inputs and outputs.

Pure but for one thing: the images. A user's folder may hold thousands of video frames, so the catalog
hands over an ``ImageFolder`` (``adaptseg.io.UserImageFolderDataset``) from which the node reads images one
batch at a time, and it returns the outputs as loaders that draw each overlay (reading its image again)
only when ``FolderDataset`` writes it. The model arrives loaded (``adaptseg.io.PredictModelDataset``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from adaptseg.inference import ImageFolder, PredictConfig, folder_problems, segment_folder
from adaptseg.inference.models import LOADED_FROM

logger = logging.getLogger(__name__)


def check_catalog_choices(config: PredictConfig, model: Mapping[str, Any], images: ImageFolder) -> None:
    """Refuse a run whose parameters name another model or folder than the catalog loaded.

    The catalog reads ``predict.input`` and ``predict.model`` from the run's ``--params`` only
    (``${runtime_params:...}``); a value written into a parameters file instead would reach the
    parameters but not the catalog, and the run would silently segment other images with another model.
    """
    problems = []
    loaded = (model.get(LOADED_FROM) or {}).get("model")
    if config.model is not None and loaded is not None and str(config.model) != loaded:
        problems.append(f"predict.model is {config.model!r} in the parameters; the catalog loaded {loaded!r}")
    if config.input is not None and Path(config.input).resolve() != images.root.resolve():
        read = images.root
        problems.append(f"predict.input is {config.input!r} in the parameters; the catalog read {read}")
    if config.input is not None and config.output is not None:
        problems += folder_problems(config.input, config.output)
    if problems:
        raise ValueError(
            "; ".join(problems) + ". Give predict.input, predict.output and predict.model at run time: kedro "
            'run --pipelines predict --params "predict.input=DIR,predict.output=DIR,predict.model=NAME".'
        )


def segment_images(
    model: dict[str, Any], images: ImageFolder, params: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Label-id PNGs, overlays and a contact sheet of every image (``predict_output``), and the summary.

    ``params``: the ``predict`` block (``PredictConfig``): batch size, policy, precision, device, the
    fallback input size, overlay opacity and the contact sheet's size.
    """
    config = PredictConfig.from_dict(params)
    check_catalog_choices(config, model, images)
    result = segment_folder(model, images, config)
    return result.outputs, result.summary
