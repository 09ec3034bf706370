"""Evaluation: confusion matrices and IoU as the Cityscapes protocol defines them, and inference."""

from adaptseg.evaluation.inference import predict_dataset
from adaptseg.evaluation.metrics import (
    ConfusionMatrix,
    iou_per_class,
    mean_iou,
    pixel_accuracy,
    protocol_scores,
)

__all__ = [
    "ConfusionMatrix",
    "iou_per_class",
    "mean_iou",
    "pixel_accuracy",
    "predict_dataset",
    "protocol_scores",
]
