"""Confusion matrix (rows = ground truth, columns = prediction) and the IoU family derived from it.

Semantics follow the reference evaluation (``compute_iou.py``): pixels whose ground truth is outside
``[0, num_classes)`` are ignored; IoU_c = TP / (TP + FP + FN); mIoU is the nan-mean, so a class absent
from both prediction and ground truth (0 / 0) does not count.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from adaptseg.data.labels import protocol_class_names, protocol_train_ids


def _bincount_numpy(prediction: np.ndarray, target: np.ndarray, n: int) -> np.ndarray:
    """The n×n counts (flat, int64) of (target, prediction) pairs whose target lies in ``[0, n)``."""
    if target.dtype == np.uint8 and prediction.dtype == np.uint8 and n <= 255:
        index = target.astype(np.int32) * n + prediction
        return np.bincount(index, minlength=n * n)[: n * n].astype(np.int64)
    target = target.astype(np.int64, copy=False)
    valid = (target >= 0) & (target < n)
    index = np.where(valid, target * n + prediction.astype(np.int64, copy=False), n * n)
    return np.bincount(index, minlength=n * n + 1)[: n * n].astype(np.int64)


def _bincount_torch(prediction: torch.Tensor, target: torch.Tensor, n: int) -> torch.Tensor:
    """As :func:`_bincount_numpy`, with torch on the tensors' device (one bincount, no compaction)."""
    if target.dtype == torch.uint8 and prediction.dtype == torch.uint8 and n <= 255:
        counts = torch.bincount(target.to(torch.int32) * n + prediction.to(torch.int32), minlength=n * n)
    else:
        target, prediction = target.to(torch.int64), prediction.to(torch.int64)
        valid = (target >= 0) & (target < n)
        counts = torch.bincount(torch.where(valid, target * n + prediction, n * n), minlength=n * n + 1)
    return counts[: n * n]


class ConfusionMatrix:
    """Accumulates a ``num_classes²`` confusion matrix on the tensors' device with one bincount per batch."""

    def __init__(self, num_classes: int, device: torch.device | str = "cpu") -> None:
        self.num_classes = num_classes
        self.matrix = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=device)

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of predicted and ground-truth train-id maps (same shape, any integer dtype).

        Ground-truth values outside ``[0, num_classes)`` are ignored without compacting the tensors: for
        uint8 inputs they land in bins past ``num_classes²``, otherwise they are sent to one spare bin. On
        the CPU the counting runs in NumPy on the same memory: single-threaded, it is as fast as torch on
        an idle machine and does not stall when the cores are shared (``benchmarks/bench_evaluation.py``).
        """
        if prediction.shape != target.shape:
            raise ValueError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ in shape")
        n = self.num_classes
        target = target.detach().reshape(-1).to(self.matrix.device)
        prediction = prediction.detach().reshape(-1).to(self.matrix.device)
        if self.matrix.device.type == "cpu":
            self.matrix += torch.from_numpy(_bincount_numpy(prediction.numpy(), target.numpy(), n))
            return
        self.matrix += _bincount_torch(prediction, target, n)

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
        "iou": {name: (None if np.isnan(v) else float(v * 100)) for name, v in zip(names, iou, strict=True)},
    }


#: Value of the ``class`` column on the rows that carry a protocol's mIoU in :func:`scores_table`.
MIOU_ROW = "mIoU"


def scores_table(metrics: dict) -> pd.DataFrame:
    """One row per protocol and class (IoU in percent, empty where NaN) plus one ``mIoU`` row per protocol.

    A flat table of an evaluation result (as :func:`protocol_scores` builds it per protocol), for
    spreadsheets and Kedro-Viz's table preview; the JSON keeps the confusion matrix.
    """
    rows = []
    for protocol, scores in metrics["protocols"].items():
        base = {"method": metrics.get("method"), "split": metrics.get("split"), "step": metrics.get("step"),
                "protocol": int(protocol)}
        for name, iou in scores["iou"].items():
            rows.append({**base, "class": name, "iou": np.nan if iou is None else float(iou)})
        rows.append({**base, "class": MIOU_ROW, "iou": float(scores["miou"])})
    return pd.DataFrame(rows, columns=["method", "split", "step", "protocol", "class", "iou"])
