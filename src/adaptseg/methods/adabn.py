"""AdaBN (Li et al., 2016): re-estimate every BatchNorm layer's statistics on target images; no training.

The baseline every adversarial method must beat: where a domain shift is mostly a matter of feature
statistics, re-estimating them closes much of the gap on its own. It runs once, before any iteration
(``start``), and has no per-iteration step, so the engine trains nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from adaptseg.methods.common import SEGMENTER, SegmentationConfig
from adaptseg.training.context import Context

Config = SegmentationConfig
TARGET_BATCHES = False
CURVES: dict[str, tuple[str, ...]] = {}
step = None  # nothing is trained


def build_models(segmenter: nn.Module, config: Config) -> dict[str, nn.Module]:
    return {}


def start(models: Mapping[str, nn.Module], config: Config, context: Context) -> None:
    """Replace the segmenter's BatchNorm statistics by their average over the target training images."""
    if context.target is None:
        raise ValueError("AdaBN needs the target training images: pass target_dataset to the training engine.")
    reestimate_batchnorm(
        models[SEGMENTER], context.target, batch_size=context.batch_size, device=context.device, progress=context.progress
    )


@torch.no_grad()
def reestimate_batchnorm(
    model: nn.Module, dataset: Dataset, *, batch_size: int = 8, device: str | torch.device = "cpu", progress: bool = True
) -> int:
    """Replace every BatchNorm layer's running mean/var by the cumulative average over ``dataset``.

    Weights are untouched; the model is left in eval mode. Returns the number of BatchNorm layers reset.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        raise ValueError("The model has no BatchNorm layers: AdaBN has nothing to re-estimate.")
    saved_momentum = [m.momentum for m in norms]
    model.to(device).eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative moving average: every batch weighs the same
        norm.train()
    try:
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
        for batch in tqdm(loader, desc="AdaBN statistics", disable=not progress):
            model(batch["image"].to(device))
    finally:
        for norm, momentum in zip(norms, saved_momentum, strict=True):
            norm.momentum = momentum
        model.eval()
    return len(norms)
