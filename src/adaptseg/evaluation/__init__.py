"""Evaluation: confusion matrices and IoU as the Cityscapes protocol defines them, inference, exports, selection,
and the quality of a model's pseudo-labels (a diagnostic of self-training)."""

from adaptseg.evaluation.export import prediction_exports, result_key
from adaptseg.evaluation.inference import (
    class_argmax,
    labelled_dataset,
    mean_prediction_entropy,
    predict_dataset,
    upsampled_prediction,
)
from adaptseg.evaluation.metrics import (
    ConfusionMatrix,
    iou_per_class,
    mean_iou,
    pixel_accuracy,
    protocol_scores,
    scores_table,
)
from adaptseg.evaluation.pseudo_labels import pseudo_label_quality
from adaptseg.evaluation.selection import TEST_LABEL_SELECTION, select_snapshots, selection_labels

__all__ = [
    "TEST_LABEL_SELECTION",
    "ConfusionMatrix",
    "class_argmax",
    "labelled_dataset",
    "iou_per_class",
    "mean_iou",
    "mean_prediction_entropy",
    "pixel_accuracy",
    "predict_dataset",
    "prediction_exports",
    "protocol_scores",
    "pseudo_label_quality",
    "result_key",
    "scores_table",
    "select_snapshots",
    "selection_labels",
    "upsampled_prediction",
]
