"""Supervised training on one labelled domain: source pretraining, and the target-trained oracles."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch

from adaptseg.data.layouts import files_digest
from adaptseg.data.torch_datasets import SegmentationDataset
from adaptseg.io.run_folder import RunFolder
from adaptseg.methods import source_only
from adaptseg.models.packaging import build_from_spec, unpack_segmenter
from adaptseg.pipelines.training import engine_config, packed_result, require_start
from adaptseg.tracking import metrics_logger
from adaptseg.training import seed_everything, train


def train_supervised(
    manifest: pd.DataFrame,
    train_ids: Mapping[str, Callable[[], np.ndarray]],
    model_spec: dict[str, Any],
    run: RunFolder,
    params: dict[str, Any],
    class_pixels: pd.DataFrame | None = None,
) -> tuple[dict[str, Any], dict[str, list]]:
    """Train a fresh segmenter on the labelled ``params["split"]`` of one domain.

    ``params``: ``name`` (MLflow prefix), ``split``, ``input_size`` (W, H), ``bn_mode``, ``engine``
    (``EngineConfig`` fields) and ``method_config`` (the source-only knobs: ``lambda_seg``). ``class_pixels``:
    the labels' per-image class counts, for rare-class sampling (``None``: counted from the labels). Returns
    the packed model and the metric history.
    """
    engine = engine_config(params, run)
    seed_everything(engine.seed)  # the network's initialisation is part of the run's seed
    segmenter = build_from_spec({**model_spec, "options": {**model_spec.get("options", {}), "bn_mode": params["bn_mode"]}})
    return _train_labelled(segmenter, model_spec, manifest, train_ids, run, params, class_pixels)


def finetune_supervised(
    start: dict[str, Any],
    manifest: pd.DataFrame,
    train_ids: Mapping[str, Callable[[], np.ndarray]],
    run: RunFolder,
    params: dict[str, Any],
    class_pixels: pd.DataFrame | None = None,
) -> tuple[dict[str, Any], dict[str, list]]:
    """Fine-tune a packed model on the labelled ``params["split"]`` of one domain (same ``params`` as
    ``train_supervised``).

    The oracle with the adaptation methods' own start and budget: from the source-pretrained checkpoint,
    target labels instead of the adversarial loss. Where no ImageNet weights exist (the synthetic default),
    this, not training from scratch, is the upper bound an adaptation method can be held against.
    """
    start = require_start(start, params)
    seed_everything(engine_config(params, run).seed)
    segmenter = unpack_segmenter(start, bn_mode=params["bn_mode"])
    return _train_labelled(
        segmenter, start["spec"], manifest, train_ids, run, params, class_pixels, start_step=start.get("step")
    )


def _train_labelled(
    segmenter: torch.nn.Module,
    model_spec: dict[str, Any],
    manifest: pd.DataFrame,
    train_ids: Mapping[str, Callable[[], np.ndarray]],
    run: RunFolder,
    params: dict[str, Any],
    class_pixels: pd.DataFrame | None,
    **pack_extra: Any,
) -> tuple[dict[str, Any], dict[str, list]]:
    engine = engine_config(params, run)
    dataset = SegmentationDataset(manifest, params["split"], params["input_size"], labels=train_ids,
                                  class_pixels=class_pixels)
    result = train(
        source_only, {"segmenter": segmenter}, dataset, engine, method_config=params.get("method_config"),
        on_metrics=metrics_logger(params["name"]), label=params["name"],
        data_digest=files_digest(manifest[manifest["split"] == params["split"]]),
    )
    trained_on = {"domain": str(manifest["domain"].iloc[0]), "split": params["split"]}
    model = packed_result(result, model_spec, params, engine, trained_on=trained_on, **pack_extra)
    return model, result.history
