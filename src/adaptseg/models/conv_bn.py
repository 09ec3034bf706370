"""A convolution followed by a frozen BatchNorm, run as one convolution.

In eval mode, with affine parameters that never train (every BatchNorm of DeepLab-v2, see ``deeplab_v2``),
BatchNorm is a per-channel scale and shift: ``bn(conv(x, W)) = conv(x, W·s) + t`` with
``s = γ / √(σ² + ε)`` and ``t = β − μ·s``. Computing ``W·s`` on every forward keeps ``W`` the trained
parameter (its gradient flows through the product: the same function and the same gradients as
convolution-then-BatchNorm, up to rounding), while the activations skip BatchNorm's forward and backward passes:
two full reads and writes of every feature map per layer, and on a GPU two kernel launches (DeepLab-v2
ResNet-101 has 104 BatchNorms). ``s`` and ``t`` are cached per BatchNorm until its buffers or parameters change
(a checkpoint load, AdaBN's re-estimation), so each forward adds one small weight product per convolution.

BatchNorm in train mode (``bn_mode: train``, source pretraining, AdaBN's statistics pass) is left as it is, and
so is every BatchNorm under CPU bf16 autocast: there the activations are half the size the fp32 weight product
is, and folding measured 0.93–1.01× on ResNet-101 (fp32 on the CPU gained 1.03–1.14×; docs/scale.md). On a GPU
it is unmeasured: the GPU step table has a row with it and one without.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Off: BatchNorm runs as its own layer everywhere (benchmarks A/B the two with it).
ENABLED = True

#: Fold under CPU bf16 autocast too: off, measured slower there (``frozen_bn_folding`` benchmarks it by this).
UNDER_CPU_AUTOCAST = False

#: Part of the precision probe's cache key (a change here makes cached timings stale).
FORM = "frozen-bn folded v2 (not under CPU bf16)"


def conv_bn(x: Tensor, conv: nn.Conv2d, bn: nn.BatchNorm2d) -> Tensor:
    """``bn(conv(x))``, folded into the convolution where ``bn`` is frozen (eval mode, affine, statistics)."""
    if not ENABLED or bn.training or bn.running_var is None or not bn.affine or bn.weight.requires_grad:
        return bn(conv(x))  # batch statistics, or a BatchNorm whose scale trains: not a constant affine map
    if not UNDER_CPU_AUTOCAST and x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        return bn(conv(x))  # measured slower there (docs/scale.md): the weight product outweighs the saving
    scale, shift = _scale_and_shift(bn)
    weight = conv.weight * scale.view(-1, 1, 1, 1).to(conv.weight.dtype)
    bias = shift if conv.bias is None else conv.bias * scale + shift
    return F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)


def _scale_and_shift(bn: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    """``(s, t)`` of a frozen BatchNorm, recomputed only when one of its tensors was changed in place or replaced."""
    tensors = (bn.weight, bn.bias, bn.running_mean, bn.running_var)
    with torch.no_grad():  # γ and β never train here; no graph to keep
        # Inside a compiled graph: a few fused element-wise ops, and a Python-side cache would split the graph.
        # Made under inference mode: no version counter to key on.
        if torch.compiler.is_compiling() or any(t.is_inference() for t in tensors):
            return _computed(bn)
        # inference-mode results cannot be saved for a later backward pass: an evaluation's cache is not reused
        key = tuple((id(t), t._version, t.device, t.dtype) for t in tensors) + (
            bn.eps, torch.is_inference_mode_enabled(),
        )
        cached = getattr(bn, "_folded", None)
        if cached is None or cached[0] != key:
            bn._folded = (key, _computed(bn))
        return bn._folded[1]


def _computed(bn: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


__all__ = ["ENABLED", "FORM", "UNDER_CPU_AUTOCAST", "conv_bn"]
