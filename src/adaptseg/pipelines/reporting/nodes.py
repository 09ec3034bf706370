"""Reporting: one comparison of every evaluated model (tables, figures, a self-contained HTML report).

Nodes adapt catalog objects to the Kedro-free functions in ``adaptseg.reporting`` and back. Plot nodes
return the Figure (saved as a PNG and logged to MLflow by the catalog) together with its base64 PNG for
the HTML report, because a saved Figure cannot be loaded back from the catalog.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from adaptseg.data.torch_datasets import load_image
from adaptseg.evaluation.inference import labelled_dataset, upsampled_prediction
from adaptseg.methods import curve_panels
from adaptseg.models.packaging import unpack_segmenter
from adaptseg.reporting import comparison, figures
from adaptseg.reporting.html_report import render_report
from adaptseg.reporting.provenance import git_tags
from adaptseg.reporting.published import published_benchmark
from adaptseg.training.precision import resolve_device

logger = logging.getLogger(__name__)

History = dict[str, list[dict[str, float]]]


def collect_evaluations(**metrics: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """``{method: metrics}`` of every evaluated model, in pipeline order: one input for every table and plot.

    Models that no run has evaluated yet arrive as ``None`` and are left out.
    """
    evaluated = {method: result for method, result in metrics.items() if result is not None}
    if not evaluated:
        raise ValueError("No model has been evaluated yet: run the evaluation pipeline before reporting.")
    return evaluated


def collect_histories(**histories: History | None) -> dict[str, History]:
    """``{method: history}`` of every trained model (AdaBN-style methods have an empty history)."""
    return {method: dict(history) for method, history in histories.items() if history is not None}


def build_comparison(
    evaluations: Mapping[str, Mapping[str, Any]], params: Mapping[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-class table (one row per protocol and model) and the mIoU summary, published rows beside ours."""
    per_class = comparison.per_class_table(evaluations, published_benchmark(params.get("published")))
    return per_class, comparison.summary_table(per_class)


def format_comparison(per_class: pd.DataFrame, summary: pd.DataFrame, params: Mapping[str, Any]) -> str:
    """The comparison as markdown; its mIoU summary is also logged at INFO, so a run's log has the numbers."""
    benchmark = published_benchmark(params.get("published"))
    markdown = comparison.markdown_tables(per_class, summary, benchmark.source if benchmark else None)
    logger.info("Comparison of the evaluated models:\n%s", markdown.split("\n## ")[0])
    return markdown


def _with_png(fig: Figure, params: Mapping[str, Any]) -> tuple[Figure, str]:
    return fig, figures.figure_to_base64_png(fig, int(params.get("dpi", 110)))


def plot_per_class_iou(per_class: pd.DataFrame, params: Mapping[str, Any]) -> tuple[Figure, str]:
    """Per-class IoU bars of our models in the widest protocol."""
    return _with_png(figures.per_class_iou_bars(per_class), params)


def plot_training_curves(histories: Mapping[str, History], params: Mapping[str, Any]) -> tuple[Figure, str]:
    """Loss curves in the panels the methods declare (``CURVES``): those some model logged, segmentation first."""
    panels = curve_panels()
    logged = {name for history in histories.values() for name in history}
    shown = {panel: names for panel, names in panels.items() if logged & set(names)} or dict(list(panels.items())[:1])
    fig = figures.training_curves(histories, shown, float(params.get("smoothing", 0.0)))
    return _with_png(fig, params)


def plot_confusion_matrices(
    evaluations: Mapping[str, Mapping[str, Any]], params: Mapping[str, Any]
) -> tuple[Figure, str]:
    """Row-normalised confusion matrix of every model."""
    return _with_png(figures.confusion_matrices(evaluations), params)


def _example_indices(count: int, available: int) -> list[int]:
    """``count`` indices spread evenly over ``available`` samples (so several cities appear)."""
    if count <= 0 or available <= 0:
        return []
    return sorted({int(round(i)) for i in np.linspace(0, available - 1, min(count, available))})


def _predict(segmenter: torch.nn.Module, image: torch.Tensor, size: tuple[int, int], align_corners: bool) -> np.ndarray:
    """Train-id map (H×W, uint8) of one normalised image, upsampled to ``size`` = (H, W)."""
    device = next(segmenter.parameters()).device
    logits = segmenter(image[None].to(device))["out"]
    return upsampled_prediction(logits, size, align_corners)[0].cpu().numpy()


@torch.inference_mode()
def predict_examples(
    target_manifest: pd.DataFrame,
    target_train_ids: Mapping[str, Callable[[], np.ndarray]],
    evaluation: Mapping[str, Any],
    reporting: Mapping[str, Any],
    **models: dict[str, Any] | None,
) -> dict[str, Any]:
    """Each model's prediction for a few target images of the evaluation split, at the labels' resolution.

    Inputs and labels are prepared as the evaluation node prepares them (images resized to
    ``evaluation.input_size``, labels at native resolution, logits upsampled with the same ``align_corners``),
    so the pictures show what the scores measured.
    """
    split = evaluation["split"]
    dataset = labelled_dataset(target_manifest, split, evaluation["input_size"], target_train_ids)
    align_corners = bool(evaluation.get("align_corners", True))
    indices = _example_indices(int(reporting.get("examples", 4)), len(dataset))
    samples = [dataset[i] for i in indices]
    device = resolve_device(evaluation.get("device", "auto"))
    predictions: dict[str, list[np.ndarray]] = {}
    num_classes = None
    for method, model in models.items():
        if model is None:  # not trained yet
            continue
        segmenter = unpack_segmenter(model).eval().to(device)
        num_classes = num_classes or segmenter.num_classes
        predictions[method] = [_predict(segmenter, s["image"], tuple(s["label"].shape), align_corners) for s in samples]
        del segmenter
    logger.info("Predicted %d target %s images with %d models", len(samples), split, len(models))
    return {
        "names": [s["name"] for s in samples],
        "images": [load_image(dataset.image_paths[i], (s["label"].shape[1], s["label"].shape[0]))
                   for i, s in zip(indices, samples, strict=True)],
        "labels": [s["label"].numpy().astype(np.uint8) for s in samples],
        "predictions": predictions,
        "num_classes": num_classes or 19,
    }


def plot_prediction_grid(examples: Mapping[str, Any], params: Mapping[str, Any]) -> tuple[Figure, str]:
    """Target images, ground truth and every model's colourised prediction."""
    return _with_png(figures.prediction_grid(examples), params)


def build_html_report(
    per_class: pd.DataFrame,
    summary: pd.DataFrame,
    per_class_iou_png: str,
    training_curves_png: str,
    confusion_matrices_png: str,
    prediction_grid_png: str,
    study: Mapping[str, Any] | None,
    params: Mapping[str, Any],
) -> str:
    """The self-contained HTML report (tables plus every figure as an embedded PNG), with where it came from
    and, when ``make study`` has run, the study's seed spread beside this run's single numbers."""
    benchmark = published_benchmark(params.get("published"))
    ours = summary[summary["source"] == comparison.OURS]
    meta = [
        f"Target split: {ours['split'].iloc[0] if len(ours) else '?'}; models: {', '.join(ours['method'])}.",
        provenance_line(),
        "Written by the adaptseg reporting pipeline (kedro run --pipelines reporting); the same file is an "
        "artifact of the run's MLflow run.",
    ]
    return render_report(
        params.get("title", "adaptseg: model comparison"),
        per_class,
        summary,
        {
            "per_class_iou": per_class_iou_png,
            "training_curves": training_curves_png,
            "confusion_matrices": confusion_matrices_png,
            "prediction_grid": prediction_grid_png,
        },
        benchmark.source if benchmark else None,
        meta,
        study,
    )


def provenance_line() -> str:
    """Code, run and software the report comes from (the precision of each model is in its table row)."""
    import mlflow
    import torch

    tags = git_tags(Path.cwd())
    commit = tags.get("git.commit", "unknown") + (" (uncommitted changes)" if tags.get("git.dirty") == "true" else "")
    run = mlflow.active_run()
    return (f"Code: commit {commit}. MLflow run: {run.info.run_id if run else 'none'}. torch {torch.__version__}; "
            f"written {time.strftime('%Y-%m-%d %H:%M')}.")


def extra_protocol_metrics(evaluations: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """The comparison as metrics of the parent run: ``<namespace>/<split>/miou`` and ``.../miou<protocol>``.

    Every model's own numbers are in its child run (``<split>/miou``, ``<split>/miou16``..., logged by
    evaluation); these repeat the compared mIoUs on the run that made the report, under the child's names with
    the namespace in front, so that two reporting runs (two ``kedro run``) compare directly in MLflow.
    """
    metrics: dict[str, dict[str, float]] = {}
    for method, result in evaluations.items():
        main = str(len(result["confusion_matrix"]))
        step = int(result.get("step") or 0)
        for protocol, scores in result["protocols"].items():
            value = scores.get("miou")
            if value is not None and value == value:
                name = f"{method}/{result['split']}/miou" + ("" if protocol == main else protocol)
                metrics[name] = {"value": float(value), "step": step}
    return metrics
