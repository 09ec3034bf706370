"""DeepLab-v2 VGG-16 segmenter (AdaptSegNet's ``DeeplabVGG``, ``model/deeplab_vgg.py``), written from the
architecture description.

VGG-16's convolutions with pool4 and pool5 removed and conv5 dilated by 2, then DeepLab-LargeFOV's fc6/fc7 as
dilation-4 3x3 convolutions (1024 channels), then the DeepLab-v2 ASPP classifier. Output stride 8 (pool1 to
pool3), one output, no aux head. Module names follow the original so its checkpoints load nearly by name:
``features.N`` is the renumbered VGG ``Sequential`` (0..22 as in torchvision, torchvision's 24..29 at
23..28, fc6 at 29, fc7 at 31) and ``classifier.branches.i`` is the original's ``classifier.conv2d_list.i``.

The classifier is the original's ``Classifier_Module(1024, [6, 12, 18, 24], ...)``: four branches exist, but
its ``return`` sits inside the summing loop, so only the dilation-6 and dilation-12 branches act. That is the
same two-of-four quirk as the ResNet heads and sits behind the same switch (``aspp_sum_all_branches``).
"""

from __future__ import annotations

from torch import Tensor, nn

from adaptseg.models.deeplab_v2 import ASPP_DILATIONS, BN_MODES, ASPPClassifier, BnMode

#: VGG-16 stages as (width, convolutions); pools follow stages 1-3 only (pool4/pool5 removed).
VGG16_STAGES: tuple[tuple[int, int], ...] = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
POOLED_STAGES = 3  # pool1..pool3: output stride 8
CONV5_DILATION = 2
FC_DILATION = 4  # fc6 and fc7 (DeepLab-LargeFOV)
FEATURE_CHANNELS = 1024  # fc7 output, the classifier's and the feature-level discriminator's input
CONV5_INDICES: tuple[int, ...] = (23, 25, 27)  # conv5_1..conv5_3 in the renumbered ``features``
FC6_INDEX, FC7_INDEX = 29, 31  # in ``features``; everything before FC6_INDEX is torchvision VGG-16
TORCHVISION_POOL4_INDEX = 23  # removed; torchvision's later indices shift down by one here
VGG_ASPP_DILATIONS: tuple[int, ...] = ASPP_DILATIONS  # the original builds all four, sums the first two


def torchvision_features_index(index: int) -> int:
    """Index in torchvision's ``vgg16().features`` of this model's ``features[index]`` (VGG part only)."""
    if not 0 <= index < FC6_INDEX:
        raise ValueError(f"features[{index}] is not a VGG-16 layer (those are 0..{FC6_INDEX - 1})")
    return index if index < TORCHVISION_POOL4_INDEX else index + 1


def _conv_relu(in_channels: int, out_channels: int, dilation: int = 1) -> list[nn.Module]:
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=dilation, dilation=dilation)
    return [conv, nn.ReLU(inplace=True)]


def _vgg16_trunk() -> list[nn.Module]:
    """VGG-16 ``features`` without pool4/pool5, conv5 dilated: the layers at indices 0..28.

    Convolutions get torchvision's VGG init (He normal, fan-out; zero bias), which ImageNet weights overwrite.
    """
    layers: list[nn.Module] = []
    in_channels = 3
    for stage, (width, convs) in enumerate(VGG16_STAGES):
        dilation = CONV5_DILATION if stage == len(VGG16_STAGES) - 1 else 1
        for _ in range(convs):
            layers += _conv_relu(in_channels, width, dilation)
            in_channels = width
        if stage < POOLED_STAGES:
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    for layer in layers:
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(layer.bias)
    return layers


def _fc6_fc7(in_channels: int) -> list[nn.Module]:
    """fc6 and fc7 as dilated 3x3 convolutions with PyTorch's default init (the original never loads them)."""
    return _conv_relu(in_channels, FEATURE_CHANNELS, FC_DILATION) + _conv_relu(
        FEATURE_CHANNELS, FEATURE_CHANNELS, FC_DILATION
    )


class DeepLabVGG(nn.Module):
    """VGG-16 + fc6/fc7 + ASPP classifier; ``forward`` returns ``{"out": logits}`` at output stride 8.

    Same interface as :class:`~adaptseg.models.deeplab_v2.DeepLabV2` built with ``multi_level=False``
    (``num_classes``, ``multi_level``, ``heads()``, ``parameter_groups``, ``bn_mode``,
    ``aspp_sum_all_branches``, ``return_features``), so the engine and every method take either. There is
    no BatchNorm in VGG-16: ``bn_mode`` is validated and stored for compatibility, and ``"frozen"`` and
    ``"train"`` behave the same.
    """

    multi_level = False
    feature_channels = FEATURE_CHANNELS  # read by the feature-level method (``methods.feature_level``)

    def __init__(
        self, num_classes: int, *, aspp_sum_all_branches: bool = False, bn_mode: BnMode = "frozen"
    ) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        self.num_classes = num_classes
        self.features = nn.Sequential(*_vgg16_trunk(), *_fc6_fc7(VGG16_STAGES[-1][0]))
        self.aux_classifier = None  # DeepLabV2's single-level convention
        self.classifier = ASPPClassifier(
            FEATURE_CHANNELS,
            num_classes,
            dilations=VGG_ASPP_DILATIONS,
            sum_all_branches=aspp_sum_all_branches,
        )
        self.bn_mode: BnMode = "frozen"
        self.set_bn_mode(bn_mode)

    @property
    def aspp_sum_all_branches(self) -> bool:
        """Whether the classifier sums all four branches (True) or the original's first two (False)."""
        return self.classifier.sum_all_branches

    @aspp_sum_all_branches.setter
    def aspp_sum_all_branches(self, value: bool) -> None:
        self.classifier.sum_all_branches = bool(value)

    def heads(self) -> list[ASPPClassifier]:
        """The classifier heads present: the main one only."""
        return [self.classifier]

    def set_bn_mode(self, mode: BnMode) -> None:
        """Accept ``bn_mode`` like DeepLabV2 (a typo is still an error); VGG-16 has no BatchNorm to switch."""
        if mode not in BN_MODES:
            raise ValueError(f"bn_mode must be one of {BN_MODES}, got {mode!r}")
        self.bn_mode = mode

    def parameter_groups(self, dedupe: bool = True) -> list[dict]:
        """Optimiser groups: ``features`` (VGG-16, fc6, fc7) at ``lr_mult`` 1, the classifier at 10.

        ``dedupe`` has no effect: the original's VGG optimiser takes ``self.parameters()``, which never
        repeats a tensor, so there is no duplicate-parameter quirk to reproduce. (That optimiser also has a
        single group at the base learning rate; the 10x head group is this project's ResNet recipe.)
        """
        del dedupe
        features = [p for p in self.features.parameters() if p.requires_grad]
        heads = [p for head in self.heads() for p in head.parameters() if p.requires_grad]
        return [
            {"params": features, "lr_mult": 1.0, "name": "backbone"},
            {"params": heads, "lr_mult": 10.0, "name": "heads"},
        ]

    def forward(self, x: Tensor, return_features: bool = False) -> dict[str, Tensor]:
        """Logits ``{"out"}``; with ``return_features`` also the fc7 features as ``"layer4"`` (the name the
        feature-level method reads for the classifier's input)."""
        features = self.features(x)
        result = {"out": self.classifier(features)}
        if return_features:
            result["layer4"] = features
        return result


def vgg_logits_size(height: int, width: int) -> tuple[int, int]:
    """Logit size for a ``height`` x ``width`` input: three 2x2/2 max-pools (floor); the dilated convs
    keep the size."""

    def one_side(n: int) -> int:
        if n < 2**POOLED_STAGES:
            raise ValueError(f"input sides must be at least {2**POOLED_STAGES}, got {height}x{width}")
        return n // 2**POOLED_STAGES

    return one_side(height), one_side(width)


def deeplabv2_vgg16(
    num_classes: int = 19,
    *,
    bn_mode: BnMode = "frozen",
    multi_level: bool = False,
    aspp_sum_all_branches: bool = False,
) -> DeepLabVGG:
    """AdaptSegNet's DeepLab-v2 VGG-16 (29.57 M parameters at 19 classes), randomly initialised.

    Load ImageNet VGG-16 weights into the VGG part with :func:`adaptseg.models.weights.load_imagenet_backbone`
    (fc6, fc7 and the classifier keep their random init, as in the original) or a whole checkpoint, the
    original's released ones included, with :func:`adaptseg.models.weights.load_segmenter_state`.
    ``multi_level=True`` is an error: the original VGG network has no aux head.
    """
    if multi_level:
        raise ValueError(
            "deeplabv2_vgg16 has a single output (the original DeeplabVGG has no aux head), so "
            f"multi_level={multi_level!r} is not available: set model.options.multi_level to false and use "
            "single-level settings (AdaptSegNet levels [main], lambda_seg 0)."
        )
    return DeepLabVGG(num_classes, aspp_sum_all_branches=aspp_sum_all_branches, bn_mode=bn_mode)


__all__ = [
    "CONV5_INDICES",
    "DeepLabVGG",
    "FC6_INDEX",
    "FC7_INDEX",
    "FEATURE_CHANNELS",
    "deeplabv2_vgg16",
    "torchvision_features_index",
    "vgg_logits_size",
]
