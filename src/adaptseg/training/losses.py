"""Losses of output-space adaptation: segmentation cross-entropy, adversarial objectives, entropy.

Every loss is computed in float32 at the **input** resolution, as in the original AdaptSegNet code:
logits (output stride 8) are upsampled bilinearly with ``align_corners=True`` before the loss.
Call these inside an autocast region if you like; they cast their inputs to float32 themselves.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from adaptseg.data.labels import IGNORE_INDEX

#: Domain label of source predictions for the discriminator (reference convention).
SOURCE_LABEL = 0.0
#: Domain label of target predictions for the discriminator.
TARGET_LABEL = 1.0

GAN_OBJECTIVES = ("vanilla", "ls")


def upsample_logits(
    logits: torch.Tensor, size: tuple[int, int], align_corners: bool = True
) -> torch.Tensor:
    """Bilinearly resize ``B×C×h×w`` logits to ``size`` (H, W) in float32; no-op when sizes match."""
    logits = logits.float()
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=align_corners)


def segmentation_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    ignore_index: int = IGNORE_INDEX,
    align_corners: bool = True,
) -> torch.Tensor:
    """Pixel-wise cross-entropy at label resolution, mean over non-ignored pixels.

    Args:
        logits: ``B×C×h×w`` class scores (any float dtype; computed in float32).
        labels: ``B×H×W`` train ids (integer), ``ignore_index`` marks pixels without a label.
    Returns:
        A 0-dim float32 tensor. When every pixel is ignored it is ``0`` and still differentiable
        (gradients are zero, never NaN).
    """
    if labels.dim() != 3:
        raise ValueError(f"labels must be B×H×W, got shape {tuple(labels.shape)}")
    logits = upsample_logits(logits, tuple(labels.shape[-2:]), align_corners)
    labels = labels.long()
    total = F.cross_entropy(logits, labels, ignore_index=ignore_index, reduction="sum")
    # Divide by the valid count without a host sync; clamp keeps the all-ignored case at 0/1 = 0.
    valid = (labels != ignore_index).sum().clamp_min(1)
    return total / valid


def adversarial_loss(d_logits: torch.Tensor, domain_label: float, gan: str = "vanilla") -> torch.Tensor:
    """Loss of discriminator outputs against a constant domain label (mean over the patch map).

    Args:
        d_logits: raw discriminator outputs (no sigmoid), any shape.
        domain_label: ``SOURCE_LABEL`` (0.0) or ``TARGET_LABEL`` (1.0).
        gan: ``"vanilla"`` (binary cross-entropy with logits, the paper) or ``"ls"`` (least squares:
            mean squared error of the raw outputs against the label, the original ``--gan LS``).
    """
    d_logits = d_logits.float()
    target = torch.full_like(d_logits, float(domain_label))
    if gan == "vanilla":
        return F.binary_cross_entropy_with_logits(d_logits, target)
    if gan == "ls":
        return F.mse_loss(d_logits, target)
    raise ValueError(f"Unknown GAN objective gan={gan!r}; expected one of {GAN_OBJECTIVES}.")


def discriminator_accuracy(d_logits: torch.Tensor, domain_label: float, gan: str = "vanilla") -> torch.Tensor:
    """Fraction of patch outputs on the right side of the decision threshold (0 for logits, 0.5 for LS)."""
    threshold = 0.0 if gan == "vanilla" else 0.5
    says_target = d_logits.float() > threshold
    return (says_target == (domain_label >= 0.5)).float().mean()


def softmax_upsampled(
    logits: torch.Tensor, size: tuple[int, int], align_corners: bool = True
) -> torch.Tensor:
    """What a discriminator sees: class probabilities of the logits upsampled to ``size`` (float32)."""
    return F.softmax(upsample_logits(logits, size, align_corners), dim=1)


def prediction_entropy(
    logits: torch.Tensor, size: tuple[int, int] | None = None, align_corners: bool = True
) -> torch.Tensor:
    """Mean normalised per-pixel entropy ``-Σ_c p_c log p_c / log C`` of the predictions, in [0, 1].

    0 means every pixel is predicted with certainty, 1 means uniform predictions. Useful as an
    unsupervised model-selection signal and as ADVENT's MinEnt loss. ``size`` optionally upsamples
    the logits first (ADVENT computes it at input resolution).
    """
    logits = logits.float() if size is None else upsample_logits(logits, size, align_corners)
    num_classes = logits.shape[1]
    if num_classes < 2:
        raise ValueError(f"prediction_entropy needs at least 2 classes, got {num_classes}")
    log_p = F.log_softmax(logits, dim=1)
    entropy = -(log_p.exp() * log_p).sum(dim=1) / math.log(num_classes)
    return entropy.mean()


def self_information(probabilities: torch.Tensor) -> torch.Tensor:
    """ADVENT's weighted self-information map ``I_c = -P_c · log P_c / log C`` (B×C×H×W, each in [0, 1/e·log C]).

    Summed over classes it is the normalised entropy; AdvEnt's discriminator sees it per class. ``0 · log 0``
    is taken as 0 (ADVENT adds 1e-30 inside the logarithm).
    """
    num_classes = probabilities.shape[1]
    if num_classes < 2:
        raise ValueError(f"self_information needs at least 2 classes, got {num_classes}")
    return -probabilities * torch.log(probabilities.clamp_min(1e-30)) / math.log(num_classes)


def entropy_map(logits: torch.Tensor) -> torch.Tensor:
    """Per-pixel normalised entropy ``-Σ_c p_c log p_c / log C`` (B×H×W, in [0, 1]) of logits, in float32."""
    logits = logits.float()
    log_p = F.log_softmax(logits, dim=1)
    return -(log_p.exp() * log_p).sum(dim=1) / math.log(logits.shape[1])


def charbonnier_entropy(
    logits: torch.Tensor, size: tuple[int, int], eta: float = 2.0, epsilon: float = 1e-3, align_corners: bool = True
) -> torch.Tensor:
    """FDA's robust entropy: the mean over pixels of ``(E² + ε²)^η``, E the normalised entropy at ``size``.

    η > 0.5 weighs confident pixels less than plain entropy minimisation does (the Charbonnier penalty).
    """
    entropy = entropy_map(upsample_logits(logits, size, align_corners))
    return ((entropy**2 + epsilon**2) ** eta).mean()
