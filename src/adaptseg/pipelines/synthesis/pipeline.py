"""Synthesis pipeline: generator parameters → source and target roots in the GTA5 and Cityscapes layouts."""

from kedro.pipeline import Node, Pipeline

from .nodes import generate_domains


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                generate_domains,
                "params:synthesis",
                ["source_raw", "target_raw", "synthetic_preview"],
                name="generate_domains",
            ),
        ],
        tags=["synthesis"],
    )
