"""notebooks/compare_runs.ipynb runs top to bottom: on a tracking store with a run, and on a fresh one."""

import os
import sys
from pathlib import Path

import mlflow
import nbformat
import pytest
from nbclient import NotebookClient

from adaptseg.data.labels import TRAIN_CLASSES
from tests.conftest import PROJECT_ROOT

NOTEBOOK = PROJECT_ROOT / "notebooks" / "compare_runs.ipynb"
METHODS = ("source_only", "adaptsegnet_multi")


@pytest.fixture(autouse=True)
def _fresh_mlflow_state(_temporary_mlflow):
    """This test's tracking store, and no active run: after a KedroSession in the same process (another
    test's), kedro-mlflow leaves its tracking URI set and its finished run on the thread's run stack."""
    while mlflow.active_run() is not None:
        try:
            mlflow.end_run()  # pops the stack first; the run may live in another test's database
        except Exception:
            pass
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    yield


def execute(cwd: Path) -> str:
    """Run every cell with the ``python3`` kernel (this interpreter) in ``cwd``; return all text output."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(cwd)}}).execute()
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", output
            texts.append(output.get("text") or output.get("data", {}).get("text/plain", ""))
            if "image/png" in output.get("data", {}):
                texts.append("<image/png>")
    return "\n".join(texts)


def log_tiny_run() -> str:
    """One run in the project's naming scheme: val mIoU and per-class IoU per method, and loss histories."""
    mlflow.set_experiment("adaptseg")
    with mlflow.start_run(run_name="__default__") as run:
        mlflow.set_tags({"git.commit": "0" * 40, "data.version": "abc123abc123"})
        for i, method in enumerate(METHODS):
            mlflow.log_metric(f"{method}.val.miou", 30.0 + i)
            for k, name in enumerate(TRAIN_CLASSES[:4]):
                mlflow.log_metric(f"{method}.val.iou.{name.replace(' ', '_')}", 10.0 * k + i)
            for step in range(1, 4):
                mlflow.log_metric(f"{method}.loss_seg", 1.0 / step, step=step)
                if method.startswith("adaptsegnet"):
                    mlflow.log_metric(f"{method}.loss_adv_main", 0.7, step=step)
                    mlflow.log_metric(f"{method}.loss_d_main", 0.69, step=step)
    return run.info.run_id


@pytest.mark.slow
def test_notebook_compares_the_logged_runs():
    run_id = log_tiny_run()
    text = execute(NOTEBOOK.parent)  # from notebooks/, as Jupyter would start it
    assert f"python:       {Path(sys.executable)}" in text  # the kernel is this virtual environment
    assert f"tracking URI: {os.environ['MLFLOW_TRACKING_URI']}" in text
    assert "1 runs in experiment 'adaptseg'" in text
    assert run_id in text and all(method in text for method in METHODS)
    assert text.count("<image/png>") == 2  # per-class IoU bars and the loss histories


@pytest.mark.slow
def test_notebook_on_a_fresh_tracking_store_says_there_are_no_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'fresh.db'}")
    text = execute(PROJECT_ROOT)  # from the project root
    assert "No runs in experiment 'adaptseg'" in text and "<image/png>" not in text
    assert not (tmp_path / "fresh.db").exists()  # reading never creates a database
