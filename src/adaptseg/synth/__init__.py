"""The procedural street-scene generator: the project's embedded GTA5-like → Cityscapes-like benchmark.

``generate_source`` writes a game-like source domain in the GTA5 layout, ``generate_target`` a camera-like
target domain in the Cityscapes layout (train, val and a labelled dev split). Both share a perspective
street-scene layout (optionally shifted: ``layout_shift``) and differ in appearance per image, per class
and locally (``appearance`` strengths). ``corruption`` optionally corrupts every target image with a shift of
another kind (``CORRUPTIONS``: fog, rain, snow, noise, blur, JPEG, contrast; severity 1..5). See
``docs/synthetic_data.md`` and the module docstrings.
"""

from .appearance import AppearanceStrengths, render, render_source, render_target
from .config import DEFAULT_CITIES, TARGET_SPLITS, SynthesisConfig, SynthesisCounts, TargetCorruption
from .corruptions import CORRUPTIONS, SEVERITIES
from .generator import (
    generate_source,
    generate_target,
    iter_source,
    iter_target,
    sample_rng,
    source_sample,
    target_sample,
)
from .layout import LAYOUT_SHIFTS, Layout, LayoutProfile, layout_profile, sample_layout
from .preview import preview_pairs

__all__ = [
    "AppearanceStrengths",
    "CORRUPTIONS",
    "DEFAULT_CITIES",
    "LAYOUT_SHIFTS",
    "Layout",
    "LayoutProfile",
    "SEVERITIES",
    "SynthesisConfig",
    "SynthesisCounts",
    "TARGET_SPLITS",
    "TargetCorruption",
    "generate_source",
    "generate_target",
    "iter_source",
    "iter_target",
    "layout_profile",
    "preview_pairs",
    "render",
    "render_source",
    "render_target",
    "sample_layout",
    "sample_rng",
    "source_sample",
    "target_sample",
]
