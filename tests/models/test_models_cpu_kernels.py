"""The matmul forms of the 1×1 convolutions and the ASPP head compute what the convolutions compute."""

import pytest
import torch
from torch import nn

from adaptseg.models import build_segmenter, cpu_kernels
from adaptseg.models.cpu_kernels import PointwiseConv2d, matmul_path, summed_dilated_convs
from adaptseg.models.deeplab_v2 import ASPPClassifier


def channels_last(*shape: int) -> torch.Tensor:
    return torch.randn(*shape).contiguous(memory_format=torch.channels_last).requires_grad_()


def bf16_autocast():
    return torch.autocast("cpu", dtype=torch.bfloat16)


def test_the_matmul_path_is_taken_only_under_cpu_bf16_autocast_with_channels_last():
    x = channels_last(1, 4, 5, 6)
    assert not matmul_path(x)
    with bf16_autocast():
        assert matmul_path(x)
        assert not matmul_path(x.detach().contiguous())  # NCHW
    with torch.autocast("cpu", dtype=torch.float16):
        assert not matmul_path(x)


def test_pointwise_conv_equals_a_1x1_convolution_in_value_and_gradient(monkeypatch):
    monkeypatch.setattr(cpu_kernels, "POINTWISE_MATMUL_MIN_WEIGHTS", 1)
    torch.manual_seed(0)
    pointwise = PointwiseConv2d(16, 8).to(memory_format=torch.channels_last)
    conv = nn.Conv2d(16, 8, 1, bias=False)
    conv.load_state_dict(pointwise.state_dict())  # the same keys and shapes
    x = channels_last(2, 16, 5, 7)
    torch.testing.assert_close(pointwise(x), conv(x), rtol=0, atol=0)  # fp32: the convolution itself
    with bf16_autocast():
        fast = pointwise(x)
    assert fast.dtype == torch.bfloat16 and fast.is_contiguous(memory_format=torch.channels_last)
    reference = conv(x)
    torch.testing.assert_close(fast.float(), reference, rtol=2e-2, atol=2e-2)
    fast.float().sum().backward()
    fast_grads = (x.grad.clone(), pointwise.weight.grad.clone())
    x.grad = None
    reference.sum().backward()
    torch.testing.assert_close(fast_grads[0], x.grad, rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(fast_grads[1], conv.weight.grad, rtol=2e-2, atol=5e-2)


@pytest.mark.parametrize("size", [(9, 11), (5, 7)])  # (5, 7): dilation 6 and 12 taps fall in the padding
def test_summed_dilated_convs_equals_the_aspp_branches(size):
    torch.manual_seed(1)
    head = ASPPClassifier(8, 3, sum_all_branches=True)
    x = channels_last(2, 8, *size)
    expected = sum(branch(x) for branch in head.branches)
    got = summed_dilated_convs(x, head.branches)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(expected)
    got_grads = torch.autograd.grad(got, [x, head.branches[2].weight], grad)
    expected_grads = torch.autograd.grad(expected, [x, head.branches[2].weight], grad)
    for mine, theirs in zip(got_grads, expected_grads, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-5)


def test_the_segmenter_under_bf16_gives_the_convolutions_result_either_way(monkeypatch):
    monkeypatch.setattr(cpu_kernels, "ASPP_MATMUL_MIN_CHANNELS", 8)  # the small network takes both forms too
    monkeypatch.setattr(cpu_kernels, "POINTWISE_MATMUL_MIN_WEIGHTS", 1)
    torch.manual_seed(2)
    model = build_segmenter("deeplabv2_small", 5, width=8, multi_level=True, bn_mode="frozen").eval()
    model = model.to(memory_format=torch.channels_last)
    x = torch.randn(1, 3, 64, 96).contiguous(memory_format=torch.channels_last)
    outputs = {}
    for enabled in (True, False):
        monkeypatch.setattr(cpu_kernels, "ENABLED", enabled)
        with torch.no_grad(), bf16_autocast():
            outputs[enabled] = {k: v.float() for k, v in model(x).items()}
    for key in ("out", "aux"):
        scale = outputs[False][key].abs().max()
        torch.testing.assert_close(outputs[True][key], outputs[False][key], rtol=0, atol=float(scale) * 3e-2)


def test_the_default_small_network_keeps_its_convolutions_and_resnet101_takes_the_matmul_forms():
    def matmul_layers(model: nn.Module) -> int:
        pointwise = [m for m in model.modules() if isinstance(m, PointwiseConv2d) and m.stride == (1, 1)
                     and m.weight.numel() >= cpu_kernels.POINTWISE_MATMUL_MIN_WEIGHTS]
        heads = [h for h in model.heads() if h.branches[0].in_channels >= cpu_kernels.ASPP_MATMUL_MIN_CHANNELS]
        return len(pointwise) + len(heads)

    assert matmul_layers(build_segmenter("deeplabv2_small", 19)) == 0  # make run's network: its numbers stay
    assert matmul_layers(build_segmenter("deeplabv2_resnet101", 19)) > 60
