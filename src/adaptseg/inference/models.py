"""Which trained model segments the images, and what it says about its own input.

``predict.model`` (or ``--model``) names a model in one of several forms; :func:`resolve_model` dispatches
on the form and is the one place a new form is added:

- a training namespace (``adaptsegnet_multi``): the latest version of the catalog's ``<namespace>.model``
  (``conf/base/catalog.yml``: ``data/06_models/<namespace>/model.pt/<version>/model.pt``);
- a path to a ``.pt`` checkpoint file (a packed model, ``adaptseg.models.packaging.pack_model``);
- an MLflow registry model (``models:/<name>/<version or alias>``): the extension point, not implemented here.

A packed model carries its preprocessing, class names and palette (``packaging.inference_metadata``);
:func:`model_inputs` reads them, and falls back (and says so) for checkpoints written before they existed.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from adaptseg.data.labels import protocol_class_names, protocol_palette
from adaptseg.data.torch_datasets import IMG_MEAN_BGR

logger = logging.getLogger(__name__)

#: Where the catalog keeps each namespace's versioned model (``"{method}.model"`` in conf/base/catalog.yml).
DEFAULT_MODELS_ROOT = Path("data/06_models")
#: The key :func:`resolve_model` adds to a loaded model: the choice it was resolved from, and the file.
LOADED_FROM = "loaded_from"
REGISTRY_PREFIX = "models:/"
_NAMESPACE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def model_form(spec: str) -> str:
    """``"registry"``, ``"file"`` or ``"namespace"``: how :func:`resolve_model` reads ``spec``."""
    if spec.startswith(REGISTRY_PREFIX):
        return "registry"
    if _NAMESPACE.match(spec) and not Path(spec).is_file():
        return "namespace"
    return "file"


def resolve_model(spec: str, models_root: str | Path = DEFAULT_MODELS_ROOT) -> dict[str, Any]:
    """The packed model that ``spec`` names (see the module docstring for the forms), with
    ``model["loaded_from"] = {"model": spec, "path": file}``.

    The extension point for more forms: add a branch here (the MLflow registry form, ``models:/...``, is
    recognised and refused until it is implemented).
    """
    from adaptseg.training.checkpoint import load_checkpoint

    spec = str(spec).strip()
    form = model_form(spec)
    if form == "registry":
        raise NotImplementedError(
            f"Model {spec!r} is an MLflow registry model, which predict cannot load yet; pass a training "
            "namespace (e.g. adaptsegnet_multi) or the path of a .pt checkpoint instead."
        )
    path = latest_catalog_model(spec, Path(models_root)) if form == "namespace" else Path(spec).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"Model file {path} does not exist. Pass the path of a packed .pt checkpoint, or a training "
            "namespace whose model was trained (e.g. adaptsegnet_multi)."
        )
    model = load_checkpoint(path)
    if not isinstance(model, Mapping) or "segmenter" not in model:
        keys = sorted(model)[:8] if isinstance(model, Mapping) else type(model).__name__
        raise ValueError(
            f"{path} is not a packed adaptseg model (it holds {keys}, not 'spec' and 'segmenter'). Pass a "
            "model that training wrote (data/06_models/<namespace>/model.pt/<version>/model.pt)."
        )
    logger.info("Model %s", spec if form == "file" else f"{spec}: {path}")
    return {**model, LOADED_FROM: {"model": spec, "path": str(path)}}


def latest_catalog_model(namespace: str, models_root: Path = DEFAULT_MODELS_ROOT) -> Path:
    """The newest version of ``<namespace>.model`` under ``models_root``, as Kedro's versioned load picks it
    (version folders are timestamps that sort in time order); an unversioned ``model.pt`` file also counts."""
    entry = models_root / namespace / "model.pt"
    if entry.is_file():
        return entry
    versions = sorted(p / "model.pt" for p in entry.glob("*") if (p / "model.pt").is_file())
    if versions:
        return versions[-1]
    trained = sorted(p.parent.name for p in models_root.glob("*/model.pt")) if models_root.is_dir() else []
    close = difflib.get_close_matches(namespace, trained, n=1)
    hint = f" Did you mean {close[0]}?" if close else ""
    listing = f"Trained models under {models_root}: {', '.join(trained)}." if trained else (
        f"There is no trained model under {models_root} (run from the project folder, or pass --models-root)."
    )
    raise FileNotFoundError(
        f"No trained model for namespace {namespace!r} ({entry} has no version).{hint} {listing} Train it "
        f"first (kedro run --pipelines source_pretraining,adaptation --namespaces {namespace}), or pass the "
        "path of a .pt checkpoint."
    )


@dataclass(frozen=True)
class ModelInputs:
    """What a packed model expects and how its outputs are shown.

    ``input_size`` (W, H); ``mean_bgr`` subtracted from BGR pixels in 0–255 (training's normalisation);
    ``align_corners`` of the logits' bilinear upsampling; ``classes`` and ``palette`` by train id.
    ``fallbacks``: what the checkpoint lacked and was filled in (empty for a current checkpoint).
    """

    input_size: tuple[int, int]
    mean_bgr: np.ndarray
    align_corners: bool
    classes: tuple[str, ...]
    palette: np.ndarray
    fallbacks: tuple[str, ...] = ()


def _described(model: Mapping[str, Any]) -> str:
    source = model.get(LOADED_FROM) or {}
    return str(source.get("path") or model.get("method") or "the model")


def model_inputs(model: Mapping[str, Any], num_classes: int, fallback_size: Sequence[int]) -> ModelInputs:
    """The model's own preprocessing, classes and palette; what it lacks (checkpoints written before
    ``inference_metadata``) falls back to training's normalisation, the protocol's palette and class names,
    and ``fallback_size`` (``predict.input_size``), each named in ``fallbacks``."""
    where = _described(model)
    prep = model.get("preprocessing")
    fallbacks = []
    if not isinstance(prep, Mapping):
        prep = {}
        fallbacks.append("preprocessing (training's: bicubic resize, BGR, 0-255, DeepLab mean)")
    unsupported = {
        key: prep[key] for key, value in (("channel_order", "BGR"), ("resize", "bicubic"), ("scale", 255.0))
        if key in prep and prep[key] != value
    }
    if unsupported:
        raise ValueError(
            f"{where}: preprocessing {unsupported} is not what adaptseg trains with (BGR, bicubic, 0-255), "
            "so predict cannot reproduce it. Repack it with adaptseg.models.packaging.inference_metadata."
        )
    size = prep.get("input_size")
    if size is None:
        size = fallback_size
        fallbacks.append(f"input size (predict.input_size = {list(fallback_size)})")
    mean = np.asarray(prep.get("mean_bgr", IMG_MEAN_BGR), dtype=np.float32)
    classes = model.get("classes")
    palette = model.get("palette")
    if classes is None or palette is None:
        classes, palette = protocol_class_names(num_classes), protocol_palette(num_classes)
        fallbacks.append(f"classes and palette (the {num_classes}-class Cityscapes protocol's)")
    palette = np.asarray(palette, dtype=np.uint8)
    if len(classes) != num_classes or palette.shape != (num_classes, 3) or mean.shape != (3,):
        raise ValueError(
            f"{where}: {len(classes)} class names, a palette of shape {palette.shape} and mean_bgr of shape "
            f"{mean.shape} for a network with {num_classes} classes: the checkpoint's metadata is broken."
        )
    if fallbacks:
        logger.warning("%s carries no %s: using defaults for them.", where, "; no ".join(fallbacks))
    width, height = (int(v) for v in size)
    return ModelInputs(
        input_size=(width, height),
        mean_bgr=mean,
        align_corners=bool(prep.get("align_corners", True)),
        classes=tuple(str(c) for c in classes),
        palette=palette,
        fallbacks=tuple(fallbacks),
    )
