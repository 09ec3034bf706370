"""Supervised training on one labelled domain: source pretraining, and the target-trained oracles."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch

from adaptseg.data.torch_datasets import SegmentationDataset
from adaptseg.models.packaging import build_from_spec, pack_model, unpack_segmenter
from adaptseg.tracking import log_summary, metrics_logger
from adaptseg.training import EngineConfig, seed_everything, train

logger = logging.getLogger(__name__)


def train_supervised(
    manifest: pd.DataFrame,
    train_ids: Mapping[str, Callable[[], np.ndarray]],
    model_spec: dict[str, Any],
    params: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, list]]:
    """Train a fresh segmenter on the labelled ``params["split"]`` of one domain.

    ``params``: ``name`` (MLflow prefix), ``split``, ``input_size`` (W, H), ``bn_mode``, ``engine``
    (``EngineConfig`` fields) and ``step`` (``StepConfig`` fields). Returns the packed model and the
    metric history.
    """
    engine = EngineConfig.from_dict(params["engine"])
    seed_everything(engine.seed)  # the network's initialisation is part of the run's seed
    segmenter = build_from_spec({**model_spec, "options": {**model_spec.get("options", {}), "bn_mode": params["bn_mode"]}})
    return _train_labelled(segmenter, model_spec, manifest, train_ids, engine, params)


def finetune_supervised(
    start: dict[str, Any],
    manifest: pd.DataFrame,
    train_ids: Mapping[str, Callable[[], np.ndarray]],
    params: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, list]]:
    """Fine-tune a packed model on the labelled ``params["split"]`` of one domain (same ``params`` as
    ``train_supervised``).

    The oracle with the adaptation methods' own start and budget: from the source-pretrained checkpoint,
    target labels instead of the adversarial loss. Where no ImageNet weights exist (the synthetic default),
    this, not training from scratch, is the upper bound an adaptation method can be held against.
    """
    engine = EngineConfig.from_dict(params["engine"])
    seed_everything(engine.seed)
    segmenter = unpack_segmenter(start, bn_mode=params["bn_mode"])
    return _train_labelled(segmenter, start["spec"], manifest, train_ids, engine, params, pretrained_step=start.get("step"))


def _train_labelled(
    segmenter: torch.nn.Module,
    model_spec: dict[str, Any],
    manifest: pd.DataFrame,
    train_ids: Mapping[str, Callable[[], np.ndarray]],
    engine: EngineConfig,
    params: dict[str, Any],
    **pack_extra: Any,
) -> tuple[dict[str, Any], dict[str, list]]:
    dataset = SegmentationDataset(manifest, params["split"], params["input_size"], labels=train_ids)
    result = train(
        "source_only",
        {"segmenter": segmenter},
        dataset,
        engine,
        step_config=params.get("step"),
        on_metrics=metrics_logger(params["name"]),
    )
    log_summary(params["name"], {"seconds": result.seconds, "steps": result.last_step})
    logger.info("%s: %d steps in %.0f s on %s (%s)", params["name"], result.last_step, result.seconds, result.device, result.precision)
    model = pack_model(
        result.models["segmenter"],
        model_spec,
        method=params["name"],
        step=result.last_step,
        trained_on={"domain": str(manifest["domain"].iloc[0]), "split": params["split"]},
        engine=engine.to_dict(),
        **pack_extra,
    )
    return model, result.history
