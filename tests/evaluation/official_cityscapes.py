"""Run the official Cityscapes pixel-level evaluation (cityscapesscripts 2.3.0) in-process, quietly.

Mirrors its ``main()`` without arguments: ground truth found by ``args.groundTruthSearch`` under the dataset
root, each prediction found by ``getPrediction`` under ``CITYSCAPES_RESULTS``, then ``evaluateImgLists``.
Instance-level scores are off (no ``*_instanceIds.png`` in the tiny trees), and no JSON is written.
"""

from __future__ import annotations

import copy
import glob
import math
import os
from pathlib import Path

import pytest

from adaptseg.data.labels import TRAIN_CLASSES


def run_official_evaluation(dataset_root: Path, results_root: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict, list[str]]:
    """``(result dict, prediction files)`` of the official evaluation of ``results_root`` against ``gtFine/val``."""
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as official

    monkeypatch.setenv("CITYSCAPES_DATASET", str(dataset_root))
    monkeypatch.setenv("CITYSCAPES_RESULTS", str(results_root))
    args = copy.copy(official.args)  # the module keeps one global args object: leave it untouched
    args.cityscapesPath = str(dataset_root)
    args.groundTruthSearch = os.path.join(str(dataset_root), "gtFine", "val", "*", "*_gtFine_labelIds.png")
    args.predictionPath = None  # resolved from CITYSCAPES_RESULTS by getPrediction
    args.predictionWalk = None
    args.evalInstLevelScore = False
    args.evalPixelAccuracy = False
    args.JSONOutput = False
    args.exportFile = os.devnull
    args.quiet = True
    args.colorized, args.bold, args.nocol = False, "", ""
    ground_truth = sorted(glob.glob(args.groundTruthSearch))
    assert ground_truth, f"no ground truth under {args.groundTruthSearch}"
    predictions = [official.getPrediction(args, gt) for gt in ground_truth]
    return official.evaluateImgLists(predictions, ground_truth, args), predictions


def assert_same_as_official(official: dict, ours: dict, tolerance: float = 0.01) -> None:
    """Per-class IoU and the classes average of the official result equal our 19-class protocol scores.

    The official script scores all 34 label ids but gives NaN to every ``ignoreInEval`` one and averages the
    non-NaN scores; ours nan-averages the 19 train classes: the same set. Official scores are fractions, ours
    percent.
    """
    for name in TRAIN_CLASSES:
        theirs, mine = official["classScores"][name], ours["iou"][name]
        if math.isnan(theirs):
            assert mine is None, f"{name}: official NaN, ours {mine}"
        else:
            assert mine is not None and abs(100 * theirs - mine) <= tolerance, f"{name}: official {100 * theirs}, ours {mine}"
    assert abs(100 * official["averageScoreClasses"] - ours["miou"]) <= tolerance
