"""MLflow logging for long-running nodes: metric histories while training, not only at the end.

kedro-mlflow opens one MLflow run per ``kedro run`` before any node starts; the loggers here write into
that run and do nothing when no run is active (a node called from a test or a notebook).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import mlflow


def metrics_logger(prefix: str) -> Callable[[Mapping[str, float], int], None]:
    """``on_metrics(metrics, step)`` that logs ``<prefix>.<name>`` at ``step`` into the active run."""

    def log(metrics: Mapping[str, float], step: int) -> None:
        if mlflow.active_run() is not None:
            mlflow.log_metrics({f"{prefix}.{k}": float(v) for k, v in metrics.items()}, step=step)

    return log


def log_summary(prefix: str, metrics: Mapping[str, Any]) -> None:
    """Final scalar metrics (e.g. mIoU, seconds) of a stage, as ``<prefix>.<name>``."""
    if mlflow.active_run() is not None:
        scalars = {f"{prefix}.{k}": float(v) for k, v in metrics.items() if isinstance(v, int | float) and v == v}
        mlflow.log_metrics(scalars)
