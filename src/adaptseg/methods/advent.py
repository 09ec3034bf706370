"""AdvEnt (Vu et al., CVPR 2019): adversarial alignment of weighted self-information maps.

The discriminators see ``I_c = -P_c · log P_c / log C`` per class at the image size instead of AdaptSegNet's
softmax maps: low-entropy (confident) source predictions and high-entropy target ones become the cue to
remove. Knobs, discriminators and the iteration are AdaptSegNet's (``methods.adversarial``); ADVENT's
published recipe is λ_seg 0.1 (aux), λ_adv main 0.001 / aux 0.0002, multi-level (43.8 mIoU GTA5→Cityscapes).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from adaptseg.methods.adaptsegnet import LEVELS, Config, build_models
from adaptseg.methods.adversarial import adversarial_step, output
from adaptseg.training.losses import self_information, softmax_upsampled
from adaptseg.training.precision import Amp

__all__ = ["CURVES", "TARGET_BATCHES", "Config", "build_models", "step"]

TARGET_BATCHES = True
CURVES = {
    "segmentation": ("loss_seg", "loss_seg_aux"),
    "adversarial": ("loss_adv_main", "loss_adv_aux"),
    "discriminator": ("loss_d_main", "loss_d_aux"),
}


def step(models: Mapping[str, nn.Module], batch: Mapping, config: Config, amp: Amp) -> dict[str, torch.Tensor]:
    """One AdvEnt iteration: the discriminators see self-information maps at the image size."""

    def information(key: str):
        return lambda outputs, size: self_information(softmax_upsampled(output(outputs, key), size, config.align_corners))

    maps = {level: information(LEVELS[level]) for level in config.levels}
    return adversarial_step(models, batch, config, amp, maps, config.weights, config.gan, "advent")
