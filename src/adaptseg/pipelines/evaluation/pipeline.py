"""Evaluation: one template, one namespace per trained model (the same namespaces as the training stages)."""

from kedro.pipeline import Node, Pipeline

from adaptseg.pipelines.adaptation.pipeline import METHODS as ADAPTATION_METHODS

from .nodes import evaluate_on_target

#: Every model the default pipeline trains, evaluated side by side.
MODELS = ("source_pretraining", *ADAPTATION_METHODS, "oracle")


def create_template() -> Pipeline:
    return Pipeline(
        [
            Node(
                evaluate_on_target,
                ["model", "target_manifest", "target_train_ids", "params:evaluation"],
                "metrics",
                name="evaluate",
            )
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    template = create_template()
    return sum(
        (
            Pipeline(
                template,
                namespace=name,
                inputs={"target_manifest", "target_train_ids"},
                parameters={"params:evaluation"},
                tags=["evaluation", name],
            )
            for name in MODELS
        ),
        Pipeline([]),
    )
