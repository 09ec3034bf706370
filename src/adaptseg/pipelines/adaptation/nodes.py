"""Adaptation from the pretrained source model: AdaptSegNet and the baselines it must beat.

One node serves every method; the namespace's parameters choose it:
``source_only`` (more source steps, the same total as adaptation), ``adaptsegnet`` (single- or
multi-level by its λ values; all λ = 0 is the λ=0 control), ``adabn`` (BatchNorm statistics
re-estimated on target train, no training). Target labels never reach this node.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from adaptseg.data.torch_datasets import SegmentationDataset
from adaptseg.models.packaging import build_discriminators, pack_model, unpack_segmenter
from adaptseg.tracking import log_summary, metrics_logger
from adaptseg.training import EngineConfig, StepConfig, seed_everything, train
from adaptseg.training.adabn import reestimate_batchnorm
from adaptseg.training.precision import resolve_device

logger = logging.getLogger(__name__)

METHODS = ("source_only", "adaptsegnet", "adabn")


def adapt_to_target(
    pretrained: dict[str, Any],
    source_manifest: pd.DataFrame,
    source_train_ids: Mapping[str, Callable[[], np.ndarray]],
    target_manifest: pd.DataFrame,
    params: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, list]]:
    """Adapt the pretrained segmenter to the unlabelled target train images with ``params["method"]``.

    ``params``: ``name``, ``method``, ``bn_mode`` ("frozen": statistics fixed from pretraining, the
    project default; "train": the original's updating statistics), ``input_size`` ({source, target} as
    (W, H)), ``engine``, ``step``, and ``discriminator`` ({ndf}).
    """
    method, name = params["method"], params["name"]
    if method not in METHODS:
        raise ValueError(f"{name}: unknown method {method!r}; choose one of {METHODS}.")
    engine = EngineConfig.from_dict(params.get("engine"))
    step = StepConfig.from_dict(params.get("step"))
    seed_everything(engine.seed)
    segmenter = unpack_segmenter(pretrained, bn_mode=params["bn_mode"])
    sizes = params["input_size"]
    target = SegmentationDataset(target_manifest, "train", sizes["target"], labels=None)

    if method == "adabn":
        layers = reestimate_batchnorm(segmenter, target, device=resolve_device(engine.device))
        logger.info("%s: re-estimated %d BatchNorm layers on %d target images", name, layers, len(target))
        return pack_model(segmenter, pretrained["spec"], method=name, step=0, adabn_images=len(target)), {}

    source = SegmentationDataset(source_manifest, "train", sizes["source"], labels=source_train_ids)
    models = {"segmenter": segmenter}
    if method == "adaptsegnet":
        levels = ["main"] + (["aux"] if step.lambda_adv_aux > 0 or params.get("train_aux_discriminator") else [])
        models |= build_discriminators(segmenter.num_classes, levels, **params.get("discriminator", {}))
    result = train(
        method,
        models,
        source,
        engine,
        target_dataset=target if method == "adaptsegnet" else None,
        step_config=step,
        on_metrics=metrics_logger(name),
    )
    log_summary(name, {"seconds": result.seconds, "steps": result.last_step})
    logger.info("%s: %d steps in %.0f s on %s (%s)", name, result.last_step, result.seconds, result.device, result.precision)
    trained = dict(result.models)
    packed = pack_model(
        trained.pop("segmenter"),
        pretrained["spec"],
        discriminators=trained,
        method=name,
        step=result.last_step,
        pretrained_step=pretrained.get("step"),
        engine=engine.to_dict(),
        step_config=step.to_dict(),
        bn_mode=params["bn_mode"],
    )
    return packed, result.history
