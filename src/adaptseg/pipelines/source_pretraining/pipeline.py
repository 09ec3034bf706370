"""Supervised training: one template in two namespaces, and the fine-tuned oracle.

``source_pretraining``: the labelled source domain → the pretrained segmenter every adaptation method
starts from. ``oracle``: the same training on labelled target train (the paper's target-only model; from
ImageNet weights on real data, from scratch on the synthetic default). ``oracle_finetune``: the pretrained
segmenter fine-tuned on labelled target train with the adaptation methods' start and budget, the upper
bound they are held against.
"""

from kedro.pipeline import Node, Pipeline

from .nodes import finetune_supervised, train_supervised

#: namespace → the domain whose labelled data it trains on.
DOMAINS = {"source_pretraining": "source", "oracle": "target"}


def create_template() -> Pipeline:
    return Pipeline(
        [
            Node(
                train_supervised,
                ["manifest", "train_ids", "params:model", "run", "params:training", "class_pixels"],
                ["model", "history"],
                name="train",
            )
        ]
    )


def create_finetune_template() -> Pipeline:
    return Pipeline(
        [
            Node(
                finetune_supervised,
                ["start", "manifest", "train_ids", "run", "params:training", "class_pixels"],
                ["model", "history"],
                name="finetune",
            )
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    template = create_template()
    trained = [
        Pipeline(
            template,
            namespace=namespace,
            inputs={"manifest": f"{domain}_manifest", "train_ids": f"{domain}_train_ids",
                    "class_pixels": f"{domain}_class_pixels"},
            parameters={"params:model"},
            tags=["training", namespace],
        )
        for namespace, domain in DOMAINS.items()
    ]
    finetuned = Pipeline(
        create_finetune_template(),
        namespace="oracle_finetune",
        inputs={"start": "source_pretraining.model", "manifest": "target_manifest", "train_ids": "target_train_ids",
                "class_pixels": "target_class_pixels"},
        tags=["training", "oracle_finetune"],
    )
    return sum([*trained, finetuned], Pipeline([]))
