"""Confusion matrix (rows = ground truth, columns = prediction) and the IoU family derived from it.

Semantics follow the reference evaluation (``compute_iou.py``): pixels whose ground truth is outside
``[0, num_classes)`` are ignored; IoU_c = TP / (TP + FP + FN); mIoU is the nan-mean, so a class absent
from both prediction and ground truth (0 / 0) does not count.
"""

from __future__ import annotations

import numpy as np
import torch

from adaptseg.data.labels import protocol_class_names, protocol_train_ids


class ConfusionMatrix:
    """Accumulates a ``num_classes²`` confusion matrix on the tensors' device with one bincount per batch."""

    def __init__(self, num_classes: int, device: torch.device | str = "cpu") -> None:
        self.num_classes = num_classes
        self.matrix = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=device)

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of predicted and ground-truth train-id maps (same shape, any integer dtype)."""
        if prediction.shape != target.shape:
            raise ValueError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ in shape")
        n = self.num_classes
        target = target.reshape(-1).to(self.matrix.device, torch.int64)
        prediction = prediction.reshape(-1).to(self.matrix.device, torch.int64)
        valid = (target >= 0) & (target < n)
        self.matrix += torch.bincount(target[valid] * n + prediction[valid], minlength=n * n)[: n * n]

    def numpy(self) -> np.ndarray:
        return self.matrix.reshape(self.num_classes, self.num_classes).cpu().numpy()


def iou_per_class(confusion: np.ndarray) -> np.ndarray:
    """IoU per class; NaN where a class is absent from both prediction and ground truth."""
    confusion = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        return tp / union


def mean_iou(confusion: np.ndarray) -> float:
    """nan-mean of the per-class IoU, in percent (as the papers report it)."""
    iou = iou_per_class(confusion)
    return float(np.nanmean(iou) * 100) if np.isfinite(iou).any() else float("nan")


def pixel_accuracy(confusion: np.ndarray) -> float:
    """Correct pixels over evaluated pixels, in percent."""
    confusion = np.asarray(confusion, dtype=np.float64)
    total = confusion.sum()
    return float(np.trace(confusion) / total * 100) if total else float("nan")


def protocol_scores(confusion: np.ndarray, num_classes: int) -> dict:
    """mIoU, per-class IoU (by name) and pixel accuracy of a protocol from a 19-class confusion matrix.

    As in AdaptSegNet-derived code: IoUs are computed on the full 19-class matrix and the protocol's
    classes are then selected (for SYNTHIA the dropped classes never occur in the ground truth, so this
    equals evaluating with the protocol's own label map). Pixel accuracy counts ground-truth pixels of the
    kept classes.
    """
    keep = list(protocol_train_ids(num_classes))
    iou = iou_per_class(confusion)[keep]
    rows = np.asarray(confusion, dtype=np.float64)[keep]
    total = rows.sum()
    names = protocol_class_names(num_classes)
    return {
        "miou": float(np.nanmean(iou) * 100) if np.isfinite(iou).any() else float("nan"),
        "pixel_accuracy": float(rows[np.arange(len(keep)), keep].sum() / total * 100) if total else float("nan"),
        "iou": {name: (None if np.isnan(v) else float(v * 100)) for name, v in zip(names, iou)},
    }
