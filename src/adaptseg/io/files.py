"""JSON and CSV datasets whose saves are atomic, and which may load a never-written dataset as ``None``.

A later load depends on these files (manifests, metrics, model selections, histories): written in place, a
kill or a full disk mid-write leaves a truncated newest version that every later load fails on. Here a save
goes to a temporary file beside the target and is renamed over it once complete, so a reader sees the
previous complete file (or, for versioned datasets, the previous version) or the new one.

``missing: none``: the report compares every model that was trained, whichever namespaces a run trained: its
inputs name every model's metrics, history and weights, and a model nobody trained yet arrives as ``None``
instead of failing the run. Nodes that cannot do without an input (a starting model) say so themselves.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from kedro.io.core import DatasetError, get_filepath_str
from kedro_datasets.json import JSONDataset as _JSONDataset
from kedro_datasets.pandas import CSVDataset as _CSVDataset

from adaptseg.io.atomic import atomic_file

MISSING = ("error", "none")


def check_missing(value: str, what: str) -> bool:
    """True when a missing dataset loads as None; an unknown setting is an error naming the dataset."""
    if value not in MISSING:
        raise DatasetError(f"{what}: missing must be one of {MISSING}, got {value!r}.")
    return value == "none"


def _local_save_path(dataset: Any) -> Path:
    if dataset._protocol != "file":
        raise DatasetError(f"{type(dataset).__name__} writes local files atomically only, got {dataset._filepath}.")
    return Path(get_filepath_str(dataset._get_save_path(), dataset._protocol))


class _MissingAsNone:
    """``missing: none``: ``load()`` gives ``None`` while nothing was saved."""

    _missing_as_none = False

    def _allow_missing(self, missing: str) -> None:
        self._missing_as_none = check_missing(missing, f"{type(self).__name__}({self._filepath})")

    def load(self) -> Any:
        if self._missing_as_none and not self.exists():
            return None
        return super().load()


class JSONDataset(_MissingAsNone, _JSONDataset):
    """``kedro_datasets.json.JSONDataset`` with atomic saves; ``missing: none`` loads ``None`` when nothing was
    saved yet."""

    def __init__(self, *args: Any, missing: str = "error", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._allow_missing(missing)

    def save(self, data: Any) -> None:
        with atomic_file(_local_save_path(self)) as tmp, open(tmp, "w", encoding="utf-8") as handle:
            json.dump(data, handle, **self._save_args)
        self._invalidate_cache()


class CSVDataset(_MissingAsNone, _CSVDataset):
    """``kedro_datasets.pandas.CSVDataset`` with atomic saves; ``missing: none`` as for JSON."""

    def __init__(self, *args: Any, missing: str = "error", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._allow_missing(missing)

    def save(self, data: pd.DataFrame) -> None:
        with atomic_file(_local_save_path(self)) as tmp:
            data.to_csv(path_or_buf=tmp, **self._save_args)
        self._invalidate_cache()
