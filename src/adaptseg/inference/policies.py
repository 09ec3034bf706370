"""From an RGB image to a train-id map, by one of two policies, with training's preprocessing.

- ``resize``: the whole image resized to the model's input size (bicubic, as ``load_image``), the main head's
  logits upsampled bilinearly to the image's own size and arg-maxed: exactly the evaluation's path
  (``adaptseg.evaluation.inference.upsampled_prediction``), so the numbers a model scored are the ones its
  predictions here come from.
- ``sliding``: windows of the input size over the image at its native resolution, neighbours overlapping,
  each window's logits upsampled to the window and averaged where windows overlap. For images much larger
  than the input size, whose detail a resize would throw away. A window never leaves the image (the last one
  in a row or column is shifted back inside), and an image smaller than a window in one direction is seen
  whole in that direction, so every window of an image has the same size and they batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from adaptseg.evaluation.inference import class_argmax, upsampled_prediction
from adaptseg.training.losses import upsample_logits
from adaptseg.training.precision import Amp

POLICIES = ("resize", "sliding")
#: (top, bottom, left, right) of a window, in pixels.
Box = tuple[int, int, int, int]


def resize_rgb(rgb: np.ndarray, size: Sequence[int] | None) -> np.ndarray:
    """``rgb`` bicubic-resized to ``size`` = (W, H), exactly as ``data.torch_datasets.load_image`` does."""
    if size is None or (rgb.shape[1], rgb.shape[0]) == tuple(size):
        return rgb
    return np.asarray(Image.fromarray(rgb).resize(tuple(size), Image.BICUBIC))


def normalise(rgb: np.ndarray, mean_bgr: np.ndarray) -> torch.Tensor:
    """CHW float tensor: BGR, 0–255, minus the model's mean; ``data.torch_datasets.normalise_image`` with the
    mean the checkpoint carries (the same DeepLab mean for every model adaptseg trains)."""
    bgr = rgb[:, :, ::-1].astype(np.float32) - mean_bgr
    return torch.from_numpy(np.ascontiguousarray(bgr.transpose(2, 0, 1)))


def _forward(segmenter: torch.nn.Module, batch: torch.Tensor, amp: Amp) -> torch.Tensor:
    with amp.autocast():
        return segmenter(batch)["out"]


@torch.inference_mode()
def predict_resized(
    segmenter: torch.nn.Module,
    batch: torch.Tensor,
    sizes: Sequence[tuple[int, int]],
    *,
    amp: Amp,
    align_corners: bool = True,
) -> list[np.ndarray]:
    """Train-id maps (H×W uint8, each at its image's own ``sizes[i]`` = (H, W)) of a batch of images that were
    resized to the input size: one forward pass, then the evaluation's upsampling and arg-max per image."""
    logits = _forward(segmenter, batch, amp)
    return [
        upsampled_prediction(logits[i : i + 1], tuple(size), align_corners)[0].cpu().numpy()
        for i, size in enumerate(sizes)
    ]


def _starts(length: int, window: int, stride: int) -> list[int]:
    """Window starts along one axis: every ``stride``, the last one shifted back inside the image."""
    if length <= window:
        return [0]
    count = math.ceil((length - window) / stride) + 1
    return sorted({min(i * stride, length - window) for i in range(count)})


def window_boxes(height: int, width: int, window: Sequence[int], overlap: float) -> list[Box]:
    """The windows (top, bottom, left, right) of ``window`` = (W, H) covering an image, neighbours sharing
    ``overlap`` of a window (0 ≤ overlap < 1); a window is cut to the image where the image is smaller."""
    win_w, win_h = min(int(window[0]), width), min(int(window[1]), height)
    stride_w = max(1, math.ceil(win_w * (1 - overlap)))
    stride_h = max(1, math.ceil(win_h * (1 - overlap)))
    return [
        (top, top + win_h, left, left + win_w)
        for top in _starts(height, win_h, stride_h)
        for left in _starts(width, win_w, stride_w)
    ]


@torch.inference_mode()
def predict_sliding(
    segmenter: torch.nn.Module,
    image: torch.Tensor,
    window: Sequence[int],
    *,
    overlap: float,
    batch_size: int,
    amp: Amp,
    num_classes: int,
    align_corners: bool = True,
) -> np.ndarray:
    """Train-id map (H×W uint8) of one normalised C×H×W image at its native resolution: the logits of every
    window, upsampled to the window, averaged over the windows that cover each pixel, then arg-maxed.

    The logit sums live on the image's device: 4 × classes × H × W bytes (0.9 GB for 19 classes at 12 MP).
    """
    _, height, width = image.shape
    boxes = window_boxes(height, width, window, overlap)
    total = torch.zeros((num_classes, height, width), dtype=torch.float32, device=image.device)
    count = torch.zeros((1, height, width), dtype=torch.float32, device=image.device)
    for start in range(0, len(boxes), batch_size):
        chunk = boxes[start : start + batch_size]
        crops = torch.stack([image[:, top:bottom, left:right] for top, bottom, left, right in chunk])
        logits = _forward(segmenter, crops, amp)
        top, bottom, left, right = chunk[0]
        upsampled = upsample_logits(logits, (bottom - top, right - left), align_corners)
        for (top, bottom, left, right), window_logits in zip(chunk, upsampled, strict=True):
            total[:, top:bottom, left:right] += window_logits
            count[:, top:bottom, left:right] += 1
    return class_argmax((total / count)[None])[0].cpu().numpy()
