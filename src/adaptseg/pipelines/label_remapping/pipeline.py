"""Label-remapping pipeline: manifests → train-id label maps, per-image class pixel counts, the class-frequency
table and plot."""

from kedro.pipeline import Node, Pipeline

from .nodes import count_class_frequencies, count_class_pixels, plot_class_frequencies, remap_labels


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(remap_labels, ["source_manifest", "params:label_remapping"], "source_train_ids", name="remap_source_labels"),
            Node(remap_labels, ["target_manifest", "params:label_remapping"], "target_train_ids", name="remap_target_labels"),
            *(
                Node(
                    count_class_pixels,
                    [f"{domain}_train_ids", "params:label_remapping"],
                    f"{domain}_class_pixels",
                    name=f"count_{domain}_class_pixels",
                )
                for domain in ("source", "target")
            ),
            Node(
                count_class_frequencies,
                ["source_class_pixels", "target_class_pixels", "params:label_remapping"],
                "class_frequencies",
                name="count_class_frequencies",
            ),
            Node(
                plot_class_frequencies,
                ["class_frequencies", "params:label_remapping"],
                "class_frequencies_plot",
                name="plot_class_frequencies",
            ),
        ],
        tags=["label_remapping"],
    )
