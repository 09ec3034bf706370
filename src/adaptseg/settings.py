"""Project settings: the config loader and its resolvers.

``oc.env`` is registered so that ``conf/base/mlflow.yml`` can read ``MLFLOW_TRACKING_URI`` (Kedro allows
``oc.env`` only in credentials by default). Telemetry is switched off for every entry point that imports
the project (``kedro``, ``python -m adaptseg``, tests, notebooks).
"""

import os

from omegaconf.resolvers import oc

from adaptseg.logging_filters import quiet_third_party_notices

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
# MLflow 3 reports usage unless told so (it reads DO_NOT_TRACK only when it is "true")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
quiet_third_party_notices()
# An unreachable tracking server fails within seconds, not after MLflow's default of 7 backed-off retries (251 s
# measured); MLFLOW_HTTP_REQUEST_* set in the environment still win.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "custom_resolvers": {"oc.env": oc.env},
}

# Project hooks: the configuration checked before anything runs (hooks_validation.py); every MLflow run tagged
# with its git commit and data version, and the leftovers of killed runs dealt with (hooks.py).
from adaptseg.hooks import HousekeepingHooks, LabNotebookHooks  # noqa: E402
from adaptseg.hooks_validation import ParameterValidationHooks  # noqa: E402

HOOKS = (ParameterValidationHooks(), LabNotebookHooks(), HousekeepingHooks())
