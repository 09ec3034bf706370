"""MLflow laid out for comparison: a parent run per ``kedro run``, a child run per model with the same metric
names whatever the method, and every trained model a registered MLflow pyfunc model."""

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow import MlflowClient

from adaptseg import tracking
from adaptseg.data.torch_datasets import SegmentationDataset
from adaptseg.evaluation.inference import upsampled_prediction
from adaptseg.hooks import close_killed_runs, command_line, parent_run_name
from adaptseg.models.packaging import build_from_spec, inference_metadata, pack_model, unpack_segmenter
from tests.reporting.test_report_tables import fake_metrics

SPEC = {"arch": "deeplabv2_small", "num_classes": 19, "options": {"depth": 18, "width": 8}}


@pytest.fixture(autouse=True)
def _fresh_tracking(_temporary_mlflow, tmp_path, monkeypatch):
    """This test's store and experiment, artifacts in its folder (MLflow writes ./mlruns), no session settings."""
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    mlflow.set_experiment("adaptseg")  # another test's active experiment may be one of its own database
    tracking.reset()
    yield
    tracking.reset()


def _packed(namespace: str = "adaptsegnet_multi", seed: int = 0, input_size=(64, 32)) -> dict:
    torch.manual_seed(seed)
    return pack_model(
        build_from_spec(SPEC), SPEC, **inference_metadata(19, list(input_size)), method=namespace,
        method_module="adaptsegnet", method_config={"lambda_adv_main": 0.001}, step=2,
        engine={"seed": 7, "max_steps": 2, "checkpoint_dir": "/tmp/x"}, bn_mode="frozen", precision="fp32",
        device="cpu",
    )


# ----------------------------------------------------------------------------------------- the parent run
def test_parent_run_name_says_what_ran():
    assert parent_run_name({"pipeline_names": None}) == "default pipeline"
    assert parent_run_name({"pipeline_names": ["__default__"]}) == "default pipeline"
    assert parent_run_name({"pipeline_names": ["adaptation", "evaluation"], "namespaces": ["dacs"]}) == (
        "adaptation+evaluation [dacs]")
    many = [f"ns{i}" for i in range(9)]
    assert parent_run_name({"pipeline_names": ["adaptation"], "namespaces": many}).endswith("ns5, +3 more]")
    filtered = {"pipeline_names": ["reporting"], "node_names": ["a", "b"]}
    assert parent_run_name(filtered) == "reporting (node names a,b)"


def test_command_is_the_cli_line_or_rebuilt_with_namespaces_params_and_env():
    run_params = {
        "pipeline_names": ["adaptation", "evaluation"], "namespaces": ["advent"], "env": "gta5_cityscapes",
        "runtime_params": {"advent": {"adaptation": {"method_config": {"lambda_adv_main": 0.3}}},
                           "evaluation": {"input_size": [96, 48], "export": {"enabled": False}}},
        "runner": "<kedro.runner.thread_runner.ThreadRunner object at 0x7f>", "tags": None,
    }
    assert command_line(run_params, ["/usr/bin/pytest"]) == (
        "kedro run --pipelines adaptation,evaluation --namespaces advent --env gta5_cityscapes --params "
        "'advent.adaptation.method_config.lambda_adv_main=0.3,evaluation.input_size=[96,48],"
        "evaluation.export.enabled=false' --runner ThreadRunner"
    )
    argv = ["/venv/bin/kedro", "run", "--namespaces", "dacs", "--params", "dacs.adaptation.engine.seed=2"]
    assert command_line(run_params, argv) == " ".join(["kedro", *argv[1:]])
    assert command_line({}, ["/x/adaptseg/__main__.py", "run"]) == "python -m adaptseg run"
    assert command_line({"pipeline_names": None}, ["pytest"]) == "kedro run"


# ----------------------------------------------------------------------------------------- child runs
def test_evaluation_metrics_have_the_same_names_whatever_the_model():
    names = set(tracking.evaluation_metrics(fake_metrics("oracle", 0)))
    assert {"val/miou", "val/pixel_accuracy", "val/miou16", "val/miou13", "val/iou/road",
            "val/iou/traffic_light"} <= names
    assert not any("oracle" in name for name in names) and "val/miou19" not in names


def test_a_child_per_model_found_again_from_the_store_and_ended_failed_with_its_node():
    identity = tracking.training_identity({
        "name": "dacs", "method": "dacs", "method_config": {"alpha": 0.99}, "bn_mode": "frozen",
        "input_size": {"source": [96, 54], "target": [96, 48]}, "engine": {"seed": 3, "max_steps": 2},
    })
    tracking.configure("base", {})
    with mlflow.start_run() as parent:
        child = tracking.model_run("dacs", identity)
        assert tracking.model_run("dacs") == child
        elsewhere = tracking._Children()  # another process: nothing in memory, the store knows
        assert elsewhere.find(parent.info.run_id, "dacs") == child
        assert elsewhere.find(parent.info.run_id, "cbst") is None
        assert mlflow.active_run().info.run_id == parent.info.run_id  # children never stay on the run stack
        assert tracking.close_model_runs("FAILED") == [child]
    run = mlflow.get_run(child)
    assert run.info.run_name == "dacs · dacs · seed 3 · base" and run.info.status == "FAILED"
    tags = run.data.tags
    assert tags["mlflow.parentRunId"] == parent.info.run_id
    assert {tags[k] for k in ("namespace", "method", "seed", "kedro.env")} == {"dacs", "3", "base"}
    assert tags["device"] in {"cpu", "cuda"}  # before training: what it will be, or "auto (bf16 or fp32)" until timed
    assert tags["precision"] in {"fp32", "bf16", "fp16"} or tags["precision"].startswith("auto (")
    assert tags["torch"] == torch.__version__ and tags["adaptseg.pid"] == str(os.getpid())
    params = run.data.params
    assert params["method_config.alpha"] == "0.99" and params["engine.max_steps"] == "2"
    assert params["engine.lr"] == "0.00025" and "engine.checkpoint_dir" not in params  # defaults filled in
    assert close_killed_runs() == []  # this process lives: housekeeping leaves its children alone


def test_nothing_is_tracked_and_no_model_logged_outside_a_run():
    assert tracking.record_trained_model(_packed(), {"seconds": 1.0}) is None
    tracking.log_evaluation(_packed(), {**fake_metrics("adaptsegnet_multi", 0), "num_classes": 19})
    assert mlflow.search_runs(search_all_experiments=True).empty


# ----------------------------------------------------------------------------------------- the MLflow model
def _pipeline_prediction(packed: dict, image_path: Path, input_size) -> np.ndarray:
    """What evaluation computes for an image: the dataset's preprocessing, the main head, upsampled argmax."""
    row = {"domain": "target", "split": "val", "sample_id": "x", "image_path": str(image_path)}
    manifest = pd.DataFrame([row])
    image = SegmentationDataset(manifest, "val", input_size, labels=None)[0]["image"]
    segmenter = unpack_segmenter(packed).eval()
    with torch.inference_mode():
        logits = segmenter(image[None])["out"]
    from PIL import Image

    width, height = Image.open(image_path).size
    return upsampled_prediction(logits, (height, width)).numpy()


def _image(path: Path, size=(80, 44), seed=0) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def test_trained_model_is_a_registered_pyfunc_model_that_predicts_as_the_pipeline(tmp_path):
    packed = _packed()
    tracking.configure("base", {"register_models": True})
    with mlflow.start_run() as parent:
        mlflow.set_tags({"data.source": "gta5:/data/gta5", "data.target": "cityscapes:/data/cs"})
        child = tracking.training_run_id("adaptsegnet_multi")
        packed["mlflow_run_id"] = child
        logged = tracking.record_trained_model(packed, {"seconds": 12.5, "steps": 2})
    assert logged["version"] == 1 and mlflow.get_run(child).info.status == "FINISHED"
    run = mlflow.get_run(child)
    assert run.data.metrics["train/seconds"] == 12.5
    assert run.data.tags["model.registered"] == "adaptseg-adaptsegnet_multi/1"
    assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    version = MlflowClient().get_model_version("adaptseg-adaptsegnet_multi", "1")
    assert version.tags["method"] == "adaptsegnet" and version.tags["dataset"] == "gta5 → cityscapes"
    assert version.tags["seed"] == "7" and version.run_id == child

    model = mlflow.pyfunc.load_model("models:/adaptseg-adaptsegnet_multi/1")
    metadata = model.metadata.metadata
    assert metadata["classes"][:2] == ["road", "sidewalk"] and len(metadata["palette"]) == 19
    assert metadata["preprocessing"]["input_size"] == [64, 32]
    assert metadata["preprocessing"]["channel_order"] == "BGR"
    signature = model.metadata.signature
    assert signature.inputs.to_dict()[0]["tensor-spec"] == {"dtype": "uint8", "shape": (-1, -1, -1, 3)}
    assert signature.outputs.to_dict()[0]["tensor-spec"] == {"dtype": "uint8", "shape": (-1, -1, -1)}
    path = _image(tmp_path / "a.png")
    from PIL import Image

    images = np.asarray(Image.open(path))[None]
    prediction = model.predict(images, params={"device": "cpu", "batch_size": 1})
    assert prediction.dtype == np.uint8 and prediction.shape == (1, 44, 80)
    assert np.array_equal(prediction[0], _pipeline_prediction(packed, path, (64, 32))[0])
    with pytest.raises(Exception, match=r"expected shape \(-1, -1, -1, 3\)"):  # one image: images[None]
        model.predict(images[0])
    # what `mlflow models serve` does with a request body {"inputs": ..., "params": ...}
    from mlflow.pyfunc.scoring_server import _parse_json_data

    body = json.dumps({"inputs": images.tolist(), "params": {"device": "cpu"}})
    parsed = _parse_json_data(body, model.metadata, model.metadata.get_input_schema())
    assert np.array_equal(model.predict(parsed.data, params=parsed.params), prediction)


def test_registration_switches_off(tmp_path):
    tracking.configure("base", {"register_models": False})
    with mlflow.start_run():
        logged = tracking.record_trained_model(_packed(), {"seconds": 1.0})
    assert logged["version"] is None and logged["model_uri"].startswith("models:/")
    assert MlflowClient().search_registered_models() == []
    tracking.configure("base", {"log_models": False})
    with mlflow.start_run():
        assert tracking.record_trained_model(_packed(), {"seconds": 1.0}) is None


# ----------------------------------------------------------------------------------------- through Kedro
@pytest.mark.slow
def test_kedro_runs_lay_out_parents_and_children_and_the_registered_model_loads_elsewhere(project_copy):
    """Three `kedro run`s (train + evaluate, evaluate again, train with registration off), then the
    registered model in a fresh process against the pipeline's own inference."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from tests.test_run import _TINY_ENGINE, TINY_TRAINING

    runtime = {**TINY_TRAINING, "adaptsegnet_multi": {"adaptation": {
        "input_size": {"source": [96, 54], "target": [96, 48]}, "engine": {**_TINY_ENGINE, "seed": 5},
        "method_config": {"lambda_adv_main": 0.002}}}}
    bootstrap_project(project_copy)

    def run(pipelines, namespaces=None, params=runtime) -> str:
        """One `kedro run`; its parent run's id (kedro-mlflow tags the parent, only, with the session id)."""
        with KedroSession.create(project_path=project_copy, runtime_params=params) as session:
            session.run(pipeline_names=pipelines, namespaces=namespaces)
        while mlflow.active_run() is not None:  # each `kedro run` its own MLflow run, as from the CLI
            mlflow.end_run()
        experiment = mlflow.get_experiment_by_name("adaptseg").experiment_id
        [parent] = MlflowClient().search_runs([experiment], f"tags.run_id = '{session.session_id}'")
        return parent.info.run_id

    run(["synthesis", "ingestion", "label_remapping"])
    namespaces = ["source_pretraining", "adaptsegnet_multi"]
    trained = run(["source_pretraining", "adaptation", "evaluation"], namespaces)
    evaluated = run(["evaluation"], ["adaptsegnet_multi"])
    switched_off = {**runtime, "tracking": {"register_models": False}}
    unregistered = run(["source_pretraining"], ["oracle"], switched_off)

    client = MlflowClient()
    parent = client.get_run(trained)
    assert parent.info.run_name == (
        "source_pretraining+adaptation+evaluation [source_pretraining, adaptsegnet_multi]")
    command = parent.data.tags["command"]
    assert command.startswith("kedro run --pipelines source_pretraining,adaptation,evaluation --namespaces "
                              "source_pretraining,adaptsegnet_multi --params ")
    assert "adaptsegnet_multi.adaptation.method_config.lambda_adv_main=0.002" in command
    assert {"precision", "device", "torch", "data.version", "kedro.env"} <= set(parent.data.tags)
    children = {r.data.tags["namespace"]: r for r in client.search_runs(
        [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{trained}'")}
    assert set(children) == {"source_pretraining", "adaptsegnet_multi"}
    multi = children["adaptsegnet_multi"]
    assert multi.info.run_name == "adaptsegnet_multi · adaptsegnet · seed 5 · local"
    assert multi.info.status == "FINISHED"
    assert {"train/loss_seg", "train/loss_adv_main", "train/lr", "train/seconds", "val/miou", "val/miou16",
            "val/miou13", "val/pixel_accuracy", "val/iou/road"} <= set(multi.data.metrics)
    assert [m.step for m in client.get_metric_history(multi.info.run_id, "train/loss_seg")] == [1, 2]
    assert set(children["source_pretraining"].data.metrics) >= {"train/loss_seg", "val/miou"}
    tags = multi.data.tags
    assert tags["method"] == "adaptsegnet" and tags["seed"] == "5" and tags["kedro.env"] == "local"
    assert tags["data.version"] == parent.data.tags["data.version"] and tags["git.commit"] == "unknown"
    assert multi.data.params["method_config.lambda_adv_main"] == "0.002"
    assert multi.data.params["engine.max_steps"] == "2"
    assert not parent.data.metrics  # every number lives in a child

    # evaluation in a later kedro run: a child there, pointing at the run the model was trained in
    later = client.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{evaluated}'")
    assert [r.data.tags["namespace"] for r in later] == ["adaptsegnet_multi"]
    assert later[0].data.tags["adaptseg.trained_in"] == multi.info.run_id
    assert later[0].info.run_name == multi.info.run_name and "val/miou" in later[0].data.metrics
    assert client.get_run(evaluated).info.run_name == "evaluation [adaptsegnet_multi]"

    # registration switched off by a parameter: the model is logged in its child run, not registered
    [oracle] = client.search_runs([parent.info.experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{unregistered}'")
    assert oracle.data.tags["namespace"] == "oracle" and oracle.data.tags["model.uri"].startswith("models:/")
    assert "model.registered" not in oracle.data.tags
    assert [m.name for m in client.search_registered_models()] == [
        "adaptseg-adaptsegnet_multi", "adaptseg-source_pretraining"]

    # the registered model, in a fresh process, predicts what the pipeline's own inference does
    version = client.get_model_version("adaptseg-adaptsegnet_multi", "1")
    assert version.run_id == multi.info.run_id
    assert version.tags["method"] == "adaptsegnet" and version.tags["dataset"] == "gta5 → cityscapes"
    val = sorted((project_copy / "data/01_raw/synthetic/cityscapes/leftImg8bit/val").rglob("*.png"))[0]
    from PIL import Image

    np.save(project_copy / "images.npy", np.asarray(Image.open(val).convert("RGB"))[None])
    code = (
        "import json, mlflow, numpy as np; "
        "m = mlflow.pyfunc.load_model('models:/adaptseg-adaptsegnet_multi/1'); "
        "np.save('prediction.npy', m.predict(np.load('images.npy'), params={'device': 'cpu'})); "
        "print(json.dumps(m.metadata.metadata['classes'][:2]))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=project_copy, capture_output=True, text=True,
                          env={**os.environ}, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == ["road", "sidewalk"]
    with KedroSession.create(project_path=project_copy, runtime_params=runtime) as session:
        model = session.load_context().catalog.load("adaptsegnet_multi.model")
    assert (tags["precision"], tags["device"]) == (model["precision"], model["device"])  # what it trained with
    expected = _pipeline_prediction(model, val, [96, 48])
    assert np.array_equal(np.load(project_copy / "prediction.npy"), expected)


@pytest.mark.slow
def test_notebook_compares_the_child_runs_of_kedro_runs(tmp_path):
    """compare_runs.ipynb on the parent/child layout: a training run, then an evaluation-only one whose child
    points back at it (tests/test_notebook.py runs it on the layout from before child runs)."""
    from adaptseg.data.labels import TRAIN_CLASSES
    from tests.test_notebook import NOTEBOOK, execute

    mlflow.set_experiment("adaptseg")
    client = MlflowClient()

    def child(parent, namespace: str, *, trained_in: str | None = None, losses: bool = True) -> str:
        tags = {"mlflow.parentRunId": parent.info.run_id, "namespace": namespace}
        run = client.create_run(parent.info.experiment_id, run_name=f"{namespace} · x · seed 0 · base",
                                tags=tags | ({"adaptseg.trained_in": trained_in} if trained_in else {}))
        client.log_metric(run.info.run_id, "val/miou", 30.0 + len(namespace))
        for k, name in enumerate(TRAIN_CLASSES[:4]):
            client.log_metric(run.info.run_id, f"val/iou/{name.replace(' ', '_')}", 10.0 * k)
        for step in range(1, 4) if losses else ():
            client.log_metric(run.info.run_id, "train/loss_seg", 1.0 / step, step=step)
            client.log_metric(run.info.run_id, "train/loss_adv_main", 0.7, step=step)
        client.set_terminated(run.info.run_id)
        return run.info.run_id

    with mlflow.start_run(run_name="default pipeline") as trained:
        mlflow.set_tags({"git.commit": "0" * 40, "data.version": "abc123abc123"})
        child(trained, "source_only")
        multi = child(trained, "adaptsegnet_multi")
    with mlflow.start_run(run_name="evaluation [adaptsegnet_multi]") as evaluated:
        child(evaluated, "adaptsegnet_multi", trained_in=multi, losses=False)
    text = execute(NOTEBOOK.parent)
    assert "2 runs in experiment 'adaptseg' (3 model runs in them)" in text
    assert f"run {evaluated.info.run_id}" in text and trained.info.run_id in text
    assert all(method in text for method in ("source_only", "adaptsegnet_multi"))
    assert text.count("<image/png>") == 2
