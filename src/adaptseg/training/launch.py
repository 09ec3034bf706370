"""``engine.nproc_per_node``: data-parallel training started from an ordinary process (``kedro run``).

The calling process starts ``nproc_per_node`` workers through torch's elastic launcher (what ``torchrun`` runs),
each of which calls ``train`` again as one rank (``training.distributed``). Rank 0 writes the run folder; when
the workers are done, the caller reads the trained weights and the history back from ``last.pt`` and replays the
logged metrics through ``on_metrics``, so MLflow sees the same curves as for a single-process run. Several
machines: start the same code under ``torchrun`` on each (README, "Many GPUs").
"""

from __future__ import annotations

import copy
import importlib
import logging
import os
import pickle
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from adaptseg.training.checkpoint import load_checkpoint

logger = logging.getLogger(__name__)


def _picklable(value: Any, what: str) -> None:
    try:
        pickle.dumps(value)
    except Exception as error:
        raise ValueError(
            f"nproc_per_node > 1 sends {what} to worker processes, but it cannot be pickled ({error}). "
            "Use a module-level function or object, or nproc_per_node: 1."
        ) from error


def _worker(payload: Mapping[str, Any]) -> dict[str, float]:
    """One rank: the launcher set RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT. Returns what the
    caller cannot read from ``last.pt``: the step times ``precision: auto`` chose from."""
    import torch

    from adaptseg.training.engine import train

    if payload["config"].device != "cuda" and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ["LOCAL_WORLD_SIZE"])))
    # torch.multiprocessing hands tensors over in shared memory: without a private copy every rank (and the
    # caller) would step the same weights. The datasets stay shared, read-only.
    models = {name: copy.deepcopy(model) for name, model in payload["models"].items()}
    result = train(
        importlib.import_module(payload["method"]), models, payload["source"], payload["config"],
        target_dataset=payload["target"], method_config=payload["method_config"],
        evaluate_fn=payload["evaluate_fn"], data_digest=payload["data_digest"], label=payload["label"],
    )
    return result.precision_seconds


def _replay(history: Mapping[str, list[dict]], after: int, on_metrics: Callable[[dict, int], None]) -> None:
    by_step: dict[int, dict[str, float]] = {}
    for name, entries in history.items():
        for entry in entries:
            if entry["step"] > after:
                by_step.setdefault(int(entry["step"]), {})[name] = entry["value"]
    for step in sorted(by_step):
        on_metrics(by_step[step], step)


def train_in_processes(
    method: ModuleType,
    models: dict[str, nn.Module],
    source_dataset: Dataset,
    config: Any,
    *,
    target_dataset: Dataset | None,
    method_config: Any,
    on_metrics: Callable[[dict, int], None] | None,
    evaluate_fn: Callable | None,
    data_digest: str | None,
    label: str | None,
) -> Any:
    """Train with ``config.nproc_per_node`` ranks on this machine; the result as ``train`` returns it."""
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from adaptseg.training.engine import BEST_CHECKPOINT, LAST_CHECKPOINT, TrainResult, method_name
    from adaptseg.training.precision import resolve_device

    name = method_name(method)
    module = getattr(method, "__name__", None)
    if module is None or sys.modules.get(module) is not method:
        # a worker is a new process: it imports the method by its module's name, so a stand-in cannot travel
        raise ValueError(
            f"nproc_per_node > 1 runs a method that worker processes can import by name (a module such as "
            f"adaptseg.methods.{name}); {method!r} is not one."
        )
    _picklable(evaluate_fn, "evaluate_fn")
    folder = Path(config.checkpoint_dir)
    last = folder / LAST_CHECKPOINT
    # where this call starts (a restart inside the launch resumes later; its steps are replayed all the same)
    start_step = int(load_checkpoint(last)["step"]) if config.resume and last.is_file() else 0
    payload = {
        "method": module, "models": models, "source": source_dataset, "target": target_dataset,
        "config": config, "method_config": method_config, "evaluate_fn": evaluate_fn,
        "data_digest": data_digest, "label": label,
    }
    launch = LaunchConfig(
        min_nodes=1, max_nodes=1, nproc_per_node=config.nproc_per_node, run_id=f"adaptseg-{uuid.uuid4().hex[:8]}",
        rdzv_backend="c10d", rdzv_endpoint="127.0.0.1:0", max_restarts=config.max_restarts, monitor_interval=0.2,
        start_method="spawn",
    )
    logger.info(
        "%s: training in %d processes on this machine (batch %d each, %d per step).", label or name,
        config.nproc_per_node, config.batch_size, config.batch_size * config.nproc_per_node,
    )
    started = time.perf_counter()
    precision_seconds = elastic_launch(launch, _worker)(payload)[0]  # rank 0's, of the last attempt
    state = load_checkpoint(last)
    for model_name, model in models.items():
        model.load_state_dict(state["models"][model_name])
    history = state.get("history", {})
    if on_metrics is not None:
        _replay(history, start_step, on_metrics)
    early = state.get("early_stopping", {})
    return TrainResult(
        models=models,
        history=history,
        last_step=int(state["step"]),
        start_step=start_step,
        run_id=state.get("run_id"),
        checkpoint_path=last,
        best_step=early.get("best_step"),
        best_value=early.get("best_value"),
        best_checkpoint_path=folder / BEST_CHECKPOINT if early.get("best_step") is not None else None,
        stopped_early=bool(config.patience and early.get("bad_evals", 0) >= config.patience),
        device=str(resolve_device(config.device)),
        precision=str(state.get("precision", config.precision)),
        seconds=time.perf_counter() - started,
        precision_seconds=precision_seconds,
    )
