import math

import pytest
import torch

from adaptseg.training import (
    SOURCE_LABEL,
    TARGET_LABEL,
    adversarial_loss,
    prediction_entropy,
    segmentation_loss,
    softmax_upsampled,
)


def test_segmentation_loss_ignores_255_and_averages_valid_pixels():
    # 1×2×1×3 logits: pixel 0 = [0, 0] (label 0), pixel 1 = [2, 0] (label 1), pixel 2 ignored.
    logits = torch.tensor([[[[0.0, 2.0, 9.0]], [[0.0, 0.0, -9.0]]]])
    labels = torch.tensor([[[0, 1, 255]]])
    expected = (math.log(2.0) + math.log(1.0 + math.exp(2.0))) / 2
    loss = segmentation_loss(logits, labels)
    assert loss.dim() == 0
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_segmentation_loss_upsamples_logits_to_label_size():
    # Spatially constant logits stay constant under bilinear upsampling: CE is the per-pixel value.
    logits = torch.zeros(1, 2, 2, 2)
    logits[:, 0] = math.log(3.0)  # p(class 0) = 3/4
    labels = torch.zeros(1, 8, 8, dtype=torch.long)
    labels[0, :4] = 1
    labels[0, 0, 0] = 255
    n0, n1 = 32, 31
    expected = (n0 * -math.log(0.75) + n1 * -math.log(0.25)) / (n0 + n1)
    assert segmentation_loss(logits, labels).item() == pytest.approx(expected, rel=1e-5)


def test_segmentation_loss_all_ignored_is_zero_and_differentiable():
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    labels = torch.full((2, 16, 16), 255)
    loss = segmentation_loss(logits, labels)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() == 0


def test_segmentation_loss_computes_in_fp32_for_bf16_logits():
    logits = torch.randn(1, 3, 4, 4).bfloat16()
    loss = segmentation_loss(logits, torch.zeros(1, 8, 8, dtype=torch.long))
    assert loss.dtype == torch.float32


def test_vanilla_adversarial_loss_is_bce_with_logits():
    d = torch.tensor([[[[0.0, 2.0]]]])
    to_target = (math.log(2.0) + math.log(1.0 + math.exp(-2.0))) / 2
    to_source = (math.log(2.0) + math.log(1.0 + math.exp(2.0))) / 2
    assert adversarial_loss(d, TARGET_LABEL).item() == pytest.approx(to_target, rel=1e-6)
    assert adversarial_loss(d, SOURCE_LABEL).item() == pytest.approx(to_source, rel=1e-6)


def test_least_squares_adversarial_loss_is_mse_of_raw_outputs():
    d = torch.tensor([0.0, 2.0])
    assert adversarial_loss(d, TARGET_LABEL, gan="ls").item() == pytest.approx(1.0)  # (1 + 1) / 2
    assert adversarial_loss(d, SOURCE_LABEL, gan="ls").item() == pytest.approx(2.0)  # (0 + 4) / 2


def test_unknown_gan_is_a_value_error():
    with pytest.raises(ValueError, match="wgan"):
        adversarial_loss(torch.zeros(2), SOURCE_LABEL, gan="wgan")


def test_softmax_upsampled_gives_probabilities_at_input_size():
    probs = softmax_upsampled(torch.randn(2, 5, 4, 4).bfloat16(), (32, 16))
    assert probs.shape == (2, 5, 32, 16) and probs.dtype == torch.float32
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(2, 32, 16))


def test_prediction_entropy_is_normalised():
    assert prediction_entropy(torch.zeros(1, 19, 3, 3)).item() == pytest.approx(1.0)
    peaked = torch.zeros(1, 19, 3, 3)
    peaked[:, 4] = 100.0
    assert prediction_entropy(peaked).item() == pytest.approx(0.0, abs=1e-6)
    assert 0.0 < prediction_entropy(torch.randn(2, 4, 5, 5), size=(10, 10)).item() < 1.0
