"""DACS: domain adaptation via cross-domain mixed sampling (Tranheden et al., WACV 2021).

A mean teacher labels target images online; ClassMix pastes half of the classes of each source image
(their pixels, as a mask) onto a target image; the student learns from the source batch and from the mixed
images, whose labels are the source labels inside the mask and the teacher's pseudo-labels outside. The
target part of the mixed loss is weighted by the share of target pixels the teacher predicts with confidence
above 0.968; the mixed images get colour jitter and Gaussian blur. The teacher is an exponential moving
average of the student (α 0.99, ramped as min(1 − 1/(step + 1), α)). The base of DAFormer, HRDA and MIC.
Published 52.1 mIoU GTA5→Cityscapes (DeepLab-v2 ResNet-101).

Optional, off by default (``lambda_masked: 0``): MIC's masked image consistency (Hoyer et al., CVPR 2023), a
plug-in of DAFormer/HRDA's DACS-style self-training. The student also sees each target image with a random
``mask_ratio`` of its ``mask_block``-pixel patches blanked (set to the mean colour) and learns the teacher's
pseudo-labels of the whole image there, with the same confidence weight: it has to recognise a class from its
context when the class's own pixels are hidden. MIC's defaults: ratio 0.7, block 64 px at 512–1024 px crops
(an eighth of a 512 crop; 32 px here at 256 px), λ 1, the host's pseudo-labels and weights, the masked image
colour-augmented like the mixed ones (its ``separatetrgaug`` mode). Published: 75.9 mIoU GTA5→Cityscapes with
HRDA on a MiT-B5 transformer, +2.1 over HRDA.

Every random choice (classes, jitter, blur) draws from torch's global generator, which checkpoints save, so
a resumed run mixes exactly as the uninterrupted one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from adaptseg.data.torch_datasets import IMG_MEAN_BGR
from adaptseg.methods.common import (
    SEGMENTER,
    FrozenCopy,
    SegmentationConfig,
    domain_batch,
    supervised_step,
    weighted_cross_entropy,
)
from adaptseg.training.context import Context
from adaptseg.training.losses import softmax_upsampled
from adaptseg.training.precision import Amp

TARGET_BATCHES = True
CURVES = {
    "segmentation": ("loss_seg", "loss_seg_aux"),
    "self-training": ("loss_mix", "loss_masked", "confident_fraction"),
}
TEACHER = "teacher"


@dataclass(frozen=True)
class Config(SegmentationConfig):
    ema: float = 0.99  # teacher = ema · teacher + (1 − ema) · student after every iteration
    confidence: float = 0.968  # teacher probability above which a target pixel counts as confident
    lambda_mix: float = 1.0  # weight of the mixed-image loss
    color_jitter: float = 0.2  # strength of brightness, contrast, saturation and hue jitter (0: off)
    blur: bool = True  # Gaussian blur of the mixed images (σ ∈ [0.15, 1.15], half of the time)
    lambda_masked: float = 0.0  # MIC: weight of the masked-target loss (0: off, plain DACS)
    mask_ratio: float = 0.7  # MIC: share of the patches blanked
    mask_block: int = 32  # MIC: patch side in pixels of the input image

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.ema < 1:
            raise ValueError(f"ema={self.ema} must lie in [0, 1).")
        if not 0 <= self.confidence <= 1:
            raise ValueError(f"confidence={self.confidence} must lie in [0, 1].")
        if self.lambda_masked < 0:
            raise ValueError(f"lambda_masked={self.lambda_masked} must be >= 0.")
        if not 0 <= self.mask_ratio < 1:
            raise ValueError(f"mask_ratio={self.mask_ratio} must lie in [0, 1).")
        if self.mask_block < 1:
            raise ValueError(f"mask_block={self.mask_block} must be >= 1.")


def build_models(segmenter: nn.Module, config: Config) -> dict[str, nn.Module]:
    """The mean teacher: a frozen copy of the starting segmenter, moved towards the student after each step."""
    return {TEACHER: FrozenCopy(segmenter)}


def class_mix_masks(labels: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """ClassMix masks (B×H×W bool): per image, the pixels of a random half (rounded up) of its classes."""
    masks = torch.zeros_like(labels, dtype=torch.bool)
    for i, label in enumerate(labels):
        classes = torch.unique(label)
        classes = classes[classes != ignore_index]
        if classes.numel() == 0:
            continue
        chosen = classes[torch.randperm(classes.numel())[: math.ceil(classes.numel() / 2)].to(classes.device)]
        masks[i] = torch.isin(label, chosen)
    return masks


def class_mix(
    source_image: torch.Tensor,
    source_label: torch.Tensor,
    target_image: torch.Tensor,
    pseudo: torch.Tensor,
    confidence: torch.Tensor,
    config: Config,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mixed images, their labels and per-pixel loss weights.

    Inside each ClassMix mask: the source pixels, their labels, weight 1. Outside: the target pixels, the
    teacher's pseudo-labels, and one weight per batch, the share of target pixels whose teacher confidence
    exceeds ``config.confidence``. A source of another size is resized to the target's first.
    """
    size = tuple(target_image.shape[-2:])
    if tuple(source_image.shape[-2:]) != size:
        source_image = F.interpolate(source_image.float(), size=size, mode="bilinear", align_corners=False)
        source_label = F.interpolate(source_label[:, None].float(), size=size, mode="nearest")[:, 0].long()
    masks = class_mix_masks(source_label, config.ignore_index)
    confident = (confidence > config.confidence).float().mean()
    mixed = torch.where(masks[:, None], source_image.float(), target_image.float())
    labels = torch.where(masks, source_label, pseudo)
    weights = torch.where(masks, torch.ones_like(confidence), confident.expand_as(confidence))
    return mixed, labels, weights


def patch_mask(count: int, size: tuple[int, int], block: int, ratio: float, device: torch.device) -> torch.Tensor:
    """MIC's masks (B×1×H×W float): 1 where a pixel is kept, 0 where its ``block``-pixel patch is blanked;
    each patch independently, blanked with probability ``ratio`` (edge patches are cut to the image)."""
    height, width = size
    rows, columns = math.ceil(height / block), math.ceil(width / block)
    kept = (torch.rand(count, 1, rows, columns) >= ratio).float().to(device)
    return kept.repeat_interleave(block, dim=2).repeat_interleave(block, dim=3)[..., :height, :width]


def _rgb01(images: torch.Tensor) -> torch.Tensor:
    """Normalised BGR images (mean subtracted, 0-255) → RGB in [0, 1]."""
    mean = torch.as_tensor(IMG_MEAN_BGR, device=images.device).view(1, 3, 1, 1)
    return ((images.float() + mean) / 255.0).flip(1).clamp(0, 1)


def _normalised(rgb: torch.Tensor) -> torch.Tensor:
    mean = torch.as_tensor(IMG_MEAN_BGR, device=rgb.device).view(1, 3, 1, 1)
    return rgb.flip(1) * 255.0 - mean


def _uniform(low: float, high: float, count: int, device: torch.device) -> torch.Tensor:
    return (torch.rand(count) * (high - low) + low).to(device)


def color_jitter(rgb: torch.Tensor, strength: float, probability: float = 0.8) -> torch.Tensor:
    """Per image, with ``probability``: brightness, contrast and saturation factors in [1 − s, 1 + s] and a hue
    rotation of up to ±s turns (in YIQ space), on RGB in [0, 1]."""
    count, device = rgb.shape[0], rgb.device
    apply = (torch.rand(count) < probability).to(device).view(-1, 1, 1, 1)
    brightness, contrast, saturation = (_uniform(1 - strength, 1 + strength, count, device).view(-1, 1, 1, 1) for _ in range(3))
    hue = _uniform(-strength, strength, count, device) * 2 * math.pi
    out = rgb * brightness
    grey = (0.299 * out[:, 0] + 0.587 * out[:, 1] + 0.114 * out[:, 2]).unsqueeze(1)
    out = (out - grey.mean(dim=(2, 3), keepdim=True)) * contrast + grey.mean(dim=(2, 3), keepdim=True)
    grey = (0.299 * out[:, 0] + 0.587 * out[:, 1] + 0.114 * out[:, 2]).unsqueeze(1)
    out = grey + (out - grey) * saturation
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], device=device)
    yiq = torch.einsum("ij,bjhw->bihw", to_yiq, out)
    cos, sin = hue.cos().view(-1, 1, 1), hue.sin().view(-1, 1, 1)
    i, q = yiq[:, 1] * cos - yiq[:, 2] * sin, yiq[:, 1] * sin + yiq[:, 2] * cos
    out = torch.einsum("ij,bjhw->bihw", torch.linalg.inv(to_yiq), torch.stack([yiq[:, 0], i, q], dim=1))
    return torch.where(apply, out.clamp(0, 1), rgb)


def gaussian_blur(rgb: torch.Tensor, probability: float = 0.5) -> torch.Tensor:
    """Per image, with ``probability``: a Gaussian blur of σ ∈ [0.15, 1.15], kernel about a tenth of the height."""
    size = int(math.ceil(0.1 * rgb.shape[-2]))
    size += 1 - size % 2
    out = rgb.clone()
    for index in range(rgb.shape[0]):
        if torch.rand(1).item() >= probability:
            continue
        sigma = float(torch.rand(1)) + 0.15
        offsets = torch.arange(size, device=rgb.device, dtype=rgb.dtype) - size // 2
        kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
        kernel = kernel / kernel.sum()
        image = rgb[index : index + 1].transpose(0, 1)  # 3×1×H×W: one channel per "batch" item
        image = F.conv2d(F.pad(image, (size // 2, size // 2, 0, 0), mode="reflect"), kernel.view(1, 1, 1, -1))
        image = F.conv2d(F.pad(image, (0, 0, size // 2, size // 2), mode="reflect"), kernel.view(1, 1, -1, 1))
        out[index] = image.transpose(0, 1)[0]
    return out


def strong_augment(images: torch.Tensor, config: Config) -> torch.Tensor:
    """DACS's augmentation of the mixed images, on the engine's normalised images."""
    if config.color_jitter <= 0 and not config.blur:
        return images
    rgb = _rgb01(images)
    if config.color_jitter > 0:
        rgb = color_jitter(rgb, config.color_jitter)
    if config.blur:
        rgb = gaussian_blur(rgb)
    return _normalised(rgb).to(images.dtype)


def step(models: Mapping[str, nn.Module], batch: Mapping, config: Config, amp: Amp) -> dict[str, torch.Tensor]:
    """L_seg on source + λ_mix · the confidence-weighted cross-entropy of ClassMix images (+ λ_masked · the
    same loss on masked target images, with MIC on)."""
    source = domain_batch(batch, "source", "dacs")
    target = domain_batch(batch, "target", "dacs")
    _, logged = supervised_step(models, source, config, amp)
    size = tuple(target["image"].shape[-2:])
    with torch.no_grad():
        with amp.autocast():
            teacher_logits = models[TEACHER](target["image"])["out"]
        confidence, pseudo = softmax_upsampled(teacher_logits, size, config.align_corners).max(dim=1)
        confident = (confidence > config.confidence).float().mean()  # the target loss weight, and a logged curve
        mixed, labels, weights = class_mix(source["image"], source["label"], target["image"], pseudo, confidence, config)
    channels_last = not target["image"].is_contiguous()  # the engine's layout, kept for the student's inputs
    logged["loss_mix"] = _student_loss(
        models, strong_augment(mixed, config), labels, weights, config.lambda_mix, config, amp, channels_last
    )
    if config.lambda_masked > 0:
        with torch.no_grad():
            blank = patch_mask(len(pseudo), size, config.mask_block, config.mask_ratio, target["image"].device)
            masked = strong_augment(target["image"], config) * blank
        logged["loss_masked"] = _student_loss(
            models, masked, pseudo, confident.expand_as(confidence), config.lambda_masked, config, amp, channels_last
        )
    logged["confident_fraction"] = confident
    return logged


def _student_loss(
    models: Mapping[str, nn.Module], images: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor,
    weight: float, config: Config, amp: Amp, channels_last: bool,
) -> torch.Tensor:
    """The student's weighted cross-entropy on ``images`` (main head, and the aux head at λ_seg), backward at
    ``weight``; the engine's channels-last layout kept."""
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    with amp.autocast():
        outputs = models[SEGMENTER](images)
        loss = weighted_cross_entropy(outputs["out"], labels, weights, config)
        if outputs.get("aux") is not None and config.lambda_seg > 0:
            loss = loss + config.lambda_seg * weighted_cross_entropy(outputs["aux"], labels, weights, config)
    amp.backward(weight * loss)
    return loss.detach()


def after_iteration(models: Mapping[str, nn.Module], step: int, config: Config, context: Context) -> None:
    """The teacher moves towards the student: EMA of the parameters, copy of the buffers."""
    alpha = min(1 - 1 / (step + 1), config.ema)
    teacher, student = models[TEACHER].network, models[SEGMENTER]
    with torch.no_grad():
        for mean, current in zip(teacher.parameters(), student.parameters(), strict=True):
            mean.mul_(alpha).add_(current.detach(), alpha=1 - alpha)
        for mean, current in zip(teacher.buffers(), student.buffers(), strict=True):
            mean.copy_(current)
