"""FDA: Fourier Domain Adaptation (Yang & Soatto, CVPR 2020).

Each source image takes the low-frequency amplitude spectrum of a random target image (a centred square of
half-size ⌊β·min(H, W)⌋ after ``fftshift``, i.e. the four corner blocks of the unshifted spectrum) and keeps
its own phase: the target's global "style" (colour, illumination, contrast) over the source's content. The
segmenter learns from these translated source images with the segmentation loss, plus a Charbonnier-
penalised entropy of its target predictions, ``λ_ent · mean (E² + ε²)^η`` (η 2, λ_ent 0.005), switched on
after ``entropy_from`` of the schedule (the original's ``switch2entropy``: 50000 of 150000 iterations).
The transfer is applied to images in their 0-255 range, before the mean subtraction, as the original does.
β = 0 is the identity. The published multi-band ensemble (MBT) averages the softmax of three models trained
with β = 0.01, 0.05, 0.09 (the evaluation pipeline's ``fda_mbt``); the published 50.45 also adds a round of
self-training on their pseudo-labels, which ``cbst`` covers here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from adaptseg.data.torch_datasets import IMG_MEAN_BGR
from adaptseg.methods.common import SEGMENTER, SegmentationConfig, domain_batch, supervised_step
from adaptseg.training.losses import charbonnier_entropy
from adaptseg.training.precision import Amp

TARGET_BATCHES = True
CURVES = {"segmentation": ("loss_seg", "loss_seg_aux"), "entropy": ("loss_ent_main",)}


@dataclass(frozen=True)
class Config(SegmentationConfig):
    beta: float = 0.01  # half-size of the swapped low-frequency square, as a fraction of min(H, W)
    lambda_ent: float = 0.005  # weight of the Charbonnier-penalised target entropy
    eta: float = 2.0  # Charbonnier exponent
    charbonnier_epsilon: float = 1e-3
    entropy_from: float = 1 / 3  # fraction of the schedule after which the entropy term is on

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.beta < 0.5:
            raise ValueError(f"beta={self.beta} must lie in [0, 0.5): the four corner blocks would overlap.")
        if not 0 <= self.entropy_from <= 1:
            raise ValueError(f"entropy_from={self.entropy_from} must lie in [0, 1].")


def build_models(segmenter: nn.Module, config: Config) -> dict[str, nn.Module]:
    return {}


def low_frequency_size(height: int, width: int, beta: float) -> int:
    """``b = ⌊β · min(H, W)⌋``: the side of each swapped corner block of the unshifted spectrum."""
    return int(math.floor(min(height, width) * beta))


def fourier_transfer(source: torch.Tensor, target: torch.Tensor, beta: float) -> torch.Tensor:
    """``source`` (B×C×H×W) with the low-frequency amplitude of ``target`` (resized to H×W when it differs).

    The phase and the high-frequency amplitude stay the source's. Computed in float32; ``beta`` 0 (or a block
    of size 0) returns ``source`` itself.
    """
    height, width = source.shape[-2:]
    b = low_frequency_size(height, width, beta)
    if b == 0:
        return source
    if tuple(target.shape[-2:]) != (height, width):
        target = F.interpolate(target.float(), size=(height, width), mode="bilinear", align_corners=False)
    spectrum = torch.fft.fft2(source.float())
    amplitude, phase = spectrum.abs(), spectrum.angle()
    target_amplitude = torch.fft.fft2(target.float()).abs()
    for rows in (slice(0, b), slice(height - b, height)):
        for cols in (slice(0, b), slice(width - b, width)):
            amplitude[..., rows, cols] = target_amplitude[..., rows, cols]
    return torch.fft.ifft2(torch.polar(amplitude, phase)).real


def translate_batch(source: torch.Tensor, target: torch.Tensor, beta: float) -> torch.Tensor:
    """FDA on the engine's normalised images: back to the 0-255 range, transfer, mean subtracted again."""
    if low_frequency_size(*source.shape[-2:], beta) == 0:
        return source
    mean = torch.as_tensor(IMG_MEAN_BGR, device=source.device).view(1, 3, 1, 1)
    translated = fourier_transfer(source.float() + mean, target.float() + mean, beta) - mean
    channels_last = source.is_contiguous(memory_format=torch.channels_last) and not source.is_contiguous()
    return translated.contiguous(memory_format=torch.channels_last) if channels_last else translated


def step(models: Mapping[str, nn.Module], batch: Mapping, config: Config, amp: Amp) -> dict[str, torch.Tensor]:
    """L_seg on source images in the target's style; then, once switched on, the target's robust entropy."""
    source = domain_batch(batch, "source", "fda")
    target = domain_batch(batch, "target", "fda")
    translated = {**source, "image": translate_batch(source["image"], target["image"], config.beta)}
    _, logged = supervised_step(models, translated, config, amp)
    if config.lambda_ent > 0 and batch.get("progress", 1.0) >= config.entropy_from:
        with amp.autocast():
            logits = models[SEGMENTER](target["image"])["out"]
            entropy = charbonnier_entropy(
                logits, tuple(target["image"].shape[-2:]), config.eta, config.charbonnier_epsilon, config.align_corners
            )
        amp.backward(config.lambda_ent * entropy)
        logged["loss_ent_main"] = entropy.detach()
    return logged
