"""The evaluation nodes: exported predictions the official script scores like we do, the CSV, the wiring."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog
from kedro_datasets.pandas import CSVDataset

from adaptseg.io import FolderDataset, RunFolder, RunFolderDataset
from adaptseg.pipelines.adaptation.pipeline import NAMESPACES
from adaptseg.pipelines.evaluation.nodes import evaluate_and_export, evaluate_on_target, tabulate_metrics
from adaptseg.pipelines.evaluation.pipeline import MODELS, create_pipeline
from tests.conftest import PROJECT_ROOT
from tests.evaluation.official_cityscapes import assert_same_as_official, run_official_evaluation
from tests.pipelines.evaluation.conftest import EVALUATION

EXPORT = {**EVALUATION, "export": {"enabled": True, "colour": True}}


def test_exported_predictions_get_our_scores_from_the_official_evaluation(tiny_target, tiny_model, tmp_path, monkeypatch):
    root, manifest, train_ids = tiny_target
    metrics, label_ids, colours = evaluate_and_export(tiny_model, manifest, train_ids, EXPORT)
    assert metrics["export"] == {"label_id_pngs": 2, "colour_pngs": 2}
    assert sorted(label_ids) == ["frankfurt/frankfurt_000000_000294", "munster/munster_000000_000073"]
    assert sorted(colours) == [f"{k}_color" for k in sorted(label_ids)]
    results = tmp_path / "out" / "cityscapes_results"
    FolderDataset(str(results), progress=False).save(label_ids)
    FolderDataset(str(tmp_path / "out" / "predictions_color"), progress=False).save(colours)

    official, found = run_official_evaluation(root, results, monkeypatch)
    assert sorted(Path(p).relative_to(results).as_posix() for p in found) == [
        "frankfurt/frankfurt_000000_000294.png",
        "munster/munster_000000_000073.png",
    ]
    assert_same_as_official(official, metrics["protocols"]["19"])
    # the same pass without export scores identically
    assert evaluate_on_target(tiny_model, manifest, train_ids, EVALUATION)["confusion_matrix"] == metrics["confusion_matrix"]


def test_export_disabled_gives_empty_folders(tiny_target, tiny_model):
    _, manifest, train_ids = tiny_target
    metrics, label_ids, colours = evaluate_and_export(tiny_model, manifest, train_ids, {**EVALUATION, "export": {"enabled": False}})
    assert label_ids == {} and colours == {} and metrics["export"] == {"label_id_pngs": 0, "colour_pngs": 0}
    _, label_ids, colours = evaluate_and_export(tiny_model, manifest, train_ids, {**EXPORT, "export": {"enabled": True, "colour": False}})
    assert len(label_ids) == 2 and colours == {}


def test_metrics_table_round_trips_through_csv(tmp_path):
    rng = np.random.default_rng(0)
    confusion = rng.integers(0, 50, (19, 19))
    confusion[14, :] = 0
    confusion[:, 14] = 0  # truck: absent from prediction and ground truth
    from adaptseg.evaluation import protocol_scores

    metrics = {"method": "m", "split": "val", "step": 300,
               "protocols": {str(p): protocol_scores(confusion, p) for p in (19, 16, 13)}}
    dataset = CSVDataset(filepath=str(tmp_path / "m.csv"), save_args={"index": False})
    dataset.save(tabulate_metrics(metrics))
    table = dataset.load()
    assert list(table.columns) == ["method", "split", "step", "protocol", "class", "iou"]
    assert len(table) == (19 + 1) + (16 + 1) + (13 + 1)
    miou = table[table["class"] == "mIoU"].set_index("protocol")["iou"]
    for p in (19, 16, 13):
        assert math.isclose(miou[p], metrics["protocols"][str(p)]["miou"])
        rows = table[(table["protocol"] == p) & (table["class"] != "mIoU")]
        assert list(rows["class"]) == list(metrics["protocols"][str(p)]["iou"])
    road = table[(table["protocol"] == 19) & (table["class"] == "road")]["iou"].item()
    assert math.isclose(road, metrics["protocols"]["19"]["iou"]["road"])
    assert pd.isna(table[(table["protocol"] == 19) & (table["class"] == "truck")]["iou"].item())
    assert set(table["method"]) == {"m"} and set(table["step"]) == {300}


def test_every_model_is_evaluated_and_every_adaptation_run_selected():
    pipeline = create_pipeline()
    outputs = pipeline.all_outputs()
    for name in MODELS:
        assert {f"{name}.metrics", f"{name}.metrics_table", f"{name}.predictions", f"{name}.predictions_color"} <= outputs
    assert {o for o in outputs if o.endswith(".model_selection")} == {f"{m}.model_selection" for m in NAMESPACES}
    assert {f"{m}.run" for m in NAMESPACES} <= pipeline.inputs()


def test_catalog_factories_resolve_for_every_namespace():
    config = OmegaConfigLoader(conf_source=str(PROJECT_ROOT / "conf"), base_env="base", default_run_env="local")
    catalog = DataCatalog.from_config(config["catalog"])
    for method in (*NAMESPACES, "source_pretraining", "oracle"):
        run = catalog.get(f"{method}.run")
        assert isinstance(run, RunFolderDataset)
        assert run._describe()["path"] == f"data/06_models/runs/{method}"
    predictions = catalog.get("oracle.predictions")
    assert isinstance(predictions, FolderDataset)
    assert predictions._describe()["path"] == "data/07_model_output/oracle/cityscapes_results"
    assert "oracle.metrics_table" in catalog and "source_only.model_selection" in catalog
    params = config["parameters"]
    assert params["evaluation"]["export"] == {"enabled": True, "colour": True}
    assert params["model_selection"]["entropy_images"] == 50


def test_one_namespace_runs_through_a_kedro_runner(tiny_target, tiny_model, tmp_path):
    """The wiring: dataset and parameter names of one adaptation namespace, run by Kedro's runner."""
    from kedro.io import MemoryDataset
    from kedro.runner import SequentialRunner

    class Kept(MemoryDataset):
        def _release(self) -> None:  # keep intermediate outputs for the assertions
            pass

    _, manifest, train_ids = tiny_target
    pipeline = create_pipeline().only_nodes_with_namespaces(["adaptsegnet_multi"])
    catalog = DataCatalog()
    inputs = {
        "adaptsegnet_multi.model": tiny_model,
        "adaptsegnet_multi.run": RunFolder(tmp_path / "no_run"),
        "target_manifest": manifest,
        "target_train_ids": train_ids,
        "params:evaluation": EXPORT,
        "params:model_selection": {"split": "val", "entropy_images": 2},
    }
    for name, value in inputs.items():
        catalog[name] = MemoryDataset(value, copy_mode="assign")
    for name in pipeline.all_outputs():
        catalog[name] = Kept(copy_mode="assign")
    SequentialRunner().run(pipeline, catalog)
    assert catalog.load("adaptsegnet_multi.metrics")["images"] == 2
    assert len(catalog.load("adaptsegnet_multi.metrics_table")) == 51
    assert len(catalog.load("adaptsegnet_multi.predictions")) == 2
    assert catalog.load("adaptsegnet_multi.model_selection")["snapshots"] == []


def test_a_batch_of_validation_images_of_different_native_sizes_is_scored(tiny_target, tiny_model):
    """Labels are scored at their native resolution: one much larger image in a batch of 2 must not break
    the batch (torch.stack's size error) nor be scored at another image's size."""
    from PIL import Image

    from tests.conftest import random_label_ids, write_png

    root, manifest, train_ids = tiny_target
    big = manifest[manifest["split"] == "val"].iloc[0]
    Image.open(big["image_path"]).resize((192, 96)).save(big["image_path"])
    write_png(__import__("pathlib").Path(big["label_path"]), random_label_ids(np.random.default_rng(9), 96, 192))
    from adaptseg.data.remap import lookup_table, remap_label_file

    lut = lookup_table(19)
    ids = {f"{r.split}/{r.sample_id}": (lambda p=r.label_path: remap_label_file(p, lut)) for r in manifest.itertuples()}
    metrics = evaluate_on_target(tiny_model, manifest, ids, {**EVALUATION, "batch_size": 2})
    labelled = sum(int((ids[k]() != 255).sum()) for k in ids if k.startswith("val/"))
    assert ids[f"val/{big['sample_id']}"]().shape == (96, 192)
    assert np.asarray(metrics["confusion_matrix"]).sum() == labelled  # every labelled pixel, each at its own size
