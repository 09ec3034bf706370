"""Reporting pipeline: every evaluated model compared in tables, figures and one HTML report."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
