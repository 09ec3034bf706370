"""MinEnt (Vu et al., CVPR 2019): minimise the entropy of the target predictions, no discriminator.

L = L_seg(source) + λ_ent main · mean E(main) + λ_ent aux · mean E(aux), E the normalised per-pixel entropy
of the target softmax at the image size. Published recipe: λ_ent 0.001 / 0.0002 (42.3 mIoU GTA5→Cityscapes).
A confident target prediction is not a correct one: on a layout shift, MinEnt sharpens whatever the source
model already believes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from adaptseg.methods.common import SEGMENTER, SegmentationConfig, domain_batch, supervised_step
from adaptseg.training.losses import prediction_entropy
from adaptseg.training.precision import Amp

TARGET_BATCHES = True
CURVES = {"segmentation": ("loss_seg", "loss_seg_aux"), "entropy": ("loss_ent_main", "loss_ent_aux")}
#: Output level → the segmenter's output key.
LEVELS = {"main": "out", "aux": "aux"}


@dataclass(frozen=True)
class Config(SegmentationConfig):
    """Entropy weights per output level (ADVENT's defaults)."""

    lambda_ent_main: float = 0.001
    lambda_ent_aux: float = 0.0002


def build_models(segmenter: nn.Module, config: Config) -> dict[str, nn.Module]:
    return {}


def step(models: Mapping[str, nn.Module], batch: Mapping, config: Config, amp: Amp) -> dict[str, torch.Tensor]:
    """L_seg on the source batch, then the weighted target entropies; two backward passes, one graph each."""
    _, logged = supervised_step(models, domain_batch(batch, "source", "minent"), config, amp)
    target = domain_batch(batch, "target", "minent")
    size = tuple(target["image"].shape[-2:])
    weights = {"main": config.lambda_ent_main, "aux": config.lambda_ent_aux}
    with amp.autocast():
        outputs = models[SEGMENTER](target["image"])
        loss = 0.0
        for level, key in LEVELS.items():
            if outputs.get(key) is None:
                if weights[level] > 0:
                    raise ValueError(f"lambda_ent_{level}={weights[level]} but the segmenter has no {key!r} output.")
                continue
            entropy = prediction_entropy(outputs[key], size, config.align_corners)
            logged[f"loss_ent_{level}"] = entropy.detach()
            loss = loss + weights[level] * entropy
    amp.backward(loss)
    return logged
