"""The project end to end through a KedroSession, on tiny data the test generates."""

import pandas as pd
import pytest
from kedro.framework.project import pipelines
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from adaptseg.pipelines.evaluation.pipeline import DEFAULT_MODELS as MODELS
from adaptseg.training import load_checkpoint

TINY = {
    "synthesis": {
        "preview_pairs": 2,
        "generator": {
            "source_size": [96, 54],
            "target_size": [96, 48],
            "counts": {"source": 6, "train": 4, "val": 3, "dev": 2},
        },
    }
}

_TINY_ENGINE = {"max_steps": 2, "batch_size": 2, "log_every": 1, "checkpoint_every": 1, "progress": False}
_TINY_MODEL = {"model": {"options": {"depth": 18, "width": 8}}}
TINY_TRAINING = {
    **TINY,
    **_TINY_MODEL,
    **{
        stage: {"training": {"input_size": [96, 54] if stage == "source_pretraining" else [96, 48], "engine": _TINY_ENGINE}}
        for stage in ("source_pretraining", "oracle", "oracle_finetune")
    },
    **{
        method: {"adaptation": {"input_size": {"source": [96, 54], "target": [96, 48]}, "engine": _TINY_ENGINE}}
        for method in ("source_only", "adabn", "adaptsegnet_single", "adaptsegnet_multi")
    },
    "evaluation": {"input_size": [96, 48], "batch_size": 2},
}


@pytest.mark.slow
def test_data_pipelines_run_end_to_end(project_copy):
    bootstrap_project(project_copy)
    assert {"synthesis", "ingestion", "label_remapping", "__default__"} <= set(pipelines)
    with KedroSession.create(project_path=project_copy, runtime_params=TINY) as session:
        session.run(pipeline_names=["synthesis", "ingestion", "label_remapping"])
    data = project_copy / "data"
    assert (data / "01_raw/synthetic/gta5/images/00001.png").exists()
    target = pd.read_csv(data / "02_intermediate/target_manifest.csv")
    assert target.groupby("split").size().to_dict() == {"dev": 2, "train": 4, "val": 3}
    assert len(list((data / "03_primary/train_ids/source/train").glob("*.npy"))) == 6
    assert len(list((data / "03_primary/train_ids/target/val").glob("*.npy"))) == 3
    pixels = pd.read_csv(data / "03_primary/source_class_pixels.csv")
    assert len(pixels) == 6 and pixels.drop(columns=["key", "made_from"]).sum(axis=1).nunique() == 1  # one image size
    frequencies = pd.read_csv(data / "08_reporting/class_frequencies.csv")
    assert set(frequencies["domain"]) == {"source", "target"}
    assert (data / "08_reporting/class_frequencies.png").stat().st_size > 0
    assert (data / "08_reporting/synthetic_preview.png").stat().st_size > 0


@pytest.mark.slow
def test_bad_input_stops_the_run_before_anything_downstream_is_written(project_copy, gta5_tree):
    (gta5_tree / "labels" / "00002.png").unlink()
    bootstrap_project(project_copy)
    with KedroSession.create(project_path=project_copy, runtime_params={"source": {"root": str(gta5_tree)}}) as session:
        with pytest.raises(Exception, match="00002.png"):
            session.run(
                pipeline_names=["ingestion", "label_remapping"], node_names=["ingest_source", "remap_source_labels"]
            )
    assert not (project_copy / "data/02_intermediate/source_manifest.csv").exists()
    assert not (project_copy / "data/03_primary/train_ids/source").exists()


@pytest.mark.slow
def test_default_pipeline_trains_adapts_and_evaluates_every_method(project_copy):
    import json

    import mlflow

    bootstrap_project(project_copy)
    with KedroSession.create(project_path=project_copy, runtime_params=TINY_TRAINING) as session:
        session.run()  # __default__: every pipeline
    data = project_copy / "data"
    for method in MODELS:
        versions = list((data / "06_models" / method / "model.pt").iterdir())
        assert len(versions) == 1 and (versions[0] / "model.pt").stat().st_size > 0
        metrics_file = next((data / "08_reporting/metrics" / f"{method}.json").glob("*/*.json"))
        metrics = json.loads(metrics_file.read_text())
        assert metrics["split"] == "val" and metrics["images"] == 3
        assert set(metrics["protocols"]) == {"19", "16", "13"}
        assert 0.0 <= metrics["protocols"]["19"]["miou"] <= 100.0
    history = json.loads((data / "07_model_output/adaptsegnet_multi/history.json").read_text())
    assert {"loss_seg", "loss_adv_main", "loss_adv_aux", "loss_d_main", "loss_d_aux"} <= set(history)
    # MLflow: one parent run for the `kedro run`, a child run per model with the same metric names
    runs = mlflow.search_runs(experiment_names=["adaptseg"])
    parents = runs[runs["tags.mlflow.parentRunId"].isna()]
    assert len(parents) == 1 and parents.iloc[0]["tags.mlflow.runName"] == "default pipeline"
    children = runs[runs["tags.mlflow.parentRunId"] == parents.iloc[0]["run_id"]].set_index("tags.namespace")
    assert set(children.index) == set(MODELS)
    multi = children.loc["adaptsegnet_multi"]
    assert multi["tags.mlflow.runName"].startswith("adaptsegnet_multi · adaptsegnet · seed ")
    assert children[["metrics.val/miou", "metrics.val/miou13", "metrics.train/seconds"]].notna().all().all()
    assert children.drop(index="adabn")["metrics.train/loss_seg"].notna().all()  # AdaBN has no iterations
    assert pd.notna(multi["metrics.train/loss_adv_main"])
    registered = {m.name for m in mlflow.MlflowClient().search_registered_models()}
    assert registered == {f"adaptseg-{m}" for m in MODELS}  # every trained model, one version each


@pytest.mark.slow
def test_every_namespace_trains_and_is_evaluated_and_reported(project_copy):
    """All adaptation namespaces (the zoo beside the default ones) and both ensembles, end to end on tiny data."""
    import json

    import mlflow

    from adaptseg.pipelines.adaptation.pipeline import NAMESPACES
    from adaptseg.pipelines.evaluation.pipeline import ENSEMBLES

    size = [128, 64]  # layer4 features of 16×8: the smallest the feature-level discriminator takes
    runtime = {
        "synthesis": {"preview_pairs": 1, "generator": {"source_size": size, "target_size": size,
                                                         "counts": {"source": 4, "train": 3, "val": 2, "dev": 1}}},
        **_TINY_MODEL,
        "source_pretraining": {"training": {"input_size": size, "engine": _TINY_ENGINE}},
        **{ns: {"adaptation": {"input_size": {"source": size, "target": size}, "engine": _TINY_ENGINE}} for ns in NAMESPACES},
        "evaluation": {"input_size": size, "batch_size": 2, "export": {"enabled": False}},
        "model_selection": {"entropy_images": 1},
        "reporting": {"examples": 1},
    }
    bootstrap_project(project_copy)
    for names, namespaces in (
        (["synthesis", "ingestion", "label_remapping"], None),
        (["source_pretraining", "adaptation", "evaluation"], [*NAMESPACES, *ENSEMBLES, "source_pretraining"]),
        (["reporting"], None),
    ):
        with KedroSession.create(project_path=project_copy, runtime_params=runtime) as session:
            session.run(pipeline_names=names, namespaces=namespaces)
        while mlflow.active_run() is not None:  # each `kedro run` its own MLflow run, as from the command line
            mlflow.end_run()
    data = project_copy / "data"
    for name in (*NAMESPACES, *ENSEMBLES):
        metrics = json.loads(next((data / "08_reporting/metrics" / f"{name}.json").glob("*/*.json")).read_text())
        assert metrics["images"] == 2 and 0.0 <= metrics["protocols"]["19"]["miou"] <= 100.0, name
    assert json.loads(next((data / "08_reporting/metrics/fda_mbt.json").glob("*/*.json")).read_text())["members"] == [
        "fda", "fda_beta05", "fda_beta09"]
    history = json.loads((data / "07_model_output/dacs/history.json").read_text())
    assert {"loss_seg", "loss_mix", "confident_fraction"} <= set(history)
    assert "loss_masked" in json.loads((data / "07_model_output/dacs_mic/history.json").read_text())
    rcs = load_checkpoint(data / "06_models/runs/dacs_rcs/last.pt")["config"]["engine"]["rare_class_sampling"]
    assert rcs == {"temperature": 0.01, "min_share": 0.0015}  # the namespace's own, kept under the tiny engine
    comparison = (data / "08_reporting/comparison.md").read_text()
    assert all(f"`{name}`" in comparison for name in (*NAMESPACES, *ENSEMBLES))


@pytest.mark.slow
def test_synthia_layout_source_runs_through_the_pipelines(project_copy):
    """`source.kind=synthia`: synthesis writes the SYNTHIA layout (16-bit labels), ingestion and remapping read
    it with SYNTHIA's table, and a model adapts and is scored in the 16- and 13-class protocols."""
    import json

    import numpy as np

    from adaptseg.data.png16 import png_bit_depth, read_png16

    size = [96, 48]
    runtime = {
        **TINY_TRAINING,
        "source": {"kind": "synthia", "root": "data/01_raw/synthetic/synthia"},
        "synthesis": {**TINY["synthesis"], "generator": {**TINY["synthesis"]["generator"], "source_size": size}},
        "source_pretraining": {"training": {"input_size": size, "engine": _TINY_ENGINE}},
        "adaptsegnet_multi": {"adaptation": {"input_size": {"source": size, "target": size}, "engine": _TINY_ENGINE}},
    }
    bootstrap_project(project_copy)
    with KedroSession.create(project_path=project_copy, runtime_params=runtime) as session:
        session.run(pipeline_names=["synthesis", "ingestion", "label_remapping"])
    with KedroSession.create(project_path=project_copy, runtime_params=runtime) as session:
        session.run(pipeline_names=["source_pretraining", "adaptation", "evaluation"],
                    namespaces=["source_pretraining", "adaptsegnet_multi"])
    data = project_copy / "data"
    label = data / "01_raw/synthetic/synthia/GT/LABELS/0000000.png"
    assert (data / "01_raw/synthetic/synthia/RGB/0000000.png").is_file() and png_bit_depth(label) == 16
    assert set(np.unique(read_png16(label)[:, :, 0])) <= set(range(23))
    manifest = pd.read_csv(data / "02_intermediate/source_manifest.csv")
    assert set(manifest["kind"]) == {"synthia"} and len(manifest) == 6
    metrics = json.loads(next((data / "08_reporting/metrics/adaptsegnet_multi.json").glob("*/*.json")).read_text())
    assert set(metrics["protocols"]) == {"19", "16", "13"} and 0 <= metrics["protocols"]["13"]["miou"] <= 100


@pytest.mark.slow
def test_labels_made_from_another_generation_of_the_data_are_refused(project_copy):
    """The README's own example rewrote the raw data in place (layout_shift=strong); the stored train ids then
    agreed with the new labels on a third of the pixels, and a later run scored against them without a word."""
    import mlflow

    from adaptseg.data.layouts import StaleDataError

    bootstrap_project(project_copy)
    shifted = {"synthesis": {**TINY["synthesis"], "generator": {**TINY["synthesis"]["generator"],
                                                                  "layout_shift": "strong"}}}
    runs = ((TINY, ["synthesis", "ingestion", "label_remapping"]),
            (shifted, ["synthesis"]))  # regenerates the raw data in place, nothing downstream
    for runtime, names in runs:
        with KedroSession.create(project_path=project_copy, runtime_params=runtime) as session:
            session.run(pipeline_names=names)
        while mlflow.active_run() is not None:  # each `kedro run` its own MLflow run, as from the command line
            mlflow.end_run()
    with KedroSession.create(project_path=project_copy, runtime_params=TINY_TRAINING) as session:
        with pytest.raises(Exception) as caught:
            session.run(pipeline_names=["source_pretraining"], namespaces=["source_pretraining"])
    assert isinstance(caught.value, StaleDataError) or isinstance(caught.value.__cause__, StaleDataError)
    assert "kedro run --pipelines ingestion,label_remapping" in str(caught.value)


@pytest.mark.slow
def test_a_namespace_trains_in_two_processes_from_kedro_run(project_copy):
    """engine.nproc_per_node: kedro run stays the entry point; the workers' curves reach MLflow through it."""
    import json

    import mlflow

    engine = {**_TINY_ENGINE, "batch_size": 1, "nproc_per_node": 2}
    runtime = {**TINY_TRAINING, "adaptsegnet_single": {"adaptation": {**TINY_TRAINING["adaptsegnet_single"]["adaptation"],
                                                                      "engine": engine}}}
    bootstrap_project(project_copy)
    for names, namespaces in ((["synthesis", "ingestion", "label_remapping"], None),
                              (["source_pretraining", "adaptation"], ["source_pretraining", "adaptsegnet_single"])):
        with KedroSession.create(project_path=project_copy, runtime_params=runtime) as session:
            session.run(pipeline_names=names, namespaces=namespaces)
        while mlflow.active_run() is not None:
            mlflow.end_run()
    history = json.loads((project_copy / "data/07_model_output/adaptsegnet_single/history.json").read_text())
    assert [entry["step"] for entry in history["loss_adv_main"]] == [1, 2]
    runs = mlflow.search_runs(experiment_names=["adaptseg"])
    child = runs[runs["tags.namespace"] == "adaptsegnet_single"].iloc[0]
    assert pd.notna(child["metrics.train/loss_adv_main"]) and child["tags.precision"] in {"fp32", "bf16"}


@pytest.mark.slow
def test_torchrun_runs_a_namespace_on_every_rank_and_rank_0_alone_saves(project_copy):
    """Several machines: ``torchrun -m adaptseg.train_distributed`` (here 2 ranks on one machine, gloo); rank 0
    saves and tracks in MLflow, the other rank writes nothing."""
    import json
    import os
    import subprocess
    import sys

    import mlflow

    bootstrap_project(project_copy)
    with KedroSession.create(project_path=project_copy, runtime_params=TINY_TRAINING) as session:
        session.run(pipeline_names=["synthesis", "ingestion", "label_remapping"])
    while mlflow.active_run() is not None:
        mlflow.end_run()
    params = ("model.options.width=8,adaptsegnet_single.adaptation.input_size.source=[96,54],"
              "adaptsegnet_single.adaptation.input_size.target=[96,48],source_pretraining.training.input_size=[96,54]")
    engine = "max_steps=2,batch_size=1,log_every=1,checkpoint_every=1,progress=false"
    for stage in ("source_pretraining.training", "adaptsegnet_single.adaptation"):
        params += "," + ",".join(f"{stage}.engine.{item}" for item in engine.split(","))
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m",
         "adaptseg.train_distributed", "--pipelines", "source_pretraining", "adaptation",
         "--namespaces", "source_pretraining", "adaptsegnet_single", "--params", params],
        cwd=project_copy, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    data = project_copy / "data"
    for namespace in ("source_pretraining", "adaptsegnet_single"):
        assert len(list((data / "06_models" / namespace / "model.pt").iterdir())) == 1  # saved once, by rank 0
    history = json.loads((data / "07_model_output/adaptsegnet_single/history.json").read_text())
    assert [entry["step"] for entry in history["loss_adv_main"]] == [1, 2]
    ran = [" ".join(w for w in line.split() if ".py:" not in w) for line in (done.stdout + done.stderr).split("INFO")]
    assert any("rank 1: running adaptsegnet_single.adapt" in line for line in ran)  # every rank trained
    runs = mlflow.search_runs(experiment_names=["adaptseg"])  # rank 0 alone tracked, as kedro run does
    parents = runs[runs["tags.mlflow.parentRunId"].isna() & runs["tags.pipeline_names"].str.contains("adaptation")]
    assert len(parents) == 1 and parents.iloc[0]["status"] == "FINISHED"
    child = runs[runs["tags.namespace"] == "adaptsegnet_single"]
    assert len(child) == 1 and pd.notna(child.iloc[0]["metrics.train/loss_adv_main"])
