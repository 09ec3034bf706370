"""Inference over a labelled dataset as the reference protocol does it, feeding a confusion matrix.

Input resized to the evaluation input size (done by the dataset), main-head logits upsampled bilinearly
(``align_corners=True``) to the label resolution, argmax, confusion matrix accumulated on the device.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from adaptseg.evaluation.metrics import ConfusionMatrix


def upsampled_prediction(logits: torch.Tensor, size: tuple[int, int], align_corners: bool = True) -> torch.Tensor:
    """Train-id prediction (B×H×W, uint8) from logits upsampled to ``size`` = (H, W).

    The argmax runs over a channels-last copy: the class values of a pixel are then contiguous, which
    makes the reduction several times faster on CPU than over the strided class dimension.
    """
    upsampled = F.interpolate(logits.float(), size=size, mode="bilinear", align_corners=align_corners)
    return upsampled.permute(0, 2, 3, 1).contiguous().argmax(dim=-1).to(torch.uint8)


@torch.inference_mode()
def predict_dataset(
    segmenter: torch.nn.Module,
    dataset: Dataset,
    num_classes: int,
    *,
    batch_size: int = 4,
    device: torch.device | str = "cpu",
    align_corners: bool = True,
    on_prediction: Callable[[str, torch.Tensor], None] | None = None,
    progress: bool = True,
) -> ConfusionMatrix:
    """Run ``segmenter`` (eval mode, main head) over ``dataset`` and accumulate the confusion matrix.

    ``on_prediction(name, prediction)`` receives each H×W train-id prediction (for exports).
    """
    device = torch.device(device)
    segmenter.eval().to(device)
    confusion = ConfusionMatrix(num_classes, device=device)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    for batch in tqdm(loader, desc="evaluating", disable=not progress):
        logits = segmenter(batch["image"].to(device))["out"]
        labels = batch["label"].to(device)
        prediction = upsampled_prediction(logits, tuple(labels.shape[-2:]), align_corners)
        confusion.update(prediction, labels)
        if on_prediction is not None:
            for name, pred in zip(batch["name"], prediction):
                on_prediction(name, pred)
    return confusion
