"""AdaptSegNet (Tsai et al., CVPR 2018): adversarial alignment in the output space, single- or multi-level.

A fully-convolutional discriminator per output level sees softmax maps at the image size and tells source
from target; the segmenter learns to make its target maps look like source ones (``methods.adversarial``).
Variants are configurations:

- multi-level: ``levels: [main, aux]``, λ_seg 0.1, λ_adv main 0.001 / aux 0.0002 (the paper);
- single-level: ``levels: [main]``, λ_seg 0, λ_adv aux 0;
- the λ=0 control: every λ_adv at 0 with both levels, so target images still pass through the network and
  the discriminators still train: whatever it gains over source-only is not the adversarial loss's;
- LS-GAN: ``gan: ls`` (the original's ``--gan LS``, README single-level recipe λ 0.01).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from adaptseg.methods.adversarial import adversarial_step, discriminator_name, output
from adaptseg.methods.common import SegmentationConfig
from adaptseg.models.discriminator import FCDiscriminator
from adaptseg.training.losses import GAN_OBJECTIVES, softmax_upsampled
from adaptseg.training.precision import Amp

#: Output level → the segmenter's output key.
LEVELS = {"main": "out", "aux": "aux"}

TARGET_BATCHES = True
CURVES = {
    "segmentation": ("loss_seg", "loss_seg_aux"),
    "adversarial": ("loss_adv_main", "loss_adv_aux"),
    "discriminator": ("loss_d_main", "loss_d_aux"),
}


@dataclass(frozen=True)
class Config(SegmentationConfig):
    """Loss weights, GAN objective and discriminators (defaults: the paper's multi-level recipe, §5.1)."""

    lambda_adv_main: float = 0.001  # weight of the main-level adversarial loss (D_main)
    lambda_adv_aux: float = 0.0002  # weight of the aux-level adversarial loss (D_aux)
    gan: str = "vanilla"  # "vanilla" (BCE with logits) or "ls" (least squares)
    levels: tuple[str, ...] = ("main", "aux")  # output levels with a discriminator (trained whatever their λ)
    ndf: int = 64  # discriminator width (the paper's FCDiscriminator: 64)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.gan not in GAN_OBJECTIVES:
            raise ValueError(f"gan={self.gan!r} is unknown; expected one of {GAN_OBJECTIVES}.")
        unknown = [level for level in self.levels if level not in LEVELS]
        if unknown or not self.levels or len(set(self.levels)) != len(self.levels):
            raise ValueError(f"levels={list(self.levels)} must be distinct names from {list(LEVELS)}.")
        if "aux" not in self.levels and self.lambda_adv_aux > 0:
            raise ValueError(
                f"lambda_adv_aux={self.lambda_adv_aux} needs the aux level: add 'aux' to levels or set it to 0 "
                "(single-level)."
            )
        if isinstance(self.ndf, bool) or not isinstance(self.ndf, int) or self.ndf < 1:
            raise ValueError(f"ndf={self.ndf!r} must be a positive integer.")

    @property
    def weights(self) -> dict[str, float]:
        return {"main": self.lambda_adv_main, "aux": self.lambda_adv_aux}


def build_models(segmenter: nn.Module, config: Config) -> dict[str, nn.Module]:
    """One FCDiscriminator per level, on the segmenter's class maps."""
    return {discriminator_name(level): FCDiscriminator(segmenter.num_classes, ndf=config.ndf) for level in config.levels}


def step(models: Mapping[str, nn.Module], batch: Mapping, config: Config, amp: Amp) -> dict[str, torch.Tensor]:
    """One AdaptSegNet iteration: the discriminators see class probabilities at the image size."""

    def probabilities(key: str):
        return lambda outputs, size: softmax_upsampled(output(outputs, key), size, config.align_corners)

    maps = {level: probabilities(LEVELS[level]) for level in config.levels}
    return adversarial_step(models, batch, config, amp, maps, config.weights, config.gan, "adaptsegnet")
