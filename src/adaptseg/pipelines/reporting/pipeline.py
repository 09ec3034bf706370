"""Reporting: metrics, histories and checkpoints of every evaluated model → comparison tables, figures,
a self-contained HTML report (``data/08_reporting/report.html``) and MLflow artifacts.
"""

from kedro.pipeline import Node, Pipeline

from adaptseg.pipelines.evaluation.pipeline import ENSEMBLES, MODELS

from .nodes import (
    build_comparison,
    build_html_report,
    collect_evaluations,
    collect_histories,
    extra_protocol_metrics,
    format_comparison,
    plot_confusion_matrices,
    plot_per_class_iou,
    plot_prediction_grid,
    plot_training_curves,
    predict_examples,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                collect_evaluations,
                {m: f"{m}.metrics" for m in (*MODELS, *ENSEMBLES)},
                "evaluations",
                name="collect_evaluations",
            ),
            Node(
                collect_histories, {m: f"{m}.history" for m in MODELS}, "training_histories", name="collect_histories"
            ),
            Node(
                build_comparison,
                ["evaluations", "params:reporting"],
                ["comparison_per_class", "comparison_summary"],
                name="build_comparison",
            ),
            Node(
                format_comparison,
                ["comparison_per_class", "comparison_summary", "params:reporting"],
                "comparison_markdown",
                name="format_comparison",
            ),
            Node(extra_protocol_metrics, "evaluations", "reporting_metrics", name="log_protocol_metrics"),
            Node(
                plot_per_class_iou,
                ["comparison_per_class", "params:reporting"],
                ["per_class_iou_plot", "per_class_iou_png"],
                name="plot_per_class_iou",
            ),
            Node(
                plot_training_curves,
                ["training_histories", "params:reporting"],
                ["training_curves_plot", "training_curves_png"],
                name="plot_training_curves",
            ),
            Node(
                plot_confusion_matrices,
                ["evaluations", "params:reporting"],
                ["confusion_matrices_plot", "confusion_matrices_png"],
                name="plot_confusion_matrices",
            ),
            Node(
                predict_examples,
                {
                    "target_manifest": "target_manifest",
                    "target_train_ids": "target_train_ids",
                    "evaluation": "params:evaluation",
                    "reporting": "params:reporting",
                    **{m: f"{m}.model" for m in MODELS},
                },
                "example_predictions",
                name="predict_examples",
            ),
            Node(
                plot_prediction_grid,
                ["example_predictions", "params:reporting"],
                ["prediction_grid_plot", "prediction_grid_png"],
                name="plot_prediction_grid",
            ),
            Node(
                build_html_report,
                [
                    "comparison_per_class",
                    "comparison_summary",
                    "per_class_iou_png",
                    "training_curves_png",
                    "confusion_matrices_png",
                    "prediction_grid_png",
                    "study_summary",
                    "params:reporting",
                ],
                "report_html",
                name="build_html_report",
            ),
        ],
        tags=["reporting"],
    )
