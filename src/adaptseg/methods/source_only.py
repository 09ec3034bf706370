"""Source-only training: the segmentation loss on labelled images, nothing else.

The baseline every adaptation method is measured against, source pretraining itself, and the oracle (the
engine is then given labelled *target* images as its source dataset).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from adaptseg.methods.common import SegmentationConfig, domain_batch, supervised_step
from adaptseg.training.precision import Amp

Config = SegmentationConfig
TARGET_BATCHES = False
CURVES = {"segmentation": ("loss_seg", "loss_seg_aux")}


def build_models(segmenter: nn.Module, config: Config) -> dict[str, nn.Module]:
    """No model besides the segmenter."""
    return {}


def step(models: Mapping[str, nn.Module], batch: Mapping, config: Config, amp: Amp) -> dict[str, torch.Tensor]:
    """L = CE(out) + λ_seg · CE(aux) on the ``source`` batch."""
    _, logged = supervised_step(models, domain_batch(batch, "source", "source_only"), config, amp)
    return logged
