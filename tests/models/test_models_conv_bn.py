"""Frozen BatchNorm folded into the convolution before it: the same function and gradients, and only when frozen."""

import pytest
import torch

from adaptseg.models import conv_bn
from adaptseg.models.deeplab_v2 import BasicBlock, Bottleneck, DeepLabV2, DilatedResNet


def tiny(block, bn_mode: str = "frozen") -> DeepLabV2:
    """A dilated ResNet with one block per layer and BatchNorms far from the identity (else folding is trivial)."""
    torch.manual_seed(0)
    model = DeepLabV2(DilatedResNet(block, [1, 1, 1, 1], width=8, conv_init="kaiming"), 5, bn_mode=bn_mode)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            channels = module.num_features
            module.running_mean.copy_(torch.randn(channels) * 0.3)
            module.running_var.copy_(torch.rand(channels) + 0.5)
            module.weight.data.copy_(torch.rand(channels) + 0.5)
            module.bias.data.copy_(torch.randn(channels) * 0.2)
    return model.train()


def outputs_and_grads(model: DeepLabV2, x: torch.Tensor, fold: bool, monkeypatch) -> tuple[dict, list]:
    monkeypatch.setattr(conv_bn, "ENABLED", fold)
    model.zero_grad()
    out = model(x)
    (out["out"].square().mean() + out["aux"].abs().mean()).backward()
    grads = [(name, p.grad.clone()) for name, p in model.named_parameters() if p.grad is not None]  # ASPP 18/24 unused
    return {k: v.detach() for k, v in out.items()}, grads


@pytest.mark.parametrize("block", [Bottleneck, BasicBlock])
def test_folding_a_frozen_batchnorm_keeps_the_outputs_and_every_gradient(block, monkeypatch):
    model, x = tiny(block), torch.randn(2, 3, 33, 41)
    folded, folded_grads = outputs_and_grads(model, x, True, monkeypatch)
    plain, plain_grads = outputs_and_grads(model, x, False, monkeypatch)
    for level in plain:
        torch.testing.assert_close(folded[level], plain[level], rtol=1e-4, atol=1e-5)
    assert len(folded_grads) == len(plain_grads) > 0
    for (name, got), (same, expected) in zip(folded_grads, plain_grads, strict=True):
        assert name == same
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5, msg=name)


def test_batchnorm_in_train_mode_is_not_folded_and_its_statistics_still_update(monkeypatch):
    model, x = tiny(Bottleneck, bn_mode="train"), torch.randn(2, 3, 33, 41)
    stem = model.backbone.bn1
    before = stem.running_mean.clone()
    calls = []
    monkeypatch.setattr(conv_bn, "_scale_and_shift", lambda bn: calls.append(bn))
    model(x)
    assert not calls and not torch.equal(stem.running_mean, before)


def test_the_cached_scale_follows_a_checkpoint_load(monkeypatch):
    model, x = tiny(BasicBlock).eval(), torch.randn(1, 3, 33, 41)
    with torch.no_grad():
        model(x)  # fills the cache
        other = tiny(BasicBlock)
        for module in other.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_var.mul_(3.0)
        model.load_state_dict(other.state_dict())
        folded = model(x)["out"]
        monkeypatch.setattr(conv_bn, "ENABLED", False)
        torch.testing.assert_close(folded, model(x)["out"], rtol=1e-4, atol=1e-5)


def test_an_evaluation_in_inference_mode_does_not_break_the_next_training_step():
    model, x = tiny(Bottleneck), torch.randn(1, 3, 33, 41)
    with torch.inference_mode():
        model.eval()(x)
    model.train()(x)["out"].sum().backward()  # would raise if inference tensors were reused for backward
    assert model.backbone.conv1.weight.grad is not None


def test_a_batchnorm_whose_scale_trains_is_not_folded():
    model, x = tiny(BasicBlock), torch.randn(1, 3, 33, 41)
    model.backbone.bn1.weight.requires_grad_(True)
    model(x)["out"].sum().backward()
    assert model.backbone.bn1.weight.grad is not None and model.backbone.bn1.weight.grad.abs().sum() > 0


def test_under_cpu_bf16_autocast_batchnorm_stays_its_own_layer(monkeypatch):
    model = tiny(Bottleneck).to(memory_format=torch.channels_last)
    x = torch.randn(1, 3, 33, 41).contiguous(memory_format=torch.channels_last)
    calls = []
    monkeypatch.setattr(conv_bn, "_scale_and_shift", lambda bn: calls.append(bn))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(x)
    assert not calls  # measured slower there


def test_a_folded_pointwise_convolution_takes_the_folded_weights():
    from adaptseg.models.cpu_kernels import PointwiseConv2d

    torch.manual_seed(2)
    conv, bn = PointwiseConv2d(6, 4, stride=2), torch.nn.BatchNorm2d(4).eval()
    bn.running_var.uniform_(0.5, 2.0)
    bn.running_mean.normal_()
    bn.weight.requires_grad_(False)
    bn.bias.requires_grad_(False)
    x = torch.randn(2, 6, 9, 10)
    torch.testing.assert_close(conv_bn.conv_bn(x, conv, bn), bn(conv(x)), rtol=1e-5, atol=1e-5)


def test_a_model_loaded_under_inference_mode_folds_without_a_version_counter(monkeypatch):
    with torch.inference_mode():
        model, x = tiny(BasicBlock).eval(), torch.randn(1, 3, 33, 41)  # every tensor an inference tensor
        folded = model(x)["out"]
        monkeypatch.setattr(conv_bn, "ENABLED", False)
        torch.testing.assert_close(folded, model(x)["out"], rtol=1e-4, atol=1e-5)
