"""AdaptSegNet (Tsai et al., CVPR 2018): adversarial alignment in the output space, single- or multi-level.

A fully-convolutional discriminator per output level sees softmax maps and tells source from target; the
segmenter learns to make its target maps look like source ones. Variants are configurations:

- multi-level: ``levels: [main, aux]``, λ_seg 0.1, λ_adv main 0.001 / aux 0.0002 (the paper);
- single-level: ``levels: [main]``, λ_seg 0, λ_adv aux 0;
- the λ=0 control: every λ_adv at 0 with both levels, so target images still pass through the network and
  the discriminators still train: whatever it gains over source-only is not the adversarial loss's;
- LS-GAN: ``gan: ls`` (the original's ``--gan LS``, README single-level recipe λ 0.01).

The per-iteration algorithm is the reference's (§5.2): no second segmenter forward for the discriminators.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from adaptseg.methods.common import SEGMENTER, SegmentationConfig, domain_batch, frozen, supervised_step
from adaptseg.models.discriminator import FCDiscriminator
from adaptseg.training.losses import (
    GAN_OBJECTIVES,
    SOURCE_LABEL,
    TARGET_LABEL,
    adversarial_loss,
    discriminator_accuracy,
    softmax_upsampled,
)
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


def discriminator_name(level: str) -> str:
    return f"discriminator_{level}"


def build_models(segmenter: nn.Module, config: Config) -> dict[str, nn.Module]:
    """One output-space FCDiscriminator per level, on the segmenter's class probabilities."""
    return {discriminator_name(level): FCDiscriminator(segmenter.num_classes, ndf=config.ndf) for level in config.levels}


def adversarial_step(
    models: Mapping[str, nn.Module],
    batch: Mapping,
    config: Config,
    amp: Amp,
    discriminator_input,
    method: str = "adaptsegnet",
) -> dict[str, torch.Tensor]:
    """One iteration of adversarial adaptation on a per-level map of the segmenter's outputs.

    ``discriminator_input(logits, size)`` turns a level's logits into what its discriminator sees (softmax
    maps here; AdvEnt's self-information maps). Also used by ``methods.advent``.

    1. Discriminators frozen. Source forward; L_seg; backward.
    2. Target forward; L_adv = Σ_level λ_level · adv(D_level(input(t_level)), SOURCE); backward (gradients reach
       the segmenter only). Always run, also when every λ is 0 (the λ=0 control: in train-mode BatchNorm the
       target pass still updates the running statistics).
    3. Discriminators unfrozen; on detached maps, for each D: ½·adv(D(src), SOURCE) + ½·adv(D(tgt), TARGET).
    Target labels are never read.
    """
    source = domain_batch(batch, "source", method)
    target = domain_batch(batch, "target", method)
    segmenter = models[SEGMENTER]
    discriminators = {level: models[discriminator_name(level)] for level in config.levels}
    source_size = tuple(source["image"].shape[-2:])
    target_size = tuple(target["image"].shape[-2:])
    weights = config.weights

    with frozen(*discriminators.values()):
        source_out, logged = supervised_step(models, source, config, amp)
        source_logits = {level: _level(source_out, level) for level in discriminators}
        del source_out

        with amp.autocast():
            target_out = segmenter(target["image"])
            target_maps, loss_adv = {}, 0.0
            for level, discriminator in discriminators.items():
                target_maps[level] = discriminator_input(_level(target_out, level), target_size)
                adv = adversarial_loss(discriminator(target_maps[level]), SOURCE_LABEL, config.gan)
                logged[f"loss_adv_{level}"] = adv.detach()
                loss_adv = loss_adv + weights[level] * adv
        amp.backward(loss_adv)
        del target_out

    for level, discriminator in discriminators.items():
        with amp.autocast():
            d_source = discriminator(discriminator_input(source_logits[level], source_size))
            loss_d_source = 0.5 * adversarial_loss(d_source, SOURCE_LABEL, config.gan)
        amp.backward(loss_d_source)
        with amp.autocast():
            d_target = discriminator(target_maps[level].detach())
            loss_d_target = 0.5 * adversarial_loss(d_target, TARGET_LABEL, config.gan)
        amp.backward(loss_d_target)
        logged[f"loss_d_{level}"] = (loss_d_source + loss_d_target).detach()
        logged[f"d_acc_{level}"] = 0.5 * (
            discriminator_accuracy(d_source, SOURCE_LABEL, config.gan)
            + discriminator_accuracy(d_target, TARGET_LABEL, config.gan)
        )
    return logged


def _level(outputs: Mapping[str, torch.Tensor], level: str) -> torch.Tensor:
    key = LEVELS[level]
    if outputs.get(key) is None:
        raise ValueError(f"The segmenter returned no {key!r} output for the {level} discriminator.")
    return outputs[key]


def step(models: Mapping[str, nn.Module], batch: Mapping, config: Config, amp: Amp) -> dict[str, torch.Tensor]:
    """One AdaptSegNet iteration: the discriminators see class probabilities at input resolution."""
    return adversarial_step(
        models, batch, config, amp, lambda logits, size: softmax_upsampled(logits, size, config.align_corners)
    )
