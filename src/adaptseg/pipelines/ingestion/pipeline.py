"""Ingestion pipeline: raw domain roots → validated manifests and a summary."""

from kedro.pipeline import Node, Pipeline

from .nodes import ingest_source, ingest_target, summarise_manifests


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(ingest_source, ["source_raw", "params:ingestion.source"], "source_manifest", name="ingest_source"),
            Node(ingest_target, ["target_raw", "params:ingestion.target"], "target_manifest", name="ingest_target"),
            Node(
                summarise_manifests,
                ["source_manifest", "target_manifest"],
                "ingestion_summary",
                name="summarise_manifests",
            ),
        ],
        tags=["ingestion"],
    )
