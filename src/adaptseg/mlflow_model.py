"""A trained adaptseg segmenter as an MLflow pyfunc model, logged in its child run and registered.

The contract (what the ``predict`` pipeline, ``mlflow models serve`` and any other reader may rely on):

- **Name**: ``adaptseg-<namespace>`` in the model registry (``adaptseg-adaptsegnet_multi``,
  ``adaptseg-source_pretraining``, ``adaptseg-oracle``...), one version per trained model while
  ``tracking.register_models`` is true (``conf/base/parameters_tracking.yml``). Load a version with
  ``mlflow.pyfunc.load_model("models:/adaptseg-<namespace>/<version>")``; the logged model itself lives in
  the namespace's child run under the name ``model``.
- **Version tags**: ``namespace``, ``method`` (the method module: ``adaptsegnet``, ``source_only``...),
  ``dataset`` (``<source kind> → <target kind>``, e.g. ``gta5 → cityscapes``), ``seed``, ``precision``,
  ``device`` (what it trained with), ``num_classes``, ``step``, ``kedro.env``, ``git.commit``,
  ``data.version``.
- **Input**: one numpy array, **N×H×W×3, uint8, RGB** (0–255), every image of a batch the same size; any
  H×W (images are resized to the model's ``input_size`` for the network). One image is a batch of one
  (``image[None]``). Over HTTP (``mlflow models serve -m models:/adaptseg-<namespace>/<version>``):
  ``POST /invocations`` with ``{"inputs": <N×H×W×3 nested lists of integers>}`` (tensor input).
- **Params** (optional, ``predict(images, params={...})`` or ``"params"`` beside ``"inputs"`` over HTTP):
  ``device`` (``auto`` = CUDA when available, ``cpu``, ``cuda``, ``cuda:N``; default ``auto``) and
  ``batch_size`` (default 4).
- **Output**: numpy array **N×H×W, uint8**: the train id (0 … num_classes − 1) of every pixel at the input's
  own size: the main head's logits upsampled bilinearly (``align_corners``) from the network's output, then
  argmax, exactly as evaluation scores (``adaptseg.evaluation.inference.upsampled_prediction``).
- **Metadata** (``mlflow.models.get_model_info(uri).metadata``, also ``model.metadata.metadata`` after
  loading): ``classes`` (names by train id), ``palette`` (RGB per train id), ``preprocessing`` (``input_size``
  (W, H), ``resize``, ``channel_order``, ``scale``, ``mean_bgr``, ``align_corners``; see
  ``adaptseg.models.packaging.inference_metadata``), ``num_classes``, ``namespace``, ``method``, ``step``,
  ``model_format``.
- **Artifact** ``checkpoint``: the packed model (``adaptseg.model/1``, without the discriminators, which
  inference never needs), read with ``torch.load(weights_only=True)`` and rebuilt with
  ``adaptseg.models.packaging.unpack_segmenter``. The model carries the ``adaptseg`` package it was trained
  with (``code/adaptseg``), so loading needs mlflow, torch, numpy, pillow, pandas and tqdm (the model's
  ``requirements.txt``), not this project.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
from mlflow.models import ModelSignature
from mlflow.types import ParamSchema, ParamSpec, Schema, TensorSpec

#: Registered model name of a namespace's models.
REGISTERED_PREFIX = "adaptseg-"
#: Name of the logged model inside the child run.
MODEL_NAME = "model"
#: What the loaded model computes with unless ``params`` say otherwise.
DEFAULT_PARAMS = {"device": "auto", "batch_size": 4}
#: The preprocessing this wrapper implements (``inference_metadata``); anything else is refused at load.
SUPPORTED = {"resize": ("bicubic",), "channel_order": ("BGR",), "scale": (255.0,)}


def registered_name(namespace: str) -> str:
    """``adaptseg-<namespace>``: the registry name of a namespace's models."""
    return f"{REGISTERED_PREFIX}{namespace}"


def signature() -> ModelSignature:
    """N×H×W×3 uint8 RGB in, N×H×W uint8 train ids out; ``device`` and ``batch_size`` as inference params."""
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, -1, 3))]),
        outputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, -1))]),
        params=ParamSchema([
            ParamSpec("device", "string", DEFAULT_PARAMS["device"]),
            ParamSpec("batch_size", "long", DEFAULT_PARAMS["batch_size"]),
        ]),
    )


# ------------------------------------------------------------------------------------------- inference
def check_preprocessing(preprocessing: Mapping[str, Any] | None) -> dict[str, Any]:
    """The packed model's preprocessing, refused with a message when this wrapper would apply it wrongly."""
    if not preprocessing:
        raise ValueError(
            "The packed model has no 'preprocessing' metadata (packed before inference_metadata existed); "
            "retrain it, or pack it again with adaptseg.models.packaging.inference_metadata."
        )
    wrong = {key: preprocessing.get(key) for key in SUPPORTED if preprocessing.get(key) not in SUPPORTED[key]}
    if wrong:
        raise ValueError(f"Unsupported preprocessing {wrong}; this wrapper implements {SUPPORTED}.")
    return dict(preprocessing)


def as_batch(images: Any) -> np.ndarray:
    """The input as an N×H×W×3 uint8 array, or an error that says what was given instead."""
    if isinstance(images, Mapping) and len(images) == 1:  # a named tensor ({"images": array})
        images = next(iter(images.values()))
    array = images.to_numpy() if hasattr(images, "to_numpy") else np.asarray(images)
    if array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(
            f"Expected RGB images as an N×H×W×3 array (one image: image[None]), got shape {array.shape}."
        )
    if array.dtype != np.uint8:
        integers = np.issubdtype(array.dtype, np.integer)
        if not integers or array.min(initial=0) < 0 or array.max(initial=0) > 255:
            raise ValueError(f"Expected uint8 RGB values 0-255, got dtype {array.dtype}.")
        array = array.astype(np.uint8)
    return array


def preprocess(images: np.ndarray, preprocessing: Mapping[str, Any]) -> torch.Tensor:
    """N×3×h×w float tensor as the training data loader builds it (``adaptseg.data.torch_datasets``).

    Bicubic resize to ``input_size`` (W, H) with PIL (skipped when the size already matches), RGB → BGR,
    0–255, minus ``mean_bgr``: the same operations, so the network sees the same numbers as in evaluation.
    """
    from PIL import Image

    size = preprocessing.get("input_size")
    mean = np.asarray(preprocessing["mean_bgr"], dtype=np.float32)
    planes = []
    for rgb in images:
        if size is not None and (rgb.shape[1], rgb.shape[0]) != tuple(size):
            rgb = np.asarray(Image.fromarray(rgb).resize(tuple(size), Image.BICUBIC))
        bgr = rgb[:, :, ::-1].astype(np.float32) - mean
        planes.append(torch.from_numpy(np.ascontiguousarray(bgr.transpose(2, 0, 1))))
    return torch.stack(planes)


@torch.inference_mode()
def segment(
    segmenter: torch.nn.Module,
    images: np.ndarray,
    preprocessing: Mapping[str, Any],
    *,
    device: str = "auto",
    batch_size: int = 4,
) -> np.ndarray:
    """N×H×W uint8 train ids of N×H×W×3 uint8 RGB images at their own size (the pyfunc's ``predict``)."""
    from adaptseg.evaluation.inference import upsampled_prediction
    from adaptseg.training.precision import resolve_device

    images = as_batch(images)
    target = resolve_device(str(device))
    segmenter.eval().to(target)
    height, width = images.shape[1:3]
    out = np.empty(images.shape[:3], dtype=np.uint8)
    step = max(1, int(batch_size))
    for start in range(0, len(images), step):
        batch = preprocess(images[start : start + step], preprocessing).to(target)
        logits = segmenter(batch)["out"]
        align_corners = bool(preprocessing.get("align_corners", True))
        prediction = upsampled_prediction(logits, (height, width), align_corners)
        out[start : start + step] = prediction.cpu().numpy()
    return out


def load_packed(path: str | Path) -> dict[str, Any]:
    """A packed model file (``torch.save`` of the dict) on the CPU."""
    return torch.load(path, map_location="cpu", weights_only=True)


class AdaptsegSegmenter(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper of a packed model file (artifact ``checkpoint``); its contract: the module docstring."""

    def load_context(self, context: Any) -> None:
        from adaptseg.models.packaging import unpack_segmenter

        packed = load_packed(context.artifacts["checkpoint"])
        self.preprocessing = check_preprocessing(packed.get("preprocessing"))
        self.segmenter = unpack_segmenter(packed).eval()

    def predict(
        self, context: Any, model_input: np.ndarray, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        options = {**DEFAULT_PARAMS, **(params or {})}
        return segment(
            self.segmenter, model_input, self.preprocessing,
            device=options["device"], batch_size=int(options["batch_size"]),
        )


# ------------------------------------------------------------------------------------------- logging
def model_metadata(packed: Mapping[str, Any]) -> dict[str, Any]:
    """What a reader of the registry needs without loading the weights: classes, palette, preprocessing."""
    return {
        "classes": list(packed.get("classes") or []),
        "palette": [list(colour) for colour in packed.get("palette") or []],
        "preprocessing": dict(packed.get("preprocessing") or {}),
        "num_classes": int(packed["spec"]["num_classes"]),
        "namespace": str(packed.get("method")),
        "method": str(packed.get("method_module", "source_only")),
        "step": packed.get("step"),
        "model_format": str(packed.get("format")),
        "input": "N×H×W×3 uint8 RGB (numpy); HTTP: {\"inputs\": [...]}",
        "output": "N×H×W uint8 train ids at the input size",
    }


def requirements() -> list[str]:
    """Pinned to this environment; given explicitly, since MLflow's inference loads the model in a subprocess
    (seconds per model)."""
    import pandas
    import PIL
    import tqdm

    return [
        f"mlflow=={mlflow.__version__}",
        f"torch=={torch.__version__.split('+')[0]}",
        f"numpy=={np.__version__}",
        f"pillow=={PIL.__version__}",
        f"pandas=={pandas.__version__}",
        f"tqdm=={tqdm.__version__}",  # adaptseg.evaluation.inference's progress bars
    ]


def _package_copy(folder: Path) -> Path:
    """The ``adaptseg`` package (sources only) copied into ``folder``: the model carries the code it needs."""
    import adaptseg

    source = Path(adaptseg.__file__).parent
    target = folder / "adaptseg"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


#: The model's code file (MLflow "models from code"): the wrapper from the ``adaptseg`` copy it carries.
LOADER = """import mlflow
from adaptseg.mlflow_model import AdaptsegSegmenter

mlflow.models.set_model(AdaptsegSegmenter())
"""


def log_segmenter(
    packed: Mapping[str, Any], *, register: bool, version_tags: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Log ``packed`` as a pyfunc model into the **active** run and, when ``register``, as a new version of
    ``adaptseg-<namespace>`` with ``version_tags``. Returns ``model_uri``, ``version`` and ``seconds``."""
    began = time.perf_counter()
    check_preprocessing(packed.get("preprocessing"))
    namespace = str(packed.get("method"))
    with tempfile.TemporaryDirectory(prefix="adaptseg-model-") as tmp:
        folder = Path(tmp)
        checkpoint = folder / "model.pt"
        torch.save({**dict(packed), "extra_models": {}}, checkpoint)
        loader = folder / "adaptseg_model.py"  # models from code: nothing is unpickled when the model loads
        loader.write_text(LOADER)
        with warnings.catch_warnings():
            # the signature is explicit; an input example would load and run the model while logging it
            warnings.filterwarnings("ignore", message=".*input example was not provided.*")
            info = mlflow.pyfunc.log_model(
                name=MODEL_NAME,
                python_model=str(loader),
                artifacts={"checkpoint": str(checkpoint)},
                code_paths=[str(_package_copy(folder / "code"))],
                signature=signature(),
                metadata=model_metadata(packed),
                pip_requirements=requirements(),
            )
    result: dict[str, Any] = {"model_uri": info.model_uri, "version": None}
    if register:
        tags = {k: str(v) for k, v in (version_tags or {}).items()}
        version = mlflow.register_model(info.model_uri, registered_name(namespace), tags=tags)
        _describe_registered(registered_name(namespace))
        result["version"] = int(version.version)
    result["seconds"] = time.perf_counter() - began
    return result


def _describe_registered(name: str) -> None:
    """A registered model's description states the contract, once (the first version sets it)."""
    client = mlflow.MlflowClient()
    if not client.get_registered_model(name).description:
        client.update_registered_model(
            name,
            description=(
                "adaptseg segmenter. Input: N×H×W×3 uint8 RGB images (numpy; HTTP {\"inputs\": ...}). "
                "Output: N×H×W uint8 train ids at the input size. Metadata: classes, palette, "
                "preprocessing. Contract: adaptseg.mlflow_model."
            ),
        )
