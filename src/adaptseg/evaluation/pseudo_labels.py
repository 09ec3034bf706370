"""How good a model's pseudo-labels on target images are: a diagnostic of self-training's start.

Self-training (DACS, CBST) learns from a teacher's argmax on target images, weighted or filtered by its
confidence. Whether that can help depends on how often those labels are right, which needs the target labels
the method never sees. This is for explaining a result after the fact (on target ``train``, the images the
teacher labels), never for choosing anything: choices use ``dev``.

For each confidence threshold τ: ``coverage`` is the share of labelled pixels whose top softmax probability
exceeds τ (DACS's loss weight when τ is its ``confidence``), and ``accuracy`` the share of those whose argmax is
right. ``predicted_share`` is how the argmax spreads over the classes: a collapsed model labels most pixels
with one or two. Every figure is in percent, as mIoU is.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from adaptseg.evaluation.inference import collate_labelled
from adaptseg.evaluation.metrics import ConfusionMatrix, mean_iou, pixel_accuracy
from adaptseg.training.losses import upsample_logits


@torch.inference_mode()
def pseudo_label_quality(
    segmenter: torch.nn.Module,
    dataset: Dataset,
    thresholds: Sequence[float],
    *,
    batch_size: int = 4,
    device: torch.device | str = "cpu",
    align_corners: bool = True,
    progress: bool = False,
) -> dict:
    """Accuracy and mIoU of the main head's argmax over ``dataset``'s labelled pixels, and per threshold
    the coverage and accuracy of the confident pixels (softmax probability strictly above it, as DACS counts).
    Logits are upsampled to each label's resolution first, as the evaluation scores them."""
    device = torch.device(device)
    segmenter.eval().to(device)
    num_classes = segmenter.num_classes
    confusion = ConfusionMatrix(num_classes, device=device)
    levels = torch.tensor([float(t) for t in thresholds], device=device)
    confident = torch.zeros(len(levels), dtype=torch.int64, device=device)
    confident_right = torch.zeros_like(confident)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_labelled)
    for batch in tqdm(loader, desc="pseudo-labels", disable=not progress):
        logits = segmenter(batch["image"].to(device))["out"].float()
        for index, label in enumerate(batch["label"]):
            label = label.to(device).long()
            scores = upsample_logits(logits[index : index + 1], tuple(label.shape[-2:]), align_corners)
            probability, prediction = scores.softmax(dim=1).max(dim=1)
            confusion.update(prediction, label[None])
            labelled = (label[None] >= 0) & (label[None] < num_classes)
            right = labelled & (prediction == label[None])
            above = probability[labelled][None] > levels[:, None]  # thresholds × labelled pixels
            confident += above.sum(dim=1)
            confident_right += (above & right[labelled][None]).sum(dim=1)
    matrix = confusion.numpy()
    pixels = int(matrix.sum())
    predicted = matrix.sum(axis=0)
    return {
        "images": len(dataset),
        "pixels": pixels,
        "accuracy": pixel_accuracy(matrix),
        "miou": mean_iou(matrix),
        "predicted_share": (100 * predicted / max(pixels, 1)).tolist(),
        "thresholds": [
            {"threshold": float(level), "coverage": 100 * int(n) / max(pixels, 1),
             "accuracy": 100 * int(r) / int(n) if int(n) else float("nan")}
            for level, n, r in zip(levels.tolist(), confident.tolist(), confident_right.tolist(), strict=True)
        ],
    }


def largest_shares(shares: Sequence[float], classes: Sequence[str], count: int = 2) -> str:
    """``"road 41%, sky 30%"``: the classes the argmax gives most pixels to (``shares`` in percent)."""
    order = np.argsort(shares)[::-1][:count]
    return ", ".join(f"{classes[i]} {shares[i]:.0f}%" for i in order)
