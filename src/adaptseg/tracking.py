"""MLflow laid out for comparison: one parent run per ``kedro run``, one child run per model.

kedro-mlflow opens the **parent** run before any node starts (``adaptseg.hooks`` names it after what ran and
tags it with the command, code, data and hardware). Every trained or evaluated model gets a **child** run
(tag ``mlflow.parentRunId``), named ``<namespace> · <method> · seed <seed> · <env>``, with the same metric
names whatever the model, so that MLflow's compare view overlays methods directly:

- ``train/<name>`` at every logged step: the engine's history (``train/loss_seg``, ``train/loss_adv_main``,
  ``train/lr``...); ``train/seconds`` and ``train/steps`` when training ends;
- ``<split>/miou``, ``<split>/pixel_accuracy``, ``<split>/iou/<class>`` (spaces → ``_``), ``<split>/miou16``
  and ``<split>/miou13`` (the narrower protocols a 19-class model is scored in) from evaluation, at the
  model's step; ``selection/<rule>/step`` and ``selection/<rule>/val_miou`` from snapshot selection.

Tags of a child: ``namespace``, ``method`` (module), ``seed``, ``kedro.env``, ``precision`` and ``device``
(what the model trained with), ``torch``, and the parent's ``git.*``, ``data.*`` and ``kedro.session_id``.
Params: the namespace's parameters block flattened (``method_config.*``, ``engine.*`` with the engine's
defaults filled in). A trained model is logged in its child run as an MLflow model and registered
(``adaptseg.mlflow_model``) while ``tracking.log_models`` / ``tracking.register_models`` are on.

Finding a child: by (parent run id, namespace), in memory for this process, else by searching the parent's
experiment for ``mlflow.parentRunId = <parent> and namespace = <namespace>``. The store is the registry: the
tags are written with the run itself (no moment at which a child exists but cannot be found), and a parent
resumed by id, another thread or another process finds the same child. A node whose child does not exist
under the current parent (evaluation in a later ``kedro run``) creates it, described from the packed model;
tag ``adaptseg.trained_in`` then names the child run the model was trained in.

Nothing is logged when no run is active (a node called from a test or a notebook). Tracking never costs
training: a failed log call (a locked SQLite store, an unreachable server) is reported once, its metrics are
kept, and they are sent with the next call that succeeds; a model that cannot be logged is reported and
training goes on.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import mlflow

logger = logging.getLogger(__name__)

UNKNOWN = "unknown"
PARENT_TAG = "mlflow.parentRunId"
NAMESPACE_TAG = "namespace"
#: Parent tags every child repeats: the code and data that produced the model, and the session.
INHERITED_TAGS = (
    "git.commit", "git.branch", "git.dirty", "data.version", "data.source", "data.target",
    "data.synthesis_hash", "kedro.session_id", "kedro.env",
)
#: Engine settings that are paths or display choices, not knobs: not logged as params.
UNLOGGED_ENGINE = ("checkpoint_dir", "progress")


# ------------------------------------------------------------------------------------------- settings
@dataclass
class Settings:
    """What the session's hook knows and the nodes need: the Kedro environment and what to do with models.

    Outside a Kedro session (a node called by a test or by the study inside its own run) no model is logged:
    only a session's ``tracking`` parameters switch that on.
    """

    env: str | None = None
    log_models: bool = False
    register_models: bool = False


_SETTINGS = Settings()


def configure(env: str | None = None, tracking: Mapping[str, Any] | None = None) -> Settings:
    """Settings for this session from its environment and ``params:tracking`` (defaults: log and register)."""
    global _SETTINGS
    tracking = dict(tracking or {})
    log_models = bool(tracking.get("log_models", True))
    register = bool(tracking.get("register_models", log_models))
    if register and not log_models:
        logger.warning(
            "tracking.register_models is true but tracking.log_models is false: nothing is logged, so "
            "nothing is registered. Set tracking.log_models=true to register the models."
        )
    _SETTINGS = Settings(env=env, log_models=log_models, register_models=register and log_models)
    return _SETTINGS


def reset() -> None:
    """Back to the no-session settings (the session ended); child runs are forgotten."""
    global _SETTINGS
    _SETTINGS = Settings()
    _CHILDREN.forget()


def settings() -> Settings:
    """This session's settings (read at call time: the hook replaces them when a session starts)."""
    return _SETTINGS


# ------------------------------------------------------------------------------------------- identity
@dataclass(frozen=True)
class ModelIdentity:
    """Who a child run is about: its name, tags and params come from here."""

    namespace: str
    method: str
    seed: int | None
    precision: str = UNKNOWN
    device: str = UNKNOWN
    params: Mapping[str, Any] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)

    def run_name(self, env: str) -> str:
        seed = f" · seed {self.seed}" if self.seed is not None else ""
        return f"{self.namespace} · {self.method}{seed} · {env}"

    def run_tags(self, env: str) -> dict[str, str]:
        import torch

        return {
            NAMESPACE_TAG: self.namespace,
            "method": self.method,
            "seed": str(self.seed) if self.seed is not None else "none",
            "kedro.env": env,
            "precision": self.precision,
            "device": self.device,
            "torch": torch.__version__,
            **{k: str(v) for k, v in self.tags.items()},
        }


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"engine": {"lr": 1}}`` → ``{"engine.lr": 1}``, as kedro-mlflow flattens the parent's params."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def engine_settings(engine: Mapping[str, Any] | None) -> dict[str, Any]:
    """The engine's settings with its defaults filled in (without validating: the node reports bad ones)."""
    from adaptseg.training import EngineConfig

    defaults = {
        f.name: f.default for f in dataclasses.fields(EngineConfig) if f.default is not dataclasses.MISSING
    }
    return {k: v for k, v in {**defaults, **dict(engine or {})}.items() if k not in UNLOGGED_ENGINE}


def resolved_hardware(device: str | None, precision: str | None) -> tuple[str, str]:
    """``(device, precision)`` as the engine resolves them on this machine; ``unknown`` for an impossible
    request (the engine then stops with its own message)."""
    from adaptseg.training.precision import resolve_device, resolve_precision

    try:
        resolved = resolve_device(str(device or "auto"))
        wanted = str(precision or "auto")
        if wanted != "auto":
            return resolved.type, wanted
        # where a reduced-precision path exists, the engine times it against fp32 per model before training
        candidate = resolve_precision("auto", resolved)
        return resolved.type, "fp32" if candidate == "fp32" else f"auto ({candidate} or fp32)"
    except Exception:
        return UNKNOWN, str(precision or UNKNOWN)


def training_identity(block: Mapping[str, Any]) -> ModelIdentity:
    """A model about to be trained, from its namespace's parameters block (``params:<namespace>.<stage>``)."""
    engine = engine_settings(block.get("engine"))
    device, precision = resolved_hardware(engine.get("device"), engine.get("precision"))
    method = str(block.get("method", "source_only"))
    knobs = {k: v for k, v in block.items() if k not in ("engine", "name")}
    params = {**knobs, "method": method, "engine": engine}
    return ModelIdentity(str(block["name"]), method, engine.get("seed"), precision, device, flatten(params))


def packed_identity(packed: Mapping[str, Any]) -> ModelIdentity:
    """A trained model, from its packed dict: what it trained with, as recorded when it was packed."""
    engine = {k: v for k, v in dict(packed.get("engine") or {}).items() if k not in UNLOGGED_ENGINE}
    method = str(packed.get("method_module", "source_only"))
    params = {"method": method, "method_config": dict(packed.get("method_config") or {}), "engine": engine}
    if packed.get("bn_mode") is not None:
        params["bn_mode"] = packed["bn_mode"]
    trained_on = packed.get("trained_on")
    tags = {"trained_on": "{domain}/{split}".format(**trained_on)} if trained_on else {}
    if packed.get("mlflow_run_id"):
        tags["adaptseg.trained_in"] = str(packed["mlflow_run_id"])
    return ModelIdentity(
        str(packed.get("method", "model")), method, engine.get("seed"), str(packed.get("precision", UNKNOWN)),
        str(packed.get("device", UNKNOWN)), flatten(params), tags,
    )


def evaluated_identity(model: Mapping[str, Any], device: str | None) -> ModelIdentity:
    """The identity of what evaluation scored: a packed model, or an ensemble of them (``{"method": name}``),
    which trained nothing and computed its scores in fp32 on the evaluation device."""
    if "segmenter" in model:
        return packed_identity(model)
    resolved, _ = resolved_hardware(device, "fp32")
    return ModelIdentity(str(model.get("method", "model")), "ensemble", None, "fp32", resolved)


# ------------------------------------------------------------------------------------------- child runs
class _Children:
    """Child runs by (parent run id, namespace): this process's memory first, then the tracking store."""

    def __init__(self) -> None:
        self.ids: dict[tuple[str, str], str] = {}
        self.params_logged: set[str] = set()
        self.opened: set[str] = set()  # created by this process and not terminated yet
        self.lock = threading.RLock()

    def forget(self) -> None:
        with self.lock:
            self.ids.clear()
            self.params_logged.clear()
            self.opened.clear()

    def find(self, parent_id: str, namespace: str) -> str | None:
        """The child run of ``namespace`` under ``parent_id``, or None."""
        with self.lock:
            if (parent_id, namespace) in self.ids:
                return self.ids[(parent_id, namespace)]
            client = mlflow.MlflowClient()
            parent = client.get_run(parent_id)
            found = client.search_runs(
                [parent.info.experiment_id],
                filter_string=(
                    f"tags.`{PARENT_TAG}` = '{parent_id}' and tags.`{NAMESPACE_TAG}` = '{namespace}'"
                ),
                order_by=["attributes.start_time ASC"],
                max_results=1,
            )
            if not found:
                return None
            self.ids[(parent_id, namespace)] = found[0].info.run_id
            if found[0].data.params:
                self.params_logged.add(found[0].info.run_id)
            return found[0].info.run_id

    def ensure(
        self, parent_id: str, namespace: str, identity: ModelIdentity | None = None
    ) -> tuple[str, bool]:
        """``(run id, created)``: the child found or created, described by ``identity`` when given."""
        with self.lock:
            child = self.find(parent_id, namespace)
            if child is None:
                return self._create(parent_id, identity or ModelIdentity(namespace, UNKNOWN, None)), True
            if identity is not None:
                self._describe(child, parent_id, identity)
            return child, False

    def _create(self, parent_id: str, identity: ModelIdentity) -> str:
        from mlflow.tracking.context.registry import resolve_tags

        client = mlflow.MlflowClient()
        parent = client.get_run(parent_id)
        env = _env(parent.data.tags)
        tags = resolve_tags({  # mlflow.user, mlflow.source.* as mlflow.start_run(nested=True) sets them
            **{k: parent.data.tags[k] for k in INHERITED_TAGS if k in parent.data.tags},
            **identity.run_tags(env),
            PARENT_TAG: parent_id,
            # who runs it: a run left RUNNING by a killed process is found and closed by the next session
            "adaptseg.host": socket.gethostname(),
            "adaptseg.pid": str(os.getpid()),
        })
        run = client.create_run(parent.info.experiment_id, run_name=identity.run_name(env), tags=tags)
        child = run.info.run_id
        self.ids[(parent_id, identity.namespace)] = child
        self.opened.add(child)
        self._log_params(child, identity)
        logger.info("MLflow child run '%s' (%s) under run %s", identity.run_name(env), child, parent_id)
        return child

    def _describe(self, child: str, parent_id: str, identity: ModelIdentity) -> None:
        """Name and tags from what is known now (a child created before its model was, or the precision and
        device the model actually trained with)."""
        from mlflow.entities import RunTag

        client = mlflow.MlflowClient()
        env = _SETTINGS.env or _env(client.get_run(parent_id).data.tags)
        tags = identity.run_tags(env)
        if tags.get("adaptseg.trained_in") == child:  # evaluated in the run it was trained in
            del tags["adaptseg.trained_in"]
        client.update_run(child, name=identity.run_name(env))
        client.log_batch(child, tags=[RunTag(k, v) for k, v in tags.items()])
        self._log_params(child, identity)

    def _log_params(self, child: str, identity: ModelIdentity) -> None:
        """Params once per child: MLflow refuses to change a logged param."""
        if child in self.params_logged or not identity.params:
            return
        from mlflow.entities import Param

        limit = 6000  # MLflow's longest param value
        params = [Param(k, str(v)[:limit]) for k, v in identity.params.items()]
        client = mlflow.MlflowClient()
        for start in range(0, len(params), 100):  # log_batch takes 100 params a call
            client.log_batch(child, params=params[start : start + 100])
        self.params_logged.add(child)

    def terminate(self, child: str, status: str = "FINISHED") -> None:
        with self.lock:
            mlflow.MlflowClient().set_terminated(child, status=status)
            self.opened.discard(child)

    def close_open(self, status: str) -> list[str]:
        """Terminate the children this process created and did not end (a node failed, the run ended)."""
        with self.lock:
            closed = sorted(self.opened)
            for child in closed:
                try:
                    self.terminate(child, status)
                except Exception as error:  # an unreachable store: housekeeping closes them next session
                    logger.warning("Could not end MLflow child run %s (%s).", child, error)
            return closed


_CHILDREN = _Children()


def _env(parent_tags: Mapping[str, str]) -> str:
    """The session's Kedro environment; outside a session, the parent's tag (a study may set it)."""
    return _SETTINGS.env or parent_tags.get("kedro.env") or UNKNOWN


def parent_run_id() -> str | None:
    """The run children are created under: the active run (kedro-mlflow's, or a study's); None when none."""
    run = mlflow.active_run()
    return run.info.run_id if run is not None else None


def model_run(namespace: str, identity: ModelIdentity | None = None) -> str | None:
    """The child run of ``namespace`` under the active run (created when missing); None when nothing is
    tracked or the store fails (reported, never raised: tracking never stops a node)."""
    parent = parent_run_id()
    if parent is None:
        return None
    try:
        return _CHILDREN.ensure(parent, namespace, identity)[0]
    except Exception as error:
        _report(error, f"the child run of {namespace}")
        return None


def start_training_run(block: Mapping[str, Any]) -> str | None:
    """Create (or describe) the child run of a model about to be trained: called before the training node."""
    try:
        identity = training_identity(block)
    except Exception as error:  # a malformed block: the node fails with its own message
        logger.debug("No training identity for %s: %s", block.get("name"), error)
        return None
    return model_run(identity.namespace, identity)


def close_model_runs(status: str = "FINISHED") -> list[str]:
    """End the child runs this process left open; the session's hook calls it when the run ends or fails."""
    return _CHILDREN.close_open(status)


def _report(error: Exception, what: str) -> None:
    logger.warning("MLflow tracking failed for %s (%s: %s); the run goes on.", what, type(error).__name__,
                   str(error)[:200])


# ------------------------------------------------------------------------------------------- metrics
class _Buffered:
    """Metrics waiting for the tracking store: ``(parent, namespace, metrics, step)`` in logging order."""

    def __init__(self) -> None:
        self.pending: list[tuple[str, str, dict[str, float], int | None]] = []
        self.warned = False
        self.lock = threading.Lock()  # nodes of a ThreadRunner log from several threads

    def log(self, namespace: str, metrics: dict[str, float], step: int | None) -> None:
        parent = parent_run_id()
        if parent is None or not metrics:
            return
        with self.lock:
            self.pending.append((parent, namespace, metrics, step))
            self._flush()

    def _flush(self) -> None:
        try:
            while self.pending:
                at_parent, at_namespace, batch, at = self.pending[0]
                child, _ = _CHILDREN.ensure(at_parent, at_namespace)
                mlflow.log_metrics(batch, step=at, run_id=child)
                self.pending.pop(0)
        except Exception as error:  # any tracking fault: training goes on, the metrics wait
            if not self.warned:
                logger.warning(
                    "MLflow tracking failed (%s: %s); training goes on, and the %d metric batch(es) not logged "
                    "are kept and retried with the next ones.", type(error).__name__, str(error)[:200],
                    len(self.pending),
                )
                self.warned = True
        else:
            if self.warned:
                logger.info("MLflow tracking works again; the buffered metrics are logged.")
                self.warned = False


_BUFFER = _Buffered()


def scalars(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The finite numbers of ``metrics`` as floats, names prefixed (``train/`` ...); others left out."""
    return {
        f"{prefix}{k}": float(v) for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and v == v
    }


def metrics_logger(namespace: str) -> Callable[[Mapping[str, float], int], None]:
    """``on_metrics(metrics, step)`` for the engine: ``train/<name>`` at ``step`` in the child run."""

    def log(metrics: Mapping[str, float], step: int) -> None:
        _BUFFER.log(namespace, scalars(metrics, "train/"), step)

    return log


def log_model_metrics(namespace: str, metrics: Mapping[str, Any], step: int | None = None) -> None:
    """Scalar ``metrics`` (names as given, e.g. ``train/seconds``) into the namespace's child run."""
    _BUFFER.log(namespace, scalars(metrics), step)


def evaluation_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """``<split>/miou``, ``/pixel_accuracy``, ``/iou/<class>`` of the main protocol and ``/miou<p>`` of the
    narrower ones, from an evaluation result (``adaptseg.pipelines.evaluation.nodes``)."""
    split, main = result["split"], str(result.get("num_classes") or len(result["confusion_matrix"]))
    scores = result["protocols"][main]
    metrics = {f"{split}/miou": scores["miou"], f"{split}/pixel_accuracy": scores["pixel_accuracy"]}
    metrics |= {
        f"{split}/iou/{name.replace(' ', '_')}": v for name, v in scores["iou"].items() if v is not None
    }
    metrics |= {f"{split}/miou{p}": s["miou"] for p, s in result["protocols"].items() if p != main}
    return scalars(metrics)


def log_evaluation(model: Mapping[str, Any], result: Mapping[str, Any], device: str | None = None) -> None:
    """An evaluation's scores into the evaluated model's child run, at the model's step; the child is created
    (described from the packed model) when the model was trained in another ``kedro run``."""
    namespace = str(model.get("method", "model"))
    parent = parent_run_id()
    if parent is None:
        return
    try:
        child, created = _CHILDREN.ensure(parent, namespace, evaluated_identity(model, device))
    except Exception as error:
        _report(error, f"the child run of {namespace}")
        created = False
    _BUFFER.log(namespace, evaluation_metrics(result), int(result.get("step") or 0))
    if created:
        _finish(child)


def log_selection(namespace: str, selections: Mapping[str, Mapping[str, Any]]) -> None:
    """Snapshot selection into the child run: ``selection/<rule>/step`` and ``selection/<rule>/val_miou``."""
    metrics = {f"selection/{rule}/{key}": chosen.get(key) for rule, chosen in selections.items()
               for key in ("step", "val_miou")}
    log_model_metrics(namespace, metrics)


def _finish(child: str) -> None:
    try:
        _CHILDREN.terminate(child)
    except Exception as error:
        _report(error, f"ending child run {child}")


# ------------------------------------------------------------------------------------------- models
def training_run_id(namespace: str, block: Mapping[str, Any] | None = None) -> str | None:
    """The child run a model is being trained in (to record in the packed model); None when untracked."""
    identity = None
    if block is not None:
        try:
            identity = training_identity(block)
        except Exception:
            identity = None
    return model_run(namespace, identity)


def record_trained_model(packed: Mapping[str, Any], summary: Mapping[str, Any]) -> dict[str, Any] | None:
    """The end of training in the child run: the actual precision and device, ``train/<summary>``, the model
    logged (and registered) as an MLflow model per the session's settings, and the child ended FINISHED.

    Returns what was logged (``model_uri``, ``version``, ``seconds``), or None. Never raises.
    """
    namespace = str(packed.get("method"))
    identity = packed_identity(packed)
    child = model_run(namespace, identity)
    if child is None:
        return None
    log_model_metrics(namespace, {f"train/{k}": v for k, v in summary.items()})
    logged = None
    if _SETTINGS.log_models:
        logged = _log_model(child, packed, identity)
    _finish(child)
    return logged


def version_tags(packed: Mapping[str, Any], identity: ModelIdentity, child: str) -> dict[str, str]:
    """Tags of a registered version: method and dataset (``<source kind> → <target kind>``) first."""
    tags = mlflow.MlflowClient().get_run(child).data.tags
    kinds = [tags.get(f"data.{domain}", UNKNOWN).split(":", 1)[0] for domain in ("source", "target")]
    return {
        "method": identity.method,
        "dataset": " → ".join(kinds),
        "namespace": identity.namespace,
        "seed": str(identity.seed),
        "precision": identity.precision,
        "device": identity.device,
        "num_classes": str(packed["spec"]["num_classes"]),
        "step": str(packed.get("step")),
        **{k: tags.get(k, UNKNOWN) for k in ("kedro.env", "git.commit", "data.version")},
    }


def _log_model(child: str, packed: Mapping[str, Any], identity: ModelIdentity) -> dict[str, Any] | None:
    """Log (and register) the packed model in ``child``: the only place a child is the active run, briefly."""
    from adaptseg.mlflow_model import log_segmenter, registered_name

    try:
        with mlflow.start_run(run_id=child, nested=True):
            logged = log_segmenter(
                packed, register=_SETTINGS.register_models, version_tags=version_tags(packed, identity, child)
            )
            mlflow.set_tags({"model.uri": logged["model_uri"]} | (
                {"model.registered": f"{registered_name(identity.namespace)}/{logged['version']}"}
                if logged["version"] is not None else {}
            ))
    except Exception as error:
        _report(error, f"logging the model of {identity.namespace}")
        return None
    registered = f", registered as {registered_name(identity.namespace)} version {logged['version']}"
    logger.info("%s: logged as an MLflow model%s (%.1f s).", identity.namespace,
                registered if logged["version"] is not None else "", logged["seconds"])
    return logged
