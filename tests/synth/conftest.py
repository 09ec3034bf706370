"""Small generator configurations shared by the synthesis tests."""

from __future__ import annotations

import pytest

from adaptseg.synth import SynthesisConfig


@pytest.fixture(scope="session")
def small_config() -> SynthesisConfig:
    """Default sizes and appearance, few images: 6 source, 5 train, 3 val, 3 dev."""
    return SynthesisConfig.from_dict({"counts": {"source": 6, "train": 5, "val": 3, "dev": 3}})


@pytest.fixture(scope="session")
def small_domains(small_config):
    from adaptseg.synth import generate_source, generate_target

    return generate_source(small_config, progress=False), generate_target(small_config, progress=False)
