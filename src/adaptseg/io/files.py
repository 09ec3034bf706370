"""Datasets that may not have been written yet: ``missing: none`` loads them as ``None``.

The report compares every model that was trained, whichever namespaces a run trained: its inputs name
every model's metrics, history and weights, and a model nobody trained yet arrives as ``None`` instead of
failing the run. Nodes that cannot do without an input (a starting model) say so themselves.
"""

from __future__ import annotations

from typing import Any

from kedro.io.core import DatasetError
from kedro_datasets.json import JSONDataset as _JSONDataset

MISSING = ("error", "none")


def check_missing(value: str, what: str) -> bool:
    """True when a missing dataset loads as None; an unknown setting is an error naming the dataset."""
    if value not in MISSING:
        raise DatasetError(f"{what}: missing must be one of {MISSING}, got {value!r}.")
    return value == "none"


class JSONDataset(_JSONDataset):
    """``kedro_datasets.json.JSONDataset`` that loads ``None`` when nothing was saved and ``missing: none``."""

    def __init__(self, *args: Any, missing: str = "error", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._missing_as_none = check_missing(missing, f"JSONDataset({kwargs.get('filepath', args[:1])})")

    def load(self) -> Any:
        if self._missing_as_none and not self.exists():
            return None
        return super().load()
