"""Supervised training, one template in two namespaces.

``source_pretraining``: the labelled source domain → the pretrained segmenter every adaptation method
starts from. ``oracle``: the same training on labelled target train → the upper bound of every table.
"""

from kedro.pipeline import Node, Pipeline

from .nodes import train_supervised

#: namespace → the domain whose labelled data it trains on.
DOMAINS = {"source_pretraining": "source", "oracle": "target"}


def create_template() -> Pipeline:
    return Pipeline(
        [
            Node(
                train_supervised,
                ["manifest", "train_ids", "params:model", "params:training"],
                ["model", "history"],
                name="train",
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
                inputs={"manifest": f"{domain}_manifest", "train_ids": f"{domain}_train_ids"},
                parameters={"params:model"},
                tags=["training", namespace],
            )
            for namespace, domain in DOMAINS.items()
        ),
        Pipeline([]),
    )
