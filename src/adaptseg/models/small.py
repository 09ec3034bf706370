"""A CPU-sized DeepLab-v2 segmenter with the same two-head interface as the ResNet-101 one.

Same stem (ceil-mode max-pool), layer3 dilation 2, layer4 dilation 4, output stride 8, aux head on layer3,
main head on layer4, same ASPP switch, ``bn_mode`` and ``parameter_groups``; only depth and width shrink, so a
run of the whole pipeline fits in minutes on a laptop. There are no pretrained weights for the narrow widths,
so the backbone uses He init instead of the original's N(0, 0.01). At width 64 the backbone has torchvision's
shapes, so ``depth=18``/``34``/``50`` load torchvision ImageNet weights with ``load_imagenet_backbone``.
"""

from __future__ import annotations

from adaptseg.models.deeplab_v2 import BasicBlock, BnMode, Bottleneck, DeepLabV2, DilatedResNet

SMALL_DEPTHS = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
}


def deeplabv2_small(
    num_classes: int = 19,
    *,
    depth: int = 18,
    width: int = 32,
    multi_level: bool = True,
    aspp_sum_all_branches: bool = False,
    bn_mode: BnMode = "frozen",
) -> DeepLabV2:
    """Dilated ResNet-``depth`` at ``width`` stem channels (3.05 M parameters at depth 18, width 32, 19
    classes).

    With ``bn_mode="frozen"`` and no pretrained weights, BatchNorm keeps its initial statistics (mean 0, var
    1), i.e. it is a fixed identity; from-scratch runs usually want ``bn_mode="train"``.
    """
    if depth not in SMALL_DEPTHS:
        raise ValueError(f"depth must be one of {sorted(SMALL_DEPTHS)}, got {depth!r}")
    block, layers = SMALL_DEPTHS[depth]
    backbone = DilatedResNet(block, layers, width=width, conv_init="kaiming")
    return DeepLabV2(
        backbone,
        num_classes,
        multi_level=multi_level,
        aspp_sum_all_branches=aspp_sum_all_branches,
        bn_mode=bn_mode,
    )


__all__ = ["SMALL_DEPTHS", "deeplabv2_small"]
