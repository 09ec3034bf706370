"""Tiny stand-ins with the interfaces of adaptseg.models (never imported here) and tiny datasets.

A pytest plugin (tests/conftest.py): its fixtures serve the engine and method tests.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

NUM_CLASSES = 3
SIZE = (32, 32)  # the smallest input a 5-conv FC discriminator accepts


class TinySegmenter(nn.Module):
    """Output stride 8, returns {"aux": logits, "out": logits}, has parameter_groups like DeepLab-v2."""

    def __init__(self, num_classes: int = NUM_CLASSES, width: int = 4):
        super().__init__()
        self.num_classes = num_classes
        self.backbone = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        )
        self.layer4 = nn.Sequential(nn.Conv2d(width, width, 3, padding=2, dilation=2), nn.ReLU())
        self.feature_channels = width
        self.aux_head = nn.Conv2d(width, num_classes, 3, padding=1)
        self.main_head = nn.Conv2d(width, num_classes, 3, padding=1)

    def forward(self, x, return_features: bool = False):
        features = self.backbone(x)
        layer4 = self.layer4(features)
        out = {"aux": self.aux_head(features), "out": self.main_head(layer4)}
        return {**out, "layer4": layer4} if return_features else out

    def parameter_groups(self, dedupe: bool = True):
        backbone = [*self.backbone.parameters(), *self.layer4.parameters()]
        heads = [*self.aux_head.parameters(), *self.main_head.parameters()]
        return [
            {"params": backbone, "lr_mult": 1.0, "name": "backbone"},
            {"params": heads, "lr_mult": 10.0, "name": "heads"},
        ]


class TinyDiscriminator(nn.Module):
    """FCDiscriminator-like: five 4×4 stride-2 convs, LeakyReLU(0.2), logits out."""

    def __init__(self, num_classes: int = NUM_CLASSES, ndf: int = 4):
        super().__init__()
        chans = [num_classes, ndf, ndf * 2, ndf * 4, ndf * 8]
        layers = []
        for c_in, c_out in zip(chans[:-1], chans[1:], strict=True):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(chans[-1], 1, 4, stride=2, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class DictDataset(Dataset):
    """n random images (and labels with some 255 pixels when labelled)."""

    def __init__(self, n: int, labelled: bool = True, seed: int = 0, size=SIZE):
        generator = torch.Generator().manual_seed(seed)
        self.images = torch.randn(n, 3, *size, generator=generator)
        labels = torch.randint(0, NUM_CLASSES, (n, *size), generator=generator)
        labels[:, :2] = 255
        self.labels = labels
        self.labelled = labelled

    def __len__(self):
        return len(self.images)

    def class_pixel_counts(self, progress=False):
        """Per-image class pixel counts, as SegmentationDataset gives rare-class sampling."""
        return np.stack([np.bincount(label[label != 255].numpy(), minlength=NUM_CLASSES) for label in self.labels])

    def __getitem__(self, index):
        item = {"image": self.images[index], "name": f"img_{index:03d}"}
        if self.labelled:
            item["label"] = self.labels[index]
        return item


def build_models(seed: int = 0, multi_level: bool = True) -> dict[str, nn.Module]:
    torch.manual_seed(seed)
    models = {"segmenter": TinySegmenter(), "discriminator_main": TinyDiscriminator()}
    if multi_level:
        models["discriminator_aux"] = TinyDiscriminator()
    return models


def make_batch(seed: int = 0, batch_size: int = 2) -> dict:
    source, target = DictDataset(batch_size, seed=seed), DictDataset(batch_size, labelled=False, seed=seed + 1)
    return {
        "source": {"image": source.images, "label": source.labels, "name": ["s0", "s1"][:batch_size]},
        "target": {"image": target.images, "name": ["t0", "t1"][:batch_size]},
    }


@pytest.fixture
def models():
    return build_models()


@pytest.fixture
def batch():
    return make_batch()


@pytest.fixture
def model_factory():
    return build_models


@pytest.fixture
def dataset_factory():
    return DictDataset
