"""CBST: class-balanced self-training (Zou et al., ECCV 2018), in rounds, from an adapted model.

At the start of each round a frozen copy of the segmenter (the *labeller*) predicts every target training
image, and each class gets its own confidence threshold: the value that keeps the top ``portion`` of the
pixels predicted as that class. Thresholds per class, not one global one, so rare classes keep pseudo-
labels instead of being drowned by road and sky. During the round the segmenter learns from the source
labels and from the labeller's pseudo-labels on target images (pixels below their class's threshold are
ignored); ``portion`` grows from round to round (about 20% → 50%). A pixel is labelled with its most
probable class when that probability reaches the class's threshold (the simplified rule most
re-implementations use; the paper's normalised-score rule and spatial priors are left out).

The labeller holds the round's weights and thresholds, so a run resumed mid-round labels exactly as the
uninterrupted run does. Published 45.9 (CBST) / 47.3 (CRST) mIoU on GTA5→Cityscapes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from adaptseg.methods.common import (
    SEGMENTER,
    FrozenCopy,
    SegmentationConfig,
    domain_batch,
    segmentation_losses,
    supervised_step,
)
from adaptseg.training.context import Context
from adaptseg.training.losses import softmax_upsampled
from adaptseg.training.precision import Amp

TARGET_BATCHES = True
CURVES = {"segmentation": ("loss_seg", "loss_seg_aux"), "self-training": ("loss_st", "pseudo_label_fraction")}
LABELLER = "labeller"


@dataclass(frozen=True)
class Config(SegmentationConfig):
    lambda_target: float = 1.0  # weight of the pseudo-labelled target loss
    rounds: int = 3  # rounds of pseudo-labelling over the schedule (engine.max_steps)
    portion_start: float = 0.2  # share of each class's predicted pixels kept in the first round
    portion_step: float = 0.05  # added per round
    portion_max: float = 0.5
    bins: int = 1000  # confidence histogram resolution for the class thresholds

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.rounds, bool) or not isinstance(self.rounds, int) or self.rounds < 1:
            raise ValueError(f"rounds={self.rounds!r} must be a positive integer.")
        for name in ("portion_start", "portion_step", "portion_max"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name}={getattr(self, name)} must lie in [0, 1].")
        if self.bins < 10:
            raise ValueError(f"bins={self.bins} must be at least 10.")

    def portion(self, round_index: int) -> float:
        return min(self.portion_start + round_index * self.portion_step, self.portion_max)


class PseudoLabeller(FrozenCopy):
    """A frozen copy of the segmenter with one confidence threshold per class (a buffer, saved with it)."""

    def __init__(self, network: nn.Module, num_classes: int, ignore_index: int) -> None:
        super().__init__(network)
        self.ignore_index = ignore_index
        self.register_buffer("thresholds", torch.ones(num_classes))

    @torch.no_grad()
    def label(self, images: torch.Tensor, align_corners: bool = True) -> torch.Tensor:
        """B×H×W pseudo-labels at the image size; pixels below their class's threshold get ``ignore_index``."""
        probabilities = softmax_upsampled(self.network(images)["out"], tuple(images.shape[-2:]), align_corners)
        confidence, labels = probabilities.max(dim=1)
        labels[confidence < self.thresholds.to(confidence.device)[labels]] = self.ignore_index
        return labels

    @torch.no_grad()
    def calibrate(self, context: Context, portion: float, bins: int, align_corners: bool = True) -> None:
        """Per class, the confidence that keeps the top ``portion`` of its predicted target pixels."""
        if context.target is None:
            raise ValueError("CBST needs the target training images: pass target_dataset to the engine.")
        num_classes = self.thresholds.numel()
        histogram = torch.zeros(num_classes, bins, dtype=torch.float64, device=context.device)
        loader = DataLoader(
            context.target, batch_size=max(8, context.batch_size), shuffle=False,
            generator=torch.Generator(),  # its own: the scan never draws from the global generator
        )
        for batch in tqdm(loader, desc=f"CBST thresholds ({portion:.0%})", disable=not context.progress, leave=False):
            images = context.images(batch)
            with context.amp.autocast():
                logits = self.network(images)["out"]
            probabilities = softmax_upsampled(logits, tuple(images.shape[-2:]), align_corners)
            confidence, labels = probabilities.max(dim=1)
            index = labels.flatten() * bins + (confidence.flatten() * bins).long().clamp_(0, bins - 1)
            histogram.view(-1).index_add_(0, index, torch.ones_like(index, dtype=torch.float64))
        self.thresholds.copy_(class_thresholds(histogram, portion).to(self.thresholds))


def class_thresholds(histogram: torch.Tensor, portion: float) -> torch.Tensor:
    """Per class (row), the lower edge of the confidence bin where the top ``portion`` of its pixels ends.

    ``histogram`` is C×bins counts over [0, 1]. A class with no predicted pixel gets 1 (keeps nothing new);
    ``portion`` 0 keeps nothing and 1 keeps every predicted pixel (threshold 0).
    """
    bins = histogram.shape[1]
    from_top = histogram.flip(1).cumsum(1)  # pixels at or above each bin, highest bin first
    totals = from_top[:, -1:]
    reached = from_top >= portion * totals
    first = torch.where(reached.any(1), reached.float().argmax(1), torch.full_like(totals[:, 0], bins - 1).long())
    thresholds = (bins - 1 - first).double() / bins
    thresholds[totals[:, 0] == 0] = 1.0
    if portion <= 0:
        thresholds[:] = 1.0 + 1e-6
    return thresholds


def build_models(segmenter: nn.Module, config: Config) -> dict[str, nn.Module]:
    """The pseudo-labeller: a frozen copy of the starting segmenter (thresholds set at the first round)."""
    return {LABELLER: PseudoLabeller(segmenter, segmenter.num_classes, config.ignore_index)}


def round_length(config: Config, context: Context) -> int:
    """Steps per round: the schedule's horizon split evenly (a run stopped early simply ends mid-round)."""
    return max(1, math.ceil(context.max_steps / config.rounds))


def before_iteration(models: Mapping[str, nn.Module], step: int, config: Config, context: Context) -> None:
    """At each round's first step: the labeller takes the segmenter's weights and recalibrates its thresholds."""
    length = round_length(config, context)
    if step % length:
        return
    labeller = models[LABELLER]
    labeller.copy_from(models[SEGMENTER])
    labeller.calibrate(context, config.portion(step // length), config.bins, config.align_corners)


def step(models: Mapping[str, nn.Module], batch: Mapping, config: Config, amp: Amp) -> dict[str, torch.Tensor]:
    """L_seg on the source batch + λ_target · L_seg on the target batch against the round's pseudo-labels."""
    _, logged = supervised_step(models, domain_batch(batch, "source", "cbst"), config, amp)
    target = domain_batch(batch, "target", "cbst")
    with amp.autocast():
        pseudo = models[LABELLER].label(target["image"], config.align_corners)
    with amp.autocast():
        outputs = models[SEGMENTER](target["image"])
        loss, _ = segmentation_losses(outputs, pseudo, config)
    amp.backward(config.lambda_target * loss)
    logged["loss_st"] = loss.detach()
    logged["pseudo_label_fraction"] = (pseudo != config.ignore_index).float().mean()
    return logged
