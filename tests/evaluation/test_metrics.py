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


def test_confusion_update_paths_agree_for_every_integer_dtype():
    from adaptseg.evaluation.metrics import _bincount_torch

    rng = np.random.default_rng(1)
    target = rng.integers(0, 19, (3, 20, 30))
    target[rng.random(target.shape) < 0.2] = 255
    prediction = rng.integers(0, 19, target.shape)
    expected = np.zeros((19, 19), dtype=np.int64)
    keep = target < 19
    np.add.at(expected, (target[keep], prediction[keep]), 1)
    for dtype in (torch.uint8, torch.int64, torch.int32):
        cm = ConfusionMatrix(19)
        cm.update(torch.from_numpy(prediction).to(dtype), torch.from_numpy(target).to(dtype))
        np.testing.assert_array_equal(cm.numpy(), expected, err_msg=str(dtype))
        # the torch counting that runs on accelerators, checked here on CPU tensors
        counts = _bincount_torch(torch.from_numpy(prediction).to(dtype).reshape(-1), torch.from_numpy(target).to(dtype).reshape(-1), 19)
        np.testing.assert_array_equal(counts.reshape(19, 19).numpy(), expected, err_msg=f"torch {dtype}")
    negative = torch.from_numpy(np.where(target == 255, -1, target))  # -1 as ignore: int64 path
    cm = ConfusionMatrix(19)
    cm.update(torch.from_numpy(prediction), negative)
    np.testing.assert_array_equal(cm.numpy(), expected)



def test_class_argmax_equals_argmax_for_every_layout_and_dtype_and_keeps_the_first_on_ties():
    from adaptseg.evaluation import class_argmax

    logits = torch.randn(3, 19, 7, 9)
    logits[0, 4, 0, 0] = logits[0, 2, 0, 0] = 50.0  # a tie: the first class wins
    expected = logits.argmax(1)
    assert expected[0, 0, 0] == 2
    cases = {
        "nchw": logits,
        "channels_last": logits.contiguous(memory_format=torch.channels_last),
        "strided": logits.transpose(2, 3).contiguous().transpose(2, 3),
        "float64": logits.double(),
    }
    for name, case in cases.items():
        got = class_argmax(case)
        assert got.dtype == torch.uint8 and torch.equal(got.long(), expected), name
    half = logits.to(torch.bfloat16)
    assert torch.equal(class_argmax(half).long(), half.argmax(1))
