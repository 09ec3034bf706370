"""Evaluation of a trained model on labelled target data, as the reference protocol does it.

Also: predictions in the Cityscapes results format, a flat CSV of the scores, and snapshot selection for
adaptation runs with each choice labelled by the data it looked at.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Subset

from adaptseg.data.torch_datasets import SegmentationDataset
from adaptseg.evaluation import predict_dataset, protocol_scores
from adaptseg.evaluation.ensemble import EnsembleSegmenter
from adaptseg.evaluation.export import prediction_exports
from adaptseg.evaluation.inference import labelled_dataset, mean_prediction_entropy
from adaptseg.evaluation.metrics import scores_table
from adaptseg.evaluation.selection import select_snapshots, selection_labels
from adaptseg.io.run_folder import RunFolder
from adaptseg.models.packaging import unpack_segmenter
from adaptseg.tracking import log_evaluation, log_selection
from adaptseg.training.precision import resolve_device

logger = logging.getLogger(__name__)

Loader = Callable[[], Any]


def _evaluate(
    model: dict[str, Any],
    target_manifest: pd.DataFrame,
    target_train_ids: Mapping[str, Callable[[], np.ndarray]],
    params: dict[str, Any],
    *,
    keep_predictions: bool = False,
    log: bool = True,
    segmenter: torch.nn.Module | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Scores of ``model`` on the target ``params["split"]`` and, when asked, its train-id predictions."""
    segmenter = unpack_segmenter(model) if segmenter is None else segmenter
    dataset = labelled_dataset(target_manifest, params["split"], params["input_size"], target_train_ids)
    num_classes = segmenter.num_classes
    predictions: dict[str, np.ndarray] = {}

    def keep(name: str, prediction) -> None:
        predictions[name] = prediction.cpu().numpy()

    confusion = predict_dataset(
        segmenter,
        dataset,
        num_classes,
        batch_size=int(params.get("batch_size", 4)),
        device=resolve_device(params.get("device", "auto")),
        align_corners=bool(params.get("align_corners", True)),
        on_prediction=keep if keep_predictions else None,
        progress=log,
    ).numpy()
    method = model.get("method", "model")
    result: dict[str, Any] = {
        "method": method,
        "split": params["split"],
        "images": len(dataset),
        "step": model.get("step"),
        "precision": model.get("precision"),  # what it trained with: bf16 against fp32 moves results by points
        "device": model.get("device"),
        "num_classes": num_classes,
        "confusion_matrix": confusion.tolist(),
        "protocols": {},
    }
    for protocol in params.get("protocols", [num_classes]):
        if num_classes == 19 or protocol == num_classes:
            result["protocols"][str(protocol)] = protocol_scores(confusion, int(protocol))
    if log:
        main = result["protocols"][str(num_classes)]
        logger.info("%s on target %s: mIoU%d %.2f", method, params["split"], num_classes, main["miou"])
        log_evaluation(model, result, params.get("device", "auto"))  # <split>/miou... in its child run
    return result, predictions


def evaluate_on_target(
    model: dict[str, Any],
    target_manifest: pd.DataFrame,
    target_train_ids: Mapping[str, Callable[[], np.ndarray]],
    params: dict[str, Any],
) -> dict[str, Any]:
    """Confusion matrix and scores per protocol of ``model`` on the target ``params["split"]``.

    Images are resized to ``input_size`` (W, H); logits are upsampled to the labels' own resolution.
    """
    return _evaluate(model, target_manifest, target_train_ids, params)[0]


def evaluate_and_export(
    model: dict[str, Any],
    target_manifest: pd.DataFrame,
    target_train_ids: Mapping[str, Callable[[], np.ndarray]],
    params: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Loader], dict[str, Loader]]:
    """:func:`evaluate_on_target` plus its predictions as Cityscapes label-id PNGs and colour PNGs.

    One inference pass feeds both, so the exported files are exactly what was scored. ``params["export"]``:
    ``enabled`` (false: both folders are written empty) and ``colour``. Predictions are held in memory as
    uint8 train-id maps until the catalog writes them (about 1 GB for the 500 Cityscapes val images).
    """
    export = dict(params.get("export") or {})
    enabled = bool(export.get("enabled", False))
    metrics, predictions = _evaluate(model, target_manifest, target_train_ids, params, keep_predictions=enabled)
    label_ids, colours = prediction_exports(
        predictions, metrics["num_classes"], colour=bool(export.get("colour", True))
    )
    metrics["export"] = {"label_id_pngs": len(label_ids), "colour_pngs": len(colours)}
    return metrics, label_ids, colours


def evaluate_ensemble(
    target_manifest: pd.DataFrame,
    target_train_ids: Mapping[str, Callable[[], np.ndarray]],
    evaluation: dict[str, Any],
    params: dict[str, Any],
    **members: dict[str, Any] | None,
) -> dict[str, Any]:
    """Scores of the published ensemble recipe ``params`` (``name``, ``combine``, ``weights``) of ``members``.

    Evaluated exactly as a single model (the same inputs, upsampling and protocols); every member must have
    been trained (a missing one is named).
    """
    missing = [name for name, model in members.items() if model is None]
    if missing:
        raise ValueError(
            f"{params['name']}: members {missing} have not been trained yet; run kedro run --pipelines "
            f"adaptation --namespaces {','.join(missing)} first."
        )
    ensemble = EnsembleSegmenter(
        [unpack_segmenter(model) for model in members.values()], params.get("weights"), params.get("combine", "logits")
    )
    metrics = _evaluate({"method": params["name"]}, target_manifest, target_train_ids, evaluation, segmenter=ensemble)[0]
    return {**metrics, "members": list(members), "combine": ensemble.combine, "weights": ensemble.weights.tolist()}


def tabulate_metrics(metrics: dict[str, Any]) -> pd.DataFrame:
    """The scores of :func:`evaluate_on_target` as a flat table: IoU per protocol and class, plus mIoU rows."""
    return scores_table(metrics)


def _check_same_run(snapshot: Mapping[str, Any], model: Mapping[str, Any], step: int) -> None:
    """Refuse a snapshot of another run (other settings, method knobs or starting weights) than the model's."""
    saved, current = snapshot.get("run_id"), model.get("run_id")
    if saved is not None and current is not None and saved != current:
        raise ValueError(
            f"Snapshot step {step} belongs to run {saved}, not to run {current} that produced the model "
            "(another configuration wrote into the same run folder). Retrain the model, or remove the "
            "folder's stale step_*.pt files."
        )


def _same_weights(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def select_model(
    model: dict[str, Any],
    run: RunFolder,
    metrics: dict[str, Any] | None,
    target_manifest: pd.DataFrame,
    target_train_ids: Mapping[str, Callable[[], np.ndarray]],
    evaluation: dict[str, Any],
    params: dict[str, Any],
) -> dict[str, Any]:
    """Val mIoU and target-train prediction entropy of each snapshot the run kept, and three labelled selections.

    ``params``: ``split`` (labelled split scored per snapshot, the test set ``val`` by default),
    ``entropy_split`` and ``entropy_images`` (the first N images of that split, labels never read),
    ``every`` (score only snapshots whose step is a multiple of it, plus the last; null = all).
    ``evaluation`` gives ``input_size``, ``batch_size``, ``device`` and ``protocols``. ``metrics`` (the
    model's own evaluation) is reused for the snapshot that holds exactly the model's weights, when it
    scored the same split, instead of running that inference again.
    """
    method = model.get("method", "model")
    split = params.get("split", "val")
    entropy_split = params.get("entropy_split", "train")
    entropy_images = int(params.get("entropy_images", 50))
    every = params.get("every")
    snapshots = run.snapshots()
    steps = sorted(snapshots)
    if model.get("step") is not None:
        later = [s for s in steps if s > int(model["step"])]
        if later:
            logger.warning("%s: skipping snapshots %s, later than the model's step %s.", method, later, model["step"])
            steps = [s for s in steps if s <= int(model["step"])]
    if every and steps:
        last = steps[-1]
        steps = [s for s in steps if s % int(every) == 0 or s == last]

    unlabelled = SegmentationDataset(target_manifest, entropy_split, evaluation["input_size"], labels=None)
    unlabelled = Subset(unlabelled, range(min(entropy_images, len(unlabelled))))
    scoring = {**evaluation, "split": split}
    device = resolve_device(evaluation.get("device", "auto"))
    records = []
    for step in steps:
        snapshot = snapshots[step]()
        if "segmenter" not in (snapshot.get("models") or {}):
            raise ValueError(f"{method}: snapshot step {step} holds no segmenter weights (keys {sorted(snapshot)}).")
        _check_same_run(snapshot, model, step)
        weights = {**model, "segmenter": snapshot["models"]["segmenter"], "step": step}
        segmenter = unpack_segmenter(weights)
        reuse = (
            metrics is not None
            and metrics.get("split") == split
            and metrics.get("step") == step
            and _same_weights(snapshot["models"]["segmenter"], model["segmenter"])
        )
        if reuse:
            scores = metrics
        else:
            scores, _ = _evaluate(weights, target_manifest, target_train_ids, scoring, log=False, segmenter=segmenter)
        entropy = mean_prediction_entropy(
            segmenter, unlabelled, batch_size=int(evaluation.get("batch_size", 4)), device=device,
            align_corners=bool(evaluation.get("align_corners", True)),
        )
        main = scores["protocols"][str(scores["num_classes"])]
        records.append(
            {
                "step": step,
                "val_miou": main["miou"],
                "val_pixel_accuracy": main["pixel_accuracy"],
                "val_miou_by_protocol": {p: s["miou"] for p, s in scores["protocols"].items()},
                "train_entropy": entropy,
                "val_scores_from": "model metrics (same weights)" if reuse else "snapshot inference",
            }
        )
        logger.info("%s snapshot %d: %s mIoU %.2f, %s entropy %.4f", method, step, split, main["miou"], entropy_split, entropy)

    labels = selection_labels(split, entropy_split, len(unlabelled))
    selections = select_snapshots(records, labels)
    log_selection(method, selections)  # selection/<rule>/step and /val_miou in the model's child run
    return {
        "method": method,
        "model_step": model.get("step"),
        "val_split": split,
        "entropy_split": entropy_split,
        "entropy_images": len(unlabelled),
        "num_classes": int(model["spec"]["num_classes"]),
        "snapshots": records,
        "selections": selections,
        "note": None if records else "no snapshots to select from (engine.snapshot_every 0, or fewer steps than it)",
    }
