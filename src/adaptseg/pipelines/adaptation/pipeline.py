"""Adaptation: one template, instantiated once per namespace; each namespace's parameters choose the method.

``NAMESPACES`` maps every namespace to the model it starts from: most adapt the source-pretrained model;
AdaBN re-estimates the statistics of the source-only model of the same budget; self-training that refines
an adapted model says which one (CBST, and DACS's warm-started variants: its teacher's first pseudo-labels are
only as good as the model it starts from). ``DEFAULT_NAMESPACES`` are what ``kedro run`` (``__default__``)
trains; the others run by name: ``kedro run --pipelines adaptation,evaluation --namespaces dacs``.
"""

from kedro.pipeline import Node, Pipeline

from .nodes import adapt_to_target

PRETRAINED = "source_pretraining.model"

#: namespace → the model it starts from. Each namespace is a top-level block in parameters_adaptation.yml.
NAMESPACES: dict[str, str] = {
    "source_only": PRETRAINED,
    "adabn": "source_only.model",
    "lambda0_control": PRETRAINED,
    "adaptsegnet_single": PRETRAINED,
    "adaptsegnet_multi": PRETRAINED,
    "feature_level": PRETRAINED,
    "minent": PRETRAINED,
    "advent": PRETRAINED,
    "fda": PRETRAINED,
    "fda_beta05": PRETRAINED,
    "fda_beta09": PRETRAINED,
    "cbst": "adaptsegnet_multi.model",
    "dacs": PRETRAINED,
    "dacs_from_multi": "adaptsegnet_multi.model",
    "dacs_from_adabn": "adabn.model",
    "dacs_mic": PRETRAINED,
    "dacs_rcs": PRETRAINED,
    "dacs_rcs_mic": PRETRAINED,
}

#: The namespaces ``__default__`` trains (``make run`` keeps within its time budget with these).
DEFAULT_NAMESPACES = ("source_only", "adabn", "adaptsegnet_single", "adaptsegnet_multi")

SHARED_INPUTS = ("source_manifest", "source_train_ids", "target_manifest", "source_class_pixels")


def create_template() -> Pipeline:
    return Pipeline(
        [
            Node(
                adapt_to_target,
                ["start_model", "source_manifest", "source_train_ids", "target_manifest", "run", "params:adaptation",
                 "source_class_pixels"],
                ["model", "history"],
                name="adapt",
            )
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    template = create_template()
    return sum(
        (
            Pipeline(
                template,
                namespace=namespace,
                inputs={"start_model": start, **{name: name for name in SHARED_INPUTS}},
                tags=["training", "adaptation", namespace],
            )
            for namespace, start in NAMESPACES.items()
        ),
        Pipeline([]),
    )
