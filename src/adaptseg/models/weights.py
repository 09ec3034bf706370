"""Loading model weights from local files (nothing is ever downloaded), with errors that name what is wrong.

- :func:`load_imagenet_backbone`: a torchvision ImageNet ResNet state dict (``fc.*`` ignored) or the
  DeepLab-v2 init checkpoint AdaptSegNet starts from (keys prefixed ``Scale.``, a ``layer5.*`` VOC head that
  is skipped); for the VGG network, a torchvision-format VGG-16 state dict (:func:`load_imagenet_vgg16`).
- :func:`load_segmenter_state`: this project's own checkpoints (``{"segmenter": state_dict, ...}`` or a plain
  state dict) and, converted on the fly, the original AdaptSegNet checkpoints (``layer5``/``layer6`` heads,
  or ``features``/``classifier.conv2d_list`` for ``DeeplabVGG``).
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from adaptseg.models.deeplab_v2 import DeepLabV2, DilatedResNet
from adaptseg.models.deeplab_vgg import FC6_INDEX, DeepLabVGG, torchvision_features_index

logger = logging.getLogger(__name__)

StateDict = Mapping[str, Tensor]
_SHOWN = 10  # keys listed per category in an error message
_OPTIONAL_SUFFIXES = ("num_batches_tracked",)  # BN counters absent from pre-0.4.1 checkpoints; never needed


class WeightLoadError(ValueError):
    """A checkpoint does not fit the model: missing or unexpected keys, or shape mismatches."""

    def __init__(
        self,
        message: str,
        *,
        source: str = "",
        missing: tuple[str, ...] = (),
        unexpected: tuple[str, ...] = (),
        mismatched: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...] = (),
    ) -> None:
        super().__init__(message)
        self.source = source
        self.missing = missing
        self.unexpected = unexpected
        self.mismatched = mismatched


@dataclass(frozen=True)
class LoadReport:
    """What a load did: ``loaded`` keys were copied; ``skipped`` file keys were ignored on purpose (``fc.*``,
    the VOC head); ``missing``/``unexpected`` are only non-empty for non-strict loads or optional BN counters.
    """

    source: str
    loaded: tuple[str, ...]
    skipped: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()


def _read_checkpoint(path: str | os.PathLike[str]) -> object:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"Weight file not found: {path} (absolute: {path.resolve()}). Weights are never downloaded: "
            f"copy the file there or point the parameter at the right path."
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for corrupt or non-tensor files
        raise WeightLoadError(
            f"Could not read {path} as a PyTorch state dict: {error}", source=str(path)
        ) from error


def _as_state_dict(obj: object, source: str, wrapper_keys: tuple[str, ...]) -> dict[str, Tensor]:
    """The tensor mapping inside ``obj``: a state dict, or a dict holding one under a ``wrapper_keys`` key."""
    if isinstance(obj, Mapping):
        for key in wrapper_keys:
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        kind = type(obj).__name__
        keys = list(obj)[:_SHOWN] if isinstance(obj, Mapping) else []
        raise WeightLoadError(
            f"{source}: expected a state dict (str -> tensor) or a dict with one of {list(wrapper_keys)}, "
            f"got a {kind} with keys {keys}",
            source=source,
        )
    return {str(k): v for k, v in obj.items()}


def _strip_prefix(state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return state


def _listing(title: str, items: list[str]) -> str:
    shown = ", ".join(items[:_SHOWN]) + (f", ... ({len(items) - _SHOWN} more)" if len(items) > _SHOWN else "")
    return f"\n  {len(items)} {title}: {shown}"


def _check_and_load(
    module: nn.Module,
    state: dict[str, Tensor],
    source: str,
    *,
    strict: bool,
    skipped: tuple[str, ...] = (),
    hint: str = "",
    target_name: str = "",
) -> LoadReport:
    """Check ``state`` against ``module``'s keys and shapes; raise :class:`WeightLoadError` or copy it in.

    ``target_name`` names the model in messages when ``module`` is only a view of part of it.
    """
    target_name = target_name or type(module).__name__
    target = module.state_dict()
    missing = [k for k in target if k not in state and not k.endswith(_OPTIONAL_SUFFIXES)]
    optional_missing = [k for k in target if k not in state and k.endswith(_OPTIONAL_SUFFIXES)]
    unexpected = [k for k in state if k not in target]
    mismatched = [
        (k, tuple(state[k].shape), tuple(target[k].shape))
        for k in state
        if k in target and tuple(state[k].shape) != tuple(target[k].shape)
    ]
    if mismatched or (strict and (missing or unexpected)):
        message = f"Cannot load weights from {source} into {target_name}:"
        if missing:
            message += _listing("missing keys (in the model, not in the file)", missing)
        if unexpected:
            message += _listing("unexpected keys (in the file, not in the model)", unexpected)
        if mismatched:
            message += _listing(
                "shape mismatches (key: file vs model)",
                [f"{k}: {tuple(a)} vs {tuple(b)}" for k, a, b in mismatched],
            )
        if hint:
            message += f"\n  {hint}"
        raise WeightLoadError(
            message,
            source=source,
            missing=tuple(missing),
            unexpected=tuple(unexpected),
            mismatched=tuple(mismatched),
        )
    to_load = {k: v for k, v in state.items() if k in target}
    module.load_state_dict(to_load, strict=False)
    logger.info("Loaded %d tensors from %s into %s", len(to_load), source, target_name)
    return LoadReport(
        source=source,
        loaded=tuple(to_load),
        skipped=skipped,
        missing=tuple(missing + optional_missing),
        unexpected=tuple(unexpected),
    )


def load_imagenet_backbone(
    model: DeepLabV2 | DilatedResNet | DeepLabVGG, path: str | os.PathLike[str]
) -> LoadReport:
    """Initialise the backbone from a local ImageNet ResNet (torchvision keys) or DeepLab-v2 init checkpoint.

    ``fc.*`` (ImageNet classifier) and ``layer5.*`` (the DeepLab-v2 VOC head) are skipped, so both heads keep
    their random init, as in the original; a ``Scale.`` or ``module.`` key prefix is removed. Every backbone
    tensor must be in the file with the right shape, otherwise :class:`WeightLoadError` lists the offending
    keys. A :class:`DeepLabVGG` takes a VGG-16 file instead (:func:`load_imagenet_vgg16`), so one
    ``init_weights`` parameter serves both architectures.
    """
    if isinstance(model, DeepLabVGG):
        return load_imagenet_vgg16(model, path)
    backbone = model.backbone if isinstance(model, DeepLabV2) else model
    if not isinstance(backbone, DilatedResNet):
        raise TypeError(
            "load_imagenet_backbone needs a DeepLabV2, DilatedResNet or DeepLabVGG, "
            f"got {type(model).__name__}"
        )
    source = str(path)
    state = _as_state_dict(_read_checkpoint(path), source, wrapper_keys=("state_dict", "model"))
    state = _strip_prefix(state, "module.")
    state = {k.removeprefix("Scale."): v for k, v in state.items()}
    skipped = tuple(k for k in state if k.startswith(("fc.", "layer5.")))
    state = {k: v for k, v in state.items() if k not in skipped}
    return _check_and_load(
        backbone,
        state,
        source,
        strict=True,
        skipped=skipped,
        hint="Check that the file is a ResNet of the same depth and width as the backbone "
        "(e.g. resnet101 for deeplabv2_resnet101).",
    )


def _torchvision_vgg16_view(model: DeepLabVGG) -> nn.Module:
    """The model's VGG-16 layers keyed as in torchvision's ``vgg16()`` (``features.N``, pool4 still counted).

    The view shares the model's modules, so loading into it loads into the model; checking against it names
    keys in the file's own numbering.
    """
    layers = OrderedDict((str(torchvision_features_index(i)), model.features[i]) for i in range(FC6_INDEX))
    return nn.ModuleDict({"features": nn.Sequential(layers)})


def load_imagenet_vgg16(model: DeepLabVGG, path: str | os.PathLike[str]) -> LoadReport:
    """Initialise the VGG-16 part of ``features`` from a local torchvision-format VGG-16 state dict.

    torchvision's ``features.N`` indices are mapped past the removed pool4 (24..29 land at 23..28); the fully
    connected ``classifier.*`` tensors are skipped, so fc6, fc7 and the ASPP classifier keep their random
    init, as in the original. The original loads a Caffe-converted VGG-16 in this key format, which matches
    this project's BGR, 0-255, mean-subtracted inputs; torchvision's own ImageNet VGG-16 loads too but was
    trained on RGB inputs scaled to [0, 1] and standardised.
    """
    if not isinstance(model, DeepLabVGG):
        raise TypeError(f"load_imagenet_vgg16 needs a DeepLabVGG, got {type(model).__name__}")
    source = str(path)
    state = _as_state_dict(_read_checkpoint(path), source, wrapper_keys=("state_dict", "model"))
    state = _strip_prefix(state, "module.")
    skipped = tuple(k for k in state if k.startswith("classifier."))
    state = {k: v for k, v in state.items() if k not in skipped}
    return _check_and_load(
        _torchvision_vgg16_view(model),
        state,
        source,
        strict=True,
        skipped=skipped,
        hint="Check that the file is a plain VGG-16 in torchvision's format (not VGG-16-BN or VGG-19); "
        "keys are shown in torchvision's numbering.",
        target_name="DeepLabVGG's VGG-16 layers (torchvision numbering)",
    )


def _is_vgg_layout(state: StateDict) -> bool:
    return any(k.startswith("features.") for k in state)


def _convert_adaptsegnet_vgg(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """``DeeplabVGG`` keys: ``features.N`` is already this package's layout; ``conv2d_list`` becomes
    ``branches``."""
    return {k.replace("classifier.conv2d_list.", "classifier.branches.", 1): v for k, v in state.items()}


def convert_adaptsegnet_state_dict(state: StateDict) -> dict[str, Tensor]:
    """Rename an original AdaptSegNet/DeepLab-v2 checkpoint to this package's names.

    ``conv1``/``bn1``/``layer1-4`` go under ``backbone.``; in ``DeeplabMulti`` checkpoints ``layer5`` is the
    aux head and ``layer6`` the main head; in single-head ``Res_Deeplab`` checkpoints ``layer5`` is the main
    head. ``conv2d_list`` becomes ``branches``. ``DeeplabVGG`` checkpoints (``features.N``,
    ``classifier.conv2d_list.i``) only need the last renaming.
    """
    state = _strip_prefix(dict(state), "module.")
    if _is_vgg_layout(state):
        return _convert_adaptsegnet_vgg(state)
    state = {k.removeprefix("Scale."): v for k, v in state.items()}
    multi = any(k.startswith("layer6.") for k in state)
    head_names = {"layer5": "aux_classifier" if multi else "classifier", "layer6": "classifier"}
    converted = {}
    for key, value in state.items():
        first, _, rest = key.partition(".")
        if first in head_names:
            converted[f"{head_names[first]}.{rest.replace('conv2d_list.', 'branches.', 1)}"] = value
        else:
            converted[f"backbone.{key}"] = value
    return converted


def _looks_like_adaptsegnet(state: StateDict) -> bool:
    return any(".conv2d_list." in k for k in state) and not any(k.startswith("backbone.") for k in state)


def load_segmenter_state(
    model: DeepLabV2 | DeepLabVGG,
    state_dict_or_path: StateDict | Mapping[str, object] | str | os.PathLike[str],
    strict: bool = True,
) -> LoadReport:
    """Load a whole segmenter from a project checkpoint (``{"segmenter": ...}``) or a plain state dict / file.

    Original AdaptSegNet checkpoints (``layer5``/``layer6`` with ``conv2d_list``, or ``DeeplabVGG``'s
    ``features``/``classifier.conv2d_list``) are renamed first with
    :func:`convert_adaptsegnet_state_dict`. ``strict=False`` tolerates missing/unexpected keys (reported in
    the returned :class:`LoadReport`); shape mismatches always raise :class:`WeightLoadError`.
    """
    if isinstance(state_dict_or_path, (str, os.PathLike)):
        source = str(state_dict_or_path)
        obj = _read_checkpoint(state_dict_or_path)
    else:
        source = "<in-memory state dict>"
        obj = state_dict_or_path
    state = _as_state_dict(obj, source, wrapper_keys=("segmenter", "state_dict", "model"))
    state = _strip_prefix(state, "module.")
    if _looks_like_adaptsegnet(state):
        logger.info("%s uses the original AdaptSegNet key names; converting", source)
        state = convert_adaptsegnet_state_dict(state)
    return _check_and_load(
        model,
        state,
        source,
        strict=strict,
        hint="Check that the architecture options (arch, num_classes, multi_level, depth, width) "
        "match the checkpoint.",
    )


__all__ = [
    "LoadReport",
    "WeightLoadError",
    "convert_adaptsegnet_state_dict",
    "load_imagenet_backbone",
    "load_imagenet_vgg16",
    "load_segmenter_state",
]
