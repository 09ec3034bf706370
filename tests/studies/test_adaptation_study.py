"""The study script's summarise-only mode: rows gathered elsewhere become one summary, nothing trains."""

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "studies" / "adaptation_study.py"


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("adaptation_study", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_summarise_only_writes_the_summary_of_existing_rows(study, tmp_path):
    rows = [
        {"seed": s, "layout_shift": "none", "method": m, "lambda_adv_main": lam, "split": split, "miou": base + s}
        for s in (1, 2, 3)
        for split in ("dev", "val")
        for m, lam, base in (("source_only", 0.0, 40.0), ("adaptsegnet_multi", 0.3, 46.0))
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "results.csv", index=False)
    study.main(["--summarise-only", "--out", str(tmp_path)])
    assert "| none | 3 | 42.0 ± 1.0 | 48.0 ± 1.0 |" in (tmp_path / "summary.md").read_text()
    assert "adaptsegnet_multi - source_only" in (tmp_path / "summary.json").read_text()
    assert (tmp_path / "summary.png").stat().st_size > 0
    assert '"lambda_adv_main": [\n    0.3\n  ]' in (tmp_path / "settings.json").read_text()
    assert not (tmp_path / "runs").exists() and not (tmp_path / "data").exists()  # nothing trained or generated


def test_summarise_only_without_results_names_the_file(study, tmp_path):
    with pytest.raises(SystemExit, match="results.csv does not exist"):
        study.main(["--summarise-only", "--out", str(tmp_path / "empty")])
