"""Project hook: the configuration is checked when a Kedro session starts, before anything runs.

``after_context_created`` is the earliest hook of a run. There, a ``--env`` whose folder does not exist (Kedro
would go on with base alone and fail later with an unrelated MLflow message) and every problem of the
parameters, run-time ``--params`` included (:func:`adaptseg.config_validation.validate_parameters`), stop
the run with one error that says what to fix, and so does a PostgreSQL ``MLFLOW_TRACKING_URI`` whose driver
is not installed. ``tryfirst=True``: it runs before kedro-mlflow's own ``after_context_created`` sets up
tracking, so a bad configuration leaves no MLflow run behind.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from adaptseg.config import ConfigurationError, Problem


class UnknownEnvironmentError(ConfigurationError):
    """``--env`` names no folder under ``conf/``."""


def conf_folder(context: Any) -> Path | None:
    """The local configuration folder the session reads (``conf/`` unless ``--conf-source`` says otherwise);
    None for a packaged or remote source, whose environments cannot be listed."""
    source = getattr(context.config_loader, "conf_source", None)
    folder = Path(source) if source else Path(context.project_path) / "conf"
    return folder if folder.is_dir() else None


def environments(conf: Path) -> list[str]:
    """The environments of a configuration folder: its sub-folders."""
    return sorted(p.name for p in conf.iterdir() if p.is_dir() and not p.name.startswith("."))


def check_environment(context: Any) -> None:
    """Raise :class:`UnknownEnvironmentError` when the run's ``--env`` has no folder under ``conf/``."""
    env, conf = context.env, conf_folder(context)
    if not env or conf is None or (conf / env).is_dir():
        return
    known = environments(conf)
    close = difflib.get_close_matches(env, known, n=1)
    hint = f" Did you mean --env {close[0]}?" if close else ""
    problem = Problem(
        "env",
        f"no folder {conf / env}; existing environments: {', '.join(known)}.{hint} "
        f"Run with one of them (kedro run --env <name>), or create {conf / env}/ for a new one.",
    )
    raise UnknownEnvironmentError([problem], f"Unknown configuration environment {env!r}")


def check_tracking_driver(uri: str | None = None) -> None:
    """A PostgreSQL ``MLFLOW_TRACKING_URI`` without its driver: one line saying what to install, not the
    SQLAlchemy traceback ending in ``ModuleNotFoundError: psycopg`` (docs/team_server.md)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "") if uri is None else uri
    scheme = uri.split(":", 1)[0]
    if not scheme.startswith("postgresql"):
        return
    driver = scheme.partition("+")[2] or "psycopg2"  # SQLAlchemy's default for a bare postgresql://
    if importlib.util.find_spec(driver) is None:
        problem = Problem("MLFLOW_TRACKING_URI", (
            f"a PostgreSQL store needs the {driver} driver, which is not installed: install the postgres extra: "
            "pip install -e .[postgres] (psycopg 3: write postgresql+psycopg://...). Better, point it at the team's "
            "server (http://<host>:5000): clients need no driver and artifacts go to the shared store. "
            "See docs/team_server.md."))
        raise ConfigurationError([problem], "MLflow tracking store")


class ParameterValidationHooks:
    """Stops a run whose environment or parameters are invalid, before any node, dataset or MLflow run."""

    @hook_impl(tryfirst=True)
    def after_context_created(self, context: Any) -> None:
        """Check the environment, then every parameters block (run-time ``--params`` merged in)."""
        # imported here: the schemas import the methods and pipelines (torch), which settings.py must not
        # pay for on every `kedro` command
        from adaptseg.config_validation import validate_parameters

        check_environment(context)
        check_tracking_driver()
        validate_parameters(context.params)
