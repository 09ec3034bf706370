"""MLflow logging for long-running nodes: metric histories while training, not only at the end.

kedro-mlflow opens one MLflow run per ``kedro run`` before any node starts; the loggers here write into
that run and do nothing when no run is active (a node called from a test or a notebook).

Tracking never costs training: a failed log call (a locked SQLite store, an unreachable server) is
reported once, its metrics are kept, and they are sent with the next call that succeeds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import mlflow

logger = logging.getLogger(__name__)


class _Buffered:
    """Metrics waiting for the tracking store: ``(metrics, step)`` in the order they were logged."""

    def __init__(self) -> None:
        self.pending: list[tuple[dict[str, float], int | None]] = []
        self.warned = False

    def log(self, metrics: dict[str, float], step: int | None) -> None:
        if mlflow.active_run() is None:
            return
        self.pending.append((metrics, step))
        try:
            while self.pending:
                batch, at = self.pending[0]
                mlflow.log_metrics(batch, step=at)
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


def metrics_logger(prefix: str) -> Callable[[Mapping[str, float], int], None]:
    """``on_metrics(metrics, step)`` that logs ``<prefix>.<name>`` at ``step`` into the active run."""

    def log(metrics: Mapping[str, float], step: int) -> None:
        _BUFFER.log({f"{prefix}.{k}": float(v) for k, v in metrics.items()}, step)

    return log


def log_summary(prefix: str, metrics: Mapping[str, Any]) -> None:
    """Final scalar metrics (e.g. mIoU, seconds) of a stage, as ``<prefix>.<name>``."""
    scalars = {f"{prefix}.{k}": float(v) for k, v in metrics.items() if isinstance(v, int | float) and v == v}
    _BUFFER.log(scalars, None)
