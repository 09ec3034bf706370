"""studies/pseudo_labels.py: scores a study's trained models on target train, never trains one."""

import importlib

import pandas as pd
import pytest

from tests.studies.test_adaptation_study import SCRIPT, TINY


@pytest.fixture()
def scripts(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    return importlib.import_module("adaptation_study"), importlib.import_module("pseudo_labels")


@pytest.mark.slow
def test_trained_models_are_scored_and_missing_ones_skipped(scripts, tmp_path, capsys):
    study, pseudo_labels = scripts
    out = tmp_path / "study"
    study.main(["--out", str(out), "--seeds", "1", "--regimes", "none", "--namespaces", "source_only", *TINY])
    trained = sorted(p.relative_to(out) for p in (out / "runs").rglob("done"))
    options = ["--out", str(out), "--seeds", "1", "--regimes", "none", *(a for a in TINY if a != "--quiet")]

    pseudo_labels.main([*options, "--namespaces", "source_pretraining", "source_only", "adaptsegnet_multi",
                        "--thresholds", "0.5", "0.968"])

    rows = pd.read_csv(out / "pseudo_labels.csv")
    assert list(rows["namespace"]) == ["source_only", "source_pretraining"]  # multi was never trained
    printed = capsys.readouterr().out
    assert "skipped: adaptsegnet_multi: no dev choice" in printed
    assert printed.index("| none | source_pretraining | 1 |") < printed.index("| none | source_only | 1 |")
    assert sorted(p.relative_to(out) for p in (out / "runs").rglob("done")) == trained  # nothing trained
    assert (rows["images"] == 3).all() and rows["accuracy"].between(0, 100).all()
    assert (rows["coverage@0.5"] >= rows["coverage@0.968"]).all()  # a higher threshold keeps fewer pixels
    assert rows["most_predicted"].str.contains("%").all()
    assert (out / "pseudo_labels.png").stat().st_size > 0

    pseudo_labels.main([*options, "--namespaces", "source_only"])  # a rerun replaces its rows, keeps the others
    again = pd.read_csv(out / "pseudo_labels.csv")
    assert list(again["namespace"]) == ["source_only", "source_pretraining"]
    assert "coverage@0.9" in again and again["coverage@0.9"].isna().tolist() == [False, True]

    capsys.readouterr()
    pseudo_labels.main([*options, "--namespaces", "source_pretraining", "--summarise-only"])  # reads, measures nothing
    printed = capsys.readouterr().out
    assert "| none | source_pretraining | 1 |" in printed and "source_only" not in printed
    assert "| coverage@0.9 |" not in printed  # source_pretraining's row was measured without that threshold


def test_a_folder_that_is_not_a_study_is_refused(scripts, tmp_path):
    with pytest.raises(SystemExit, match="not a study folder"):
        scripts[1].main(["--out", str(tmp_path), "--namespaces", "source_only"])
