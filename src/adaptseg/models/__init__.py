"""Segmentation networks and discriminators for AdaptSegNet, Kedro-free and importable like torchvision's
models.

Builders are the public face; weights are always explicit local files (see :mod:`adaptseg.models.weights`).
"""

from __future__ import annotations

from typing import Any

from adaptseg.models.deeplab_v2 import (
    BN_MODES,
    ASPPClassifier,
    DeepLabV2,
    DilatedResNet,
    deeplabv2_resnet101,
    logits_size,
)
from adaptseg.models.deeplab_vgg import DeepLabVGG, deeplabv2_vgg16, vgg_logits_size
from adaptseg.models.discriminator import MIN_INPUT_SIZE, FCDiscriminator
from adaptseg.models.legacy_sgd import LegacySGD
from adaptseg.models.small import deeplabv2_small
from adaptseg.models.weights import (
    LoadReport,
    WeightLoadError,
    convert_adaptsegnet_state_dict,
    load_imagenet_backbone,
    load_imagenet_vgg16,
    load_segmenter_state,
)

SEGMENTER_BUILDERS = {
    "deeplabv2_resnet101": deeplabv2_resnet101,
    "deeplabv2_small": deeplabv2_small,
    "deeplabv2_vgg16": deeplabv2_vgg16,
}


def build_segmenter(arch: str, num_classes: int, **options: Any) -> DeepLabV2 | DeepLabVGG:
    """Build a segmenter by name, so an architecture can be a parameter (``arch``) rather than code.

    ``options`` go to the builder: ``multi_level``, ``aspp_sum_all_branches``, ``bn_mode``, and for
    ``deeplabv2_small`` also ``depth`` and ``width``. ``deeplabv2_vgg16`` is single-level only.
    """
    if arch not in SEGMENTER_BUILDERS:
        raise ValueError(f"Unknown segmenter arch {arch!r}; valid: {sorted(SEGMENTER_BUILDERS)}")
    try:
        return SEGMENTER_BUILDERS[arch](num_classes, **options)
    except TypeError as error:
        raise TypeError(f"Invalid options for arch {arch!r}: {error}") from error


__all__ = [
    "ASPPClassifier",
    "BN_MODES",
    "DeepLabV2",
    "DeepLabVGG",
    "DilatedResNet",
    "FCDiscriminator",
    "LegacySGD",
    "LoadReport",
    "MIN_INPUT_SIZE",
    "SEGMENTER_BUILDERS",
    "WeightLoadError",
    "build_segmenter",
    "convert_adaptsegnet_state_dict",
    "deeplabv2_resnet101",
    "deeplabv2_small",
    "deeplabv2_vgg16",
    "load_imagenet_backbone",
    "load_imagenet_vgg16",
    "load_segmenter_state",
    "logits_size",
    "vgg_logits_size",
]
