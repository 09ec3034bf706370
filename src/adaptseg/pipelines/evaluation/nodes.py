"""Evaluation of a trained model on labelled target data, as the reference protocol does it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from adaptseg.data.torch_datasets import SegmentationDataset
from adaptseg.evaluation import predict_dataset, protocol_scores
from adaptseg.models.packaging import unpack_segmenter
from adaptseg.tracking import log_summary
from adaptseg.training.precision import resolve_device

logger = logging.getLogger(__name__)


def evaluate_on_target(
    model: dict[str, Any],
    target_manifest: pd.DataFrame,
    target_train_ids: Mapping[str, Callable[[], np.ndarray]],
    params: dict[str, Any],
) -> dict[str, Any]:
    """Confusion matrix and scores per protocol of ``model`` on the target ``params["split"]``.

    Images are resized to ``input_size`` (W, H); logits are upsampled to the labels' own resolution.
    """
    segmenter = unpack_segmenter(model)
    dataset = SegmentationDataset(
        target_manifest, params["split"], params["input_size"], labels=target_train_ids, label_size=None
    )
    num_classes = segmenter.num_classes
    confusion = predict_dataset(
        segmenter,
        dataset,
        num_classes,
        batch_size=int(params.get("batch_size", 4)),
        device=resolve_device(params.get("device", "auto")),
    ).numpy()
    method = model.get("method", "model")
    result: dict[str, Any] = {
        "method": method,
        "split": params["split"],
        "images": len(dataset),
        "step": model.get("step"),
        "confusion_matrix": confusion.tolist(),
        "protocols": {},
    }
    for protocol in params.get("protocols", [num_classes]):
        if num_classes == 19 or protocol == num_classes:
            result["protocols"][str(protocol)] = protocol_scores(confusion, int(protocol))
    main = result["protocols"][str(num_classes)]
    logger.info("%s on target %s: mIoU%d %.2f", method, params["split"], num_classes, main["miou"])
    log_summary(
        f"{method}.{params['split']}",
        {"miou": main["miou"], "pixel_accuracy": main["pixel_accuracy"]}
        | {f"iou.{name.replace(' ', '_')}": v for name, v in main["iou"].items() if v is not None},
    )
    return result
