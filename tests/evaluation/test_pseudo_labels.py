"""Pseudo-label quality on a hand-made prediction: coverage and accuracy per threshold, mIoU, class shares."""

import math

import pytest
import torch
from torch import nn

from adaptseg.evaluation.pseudo_labels import largest_shares, pseudo_label_quality


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


class FixedLogits(nn.Module):
    """A two-class 'segmenter' whose main head returns the same logits for every image."""

    num_classes = 2

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, images: torch.Tensor) -> dict:
        return {"out": self.logits.expand(images.shape[0], -1, -1, -1)}


def test_quality_of_a_known_prediction():
    # pixel (0,0): class 0 at p 0.99, right; (0,1): class 0 at p 0.6, wrong (label 1);
    # (1,0): class 1 at p 0.97, right; (1,1): ignored (255).
    class0 = torch.tensor([[_logit(0.99), _logit(0.6)], [0.0, 0.0]])
    class1 = torch.tensor([[0.0, 0.0], [_logit(0.97), 0.0]])
    segmenter = FixedLogits(torch.stack([class0, class1])[None])
    label = torch.tensor([[0, 1], [1, 255]], dtype=torch.uint8)
    dataset = [{"image": torch.zeros(3, 2, 2), "label": label, "name": "a"}]

    quality = pseudo_label_quality(segmenter, dataset, thresholds=[0.5, 0.968])

    assert quality["pixels"] == 3 and quality["images"] == 1
    assert quality["accuracy"] == pytest.approx(200 / 3)
    assert quality["miou"] == pytest.approx(50.0)  # each class: 1 right, 1 confused
    assert quality["predicted_share"] == pytest.approx([200 / 3, 100 / 3])
    low, high = quality["thresholds"]
    assert (low["coverage"], low["accuracy"]) == pytest.approx((100.0, 200 / 3))
    assert (high["coverage"], high["accuracy"]) == pytest.approx((200 / 3, 100.0))  # 0.99 and 0.97 pass 0.968


def test_no_confident_pixel_has_no_accuracy():
    segmenter = FixedLogits(torch.zeros(1, 2, 2, 2))  # p = 0.5 everywhere
    dataset = [{"image": torch.zeros(3, 2, 2), "label": torch.zeros(2, 2, dtype=torch.uint8), "name": "a"}]
    (only,) = pseudo_label_quality(segmenter, dataset, thresholds=[0.9])["thresholds"]
    assert only["coverage"] == 0.0 and math.isnan(only["accuracy"])


def test_largest_shares_names_the_classes():
    assert largest_shares([10.0, 60.0, 30.0], ["road", "sky", "car"]) == "sky 60%, car 30%"
