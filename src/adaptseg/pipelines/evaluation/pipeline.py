"""Evaluation: one template, one namespace per trained model (the same namespaces as the training stages).

Every model: scores (JSON + CSV) and predictions in the Cityscapes results format. Adaptation runs also
get snapshot selection (``{method}.model_selection``) from the snapshots their run folder kept. The published
ensemble recipes (``ENSEMBLES``) are evaluated as models of their own from their members' weights.
"""

from kedro.pipeline import Node, Pipeline

from adaptseg.pipelines.adaptation.pipeline import DEFAULT_NAMESPACES
from adaptseg.pipelines.adaptation.pipeline import NAMESPACES as ADAPTATION_NAMESPACES

from .nodes import evaluate_and_export, evaluate_ensemble, select_model, tabulate_metrics

#: Every model the pipelines train, evaluated side by side.
MODELS = ("source_pretraining", *ADAPTATION_NAMESPACES, "oracle", "oracle_finetune")
#: The models ``__default__`` trains and evaluates (see ``pipeline_registry``).
DEFAULT_MODELS = tuple(m for m in MODELS if m not in ADAPTATION_NAMESPACES or m in DEFAULT_NAMESPACES)

#: Ensemble namespace → its members (trained namespaces); its parameters block says how to combine them.
ENSEMBLES: dict[str, tuple[str, ...]] = {
    "advent_minent": ("advent", "minent"),
    "fda_mbt": ("fda", "fda_beta05", "fda_beta09"),
    "family_ensemble": ("adaptsegnet_multi", "cbst", "dacs"),
}

SHARED_INPUTS = {"target_manifest", "target_train_ids"}


def create_template() -> Pipeline:
    return Pipeline(
        [
            Node(
                evaluate_and_export,
                ["model", "target_manifest", "target_train_ids", "params:evaluation"],
                ["metrics", "predictions", "predictions_color"],
                name="evaluate",
            ),
            Node(tabulate_metrics, "metrics", "metrics_table", name="tabulate_metrics"),
        ]
    )


def create_selection_template() -> Pipeline:
    return Pipeline(
        [
            Node(
                select_model,
                ["model", "run", "metrics", "target_manifest", "target_train_ids", "params:evaluation",
                 "params:model_selection"],
                "model_selection",
                name="select_model",
            )
        ]
    )


def create_ensemble(name: str, members: tuple[str, ...]) -> Pipeline:
    inputs = {"target_manifest": "target_manifest", "target_train_ids": "target_train_ids",
              "evaluation": "params:evaluation", "params": "params:ensemble", **{m: f"{m}.model" for m in members}}
    template = Pipeline(
        [
            Node(evaluate_ensemble, inputs, "metrics", name="evaluate_ensemble"),
            Node(tabulate_metrics, "metrics", "metrics_table", name="tabulate_metrics"),
        ]
    )
    return Pipeline(
        template, namespace=name, inputs={*SHARED_INPUTS, *(f"{m}.model" for m in members)},
        parameters={"params:evaluation"}, tags=["evaluation", "ensemble", name],
    )


def create_pipeline(**kwargs) -> Pipeline:
    template, selection = create_template(), create_selection_template()
    evaluation = [
        Pipeline(template, namespace=name, inputs=SHARED_INPUTS, parameters={"params:evaluation"},
                 tags=["evaluation", name])
        for name in MODELS
    ]
    model_selection = [
        Pipeline(selection, namespace=name, inputs=SHARED_INPUTS,
                 parameters={"params:evaluation", "params:model_selection"},
                 tags=["evaluation", "model_selection", name])
        for name in ADAPTATION_NAMESPACES
    ]
    ensembles = [create_ensemble(name, members) for name, members in ENSEMBLES.items()]
    return sum([*evaluation, *model_selection, *ensembles], Pipeline([]))
