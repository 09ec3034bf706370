"""Snapshot selection over tiny fake snapshots: the run folder that lists them, the node, and its labels."""

import pytest
from kedro.io.core import DatasetError

from adaptseg.evaluation import TEST_LABEL_SELECTION
from adaptseg.io import RunFolder, RunFolderDataset
from adaptseg.pipelines.evaluation.nodes import evaluate_on_target, select_model
from adaptseg.training.checkpoint import save_checkpoint
from tests.pipelines.evaluation.conftest import EVALUATION

RUN_ID = "run-a"
SELECTION = {"split": "val", "entropy_split": "train", "entropy_images": 2, "every": None}
#: Main-head logits scaled per step: a larger scale gives sharper softmax, i.e. lower entropy.
SCALES = {1: 1.0, 2: 8.0, 3: 2.0}


def _write_run(folder, model, run_id=RUN_ID):
    """Engine-style snapshots (weights only) plus last.pt / best.pt, which are not snapshots."""
    for step, scale in SCALES.items():
        weights = {k: v * scale if k.startswith("classifier.") else v for k, v in model["segmenter"].items()}
        state = {"format_version": 2, "step": step, "run_id": run_id, "models": {"segmenter": weights}}
        save_checkpoint(folder / f"step_{step:06d}.pt", state)
    save_checkpoint(folder / "last.pt", {"step": 3})
    save_checkpoint(folder / "best.pt", {"step": 2})


@pytest.fixture
def run(tmp_path, tiny_model):
    model = {**tiny_model, "run_id": RUN_ID}
    _write_run(tmp_path / "runs" / "adaptsegnet_multi", model)
    return model, RunFolderDataset(str(tmp_path / "runs" / "adaptsegnet_multi")).load()


def test_run_folder_lists_step_files_only_and_is_read_only(run, tmp_path):
    model, folder = run
    snapshots = folder.snapshots()
    assert list(snapshots) == [1, 2, 3]
    loaded = snapshots[2]()
    assert loaded["step"] == 2 and set(loaded["models"]) == {"segmenter"}
    dataset = RunFolderDataset(str(folder.path))
    assert dataset.exists() and dataset.load() == folder
    with pytest.raises(DatasetError, match="read-only"):
        dataset.save({})
    assert RunFolder(tmp_path / "nowhere").snapshots() == {}


def test_select_model_reports_every_snapshot_and_three_labelled_choices(run, tiny_target):
    model, folder = run
    _, manifest, train_ids = tiny_target
    result = select_model(model, folder, None, manifest, train_ids, EVALUATION, SELECTION)
    records = result["snapshots"]
    assert [r["step"] for r in records] == [1, 2, 3]
    assert all(0.0 <= r["train_entropy"] <= 1.0 and 0.0 <= r["val_miou"] <= 100.0 for r in records)
    assert set(records[0]["val_miou_by_protocol"]) == {"19", "16", "13"}
    entropy = {r["step"]: r["train_entropy"] for r in records}
    assert entropy[2] < entropy[3] < entropy[1]  # sharper logits, lower entropy

    chosen = result["selections"]
    assert chosen["last"]["step"] == 3
    assert chosen["min_entropy"]["step"] == 2
    best = max(records, key=lambda r: r["val_miou"])
    assert chosen["best_val"]["step"] == best["step"] and chosen["best_val"]["val_miou"] == best["val_miou"]
    assert chosen["best_val"]["label"] == f"highest mIoU on target val: {TEST_LABEL_SELECTION}"
    assert chosen["min_entropy"]["label"].startswith("lowest mean prediction entropy on the first 2 target train images")
    assert chosen["last"]["label"] == "last snapshot (no selection)"
    assert result["entropy_images"] == 2 and result["val_split"] == "val" and result["note"] is None

    # the val mIoU of a snapshot is that of the same weights evaluated as a model
    snapshot = folder.snapshots()[3]()
    as_model = evaluate_on_target({**model, "segmenter": snapshot["models"]["segmenter"]}, manifest, train_ids, EVALUATION)
    assert as_model["protocols"]["19"]["miou"] == pytest.approx(records[2]["val_miou"])


def test_every_skips_snapshots_but_keeps_the_last(run, tiny_target):
    model, folder = run
    _, manifest, train_ids = tiny_target
    result = select_model(model, folder, None, manifest, train_ids, EVALUATION, {**SELECTION, "every": 2})
    assert [r["step"] for r in result["snapshots"]] == [2, 3]


def test_snapshots_of_another_run_are_refused(run, tiny_target, tmp_path):
    model, _ = run
    _, manifest, train_ids = tiny_target
    other = tmp_path / "other"
    _write_run(other, model, run_id="run-b")
    with pytest.raises(ValueError, match="run-b"):
        select_model(model, RunFolder(other), None, manifest, train_ids, EVALUATION, SELECTION)


def test_no_snapshots_gives_a_note_not_an_error(tiny_model, tiny_target, tmp_path):
    _, manifest, train_ids = tiny_target
    result = select_model(tiny_model, RunFolder(tmp_path / "empty"), None, manifest, train_ids, EVALUATION, SELECTION)
    assert result["snapshots"] == [] and result["note"]
    assert all(c["step"] is None for c in result["selections"].values())
    assert result["selections"]["best_val"]["label"].endswith(TEST_LABEL_SELECTION)


def test_the_model_own_metrics_are_reused_for_the_snapshot_with_its_weights(run, tiny_target):
    model, folder = run
    _, manifest, train_ids = tiny_target
    snapshots = folder.snapshots()
    final = {**model, "segmenter": snapshots[3]()["models"]["segmenter"]}  # the model is step 3's weights
    metrics = evaluate_on_target(final, manifest, train_ids, EVALUATION)
    fresh = select_model(final, folder, None, manifest, train_ids, EVALUATION, SELECTION)
    reused = select_model(final, folder, metrics, manifest, train_ids, EVALUATION, SELECTION)
    assert [r["val_scores_from"] for r in reused["snapshots"]] == ["snapshot inference"] * 2 + ["model metrics (same weights)"]
    assert [r["val_miou"] for r in reused["snapshots"]] == pytest.approx([r["val_miou"] for r in fresh["snapshots"]])
    # other weights at the same step: no reuse
    other = select_model({**final, "segmenter": snapshots[1]()["models"]["segmenter"]}, folder, metrics, manifest,
                         train_ids, EVALUATION, SELECTION)
    assert other["snapshots"][2]["val_scores_from"] == "snapshot inference"
