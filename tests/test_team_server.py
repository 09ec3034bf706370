"""A team tracking server for real (docs/team_server.md): a PostgreSQL store behind ``mlflow server``, artifacts
uploaded and downloaded through the server into a shared destination, clients on ``MLFLOW_TRACKING_URI=http://``.

The end-to-end test starts a real PostgreSQL (``initdb`` into a temporary folder, loopback port, its socket in
that folder) and a real ``mlflow server --backend-store-uri postgresql+psycopg://... --artifacts-destination
<folder> --serve-artifacts``, runs a short project pipeline against it through KedroSessions (train one model,
evaluate it, report) and finds the runs, metrics, artifacts and registered model through the server, the rows
in PostgreSQL, and the artifact files under the destination folder, none in a local ``mlruns/``. It skips only
where it cannot run: no PostgreSQL binaries, no driver (``pip install -e .[postgres]``), or root with no
account to run PostgreSQL as (initdb refuses root).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from adaptseg.config import ConfigurationError
from adaptseg.hooks_validation import check_tracking_driver

PASSWORD = "team-secret"  # trust authentication on loopback: the URI carries one as a team's would


# ----------------------------------------------------------------------------------------- the driver check
def test_a_postgres_tracking_uri_without_its_driver_says_to_install_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if "psycopg" in name else real(name, *a))
    with pytest.raises(ConfigurationError, match=r"pip install -e \.\[postgres\]") as error:
        check_tracking_driver("postgresql+psycopg://mlflow:x@db:5432/mlflow")
    assert "psycopg driver" in str(error.value) and "docs/team_server.md" in str(error.value)
    with pytest.raises(ConfigurationError, match="psycopg2 driver"):  # SQLAlchemy's default for postgresql://
        check_tracking_driver("postgresql://mlflow:x@db:5432/mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql+psycopg://mlflow:x@db/mlflow")
    with pytest.raises(ConfigurationError):  # by default, the URI conf/base/mlflow.yml reads
        check_tracking_driver()
    for fine in ("http://mlflow.lab:5000", "sqlite:///mlflow.db", ""):
        check_tracking_driver(fine)


# ----------------------------------------------------------------------------------------- PostgreSQL
def _postgres_bin() -> Path | None:
    """The folder of ``initdb`` and ``postgres``: PATH, /usr/local/bin, then Debian's /usr/lib/postgresql/*/bin."""
    found = shutil.which("initdb")
    candidates = [Path(found).parent] if found else []
    candidates += [Path("/usr/local/bin")]
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: p.parent.name, reverse=True)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "postgres").is_file():
            return folder
    return None


def _postgres_account() -> dict:
    """``subprocess`` keywords that run PostgreSQL as an unprivileged account when this process is root."""
    if os.geteuid() != 0:
        return {}
    for name in ("postgres", "nobody"):
        try:
            account = pwd.getpwnam(name)
        except KeyError:
            continue
        switch = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        try:
            subprocess.run(["true"], check=True, **switch)
        except (OSError, subprocess.CalledProcessError) as error:
            pytest.skip(f"running as root (initdb refuses root) and cannot switch to {name!r}: {error}")
        return switch
    pytest.skip("running as root (initdb refuses root) and there is no 'postgres' or 'nobody' account to run "
                "PostgreSQL as")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


def _stop(process: subprocess.Popen, first: int, group: bool = False) -> None:
    """Signal ``first`` (to its process group when ``group``), then SIGKILL after 30 s."""
    for sig, grace in ((first, 30), (signal.SIGKILL, 10)):
        if process.poll() is not None:
            return
        try:
            if group:
                os.killpg(process.pid, sig)
            else:
                process.send_signal(sig)
        except ProcessLookupError:
            return
        try:
            process.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


@dataclass
class Postgres:
    port: int
    database_uri: str  # what `mlflow server --backend-store-uri` takes

    def query(self, sql: str, *args) -> list[tuple]:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="mlflow", dbname="mlflow") as connection:
            return connection.execute(sql, args).fetchall()


@pytest.fixture
def postgres():
    """A throw-away PostgreSQL on a free loopback port with a database ``mlflow`` owned by a role ``mlflow``."""
    folder = _postgres_bin()
    if folder is None:
        pytest.skip("no PostgreSQL binaries (initdb, postgres) on PATH, in /usr/local/bin or /usr/lib/postgresql")
    psycopg = pytest.importorskip("psycopg", reason="the PostgreSQL driver is missing: pip install -e .[postgres]")
    switch = _postgres_account()
    # not pytest's tmp_path: the account PostgreSQL runs as must reach it (/tmp/pytest-of-root is 0700)
    root = Path(tempfile.mkdtemp(prefix="adaptseg-pg-"))
    data, sockets, log = root / "data", root / "sock", root / "postgres.log"
    sockets.mkdir()
    if switch:
        for path in (root, sockets):
            os.chown(path, switch["user"], switch["group"])
    server = None
    try:
        done = subprocess.run(
            [str(folder / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C",
             "--no-sync"], capture_output=True, text=True, timeout=300, **switch)
        assert done.returncode == 0, f"initdb failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        port = _free_port()
        with open(log, "wb") as out:
            server = subprocess.Popen(
                [str(folder / "postgres"), "-D", str(data), "-p", str(port), "-h", "127.0.0.1", "-k", str(sockets),
                 "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                 "-c", "shared_buffers=16MB", "-c", "max_connections=40"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **switch)
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, f"postgres exited ({server.returncode}):\n{_tail(log)}"
            try:
                admin = psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                                        autocommit=True, connect_timeout=2)
                break
            except psycopg.OperationalError:
                assert time.monotonic() < deadline, f"postgres not ready after 120 s:\n{_tail(log)}"
                time.sleep(0.3)
        with admin:  # what docs/team_server.md has a team's administrator do
            admin.execute(f"CREATE ROLE mlflow LOGIN PASSWORD '{PASSWORD}'")
            admin.execute("CREATE DATABASE mlflow OWNER mlflow")
        yield Postgres(port, f"postgresql+psycopg://mlflow:{PASSWORD}@127.0.0.1:{port}/mlflow")
    finally:
        if server is not None:
            _stop(server, signal.SIGINT)  # SIGINT: PostgreSQL's fast shutdown
        shutil.rmtree(root, ignore_errors=True)


# ----------------------------------------------------------------------------------------- the server
@dataclass
class TrackingServer:
    url: str
    artifacts: Path  # --artifacts-destination: the shared store
    workdir: Path  # the server's working directory


@pytest.fixture
def tracking_server(postgres, tmp_path):
    """``mlflow server`` on PostgreSQL with proxied artifacts, on a free loopback port, ready (/health)."""
    artifacts, workdir, log = tmp_path / "shared-artifacts", tmp_path / "server", tmp_path / "mlflow-server.log"
    artifacts.mkdir()
    workdir.mkdir()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", postgres.database_uri,
               "--artifacts-destination", str(artifacts), "--serve-artifacts",
               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    with open(log, "wb") as out:
        server = subprocess.Popen(command, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300  # the first start migrates the empty database
        while True:
            assert server.poll() is None, f"mlflow server exited ({server.returncode}):\n{_tail(log)}"
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"mlflow server not healthy after 300 s:\n{_tail(log)}"
            time.sleep(0.5)
        yield TrackingServer(url, artifacts, workdir)
    finally:
        _stop(server, signal.SIGTERM, group=True)  # the group: its web workers too


@pytest.fixture
def as_client(tracking_server, monkeypatch):
    """This process a client of the server, as a teammate's shell is: ``MLFLOW_TRACKING_URI=http://...``."""
    import mlflow

    from adaptseg import tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server.url)
    tracking.reset()
    yield tracking_server
    while mlflow.active_run() is not None:
        mlflow.end_run()
    tracking.reset()
    mlflow.set_tracking_uri(None)  # kedro-mlflow set the server globally; it is going away


# ----------------------------------------------------------------------------------------- the test
@pytest.mark.slow
def test_a_kedro_run_tracks_into_postgres_through_the_server_and_its_artifacts_land_in_the_shared_store(
    project_copy, postgres, as_client, tmp_path
):
    import mlflow
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project
    from mlflow import MlflowClient

    from tests.test_run import TINY_TRAINING

    server = as_client
    bootstrap_project(project_copy)

    def run(pipelines, namespaces=None) -> str:
        """One `kedro run`; its parent run's id (kedro-mlflow tags the parent, only, with the session id)."""
        with KedroSession.create(project_path=project_copy, runtime_params=TINY_TRAINING) as session:
            session.run(pipeline_names=pipelines, namespaces=namespaces)
        while mlflow.active_run() is not None:
            mlflow.end_run()
        experiment = MlflowClient(server.url).get_experiment_by_name("adaptseg").experiment_id
        [parent] = MlflowClient(server.url).search_runs(
            [experiment], f"tags.run_id = '{session.session_id}'")
        return parent.info.run_id

    run(["synthesis", "ingestion", "label_remapping"])
    trained = run(["source_pretraining", "evaluation"], ["source_pretraining"])
    reported = run(["reporting"])

    assert mlflow.get_tracking_uri() == server.url  # what kedro-mlflow set from conf/base/mlflow.yml
    client = MlflowClient(server.url)
    experiment = client.get_experiment_by_name("adaptseg")
    assert experiment.artifact_location.startswith("mlflow-artifacts:/")  # proxied: no client writes a path

    # runs and metrics, through the server
    [child] = client.search_runs([experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{trained}'")
    assert child.data.tags["namespace"] == "source_pretraining" and child.info.status == "FINISHED"
    assert {"train/loss_seg", "train/seconds", "val/miou", "val/pixel_accuracy"} <= set(child.data.metrics)
    assert [m.step for m in client.get_metric_history(child.info.run_id, "train/loss_seg")] == [1, 2]
    assert child.info.artifact_uri.startswith("mlflow-artifacts:/")

    # ... and in PostgreSQL itself
    assert postgres.query("SELECT status FROM runs WHERE run_uuid = %s", child.info.run_id) == [("FINISHED",)]
    assert postgres.query("SELECT count(*) FROM metrics WHERE run_uuid = %s AND key = 'val/miou'",
                          child.info.run_id) == [(1,)]
    assert ("adaptseg-source_pretraining",) in postgres.query("SELECT name FROM registered_models")

    # the registered model: its files under the shared destination, downloaded and loaded through the server
    version = client.get_model_version("adaptseg-source_pretraining", "1")
    assert version.run_id == child.info.run_id and child.data.tags["model.registered"] == (
        "adaptseg-source_pretraining/1")
    assert version.source == child.data.tags["model.uri"]  # models:/<model id> (REST leaves model_id empty)
    model_id = version.source.removeprefix("models:/")
    logged = client.get_logged_model(model_id)
    assert logged.source_run_id == child.info.run_id
    assert logged.artifact_location.startswith("mlflow-artifacts:/")
    [stored] = [p for p in server.artifacts.rglob("MLmodel") if model_id in p.parts]
    downloaded = Path(mlflow.artifacts.download_artifacts(
        artifact_uri="models:/adaptseg-source_pretraining/1", dst_path=str(tmp_path / "download" / "model")))
    assert (downloaded / "MLmodel").read_bytes() == stored.read_bytes()
    assert (downloaded / "artifacts" / "model.pt").stat().st_size == (
        stored.parent / "artifacts" / "model.pt").stat().st_size > 0
    model = mlflow.pyfunc.load_model("models:/adaptseg-source_pretraining/1")
    assert model.metadata.metadata["classes"][:2] == ["road", "sidewalk"]

    # the report's artifacts (kedro-mlflow's MlflowArtifactDataset), uploaded through the server
    report_run = client.get_run(reported)
    assert report_run.info.artifact_uri.startswith("mlflow-artifacts:/")
    tables = {Path(a.path).name for a in client.list_artifacts(reported, "reporting/tables")}
    assert {"comparison.md", "comparison_summary.csv"} <= tables
    fetched = Path(client.download_artifacts(reported, "reporting/tables/comparison.md",
                                             str(tmp_path / "download")))
    local = project_copy / "data/08_reporting/comparison.md"
    assert fetched.read_text() == local.read_text() and "source_pretraining" in fetched.read_text()
    [on_share] = [p for p in server.artifacts.rglob("comparison.md") if reported in p.parts]
    assert on_share.read_bytes() == local.read_bytes()

    # nothing went to a local store: no mlruns/ or mlartifacts/ beside the client or the server
    for where in (project_copy, server.workdir, Path.cwd()):
        assert not (where / "mlruns").exists() and not (where / "mlartifacts").exists(), where
    strays = [p for p in tmp_path.rglob("*") if p.name in {"mlruns", "mlartifacts"}]
    assert strays == []
