"""Adaptation from a starting model to the unlabelled target domain, with any method of ``adaptseg.methods``.

One node serves every namespace; the namespace's parameters name the method (``method:``) and its knobs
(``method_config:``). Target labels never reach this node.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from adaptseg.data.layouts import files_digest
from adaptseg.data.torch_datasets import SegmentationDataset
from adaptseg.io.run_folder import RunFolder
from adaptseg.methods import get_method
from adaptseg.models.packaging import unpack_segmenter
from adaptseg.pipelines.training import engine_config, packed_result, require_start
from adaptseg.tracking import metrics_logger
from adaptseg.training import seed_everything, train


def adapt_to_target(
    start: dict[str, Any],
    source_manifest: pd.DataFrame,
    source_train_ids: Mapping[str, Callable[[], np.ndarray]],
    target_manifest: pd.DataFrame,
    run: RunFolder,
    params: dict[str, Any],
    source_class_pixels: pd.DataFrame | None = None,
) -> tuple[dict[str, Any], dict[str, list]]:
    """Adapt the ``start`` segmenter to the unlabelled target train images with ``params["method"]``.

    ``params``: ``name``, ``method`` (a key of ``adaptseg.methods.METHODS``), ``method_config`` (its knobs),
    ``bn_mode`` ("frozen": statistics fixed from pretraining, the project default; "train": the original's
    updating statistics), ``input_size`` ({source, target} as (W, H)) and ``engine``. ``source_class_pixels``:
    the source labels' per-image class counts, for rare-class sampling (``None``: counted from the labels).
    Returns the packed model and its metric history.
    """
    start = require_start(start, params)
    method = get_method(params["method"])
    config = method.Config.from_dict(params.get("method_config"))
    engine = engine_config(params, run)
    seed_everything(engine.seed)
    segmenter = unpack_segmenter(start, bn_mode=params["bn_mode"])
    sizes = params["input_size"]
    source = SegmentationDataset(source_manifest, "train", sizes["source"], labels=source_train_ids,
                                  class_pixels=source_class_pixels)
    target = SegmentationDataset(target_manifest, "train", sizes["target"], labels=None)
    models = {"segmenter": segmenter, **method.build_models(segmenter, config)}
    result = train(
        method, models, source, engine, target_dataset=target, method_config=config,
        on_metrics=metrics_logger(params["name"]), label=params["name"],
        data_digest=files_digest(source_manifest, target_manifest[target_manifest["split"] == "train"]),
    )
    packed = packed_result(result, start["spec"], params, engine, start_step=start.get("step"), start_run=start.get("method"))
    return packed, result.history
