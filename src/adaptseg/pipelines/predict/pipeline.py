"""Predict: a folder of user images and a trained model in; label-id PNGs, overlays and a contact sheet out.

``kedro run --pipelines predict --params "predict.input=DIR,predict.output=DIR,predict.model=NAME"``; the
model is a training namespace (default ``adaptsegnet_multi``) or the path of a ``.pt`` file. It runs by name
only, since it needs the user's folder: ``pipeline_registry`` leaves it out of ``__default__``.
``python -m adaptseg.predict`` does the same without Kedro.
"""

from kedro.pipeline import Node, Pipeline

from .nodes import segment_images


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                segment_images,
                ["predict_model", "predict_images", "params:predict"],
                ["predict_output", "predict_summary"],
                name="segment_images",
            ),
        ],
        tags=["predict"],
    )
