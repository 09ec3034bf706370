"""DeepLab-v2 multi-level segmenter (AdaptSegNet's ``DeeplabMulti``), written from the architecture
description.

The network is a dilated ResNet (output stride 8) with two DeepLab-v2 ASPP classifier heads: an auxiliary head
on layer3 and the main head on layer4. ``forward`` returns ``{"aux": ..., "out": ...}`` logits at output
stride 8 (not upsampled), like torchvision's segmentation models. Backbone parameter names are torchvision's
(``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer1.0.downsample.0`` ...) so ImageNet ResNet state dicts load by
name into ``model.backbone``.

Reference behaviours kept behind switches (defaults follow the project, see the reference §8):

- ``aspp_sum_all_branches=False``: the original ASPP returns inside its summing loop, so only the dilation-6
  and dilation-12 branches contribute; the 18/24 branches still exist as (unused) parameters.
- ``bn_mode``: BatchNorm affine parameters are always frozen (``requires_grad=False``). ``"frozen"`` keeps
  every BatchNorm layer in eval mode even under ``model.train()`` (running statistics never change);
  ``"train"`` is the original behaviour (batch statistics in train mode, running statistics updated on every
  forward).
- ``parameter_groups(dedupe=False)`` reproduces the original backbone parameter generator, which lists each
  tensor once per ancestor module (314 entries for 104 tensors in ResNet-101); see
  :mod:`adaptseg.models.legacy_sgd`.
"""

from __future__ import annotations

import math
from typing import Literal

from torch import Tensor, nn

from adaptseg.models.conv_bn import conv_bn
from adaptseg.models.cpu_kernels import PointwiseConv2d, aspp_matmul_path, summed_dilated_convs

BnMode = Literal["frozen", "train"]
BN_MODES: tuple[str, ...] = ("frozen", "train")
ASPP_DILATIONS: tuple[int, ...] = (6, 12, 18, 24)


def _frozen_affine_bn(num_features: int) -> nn.BatchNorm2d:
    """BatchNorm whose scale and shift never train (the original freezes every BN affine parameter)."""
    bn = nn.BatchNorm2d(num_features, affine=True)
    for parameter in bn.parameters():
        parameter.requires_grad_(False)
    return bn


class Bottleneck(nn.Module):
    """Caffe-style ResNet bottleneck: the stride sits in the first 1x1 conv, the 3x3 carries the dilation."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = PointwiseConv2d(inplanes, planes, stride=stride)
        self.bn1 = _frozen_affine_bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = _frozen_affine_bn(planes)
        self.conv3 = PointwiseConv2d(planes, planes * self.expansion)
        self.bn3 = _frozen_affine_bn(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = shortcut(x, self.downsample)
        out = self.relu(conv_bn(x, self.conv1, self.bn1))
        out = self.relu(conv_bn(out, self.conv2, self.bn2))
        out = conv_bn(out, self.conv3, self.bn3)
        return self.relu(out + identity)


class BasicBlock(nn.Module):
    """Two 3x3 convs (ResNet-18/34 block) with the stride in the first and the dilation in both."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(
            inplanes, planes, kernel_size=3, stride=stride, padding=dilation, dilation=dilation, bias=False
        )
        self.bn1 = _frozen_affine_bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = _frozen_affine_bn(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = shortcut(x, self.downsample)
        out = self.relu(conv_bn(x, self.conv1, self.bn1))
        out = conv_bn(out, self.conv2, self.bn2)
        return self.relu(out + identity)


def shortcut(x: Tensor, downsample: nn.Sequential | None) -> Tensor:
    """A block's identity, or its projection (a 1×1 convolution and BatchNorm, ``DilatedResNet._make_layer``)."""
    return x if downsample is None else conv_bn(x, downsample[0], downsample[1])


Block = type[Bottleneck] | type[BasicBlock]


class DilatedResNet(nn.Module):
    """DeepLab-v2 ResNet trunk with output stride 8 (layer3 dilation 2, layer4 dilation 4), no ``fc``.

    ``forward`` returns the layer3 and layer4 feature maps, the two levels AdaptSegNet classifies. ``width``
    is the stem/layer1 channel count (64 for the standard ResNets); smaller widths give CPU-sized models.
    ``conv_init`` is ``"normal"`` (N(0, 0.01), the original's init, overwritten by pretrained weights) or
    ``"kaiming"`` (He init, for models trained from scratch).
    """

    def __init__(
        self,
        block: Block,
        layers: tuple[int, int, int, int] | list[int],
        width: int = 64,
        conv_init: Literal["normal", "kaiming"] = "normal",
    ) -> None:
        super().__init__()
        if len(layers) != 4 or any(n < 1 for n in layers):
            raise ValueError(f"layers must be four positive block counts, got {layers!r}")
        if width < 1:
            raise ValueError(f"width must be a positive channel count, got {width}")
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = _frozen_affine_bn(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1, ceil_mode=True)
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(block, width * 4, layers[2], dilation=2)
        self.layer4 = self._make_layer(block, width * 8, layers[3], dilation=4)
        self.out_channels = {"layer3": width * 4 * block.expansion, "layer4": width * 8 * block.expansion}
        self._init_weights(conv_init)

    def _make_layer(
        self, block: Block, planes: int, blocks: int, stride: int = 1, dilation: int = 1
    ) -> nn.Sequential:
        # The original adds a projection shortcut whenever the shape changes *or* the layer is dilated, so
        # every bottleneck layer's first block has one (also layer3/layer4, where the shape check alone would
        # not fire).
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion or dilation != 1:
            downsample = nn.Sequential(
                PointwiseConv2d(self.inplanes, planes * block.expansion, stride=stride),
                _frozen_affine_bn(planes * block.expansion),
            )
        modules = [block(self.inplanes, planes, stride, dilation, downsample)]
        self.inplanes = planes * block.expansion
        modules += [block(self.inplanes, planes, 1, dilation) for _ in range(1, blocks)]
        return nn.Sequential(*modules)

    def _init_weights(self, conv_init: str) -> None:
        if conv_init not in ("normal", "kaiming"):
            raise ValueError(f"conv_init must be 'normal' or 'kaiming', got {conv_init!r}")
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                if conv_init == "normal":
                    nn.init.normal_(module.weight, 0.0, 0.01)
                else:
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def stages(self) -> list[nn.Module]:
        """The modules the original optimiser walks for the backbone group: conv1, bn1, layer1..layer4."""
        return [self.conv1, self.bn1, self.layer1, self.layer2, self.layer3, self.layer4]

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        x = self.maxpool(self.relu(conv_bn(x, self.conv1, self.bn1)))
        x = self.layer2(self.layer1(x))
        layer3 = self.layer3(x)
        return {"layer3": layer3, "layer4": self.layer4(layer3)}


class ASPPClassifier(nn.Module):
    """DeepLab-v2 ASPP head: parallel 3x3 convs (dilation = padding in 6/12/18/24) summed into class logits.

    ``sum_all_branches=False`` reproduces the original's return-inside-the-loop bug (branches 6 and 12 only);
    ``True`` sums all four, as ADVENT does. All four branches always exist, so checkpoints load either way.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        dilations: tuple[int, ...] = ASPP_DILATIONS,
        sum_all_branches: bool = False,
    ) -> None:
        super().__init__()
        self.sum_all_branches = sum_all_branches
        self.branches = nn.ModuleList(
            nn.Conv2d(in_channels, num_classes, kernel_size=3, padding=d, dilation=d, bias=True)
            for d in dilations
        )
        for branch in self.branches:
            # weights N(0, 0.01); the bias keeps PyTorch's default init, as in the original
            nn.init.normal_(branch.weight, 0.0, 0.01)

    def forward(self, x: Tensor) -> Tensor:
        used = self.branches if self.sum_all_branches else self.branches[:2]
        if aspp_matmul_path(x):
            return summed_dilated_convs(x, used)
        out = used[0](x)
        for branch in used[1:]:
            out = out + branch(x)
        return out


class DeepLabV2(nn.Module):
    """Dilated ResNet + ASPP heads; ``forward`` returns ``{"aux": layer3 logits, "out": layer4 logits}``.

    With ``multi_level=False`` there is no aux head (``aux_classifier is None``) and the dict has only
    ``"out"`` (torchvision's convention for models built without ``aux_loss``). Logits are at output stride 8;
    use :func:`logits_size` for their size and upsample to the input size before losses or discriminators.
    """

    def __init__(
        self,
        backbone: DilatedResNet,
        num_classes: int,
        *,
        multi_level: bool = True,
        aspp_sum_all_branches: bool = False,
        bn_mode: BnMode = "frozen",
    ) -> None:
        super().__init__()
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        self.num_classes = num_classes
        self.multi_level = multi_level
        self.backbone = backbone
        self.aux_classifier = (
            ASPPClassifier(
                backbone.out_channels["layer3"], num_classes, sum_all_branches=aspp_sum_all_branches
            )
            if multi_level
            else None
        )
        self.classifier = ASPPClassifier(
            backbone.out_channels["layer4"], num_classes, sum_all_branches=aspp_sum_all_branches
        )
        self.bn_mode: BnMode = "frozen"
        self.set_bn_mode(bn_mode)

    @property
    def aspp_sum_all_branches(self) -> bool:
        """Whether the ASPP heads sum all four branches (True) or the original two (False)."""
        return self.classifier.sum_all_branches

    @aspp_sum_all_branches.setter
    def aspp_sum_all_branches(self, value: bool) -> None:
        for head in self.heads():
            head.sum_all_branches = bool(value)

    def heads(self) -> list[ASPPClassifier]:
        """The classifier heads present, aux first."""
        return [h for h in (self.aux_classifier, self.classifier) if h is not None]

    def set_bn_mode(self, mode: BnMode) -> None:
        """Switch BatchNorm behaviour (``"frozen"`` or ``"train"``) and apply it to the current mode."""
        if mode not in BN_MODES:
            raise ValueError(f"bn_mode must be one of {BN_MODES}, got {mode!r}")
        self.bn_mode = mode
        self.train(self.training)

    def train(self, mode: bool = True) -> DeepLabV2:
        """Like ``nn.Module.train``, but in ``bn_mode="frozen"`` every BatchNorm layer stays in eval mode."""
        super().train(mode)
        if self.bn_mode == "frozen":
            for module in self.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def parameter_groups(self, dedupe: bool = True) -> list[dict]:
        """Optimiser groups: backbone at ``lr_mult`` 1, heads at ``lr_mult`` 10 (trainable parameters only).

        ``dedupe=False`` reproduces the original generator, which walks every sub-module of conv1, bn1 and
        layer1..layer4 and yields each one's recursive parameters, so a tensor appears once per ancestor
        (ResNet-101: 314 entries for 104 tensors: about 3x the backbone learning rate, more for weight
        decay). ``torch.optim.SGD`` accepts the repeats with a warning but treats their momentum and weight
        decay differently; :class:`adaptseg.models.legacy_sgd.LegacySGD` applies them as PyTorch 0.4 did.
        """
        stages = self.backbone.stages()
        if dedupe:
            seen: set[int] = set()
            backbone = []
            for stage in stages:
                for p in stage.parameters():
                    if p.requires_grad and id(p) not in seen:
                        seen.add(id(p))
                        backbone.append(p)
        else:
            backbone = [
                p
                for stage in stages
                for module in stage.modules()
                for p in module.parameters()
                if p.requires_grad
            ]
        heads = [p for head in self.heads() for p in head.parameters() if p.requires_grad]
        return [
            {"params": backbone, "lr_mult": 1.0, "name": "backbone"},
            {"params": heads, "lr_mult": 10.0, "name": "heads"},
        ]

    def forward(self, x: Tensor, return_features: bool = False) -> dict[str, Tensor]:
        """Logits ``{"aux", "out"}``; with ``return_features`` also the ``"layer4"`` features they come from
        (feature-level adaptation puts its discriminator there)."""
        features = self.backbone(x)
        result = {}
        if self.aux_classifier is not None:
            result["aux"] = self.aux_classifier(features["layer3"])
        result["out"] = self.classifier(features["layer4"])
        if return_features:
            result["layer4"] = features["layer4"]
        return result


def logits_size(height: int, width: int) -> tuple[int, int]:
    """Logit size for a ``height`` x ``width`` input (output stride 8 with a ceil-mode max-pool)."""

    def one_side(n: int) -> int:
        if n < 1:
            raise ValueError(f"input sides must be positive, got {height}x{width}")
        n = (n - 1) // 2 + 1  # 7x7/2 stem conv, pad 3
        n = math.ceil((n - 1) / 2) + 1  # 3x3/2 max-pool, pad 1, ceil_mode=True
        return (n - 1) // 2 + 1  # stride-2 1x1 conv of layer2

    return one_side(height), one_side(width)


def deeplabv2_resnet101(
    num_classes: int = 19,
    *,
    multi_level: bool = True,
    aspp_sum_all_branches: bool = False,
    bn_mode: BnMode = "frozen",
) -> DeepLabV2:
    """AdaptSegNet's DeepLab-v2 ResNet-101 (44.60 M parameters at 19 classes), randomly initialised.

    Load an ImageNet or DeepLab-v2 init checkpoint with
    :func:`adaptseg.models.weights.load_imagenet_backbone`.
    """
    backbone = DilatedResNet(Bottleneck, [3, 4, 23, 3], width=64, conv_init="normal")
    return DeepLabV2(
        backbone,
        num_classes,
        multi_level=multi_level,
        aspp_sum_all_branches=aspp_sum_all_branches,
        bn_mode=bn_mode,
    )


__all__ = [
    "ASPPClassifier",
    "ASPP_DILATIONS",
    "BN_MODES",
    "BasicBlock",
    "BnMode",
    "Bottleneck",
    "DeepLabV2",
    "DilatedResNet",
    "deeplabv2_resnet101",
    "logits_size",
]
