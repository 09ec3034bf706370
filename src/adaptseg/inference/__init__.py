"""Segmenting a user's own images with a trained model: a folder of JPEGs and PNGs in, label-id PNGs,
overlays and a contact sheet out (``python -m adaptseg.predict`` and the ``predict`` pipeline).

Kedro-free and importable on its own, like the models and the engine. A package of its own rather than a
module of ``evaluation``: evaluation scores labelled data with the reference protocol, while this reads
arbitrary user files, resolves a model by name, tiles large images and draws pictures; what the two share
(the resize-and-upsample path, the arg-max, the Cityscapes export) it imports from ``evaluation``.
"""

from adaptseg.inference.images import (
    IMAGE_SUFFIXES,
    OUTPUT_MARKER,
    ImageFolder,
    NoImagesError,
    UnreadableImageError,
    UserImage,
    folder_problems,
    read_user_image,
    scan_image_folder,
)
from adaptseg.inference.models import DEFAULT_MODELS_ROOT, ModelInputs, model_inputs, resolve_model
from adaptseg.inference.policies import POLICIES, predict_resized, predict_sliding, window_boxes
from adaptseg.inference.run import PredictConfig, Segmentation, segment_folder

__all__ = [
    "DEFAULT_MODELS_ROOT",
    "IMAGE_SUFFIXES",
    "OUTPUT_MARKER",
    "POLICIES",
    "ImageFolder",
    "ModelInputs",
    "NoImagesError",
    "PredictConfig",
    "Segmentation",
    "UnreadableImageError",
    "UserImage",
    "folder_problems",
    "model_inputs",
    "predict_resized",
    "predict_sliding",
    "read_user_image",
    "resolve_model",
    "scan_image_folder",
    "segment_folder",
    "window_boxes",
]
