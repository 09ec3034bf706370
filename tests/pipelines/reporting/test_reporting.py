"""Reporting pipeline: wiring, the inference node on tiny models, and a real run through a KedroSession."""

import re
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from mlflow import MlflowClient
from PIL import Image

from adaptseg.models.packaging import build_from_spec, pack_model
from adaptseg.pipelines.evaluation.pipeline import ENSEMBLES, MODELS
from adaptseg.pipelines.reporting import create_pipeline
from adaptseg.pipelines.reporting.nodes import extra_protocol_metrics, predict_examples
from tests.conftest import PROJECT_ROOT
from tests.reporting.test_report_tables import fake_metrics

SPEC = {"arch": "deeplabv2_small", "num_classes": 19, "options": {"depth": 18, "width": 8}}
FIGURES = ("per_class_iou", "training_curves", "confusion_matrices", "prediction_grid")


def test_pipeline_reads_every_evaluated_model_and_declares_its_outputs():
    pipeline = create_pipeline()
    expected = {f"{m}.{kind}" for m in MODELS for kind in ("metrics", "history", "model")}
    expected |= {f"{e}.metrics" for e in ENSEMBLES}  # ensembles: scores only, no weights or curves of their own
    shared = {"target_manifest", "target_train_ids", "params:reporting", "params:evaluation", "study_summary"}
    assert pipeline.inputs() == expected | shared
    catalog = yaml.safe_load((PROJECT_ROOT / "conf/base/catalog_reporting.yml").read_text())
    in_memory = {"evaluations", "training_histories"}
    persisted = {name for name in pipeline.all_outputs() if not name.endswith("_png")} - in_memory
    assert persisted <= set(catalog)
    artifact_paths = {}
    for name in persisted - {"reporting_metrics", "example_predictions"}:
        entry = catalog[name]
        assert entry["type"] == "kedro_mlflow.io.artifacts.MlflowArtifactDataset", name
        artifact_paths.setdefault(entry["artifact_path"], set()).add(Path(entry["dataset"]["filepath"]).name)
    assert set(artifact_paths) == {"reporting", "reporting/plots", "reporting/tables"}
    assert artifact_paths["reporting"] == {"report.html"}
    for figure in FIGURES:
        assert catalog[f"{figure}_plot"]["dataset"]["type"] == "matplotlib.MatplotlibDataset"
    assert catalog["report_html"]["dataset"]["filepath"] == "data/08_reporting/report.html"


def test_extra_protocol_metrics_are_the_compared_mious_under_the_child_runs_names():
    metrics = extra_protocol_metrics({"oracle": fake_metrics("oracle", 0)})
    assert set(metrics) == {"oracle/val/miou", "oracle/val/miou16", "oracle/val/miou13"}
    assert metrics["oracle/val/miou16"]["step"] == 2


def _target_val(folder: Path, count: int, size=(48, 24)) -> tuple[pd.DataFrame, dict]:
    """A target manifest with ``count`` val images of ``size`` (W, H) and their train-id loaders."""
    rng = np.random.default_rng(0)
    rows, labels = [], {}
    for i in range(count):
        path = folder / f"city_{i:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
        rows.append({"domain": "target", "split": "val", "sample_id": path.stem, "image_path": str(path)})
        label = rng.integers(0, 19, (size[1], size[0])).astype(np.uint8)
        labels[f"val/{path.stem}"] = lambda label=label: label
    return pd.DataFrame(rows), labels


def test_predict_examples_at_label_resolution(tmp_path):
    manifest, labels = _target_val(tmp_path, 3)
    models = {m: pack_model(build_from_spec(SPEC), SPEC, method=m, step=1) for m in ("source_only", "oracle")}
    evaluation = {"split": "val", "input_size": [32, 16], "device": "cpu"}
    examples = predict_examples(manifest, labels, evaluation, {"examples": 2}, **models)
    assert examples["names"] == ["city_000000", "city_000002"]  # spread over the split
    assert list(examples["predictions"]) == ["source_only", "oracle"]
    for image, label, prediction in zip(examples["images"], examples["labels"], examples["predictions"]["oracle"], strict=True):
        assert image.shape == (24, 48, 3) and label.shape == prediction.shape == (24, 48)
        assert prediction.dtype == np.uint8 and prediction.max() < 19
    assert predict_examples(manifest, labels, evaluation, {"examples": 0}, **models)["names"] == []


#: Every model but one: reporting compares what was evaluated and leaves out what nobody trained yet.
TRAINED = tuple(m for m in MODELS if m != "lambda0_control")


@pytest.mark.slow
def test_reporting_run_writes_the_report_and_logs_it_to_mlflow(project_copy):
    """Seed the catalog with tiny evaluated models, then ``kedro run --pipelines reporting``."""
    manifest, labels = _target_val(project_copy / "images", 3)
    runtime = {"evaluation": {"input_size": [32, 16], "device": "cpu"}, "reporting": {"examples": 2}}
    bootstrap_project(project_copy)
    with KedroSession.create(project_path=project_copy, runtime_params=runtime) as session:
        catalog = session.load_context().catalog
        catalog.save("target_manifest", manifest)
        catalog.save("target_train_ids", {key: load() for key, load in labels.items()})
        for i, method in enumerate(TRAINED):
            catalog.save(f"{method}.model", pack_model(build_from_spec(SPEC), SPEC, method=method, step=2))
            catalog.save(f"{method}.metrics", fake_metrics(method, i))
            history = {"loss_seg": [{"step": s, "value": 3.0 / s} for s in (1, 2)]}
            if method.startswith("adaptsegnet"):
                history |= {"loss_adv_main": [{"step": 1, "value": 0.7}], "loss_d_main": [{"step": 1, "value": 0.69}]}
            catalog.save(f"{method}.history", history)
    with KedroSession.create(project_path=project_copy, runtime_params=runtime) as session:
        session_id = session.session_id
        session.run(pipeline_names=["reporting"])
    while mlflow.active_run() is not None:  # kedro-mlflow leaves its finished run on this thread's stack
        mlflow.end_run()

    reporting = project_copy / "data/08_reporting"
    per_class = pd.read_csv(reporting / "comparison_per_class.csv")
    ours = per_class[per_class["source"] == "ours"]
    assert sorted(ours["protocol"].unique()) == [13, 16, 19]
    # every model that was evaluated, in pipeline order; the one never trained is left out
    assert all(ours[ours["protocol"] == p]["method"].tolist() == list(TRAINED) for p in (19, 16, 13))
    assert set(per_class[per_class["source"] == "published"]["protocol"]) == {19}
    summary = pd.read_csv(reporting / "comparison_summary.csv")
    assert {"miou_19", "miou_16", "miou_13"} <= set(summary.columns)
    markdown = (reporting / "comparison.md").read_text()
    assert all(f"`{m}`" in markdown for m in TRAINED) and "lambda0_control" not in markdown
    html = (reporting / "report.html").read_text()
    assert not re.search(r"""src\s*=\s*["']?(https?:)?//""", html)
    assert html.count('src="data:image/png;base64,') == len(FIGURES)
    for figure in FIGURES:
        assert (reporting / f"{figure}.png").read_bytes().startswith(b"\x89PNG")

    run = mlflow.search_runs(experiment_names=["adaptseg"]).iloc[0]
    artifacts = {a.path for folder in ("reporting", "reporting/plots", "reporting/tables")
                 for a in MlflowClient().list_artifacts(run.run_id, folder)}
    assert {"reporting/report.html", "reporting/tables/comparison.md", "reporting/tables/comparison_per_class.csv",
            "reporting/tables/comparison_summary.csv", *(f"reporting/plots/{f}.png" for f in FIGURES)} <= artifacts
    assert "metrics.adaptsegnet_multi/val/miou16" in run and "metrics.oracle/val/miou13" in run
    assert run["tags.mlflow.runName"] == "reporting"  # the parent run says what ran, with the full command
    assert run["tags.command"] == (
        "kedro run --pipelines reporting --params 'evaluation.input_size=[32,16],evaluation.device=cpu,"
        "reporting.examples=2'")
    assert not any(c.startswith("metrics.reporting_metrics") for c in run.index)
    assert run["tags.kedro.session_id"] == run["tags.run_id"] == session_id
    assert run["tags.git.commit"] == "unknown"  # the project copy is not a git checkout
    assert run["tags.data.source"].startswith("gta5:") and len(run["tags.data.version"]) == 12
    assert re.fullmatch(r"[0-9a-f]{12}", run["tags.data.synthesis_hash"])
