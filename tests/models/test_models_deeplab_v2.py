"""DeepLab-v2 segmenters: sizes, strides, parameter groups and the fidelity switches (reference §2, §8)."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
import torchvision
from torch import nn

from adaptseg.models import (
    ASPPClassifier,
    DeepLabV2,
    build_segmenter,
    deeplabv2_resnet101,
    deeplabv2_small,
    logits_size,
)


def _count(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@pytest.fixture(scope="module")
def meta_resnet101() -> DeepLabV2:
    with torch.device("meta"):
        return deeplabv2_resnet101(19)


def test_resnet101_parameter_counts(meta_resnet101: DeepLabV2) -> None:
    assert _count(meta_resnet101) / 1e6 == pytest.approx(44.60, abs=0.01)
    assert _count(meta_resnet101, trainable_only=True) / 1e6 == pytest.approx(44.50, abs=0.01)
    assert sum(1 for p in meta_resnet101.parameters() if not p.requires_grad) == 208  # frozen BN weight/bias


def test_resnet101_parameter_groups_dedupe_and_quirk(meta_resnet101: DeepLabV2) -> None:
    backbone, heads = meta_resnet101.parameter_groups()
    assert (backbone["name"], backbone["lr_mult"]) == ("backbone", 1.0)
    assert (heads["name"], heads["lr_mult"]) == ("heads", 10.0)
    assert len(backbone["params"]) == 104 and len({id(p) for p in backbone["params"]}) == 104
    assert len(heads["params"]) == 16  # 2 heads x 4 branches x (weight, bias)

    quirk_backbone, quirk_heads = meta_resnet101.parameter_groups(dedupe=False)
    assert len(quirk_backbone["params"]) == 314
    assert len({id(p) for p in quirk_backbone["params"]}) == 104
    assert [id(p) for p in quirk_heads["params"]] == [id(p) for p in heads["params"]]
    # once per ancestor: stem conv 1x, block convs 3x (layer, block, conv), shortcut convs 4x (+ downsample)
    multiplicity = Counter(id(p) for p in quirk_backbone["params"])
    bb = meta_resnet101.backbone
    assert multiplicity[id(bb.conv1.weight)] == 1
    assert multiplicity[id(bb.layer3[5].conv2.weight)] == 3
    assert multiplicity[id(bb.layer4[0].downsample[0].weight)] == 4
    assert sorted(Counter(multiplicity.values()).items()) == [(1, 1), (3, 99), (4, 4)]


def test_backbone_names_match_torchvision(meta_resnet101: DeepLabV2) -> None:
    with torch.device("meta"):
        reference = torchvision.models.resnet101(weights=None).state_dict()
    expected = {k: tuple(v.shape) for k, v in reference.items() if not k.startswith("fc.")}
    ours = {k: tuple(v.shape) for k, v in meta_resnet101.backbone.state_dict().items()}
    assert ours == expected


def test_resnet101_is_caffe_style_and_dilated(meta_resnet101: DeepLabV2) -> None:
    bb = meta_resnet101.backbone
    assert bb.maxpool.ceil_mode and bb.maxpool.kernel_size == 3 and bb.maxpool.padding == 1
    assert bb.conv1.bias is None and bb.conv1.stride == (2, 2)
    # Caffe style: the stride sits in the first 1x1 conv
    assert bb.layer2[0].conv1.stride == (2, 2) and bb.layer2[0].conv2.stride == (1, 1)
    for layer, dilation in ((bb.layer1, 1), (bb.layer2, 1), (bb.layer3, 2), (bb.layer4, 4)):
        assert layer[0].downsample is not None  # projection shortcut on every first block, dilated ones too
        assert all(block.downsample is None for block in layer[1:])
        assert all(block.conv2.dilation == (dilation, dilation) == block.conv2.padding for block in layer)
    assert [len(layer) for layer in (bb.layer1, bb.layer2, bb.layer3, bb.layer4)] == [3, 4, 23, 3]
    for head, channels in ((meta_resnet101.aux_classifier, 1024), (meta_resnet101.classifier, 2048)):
        assert [b.dilation[0] for b in head.branches] == [6, 12, 18, 24]
        for b in head.branches:
            assert b.padding == b.dilation and b.in_channels == channels and b.bias is not None


def test_logits_size_formula() -> None:
    assert logits_size(512, 1024) == (65, 129)
    assert logits_size(720, 1280) == (91, 161)
    assert logits_size(65, 65) == (9, 9)


def test_resnet101_forward_tiny_input() -> None:
    torch.manual_seed(0)
    model = deeplabv2_resnet101(19).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 65, 97))
    assert set(out) == {"aux", "out"}
    assert out["aux"].shape == out["out"].shape == (1, 19, *logits_size(65, 97)) == (1, 19, 9, 13)


@pytest.mark.parametrize("size", [(33, 50), (64, 64), (65, 97), (128, 256), (180, 320)])
def test_small_output_stride_matches_formula(size: tuple[int, int]) -> None:
    model = deeplabv2_small(5, width=8).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *size))
    assert out["aux"].shape == out["out"].shape == (1, 5, *logits_size(*size))


def test_small_model_size_and_groups() -> None:
    model = deeplabv2_small(19)
    assert _count(model) == 3_061_688
    backbone, heads = model.parameter_groups()
    assert len(heads["params"]) == 16
    assert len(backbone["params"]) == sum(1 for p in model.backbone.parameters() if p.requires_grad)
    quirk = model.parameter_groups(dedupe=False)[0]["params"]
    assert len({id(p) for p in quirk}) == len(backbone["params"]) < len(quirk)


@pytest.mark.parametrize("depth", [34, 50])
def test_small_other_depths_build(depth: int) -> None:
    with torch.device("meta"):
        model = deeplabv2_small(19, depth=depth, width=16)
    assert model.classifier.branches[0].in_channels == model.backbone.out_channels["layer4"]


def test_single_level_has_no_aux_head() -> None:
    model = deeplabv2_small(19, width=8, multi_level=False).eval()
    assert model.aux_classifier is None
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    assert set(out) == {"out"}
    assert len(model.parameter_groups()[1]["params"]) == 8


def test_aspp_two_branch_bug_versus_all_branches() -> None:
    torch.manual_seed(0)
    head = ASPPClassifier(16, 7)
    x = torch.randn(2, 16, 30, 30)
    with torch.no_grad():
        branch = [b(x) for b in head.branches]
        two = head(x)
        head.sum_all_branches = True
        four = head(x)
    torch.testing.assert_close(two, branch[0] + branch[1])
    torch.testing.assert_close(four, branch[0] + branch[1] + branch[2] + branch[3])
    assert not torch.allclose(two, four)


def test_aspp_switch_on_segmenter_and_unused_branches() -> None:
    torch.manual_seed(0)
    model = deeplabv2_small(5, width=8).eval()
    x = torch.randn(1, 3, 64, 64)
    out = model(x)["out"]
    (out.sum() + model(x)["aux"].sum()).backward()
    for head in model.heads():  # the original's dilation 18/24 branches never receive a gradient
        assert head.branches[1].weight.grad is not None
        assert head.branches[2].weight.grad is None and head.branches[3].weight.grad is None
    model.aspp_sum_all_branches = True
    assert all(h.sum_all_branches for h in model.heads())
    with torch.no_grad():
        assert not torch.allclose(model(x)["out"], out.detach())
    built = deeplabv2_small(5, width=8, aspp_sum_all_branches=True)
    assert built.aspp_sum_all_branches and built.aux_classifier.sum_all_branches


def _running_means(model: nn.Module) -> list[torch.Tensor]:
    return [m.running_mean.clone() for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


def test_bn_mode_frozen_keeps_running_stats() -> None:
    model = deeplabv2_small(5, width=8, bn_mode="frozen")
    model.train()
    assert model.training and all(not m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    before = _running_means(model)
    model(torch.randn(2, 3, 64, 64) * 3 + 1)
    assert all(torch.equal(a, b) for a, b in zip(before, _running_means(model), strict=True))


def test_bn_mode_train_updates_running_stats() -> None:
    model = deeplabv2_small(5, width=8, bn_mode="train")
    model.train()
    assert all(m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    before = _running_means(model)
    model(torch.randn(2, 3, 64, 64) * 3 + 1)
    assert not any(torch.equal(a, b) for a, b in zip(before, _running_means(model), strict=True))
    model.eval()
    assert all(not m.training for m in model.modules())


def test_set_bn_mode_and_frozen_affine() -> None:
    model = deeplabv2_small(5, width=8).train()
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    model.set_bn_mode("train")
    assert all(m.training for m in bns)
    model.set_bn_mode("frozen")
    assert not any(m.training for m in bns) and model.training
    assert not any(p.requires_grad for m in bns for p in m.parameters())
    with pytest.raises(ValueError, match="bn_mode must be one of"):
        model.set_bn_mode("eval")
    with pytest.raises(ValueError, match="bn_mode"):
        deeplabv2_small(5, bn_mode="sync")


def test_build_segmenter() -> None:
    model = build_segmenter("deeplabv2_small", 7, width=8, multi_level=False, bn_mode="train")
    assert model.num_classes == 7 and model.aux_classifier is None and model.bn_mode == "train"
    with pytest.raises(ValueError, match="deeplabv2_resnet101.*deeplabv2_small"):
        build_segmenter("deeplabv3", 19)
    with pytest.raises(TypeError, match="deeplabv2_resnet101"):
        build_segmenter("deeplabv2_resnet101", 19, width=8)
    with pytest.raises(ValueError, match="depth"):
        build_segmenter("deeplabv2_small", 19, depth=20)
