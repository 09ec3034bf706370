"""Quiet output: third-party notices that say nothing about the user's run are not shown.

Every ``kedro`` command printed seven of them (omegaconf's ``register_new_resolver`` deprecation from Kedro and
kedro-mlflow, MLflow's "add type hints to predict" from kedro-mlflow's model class, Kedro's notice about
namespaced dataset names, pydantic's on kedro-mlflow's settings). None is fixable in this project's code; each
comes from a library's own use of another. ``settings.py`` installs the filters; kept light (no torch), since
every command imports it first thing.
"""

from __future__ import annotations

import warnings

#: (message start, category) of the warnings ignored, with where each comes from.
THIRD_PARTY_NOTICES = (
    (r"register_new_resolver\(\) is deprecated", UserWarning),  # omegaconf, called by kedro and kedro-mlflow
    (r".*Add type hints to the `predict` method", UserWarning),  # mlflow, on kedro-mlflow's KedroPipelineModel
    (r"One or more dataset names contain '\.'", UserWarning),  # kedro: namespaced datasets are by design
    (r"Support for class-based `config` is deprecated", DeprecationWarning),  # pydantic, on kedro-mlflow's classes
)


def quiet_third_party_notices() -> None:
    """Ignore the warnings of ``THIRD_PARTY_NOTICES``; every other warning still shows."""
    for message, category in THIRD_PARTY_NOTICES:
        warnings.filterwarnings("ignore", message=message, category=category)
