"""Project hooks: MLflow as the lab notebook, and housekeeping after killed runs.

Every ``kedro run`` is one MLflow **parent** run (kedro-mlflow opens it). These hooks name it after what ran
(``adaptation+evaluation [dacs]``; ``__default__`` → ``default pipeline``) and tag it with the full command
line (``command``: ``--namespaces``, ``--params`` and ``--env`` included, unlike kedro-mlflow's
``kedro_command``), the code and data that produced it (git commit and dirtiness, the raw data roots as the
catalog resolved them, a hash of the synthetic generator's configuration, one combined ``data.version``), the
Kedro session id (also the timestamp of every versioned dataset the run wrote) and environment
(``kedro.env``), ``torch``, and the ``device`` and ``precision`` its models train with (what ``auto``
resolves to on this machine; for a run that trains nothing, the evaluation device and fp32). Each model
trained in the run gets a **child** run (``adaptseg.tracking``), created here before its training node
starts so that it carries its name, tags and params while it trains; children left open by a failed run
are ended ``FAILED``.

Ordering: kedro-mlflow opens the run in its own ``before_pipeline_run``. Project hooks (``settings.HOOKS``)
are registered before plugin hooks, and pluggy calls the latest registered first, so kedro-mlflow runs
first anyway; ``trylast=True`` makes that explicit. Should no run be active at that point (tracking
disabled for the pipeline, or another plugin order), the tags are set at the first node instead, once a
run is active, and silently skipped when there is none.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from adaptseg import tracking
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


def kedro_env(context: Any) -> str:
    """The configuration environment a session reads: ``--env``, else the loader's default run env."""
    env = getattr(context, "env", None)
    loader = getattr(context, "config_loader", None)
    return str(env or getattr(loader, "default_run_env", None) or "base")


def parent_run_name(run_params: Mapping[str, Any]) -> str:
    """What ran: ``adaptation+evaluation [dacs]``, ``default pipeline``, with node filters in parentheses."""
    names = _pipeline_names(run_params)
    label = "default pipeline" if names in ([], ["__default__"]) else "+".join(names)
    namespaces = list(run_params.get("namespaces") or [])
    if namespaces:
        shown = namespaces[:6] + ([f"+{len(namespaces) - 6} more"] if len(namespaces) > 6 else [])
        label += f" [{', '.join(shown)}]"
    selectors = ("tags", "node_names", "from_nodes", "to_nodes", "from_inputs", "to_outputs")
    filters = [
        f"{key.replace('_', ' ')} {','.join(run_params[key])}" for key in selectors if run_params.get(key)
    ]
    if filters:
        label += f" ({'; '.join(filters)})"
    return label if len(label) <= 250 else label[:249] + "…"


def command_line(run_params: Mapping[str, Any], argv: Sequence[str] | None = None) -> str:
    """The command that ran: the CLI's own words when it was ``kedro run`` (or ``python -m adaptseg run``),
    else rebuilt from the session's run params (a ``KedroSession`` in Python: tests, notebooks)."""
    argv = list(sys.argv if argv is None else argv)
    program = Path(argv[0]) if argv else Path()
    if len(argv) > 1 and argv[1] == "run":
        if program.name == "kedro":
            return shlex.join(["kedro", *argv[1:]])
        if program.name == "__main__.py" and program.parent.name in ("kedro", "adaptseg"):
            return shlex.join(["python", "-m", program.parent.name, *argv[1:]])
    return rebuilt_command(run_params)


#: Run params given as comma-separated lists, and their ``kedro run`` option.
CLI_OPTIONS = {
    "namespaces": "--namespaces", "tags": "--tags", "node_names": "--nodes", "from_nodes": "--from-nodes",
    "to_nodes": "--to-nodes", "from_inputs": "--from-inputs", "to_outputs": "--to-outputs",
}


def rebuilt_command(run_params: Mapping[str, Any]) -> str:
    """``kedro run`` with every option the session received (``--params`` as OmegaConf dotted pairs)."""
    args = ["kedro", "run"]
    names = _pipeline_names(run_params)
    if names and names != ["__default__"]:
        args += ["--pipelines", ",".join(names)]
    for key, flag in CLI_OPTIONS.items():
        if run_params.get(key):
            args += [flag, ",".join(run_params[key])]
    if run_params.get("load_versions"):
        args += ["--load-versions", ",".join(f"{k}:{v}" for k, v in run_params["load_versions"].items())]
    if run_params.get("env"):
        args += ["--env", str(run_params["env"])]
    if run_params.get("runtime_params"):
        pairs = tracking.flatten(run_params["runtime_params"])
        args += ["--params", ",".join(f"{k}={_param_text(v)}" for k, v in pairs.items())]
    runner = re.sub(r"^<?(?:[\w.]+\.)?(\w+)(?: object at .*)?>?$", r"\1", str(run_params.get("runner") or ""))
    if runner and runner not in ("None", "SequentialRunner"):
        args += ["--runner", runner]
    if run_params.get("only_missing_outputs"):
        args.append("--only-missing-outputs")
    return shlex.join(args)


def _pipeline_names(run_params: Mapping[str, Any]) -> list[str]:
    names = run_params.get("pipeline_names") or run_params.get("pipeline_name") or []
    return [names] if isinstance(names, str) else list(names)


def _param_text(value: Any) -> str:
    """A runtime parameter as ``--params`` spells it (OmegaConf: true, null, [96,48])."""
    if isinstance(value, bool) or value is None or isinstance(value, list | tuple | dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _lookup(params: Mapping[str, Any], dotted: str) -> Any:
    value: Any = params
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def training_block(inputs: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The namespace's parameters block among a training node's inputs (``params:<ns>.adaptation``...)."""
    for name, value in inputs.items():
        if name.startswith("params:") and isinstance(value, Mapping) and {"name", "engine"} <= set(value):
            return value
    return None


def run_hardware(pipeline: Any, params: Mapping[str, Any]) -> dict[str, str]:
    """``device`` and ``precision`` tags of a parent run: those of the models it trains, as the engine
    resolves them here (several joined by commas); for a run that trains nothing, the evaluation device
    and fp32."""
    pairs = set()
    for node in getattr(pipeline, "nodes", None) or []:
        if "training" not in node.tags:
            continue
        block = training_block({name: _lookup(params, name[len("params:"):]) for name in node.inputs
                                if name.startswith("params:")})
        if block is not None:
            engine = dict(block.get("engine") or {})
            pairs.add(tracking.resolved_hardware(engine.get("device"), engine.get("precision")))
    if not pairs:
        evaluation = params.get("evaluation") if isinstance(params.get("evaluation"), Mapping) else {}
        pairs.add(tracking.resolved_hardware(evaluation.get("device"), "fp32"))
    devices, precisions = sorted({d for d, _ in pairs}), sorted({p for _, p in pairs})
    return {"device": ",".join(devices), "precision": ",".join(precisions)}


class LabNotebookHooks:
    """Names and tags the parent MLflow run, and opens each trained model's child run."""

    def __init__(self) -> None:
        self._params: Mapping[str, Any] = {}
        self._pending: dict[str, str] = {}
        self._env = "base"
        self._default_name = "__default__"

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        """Remember the run's parameters (run-time overrides included) and environment; configure tracking."""
        try:
            self._params = context.params
        except Exception:  # parameters that fail to load fail the run elsewhere, with Kedro's message
            self._params = {}
        self._env = kedro_env(context)
        tracking.configure(self._env, self._params.get("tracking"))

    @hook_impl(trylast=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        """Collect the tags and set them on the run kedro-mlflow has just opened."""
        import torch

        self._default_name = "+".join(_pipeline_names(run_params) or ["__default__"])  # kedro-mlflow's
        self._pending = {
            **git_tags(run_params.get("project_path") or "."),
            **data_tags(_raw_domains(catalog), self._params.get("synthesis")),
            "kedro.session_id": str(run_params.get("run_id") or run_params.get("session_id") or ""),
            "kedro.env": self._env,
            "mlflow.runName": parent_run_name(run_params),
            "command": command_line(run_params)[:8000],  # MLflow's longest tag value
            "torch": torch.__version__,
            **run_hardware(pipeline, self._params),
            # who runs it: a run left RUNNING by a killed process is found and closed by the next session
            "adaptseg.host": socket.gethostname(),
            "adaptseg.pid": str(os.getpid()),
        }
        self._flush()

    @hook_impl(trylast=True)
    def before_node_run(self, node: Any, catalog: Any, inputs: dict[str, Any], is_async: bool) -> None:
        """Set the tags once a run is active, if none was at pipeline start; open a training node's child run
        (after kedro-mlflow has made the parent the thread's active run)."""
        if self._pending:
            self._flush()
        if node is not None and "training" in node.tags:
            block = training_block(inputs)
            if block is not None:
                tracking.start_training_run(block)

    @hook_impl
    def after_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        """End what the run left open (nothing, normally), and forget this session's tracking settings."""
        tracking.close_model_runs("FINISHED")
        tracking.reset()

    @hook_impl
    def on_pipeline_error(
        self, error: Exception, run_params: dict[str, Any], pipeline: Any, catalog: Any
    ) -> None:
        """The child runs of the failed nodes (still open) end FAILED, as kedro-mlflow ends the parent."""
        tracking.close_model_runs("FAILED")
        tracking.reset()

    def _flush(self) -> None:
        import mlflow

        active = mlflow.active_run()
        if active is None:
            return
        if active.info.run_name != self._default_name:  # a name from mlflow.yml (tracking.run.name) stays
            self._pending.pop("mlflow.runName", None)
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

