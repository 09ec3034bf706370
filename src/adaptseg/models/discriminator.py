"""AdaptSegNet's fully convolutional output-space discriminator."""

from __future__ import annotations

from torch import Tensor, nn

MIN_INPUT_SIZE = 32  # five stride-2 convs: each side needs at least 2**5 pixels for a non-empty output


class FCDiscriminator(nn.Module):
    """Five 4x4 stride-2 convs (ndf, 2ndf, 4ndf, 8ndf, 1) with LeakyReLU(0.2) between them; no norm, no
    sigmoid.

    Input: class probabilities (softmax of the logits upsampled to the image size), ``N x num_classes x H x
    W``. Output: patch logits ``N x 1 x floor(H/32) x floor(W/32)`` for ``BCEWithLogitsLoss`` (source = 0,
    target = 1). 2.78 M parameters at 19 classes and ``ndf=64``.
    """

    def __init__(self, num_classes: int, ndf: int = 64) -> None:
        super().__init__()
        if num_classes < 1 or ndf < 1:
            raise ValueError(f"num_classes and ndf must be positive, got {num_classes} and {ndf}")
        self.num_classes = num_classes
        self.conv1 = nn.Conv2d(num_classes, ndf, kernel_size=4, stride=2, padding=1)
        self.conv2 = nn.Conv2d(ndf, ndf * 2, kernel_size=4, stride=2, padding=1)
        self.conv3 = nn.Conv2d(ndf * 2, ndf * 4, kernel_size=4, stride=2, padding=1)
        self.conv4 = nn.Conv2d(ndf * 4, ndf * 8, kernel_size=4, stride=2, padding=1)
        self.classifier = nn.Conv2d(ndf * 8, 1, kernel_size=4, stride=2, padding=1)
        self.leaky_relu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.num_classes:
            raise ValueError(
                f"FCDiscriminator expects N x {self.num_classes} x H x W class probabilities, "
                f"got {tuple(x.shape)}"
            )
        height, width = x.shape[-2:]
        if min(height, width) < MIN_INPUT_SIZE:
            raise ValueError(
                f"FCDiscriminator input is {height}x{width} px, but each side needs at least "
                f"{MIN_INPUT_SIZE} px (five stride-2 convs would leave an empty output). Upsample the "
                f"logits to the image size before the discriminator, or use larger images."
            )
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            x = self.leaky_relu(conv(x))
        return self.classifier(x)


__all__ = ["MIN_INPUT_SIZE", "FCDiscriminator"]
