"""Project hooks: MLflow as the lab notebook, and housekeeping after killed runs.

Every ``kedro run`` gets tags on its MLflow run that say which code and which data produced it: the git
commit (and whether the working tree had uncommitted changes), the raw data roots as the catalog resolved
them, a hash of the synthetic generator's configuration, one combined data version, and the Kedro session
id (which is also the timestamp of every versioned dataset the run wrote).

Ordering: kedro-mlflow opens the run in its own ``before_pipeline_run``. Project hooks (``settings.HOOKS``)
are registered before plugin hooks, and pluggy calls the latest registered first, so kedro-mlflow runs
first anyway; ``trylast=True`` makes that explicit. Should no run be active at that point (tracking
disabled for the pipeline, or another plugin order), the tags are set at the first node instead, once a
run is active, and silently skipped when there is none.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from adaptseg.io.stale import clean_stale, process_alive
from adaptseg.reporting.provenance import data_tags, git_tags

logger = logging.getLogger(__name__)

#: Catalog entries whose resolved kind and root identify the raw data.
RAW_DATASETS = {"source": "source_raw", "target": "target_raw"}


def _raw_domains(catalog: Any) -> dict[str, dict[str, Any]]:
    """``{"source": {"kind", "root"}, ...}`` from the catalog's raw-domain entries (run-time overrides applied)."""
    domains: dict[str, dict[str, Any]] = {}
    for name, entry in RAW_DATASETS.items():
        try:
            dataset = catalog.get(entry)
            described = dataset._describe() if dataset is not None else {}
        except Exception:  # a catalog without the entry (a test project) has no raw data to describe
            described = {}
        if described:
            domains[name] = {"kind": described.get("kind"), "root": str(described.get("root"))}
    return domains


class LabNotebookHooks:
    """Tags the active MLflow run with the code and data versions of the run."""

    def __init__(self) -> None:
        self._params: Mapping[str, Any] = {}
        self._pending: dict[str, str] = {}

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        """Remember the run's parameters (run-time overrides included) for the data version."""
        try:
            self._params = context.params
        except Exception:  # parameters that fail to load fail the run elsewhere, with Kedro's message
            self._params = {}

    @hook_impl(trylast=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        """Collect the tags and set them on the run kedro-mlflow has just opened."""
        self._pending = {
            **git_tags(run_params.get("project_path") or "."),
            **data_tags(_raw_domains(catalog), self._params.get("synthesis")),
            "kedro.session_id": str(run_params.get("run_id") or run_params.get("session_id") or ""),
            # who runs it: a run left RUNNING by a killed process is found and closed by the next session
            "adaptseg.host": socket.gethostname(),
            "adaptseg.pid": str(os.getpid()),
        }
        self._flush()

    @hook_impl(trylast=True)
    def before_node_run(self, node: Any, catalog: Any, inputs: dict[str, Any], is_async: bool) -> None:
        """Fallback: set the tags once a run is active, if none was at pipeline start."""
        if self._pending:
            self._flush()

    def _flush(self) -> None:
        import mlflow

        if mlflow.active_run() is None:
            return
        mlflow.set_tags(self._pending)
        logger.debug("MLflow run tagged with %s", self._pending)
        self._pending = {}


class HousekeepingHooks:
    """What a killed run left behind is dealt with when the next session starts.

    Its staging folders and temporary files are removed (never a live run's: ``adaptseg.io.stale``), and
    its MLflow runs, still ``RUNNING`` because nobody ended them, are marked ``FAILED`` when they were
    started on this host by a process that no longer runs. A tracking store that cannot be reached is
    reported and skipped: housekeeping never stops a run.
    """

    @hook_impl(trylast=True)  # after kedro-mlflow has set the tracking URI
    def after_context_created(self, context: Any) -> None:
        clean_stale(Path(context.project_path) / "data")
        try:
            close_killed_runs()
        except Exception as error:  # an unreachable or locked store: the run goes on, tracking reports it later
            logger.warning("Could not check MLflow for runs of killed processes (%s: %s).", type(error).__name__, error)


def close_killed_runs() -> list[str]:
    """Mark ``FAILED`` the ``RUNNING`` MLflow runs of this host whose process is gone; return their ids."""
    import mlflow
    from mlflow import MlflowClient

    runs = mlflow.search_runs(
        search_all_experiments=True, filter_string="attributes.status = 'RUNNING'", output_format="list"
    )
    closed = []
    for run in runs:
        tags = run.data.tags
        if tags.get("adaptseg.host") != socket.gethostname() or not tags.get("adaptseg.pid", "").isdigit():
            continue
        pid = int(tags["adaptseg.pid"])
        if process_alive(pid):
            continue
        client = MlflowClient()
        client.set_tag(run.info.run_id, "adaptseg.ended_by", "the next session: its process was killed")
        client.set_terminated(run.info.run_id, status="FAILED")
        closed.append(run.info.run_id)
        logger.warning("MLflow run %s of process %d, which was killed, is now marked FAILED.", run.info.run_id, pid)
    return closed

