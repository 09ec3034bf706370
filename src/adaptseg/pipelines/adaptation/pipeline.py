"""Adaptation: one template, instantiated once per method as a namespace (parameters per namespace)."""

from kedro.pipeline import Node, Pipeline

from .nodes import adapt_to_target

#: Namespaces run by default; each is a top-level block in parameters_adaptation.yml.
METHODS = ("source_only", "adaptsegnet_single", "adaptsegnet_multi")

SHARED_INPUTS = {
    "pretrained_model": "source_pretraining.model",
    **{name: name for name in ("source_manifest", "source_train_ids", "target_manifest")},
}


def create_template() -> Pipeline:
    return Pipeline(
        [
            Node(
                adapt_to_target,
                ["pretrained_model", "source_manifest", "source_train_ids", "target_manifest", "params:adaptation"],
                ["model", "history"],
                name="adapt",
            )
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    template = create_template()
    return sum(
        (Pipeline(template, namespace=method, inputs=SHARED_INPUTS, tags=["training", "adaptation", method]) for method in METHODS),
        Pipeline([]),
    )
