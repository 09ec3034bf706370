"""Feature-level adversarial adaptation: the AdaptSegNet paper's own baseline (39.3 mIoU in its table).

One discriminator on the backbone's layer4 features (the input of the main classifier, output stride 8)
instead of on the softmax output; the iteration is AdaptSegNet's (``methods.adversarial``). Features at
stride 8 are too small for the paper's five stride-2 convolutions, so the discriminator's first three
convolutions keep stride 1 (``strides``). The paper reports no λ for it; choose it on dev.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from adaptseg.methods.adversarial import adversarial_step, discriminator_name, output
from adaptseg.methods.common import SegmentationConfig
from adaptseg.models.discriminator import FCDiscriminator
from adaptseg.training.losses import GAN_OBJECTIVES
from adaptseg.training.precision import Amp

LEVEL = "layer4"
TARGET_BATCHES = True
CURVES = {
    "segmentation": ("loss_seg", "loss_seg_aux"),
    "adversarial": ("loss_adv_layer4",),
    "discriminator": ("loss_d_layer4",),
}


@dataclass(frozen=True)
class Config(SegmentationConfig):
    lambda_adv: float = 0.001  # weight of the feature-level adversarial loss
    gan: str = "vanilla"
    ndf: int = 64
    strides: tuple[int, ...] = (1, 1, 1, 2, 2)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.gan not in GAN_OBJECTIVES:
            raise ValueError(f"gan={self.gan!r} is unknown; expected one of {GAN_OBJECTIVES}.")


def feature_channels(segmenter: nn.Module) -> int:
    """Channels of the segmenter's layer4 features (2048 for ResNet-101)."""
    if hasattr(segmenter, "backbone") and hasattr(segmenter.backbone, "out_channels"):
        return int(segmenter.backbone.out_channels["layer4"])
    return int(segmenter.feature_channels)


def build_models(segmenter: nn.Module, config: Config) -> dict[str, nn.Module]:
    """One discriminator on layer4 features."""
    return {discriminator_name(LEVEL): FCDiscriminator(feature_channels(segmenter), ndf=config.ndf, strides=config.strides)}


def step(models: Mapping[str, nn.Module], batch: Mapping, config: Config, amp: Amp) -> dict[str, torch.Tensor]:
    maps = {LEVEL: lambda outputs, size: output(outputs, LEVEL)}
    return adversarial_step(
        models, batch, config, amp, maps, {LEVEL: config.lambda_adv}, config.gan, "feature_level", return_features=True
    )
