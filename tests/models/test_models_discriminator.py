"""FCDiscriminator: size, patch-map shape and the clear error for too-small inputs (reference §4)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from adaptseg.models import MIN_INPUT_SIZE, FCDiscriminator


def test_parameter_count_and_layers() -> None:
    model = FCDiscriminator(19)
    assert sum(p.numel() for p in model.parameters()) == 2_781_121  # 2.78 M
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1]
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) and c.padding == (1, 1) for c in convs)
    assert all(c.bias is not None for c in convs)
    assert model.leaky_relu.negative_slope == 0.2
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d, nn.Sigmoid)) for m in model.modules())


def test_patch_map_shape() -> None:
    model = FCDiscriminator(19)
    with torch.no_grad():
        assert model(torch.rand(1, 19, 64, 128)).shape == (1, 1, 2, 4)
        assert model(torch.rand(2, 19, 32, 33)).shape == (2, 1, 1, 1)


def test_too_small_input_is_a_clear_error() -> None:
    model = FCDiscriminator(19)
    with pytest.raises(ValueError, match=r"31x64.*at least 32 px"):
        model(torch.rand(1, 19, 31, 64))


def test_wrong_channel_count_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"N x 19 x H x W.*\(1, 16, 64, 64\)"):
        FCDiscriminator(19)(torch.rand(1, 16, 64, 64))


def test_feature_strides_accept_maps_at_output_stride_8() -> None:
    model = FCDiscriminator(128, ndf=8, strides=(1, 1, 1, 2, 2))
    assert model.min_input_size == 7 and FCDiscriminator(19).min_input_size == MIN_INPUT_SIZE
    with torch.no_grad():  # the default small network's layer4 on a 256×128 image: 32×16
        assert model(torch.rand(1, 128, 16, 32)).shape == (1, 1, 3, 7)
    with pytest.raises(ValueError, match="at least 7 px"):
        model(torch.rand(1, 128, 6, 32))
