"""Confusion matrix and IoU against hand-computed cases."""

import math

import numpy as np
import pytest
import torch

from adaptseg.evaluation import ConfusionMatrix, iou_per_class, mean_iou, pixel_accuracy, protocol_scores
from adaptseg.evaluation.inference import upsampled_prediction


def test_confusion_rows_are_ground_truth_and_ignore_pixels_drop_out():
    cm = ConfusionMatrix(3)
    target = torch.tensor([[0, 0, 1, 255], [2, 2, 1, 255]])
    prediction = torch.tensor([[0, 1, 1, 2], [2, 0, 1, 0]])
    cm.update(prediction, target)
    expected = np.array([[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    np.testing.assert_array_equal(cm.numpy(), expected)


def test_iou_by_hand_and_nanmean_over_absent_classes():
    confusion = np.array([[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])
    iou = iou_per_class(confusion)
    assert iou[0] == pytest.approx(1 / 3)  # TP 1, FN 1, FP 1
    assert iou[1] == pytest.approx(2 / 3)  # TP 2, FN 0, FP 1
    assert iou[2] == pytest.approx(1 / 2)  # TP 1, FN 1, FP 0
    assert math.isnan(iou[3])  # absent from prediction and ground truth: not counted
    assert mean_iou(confusion) == pytest.approx(100 * (1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert pixel_accuracy(confusion) == pytest.approx(100 * 4 / 6)


def test_class_predicted_but_absent_from_ground_truth_scores_zero():
    confusion = np.array([[1, 1], [0, 0]])
    assert iou_per_class(confusion)[1] == 0.0
    assert mean_iou(confusion) == pytest.approx(25.0)


def test_protocol_scores_select_classes_from_the_19_class_matrix():
    rng = np.random.default_rng(0)
    confusion = rng.integers(0, 50, (19, 19))
    full = iou_per_class(confusion)
    for n, dropped in ((16, {9, 14, 16}), (13, {3, 4, 5, 9, 14, 16})):
        scores = protocol_scores(confusion, n)
        kept = [c for c in range(19) if c not in dropped]
        assert len(scores["iou"]) == n
        assert scores["miou"] == pytest.approx(100 * np.nanmean(full[kept]))
        assert "terrain" not in scores["iou"]
    assert protocol_scores(confusion, 19)["miou"] == pytest.approx(mean_iou(confusion))


def test_upsampled_prediction_equals_plain_argmax():
    logits = torch.randn(2, 19, 9, 17)
    fast = upsampled_prediction(logits, (33, 65))
    plain = torch.nn.functional.interpolate(logits, (33, 65), mode="bilinear", align_corners=True).argmax(1)
    assert torch.equal(fast.long(), plain)
