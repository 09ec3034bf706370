"""The alternating adversarial scheme that output-space, entropy-space and feature-level methods share.

Per level, a discriminator sees a map derived from the segmenter's outputs (softmax maps for AdaptSegNet,
self-information maps for AdvEnt, layer4 features for the feature-level baseline) and learns to tell source
from target; the segmenter learns to make its target maps look like source ones. The iteration is the
AdaptSegNet reference's (§5.2), with no second segmenter forward for the discriminators:

1. Discriminators frozen. Source forward; L_seg; backward.
2. Target forward; L_adv = Σ_level λ_level · adv(D_level(map(t)), SOURCE); backward (gradients reach the
   segmenter only). Always run, also when every λ is 0 (the λ=0 control: in train-mode BatchNorm the target
   pass still updates the running statistics, and the discriminators still train).
3. Discriminators unfrozen; on detached maps, for each D: ½·adv(D(src), SOURCE) + ½·adv(D(tgt), TARGET).

Target labels are never read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from adaptseg.methods.common import SEGMENTER, SegmentationConfig, domain_batch, frozen, supervised_step
from adaptseg.training.losses import SOURCE_LABEL, TARGET_LABEL, adversarial_loss, discriminator_accuracy
from adaptseg.training.precision import Amp

#: ``map(outputs, image_size) -> discriminator input`` of one level.
LevelMap = Callable[[Mapping[str, torch.Tensor], tuple[int, int]], torch.Tensor]

def discriminator_name(level: str) -> str:
    return f"discriminator_{level}"


def output(outputs: Mapping[str, torch.Tensor], key: str) -> torch.Tensor:
    """``outputs[key]``, or an error naming the missing output (a single-level network has no ``aux``)."""
    if outputs.get(key) is None:
        raise ValueError(f"The segmenter returned no {key!r} output (it has {sorted(outputs)}) for its discriminator.")
    return outputs[key]


def adversarial_step(
    models: Mapping[str, nn.Module],
    batch: Mapping,
    config: SegmentationConfig,
    amp: Amp,
    maps: Mapping[str, LevelMap],
    weights: Mapping[str, float],
    gan: str,
    method: str,
    **forward: Any,
) -> dict[str, torch.Tensor]:
    """One iteration of the scheme above; ``maps`` and ``weights`` are per level, ``forward`` goes to the
    segmenter (``return_features=True`` for feature-level adaptation)."""
    source = domain_batch(batch, "source", method)
    target = domain_batch(batch, "target", method)
    segmenter = models[SEGMENTER]
    discriminators = {level: models[discriminator_name(level)] for level in maps}
    source_size = tuple(source["image"].shape[-2:])
    target_size = tuple(target["image"].shape[-2:])

    with frozen(*discriminators.values()):
        source_out, logged = supervised_step(models, source, config, amp, **forward)
        with amp.autocast():
            target_out = segmenter(target["image"], **forward)
            target_maps, loss_adv = {}, 0.0
            for level, discriminator in discriminators.items():
                target_maps[level] = maps[level](target_out, target_size)
                adv = adversarial_loss(discriminator(target_maps[level]), SOURCE_LABEL, gan)
                logged[f"loss_adv_{level}"] = adv.detach()
                loss_adv = loss_adv + weights[level] * adv
        amp.backward(loss_adv)
        del target_out

    for level, discriminator in discriminators.items():
        with amp.autocast():
            d_source = discriminator(maps[level](source_out, source_size))
            loss_d_source = 0.5 * adversarial_loss(d_source, SOURCE_LABEL, gan)
        amp.backward(loss_d_source)
        with amp.autocast():
            d_target = discriminator(target_maps[level].detach())
            loss_d_target = 0.5 * adversarial_loss(d_target, TARGET_LABEL, gan)
        amp.backward(loss_d_target)
        logged[f"loss_d_{level}"] = (loss_d_source + loss_d_target).detach()
        logged[f"d_acc_{level}"] = 0.5 * (
            discriminator_accuracy(d_source, SOURCE_LABEL, gan) + discriminator_accuracy(d_target, TARGET_LABEL, gan)
        )
    return logged
