"""What the engine hands a method: the segmenter's name among the models, and the context of its hooks.

Its own module so that methods depend on the contract, not on the engine that runs them: the engine takes a
method as an argument and never imports ``adaptseg.methods``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset

from adaptseg.training.precision import Amp

#: The key of the segmentation network in every ``models`` dict; the other models are the method's own.
SEGMENTER = "segmenter"


@dataclass
class Context:
    """What the engine offers a method's hooks besides models and batches.

    ``target`` is the unlabelled target training set (labels are never in it); hooks that scan it (AdaBN's
    statistics, CBST's class thresholds) use ``batch_size``, ``device`` and ``amp`` like the training loop.
    """

    target: Dataset | None
    device: torch.device
    amp: Amp
    channels_last: bool = False
    batch_size: int = 1
    progress: bool = True
    max_steps: int = 1  # the poly schedule's horizon (not stop_step, which a stopped and resumed run may change)

    def images(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """A collated batch's images on the training device in the training memory format."""
        images = batch["image"].to(self.device, non_blocking=True).float()
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images
