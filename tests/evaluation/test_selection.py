"""Snapshot selection rules and their labels, on hand-made records."""

import math

from adaptseg.evaluation import TEST_LABEL_SELECTION, select_snapshots, selection_labels

LABELS = selection_labels("val", "train", 50)


def test_three_selections_with_labels():
    records = [
        {"step": 300, "val_miou": 30.0, "train_entropy": 0.20},
        {"step": 100, "val_miou": 35.0, "train_entropy": 0.40},
        {"step": 200, "val_miou": 32.0, "train_entropy": 0.10},
    ]
    chosen = select_snapshots(records, LABELS)
    assert chosen["last"]["step"] == 300 and chosen["last"]["label"] == "last snapshot (no selection)"
    assert chosen["best_val"]["step"] == 100 and chosen["best_val"]["val_miou"] == 35.0
    assert chosen["best_val"]["label"].endswith(TEST_LABEL_SELECTION)
    assert TEST_LABEL_SELECTION == "selected on the test labels (as the papers do)"
    assert chosen["min_entropy"]["step"] == 200 and chosen["min_entropy"]["val_miou"] == 32.0
    assert "first 50 target train images" in chosen["min_entropy"]["label"]
    assert "needs no target labels" in chosen["min_entropy"]["label"]


def test_ties_go_to_the_earlier_step_and_nan_never_wins():
    records = [
        {"step": 1, "val_miou": math.nan, "train_entropy": 0.3},
        {"step": 2, "val_miou": 10.0, "train_entropy": 0.3},
        {"step": 3, "val_miou": 10.0, "train_entropy": math.nan},
    ]
    chosen = select_snapshots(records, LABELS)
    assert chosen["best_val"]["step"] == 2
    assert chosen["min_entropy"]["step"] == 1


def test_no_snapshots_keeps_the_labels():
    chosen = select_snapshots([], LABELS)
    assert {rule: c["step"] for rule, c in chosen.items()} == {"last": None, "best_val": None, "min_entropy": None}
    assert chosen["best_val"]["label"].endswith(TEST_LABEL_SELECTION)
