"""JSON and CSV saves are atomic: a write that dies half-way leaves the previous version readable."""

import json

import pandas as pd
import pytest
from kedro.io.core import Version

from adaptseg.io import CSVDataset, JSONDataset


def test_a_json_save_that_dies_half_way_leaves_the_previous_version_readable(tmp_path, monkeypatch):
    path = str(tmp_path / "metrics" / "m.json")
    JSONDataset(filepath=path, version=Version(None, "2026-12-04T10.00.00.000Z")).save({"miou": 50.0})

    def dying_dump(data, handle, **kwargs):
        handle.write('{"miou": 5')  # a kill or a full disk, mid-write
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(json, "dump", dying_dump)
    with pytest.raises(Exception, match="No space left"):
        JSONDataset(filepath=path, version=Version(None, "2026-12-04T11.00.00.000Z")).save({"miou": 51.0})
    monkeypatch.undo()
    assert JSONDataset(filepath=path, version=Version(None, None)).load() == {"miou": 50.0}
    assert not [p for p in (tmp_path / "metrics").rglob("*") if p.is_file() and "tmp" in p.name]


def test_a_csv_save_that_dies_half_way_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "source_manifest.csv"
    CSVDataset(filepath=str(path)).save(pd.DataFrame({"split": ["train"], "sample_id": ["a"]}))

    def dying_to_csv(self, path_or_buf=None, **kwargs):
        with open(path_or_buf, "w") as handle:
            handle.write("split,sam")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", dying_to_csv)
    with pytest.raises(Exception, match="No space left"):
        CSVDataset(filepath=str(path)).save(pd.DataFrame({"split": ["val"], "sample_id": ["b"]}))
    monkeypatch.undo()
    assert CSVDataset(filepath=str(path)).load()["sample_id"].tolist() == ["a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source_manifest.csv"]


def test_missing_none_loads_none_and_a_bad_setting_is_named(tmp_path):
    assert JSONDataset(filepath=str(tmp_path / "x.json"), missing="none").load() is None
    table = CSVDataset(filepath=str(tmp_path / "x.csv"), missing="none")
    assert table.load() is None
    table.save(pd.DataFrame({"a": [1]}))
    assert table.load()["a"].tolist() == [1]
    with pytest.raises(Exception, match=r"CSVDataset\(.*y.csv\): missing must be one of"):
        CSVDataset(filepath=str(tmp_path / "y.csv"), missing="maybe")
    with pytest.raises(Exception, match="missing must be one of"):
        JSONDataset(filepath=str(tmp_path / "x.json"), missing="maybe")
