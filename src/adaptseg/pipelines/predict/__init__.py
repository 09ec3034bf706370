"""Predict pipeline: a trained model segments a folder of the user's own images."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
