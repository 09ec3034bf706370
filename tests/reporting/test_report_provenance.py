"""Lab-notebook tags: code version from git (or "unknown"), data version, and the hook that sets them."""

import os
import re
from types import SimpleNamespace

import mlflow
import pytest
from kedro.io import DataCatalog

from adaptseg.hooks import LabNotebookHooks
from adaptseg.reporting.provenance import data_tags, git_tags, stable_hash
from tests.conftest import PROJECT_ROOT


@pytest.fixture(autouse=True)
def _fresh_mlflow_state(_temporary_mlflow):
    """This test's tracking store, and no active run: after a KedroSession in the same process (another
    test's), kedro-mlflow leaves its tracking URI, experiment and finished run set in the fluent API."""
    while mlflow.active_run() is not None:
        try:
            mlflow.end_run()  # pops the stack first; the run may live in another test's database
        except Exception:
            pass
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    mlflow.set_experiment("adaptseg")  # the active experiment may be one of that other database
    yield


def test_git_tags_in_a_checkout_and_outside_one(tmp_path):
    inside = git_tags(PROJECT_ROOT)
    if inside["git.commit"] != "unknown":  # the project is normally a git checkout
        assert re.fullmatch(r"[0-9a-f]{40}", inside["git.commit"])
        assert inside["git.dirty"] in {"true", "false"}
    assert git_tags(tmp_path) == {"git.commit": "unknown", "git.branch": "unknown", "git.dirty": "unknown"}


def test_data_version_changes_with_roots_and_generator_but_not_key_order():
    raw = {"source": {"kind": "gta5", "root": "a"}, "target": {"kind": "cityscapes", "root": "b"}}
    synthesis = {"preview_pairs": 2, "generator": {"seed": 0, "layout_shift": "none"}}
    tags = data_tags(raw, synthesis)
    assert tags["data.source"] == "gta5:a" and tags["data.target"] == "cityscapes:b"
    assert re.fullmatch(r"[0-9a-f]{12}", tags["data.version"])
    reordered = {"generator": {"layout_shift": "none", "seed": 0}, "preview_pairs": 2}
    assert data_tags(raw, reordered) == tags
    assert data_tags(raw, {**synthesis, "generator": {"seed": 1}})["data.synthesis_hash"] != tags["data.synthesis_hash"]
    moved = {**raw, "target": {"kind": "cityscapes", "root": "/data/cityscapes"}}
    assert data_tags(moved, synthesis)["data.version"] != tags["data.version"]
    assert "data.synthesis_hash" not in data_tags(raw, None)
    assert stable_hash({"a": 1, "b": 2}) == stable_hash({"b": 2, "a": 1})


@pytest.fixture
def catalog(tmp_path) -> DataCatalog:
    return DataCatalog.from_config({
        "source_raw": {"type": "adaptseg.io.RawDomainDataset", "kind": "gta5", "root": str(tmp_path / "gta5")},
        "target_raw": {"type": "adaptseg.io.RawDomainDataset", "kind": "cityscapes", "root": str(tmp_path / "cs")},
    })


def _hooks(params: dict) -> LabNotebookHooks:
    hooks = LabNotebookHooks()
    hooks.after_context_created(SimpleNamespace(params=params))
    return hooks


def test_hook_tags_the_active_run(catalog, tmp_path):
    hooks = _hooks({"synthesis": {"generator": {"seed": 3}}})
    with mlflow.start_run(run_name="__default__") as run:  # as kedro-mlflow names it
        hooks.before_pipeline_run({"run_id": "2026-01-01T00.00.00.000Z", "project_path": str(tmp_path)}, None, catalog)
    tags = mlflow.get_run(run.info.run_id).data.tags
    assert tags["kedro.session_id"] == "2026-01-01T00.00.00.000Z"
    assert tags["git.commit"] == "unknown"
    assert tags["data.source"] == f"gta5:{tmp_path / 'gta5'}"
    assert {"data.version", "data.synthesis_hash", "git.dirty"} <= set(tags)
    # the parent run says what ran and on what: name, full command, environment, torch and hardware
    assert tags["mlflow.runName"] == "default pipeline" and tags["command"] == "kedro run"
    assert tags["kedro.env"] == "base" and tags["precision"] == "fp32" and tags["device"] in {"cpu", "cuda"}
    assert tags["torch"]


def test_hook_waits_for_a_run_when_none_is_active_yet(catalog, tmp_path):
    hooks = _hooks({})
    assert mlflow.active_run() is None
    hooks.before_pipeline_run({"run_id": "s1", "project_path": str(tmp_path)}, None, catalog)  # nothing to tag yet
    hooks.before_node_run(None, catalog, {}, False)  # still no run: no error, no run created
    assert mlflow.active_run() is None
    with mlflow.start_run() as run:
        hooks.before_node_run(None, catalog, {}, False)
    assert mlflow.get_run(run.info.run_id).data.tags["kedro.session_id"] == "s1"
    assert hooks._pending == {}


def test_hook_is_registered_in_settings():
    from adaptseg import settings

    assert any(isinstance(h, LabNotebookHooks) for h in settings.HOOKS)
