"""A trained model as one self-describing dict: architecture spec + weights (+ discriminators, metadata).

Evaluation and later training stages rebuild the network from the spec stored beside the weights, so a
checkpoint never depends on the parameters of the run that reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from adaptseg.models import build_segmenter
from adaptseg.models.deeplab_v2 import DeepLabV2
from adaptseg.models.weights import load_imagenet_backbone

MODEL_FORMAT = "adaptseg.model/1"


def inference_metadata(num_classes: int, input_size: list[int] | tuple[int, int] | None) -> dict[str, Any]:
    """What segmenting a new image with a packed model needs besides its weights.

    ``preprocessing``: resize to ``input_size`` (W, H) bicubic, RGB → BGR, 0–255, minus ``mean_bgr``, no std
    scaling (``adaptseg.data.torch_datasets``); logits upsampled bilinearly with ``align_corners``.
    ``classes`` and ``palette``: the protocol's class names and official colours, by train id.
    """
    from adaptseg.data.labels import protocol_class_names, protocol_palette
    from adaptseg.data.torch_datasets import IMG_MEAN_BGR

    return {
        "preprocessing": {
            "input_size": list(input_size) if input_size is not None else None,
            "resize": "bicubic",
            "channel_order": "BGR",
            "scale": 255.0,
            "mean_bgr": [float(v) for v in IMG_MEAN_BGR],
            "align_corners": True,
        },
        "classes": list(protocol_class_names(num_classes)),
        "palette": protocol_palette(num_classes).tolist(),
    }


def build_from_spec(spec: Mapping[str, Any]) -> DeepLabV2:
    """A fresh segmenter from ``{arch, num_classes, options, init_weights?}`` (ImageNet weights from a local file)."""
    missing = [key for key in ("arch", "num_classes") if key not in spec]
    if missing:
        raise ValueError(f"Model spec lacks {missing}; got keys {sorted(spec)}.")
    segmenter = build_segmenter(spec["arch"], int(spec["num_classes"]), **dict(spec.get("options") or {}))
    if spec.get("init_weights"):
        load_imagenet_backbone(segmenter, spec["init_weights"])
    return segmenter


def pack_model(
    segmenter: nn.Module,
    spec: Mapping[str, Any],
    *,
    extra_models: Mapping[str, nn.Module] | None = None,
    **metadata: Any,
) -> dict[str, Any]:
    """The dict a catalog checkpoint holds: weights on the CPU, the spec, and free-form metadata.

    ``extra_models`` are the method's other trained models (discriminators, an EMA teacher), kept beside the
    segmenter so that a run can be inspected or continued; evaluation never needs them.
    """
    return {
        "format": MODEL_FORMAT,
        "spec": {**dict(spec), "init_weights": None},  # the weights below already contain the init
        "segmenter": state_to_cpu(segmenter.state_dict()),
        "extra_models": {name: state_to_cpu(m.state_dict()) for name, m in (extra_models or {}).items()},
        **metadata,
    }


def unpack_segmenter(model: Mapping[str, Any], **option_overrides: Any) -> DeepLabV2:
    """Rebuild the segmenter of a packed model; ``option_overrides`` change e.g. ``bn_mode``."""
    if model.get("format") != MODEL_FORMAT:
        raise ValueError(f"Not an adaptseg model (format {model.get('format')!r}, expected {MODEL_FORMAT!r}).")
    broken = [k for k, v in model["segmenter"].items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if broken:
        raise ValueError(
            f"Model {model.get('method', '?')!r} (step {model.get('step')}) holds NaN or infinite weights in "
            f"{len(broken)} tensor(s), e.g. {broken[:3]}: it diverged while training. It cannot be evaluated or "
            "trained from; retrain it (a lower lr or lambda), or load an earlier version of it."
        )
    spec = dict(model["spec"])
    spec["options"] = {**dict(spec.get("options") or {}), **option_overrides}
    segmenter = build_from_spec(spec)
    segmenter.load_state_dict(model["segmenter"])
    return segmenter


def state_to_cpu(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached CPU copies of a state dict, so a checkpoint never pins device memory or autograd history."""
    return {k: v.detach().cpu() for k, v in state.items()}
