"""AdaptSegNet's fully convolutional discriminator, for output-space maps and (with other strides) features."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

PAPER_STRIDES = (2, 2, 2, 2, 2)
MIN_INPUT_SIZE = 32  # the paper's five stride-2 convs: each side needs at least 2**5 pixels


def output_side(side: int, strides: Sequence[int]) -> int:
    """Patch-map side for an input side: each 4×4 conv with padding 1 gives ``(n - 2) // stride + 1``."""
    for stride in strides:
        side = (side - 2) // stride + 1
    return side


def minimum_side(strides: Sequence[int]) -> int:
    """The smallest input side that leaves a non-empty patch map."""
    side = 1
    while output_side(side, strides) < 1:
        side += 1
    return side


class FCDiscriminator(nn.Module):
    """Five 4x4 convs (ndf, 2ndf, 4ndf, 8ndf, 1) with LeakyReLU(0.2) between them; no norm, no sigmoid.

    Input: ``N x in_channels x H x W`` maps: class probabilities at the image size (output space, the paper),
    self-information maps (AdvEnt) or backbone features (feature-level adaptation). Output: patch logits for
    ``BCEWithLogitsLoss`` (source = 0, target = 1). ``strides`` default to the paper's five 2s
    (``N x 1 x floor(H/32) x floor(W/32)``); feature maps at output stride 8 are too small for five of them,
    so the feature-level baseline starts with stride-1 convs. 2.78 M parameters at 19 classes and ``ndf=64``.
    """

    def __init__(self, in_channels: int, ndf: int = 64, strides: Sequence[int] = PAPER_STRIDES) -> None:
        super().__init__()
        strides = tuple(int(s) for s in strides)
        if in_channels < 1 or ndf < 1 or len(strides) != 5 or any(s < 1 for s in strides):
            raise ValueError(
                f"in_channels and ndf must be positive and strides five positive integers, got {in_channels}, "
                f"{ndf}, {strides}"
            )
        self.num_classes = in_channels  # the channel count it expects (class maps in the paper)
        self.strides = strides
        self.min_input_size = minimum_side(strides)
        widths = (in_channels, ndf, ndf * 2, ndf * 4, ndf * 8)
        self.conv1, self.conv2, self.conv3, self.conv4 = (
            nn.Conv2d(c_in, c_out, kernel_size=4, stride=s, padding=1)
            for c_in, c_out, s in zip(widths[:-1], widths[1:], strides[:4], strict=True)
        )
        self.classifier = nn.Conv2d(ndf * 8, 1, kernel_size=4, stride=strides[4], padding=1)
        self.leaky_relu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.num_classes:
            raise ValueError(
                f"FCDiscriminator expects N x {self.num_classes} x H x W inputs (class probabilities, "
                f"self-information maps or features), got {tuple(x.shape)}"
            )
        height, width = x.shape[-2:]
        if min(height, width) < self.min_input_size:
            raise ValueError(
                f"FCDiscriminator input is {height}x{width} px, but each side needs at least "
                f"{self.min_input_size} px (its convs with strides {self.strides} would leave an empty output). "
                "Upsample the maps to the image size before the discriminator, or use larger images."
            )
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            x = self.leaky_relu(conv(x))
        return self.classifier(x)


__all__ = ["MIN_INPUT_SIZE", "PAPER_STRIDES", "FCDiscriminator", "minimum_side", "output_side"]
