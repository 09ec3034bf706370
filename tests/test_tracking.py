"""Tracking faults never cost training: the metrics wait and are logged once the store answers again."""

import os

import mlflow
import pytest

from adaptseg import tracking


def test_a_failing_store_warns_once_keeps_the_metrics_and_logs_them_later(monkeypatch, caplog):
    """The metrics wait in order and land in the namespace's child run, under ``train/<name>``."""
    logged, failing = [], [True]
    real_log_metrics = mlflow.log_metrics

    def log_metrics(metrics, step=None, run_id=None, **kwargs):
        if failing[0]:
            raise mlflow.exceptions.MlflowException("(sqlite3.OperationalError) database is locked")
        logged.append((metrics, step))
        return real_log_metrics(metrics, step=step, run_id=run_id, **kwargs)

    monkeypatch.setattr(mlflow, "log_metrics", log_metrics)
    monkeypatch.setattr(tracking, "_BUFFER", tracking._Buffered())
    log = tracking.metrics_logger("dacs")
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])  # this test's store and experiment, not the
    mlflow.set_experiment("tracking")  # ones an earlier test (or KedroSession) left set in the fluent API
    with mlflow.start_run() as parent:
        with caplog.at_level("WARNING", logger="adaptseg.tracking"):
            log({"loss_seg": 1.0}, 10)
            log({"loss_seg": 0.9}, 20)
        assert caplog.text.count("MLflow tracking failed") == 1 and "database is locked" in caplog.text
        failing[0] = False
        log({"loss_seg": 0.8}, 30)
    assert logged == [({"train/loss_seg": v}, step) for v, step in ((1.0, 10), (0.9, 20), (0.8, 30))]
    child = tracking._CHILDREN.find(parent.info.run_id, "dacs")
    history = mlflow.MlflowClient().get_metric_history(child, "train/loss_seg")
    assert [(m.step, m.value) for m in history] == [(10, 1.0), (20, 0.9), (30, 0.8)]
    assert mlflow.get_run(child).data.tags["mlflow.parentRunId"] == parent.info.run_id


def test_nothing_is_logged_without_an_active_run(monkeypatch):
    monkeypatch.setattr(mlflow, "log_metrics", lambda *a, **k: pytest.fail("logged without a run"))
    tracking.metrics_logger("dacs")({"loss_seg": 1.0}, 1)
    assert tracking.model_run("dacs") is None


def test_runs_left_running_by_a_killed_process_are_marked_failed():
    import os
    import socket
    import subprocess
    import sys

    from mlflow import MlflowClient

    from adaptseg.hooks import close_killed_runs

    killed = subprocess.Popen([sys.executable, "-c", "pass"])
    killed.wait()
    client = MlflowClient()
    experiment = client.create_experiment("housekeeping")
    host = socket.gethostname()
    dead = client.create_run(experiment, tags={"adaptseg.host": host, "adaptseg.pid": str(killed.pid)})
    alive = client.create_run(experiment, tags={"adaptseg.host": host, "adaptseg.pid": str(os.getpid())})
    elsewhere = client.create_run(experiment, tags={"adaptseg.host": "another-machine", "adaptseg.pid": "1"})
    assert close_killed_runs() == [dead.info.run_id]
    assert client.get_run(dead.info.run_id).info.status == "FAILED"
    assert client.get_run(alive.info.run_id).info.status == "RUNNING"
    assert client.get_run(elsewhere.info.run_id).info.status == "RUNNING"


def test_an_unreachable_tracking_server_fails_within_seconds():
    import socket
    import time

    import pytest
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    import adaptseg.settings  # noqa: F401  (sets the retry and timeout defaults every entry point gets)

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    began = time.perf_counter()
    with pytest.raises(MlflowException, match="127.0.0.1"):
        MlflowClient(f"http://127.0.0.1:{port}").search_experiments()
    assert time.perf_counter() - began < 30  # MLflow's defaults retried for 251 s
