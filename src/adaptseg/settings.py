"""Project settings: the config loader and its resolvers.

``oc.env`` is registered so that ``conf/base/mlflow.yml`` can read ``MLFLOW_TRACKING_URI`` (Kedro allows
``oc.env`` only in credentials by default). Telemetry is switched off for every entry point that imports
the project (``kedro``, ``python -m adaptseg``, tests, notebooks).
"""

import os

from omegaconf.resolvers import oc

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "custom_resolvers": {"oc.env": oc.env},
}

# Project hooks: tag every MLflow run with its git commit and data version (see adaptseg/hooks.py).
from adaptseg.hooks import LabNotebookHooks  # noqa: E402

HOOKS = (LabNotebookHooks(),)
