"""Matrix-multiply forms of DeepLab-v2's 1×1 convolutions and ASPP head for CPU bf16 training.

Under CPU bf16 autocast with channels-last activations, oneDNN runs two of the network's layer kinds well
below what the same arithmetic reaches as a matmul (forward + backward, measured on an AVX512-BF16 CPU,
docs/scale.md): the bottlenecks' 1×1 convolutions (a matmul over channels, 1.25–1.35× faster) and the ASPP
head's 3×3 dilated convolutions with only 19 output channels (2.3× faster as one matmul producing every tap's
class map, then shifted sums; taps that fall entirely in the zero padding are skipped, which they are for
dilations larger than a small feature map). Outside that setting (fp32, CUDA, NCHW) the layers are ordinary
convolutions: fp32 matmuls measured slower than oneDNN's fp32 convolutions, and the faithful path stays
untouched. Parameters and state-dict keys are those of ``nn.Conv2d``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Off: every layer runs as a convolution (benchmarks A/B the two forms with it).
ENABLED = True

#: Part of the precision probe's cache key: a change here makes the cached fp32-vs-bf16 timings stale.
FORMS = "1x1-matmul, aspp-taps-matmul v1"

#: 1×1 convolutions with fewer weights stay convolutions: the small network's (at most 64×128 weights, two of
#: them at stride 1) gained nothing measurable at the step, and keeping them keeps `make run`'s numbers.
POINTWISE_MATMUL_MIN_WEIGHTS = 128 * 512

#: The ASPP matmul form pays about 2 ms of shifted sums per pass: it beat the convolutions from 1024 input
#: channels (ResNet-101's heads: 1.4× at 1024, 3× at 2048) and lost at 512 and below (the small network has 256).
ASPP_MATMUL_MIN_CHANNELS = 1024


def aspp_matmul_path(x: Tensor) -> bool:
    """The matmul path, for an ASPP head whose input has enough channels to repay the shifted sums."""
    return matmul_path(x) and x.shape[1] >= ASPP_MATMUL_MIN_CHANNELS


def matmul_path(x: Tensor) -> bool:
    """Inside CPU bf16 autocast with a channels-last 4-D input: where the matmul forms are faster."""
    return (
        ENABLED
        and x.device.type == "cpu"
        and x.dim() == 4
        and torch.is_autocast_enabled("cpu")
        and torch.get_autocast_dtype("cpu") == torch.bfloat16
        and x.is_contiguous(memory_format=torch.channels_last)
    )


class PointwiseConv2d(nn.Conv2d):
    """A 1×1 convolution (stride 1: a matmul over channels on the channels-last layout)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, bias: bool = False) -> None:
        super().__init__(in_channels, out_channels, kernel_size=1, stride=stride, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        if self.stride != (1, 1) or self.weight.numel() < POINTWISE_MATMUL_MIN_WEIGHTS or not matmul_path(x):
            return super().forward(x)
        weight = self.weight.view(self.out_channels, self.in_channels)
        return F.linear(x.permute(0, 2, 3, 1), weight, self.bias).permute(0, 3, 1, 2)


def summed_dilated_convs(x: Tensor, convs: Sequence[nn.Conv2d]) -> Tensor:
    """``sum(conv(x) for conv in convs)`` for 3×3 convolutions with padding = dilation, as one matmul.

    Each kernel tap ``(i, j)`` of each branch is a 1×1 map ``x · W[:, :, i, j]`` shifted by
    ``((i − 1)·d, (j − 1)·d)``; all taps' maps come from a single matmul, then each is added into the output
    at its offset. Taps shifted beyond the feature map only ever see the zero padding and are left out.
    """
    n, _, height, width = x.shape
    classes = convs[0].out_channels
    offsets, weights = [], []
    for conv in convs:
        dilation = conv.dilation[0]
        for i in range(3):
            for j in range(3):
                dy, dx = (i - 1) * dilation, (j - 1) * dilation
                if abs(dy) < height and abs(dx) < width:
                    offsets.append((dy, dx))
                    weights.append(conv.weight[:, :, i, j])
    taps = F.linear(x.permute(0, 2, 3, 1), torch.cat(weights))  # N × H × W × (taps · classes)
    bias = sum(conv.bias for conv in convs if conv.bias is not None)
    out = torch.zeros(n, height, width, classes, device=x.device) + bias  # summed in fp32, like a convolution
    for t, (dy, dx) in enumerate(offsets):
        top, bottom = max(0, -dy), min(height, height - dy)
        left, right = max(0, -dx), min(width, width - dx)
        tap = taps[:, top + dy:bottom + dy, left + dx:right + dx, t * classes:(t + 1) * classes]
        out[:, top:bottom, left:right] = out[:, top:bottom, left:right] + tap
    return out.to(taps.dtype).permute(0, 3, 1, 2)
