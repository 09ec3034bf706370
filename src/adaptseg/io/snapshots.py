"""The weights-only snapshots a training run keeps (``step_XXXXXX.pt``), as a read-only catalog dataset.

The training engine writes them into its ``checkpoint_dir`` as a side effect of training; model selection
reads them through the catalog like any other input. Referenced in YAML by its full path
``adaptseg.io.snapshots.SnapshotFolderDataset``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kedro.io.core import AbstractDataset, DatasetError

from adaptseg.training.checkpoint import load_checkpoint

logger = logging.getLogger(__name__)

#: Snapshot file names as the engine writes them (``SNAPSHOT_PATTERN = "step_{step:06d}.pt"``).
SNAPSHOT_NAME = re.compile(r"^step_(\d+)\.pt$")

Loader = Callable[[], dict]


class SnapshotFolderDataset(AbstractDataset[None, dict[int, Loader]]):
    """``load()`` returns ``{step: loader}`` (sorted by step) for the ``step_*.pt`` files of a run folder.

    Loaders read lazily with ``weights_only=True``, so a selection node holds one snapshot at a time.
    ``last.pt`` and ``best.pt`` are not snapshots and are left out. A missing folder loads as ``{}`` with a
    warning (a run configured without snapshots leaves nothing to select from; that is not an error).
    Saving is refused: only the training engine writes here.
    """

    def __init__(self, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}

    def _steps(self) -> dict[int, Path]:
        if not self._path.is_dir():
            return {}
        found = {}
        for file in self._path.iterdir():
            match = SNAPSHOT_NAME.match(file.name)
            if match and file.is_file():
                found[int(match.group(1))] = file
        return dict(sorted(found.items()))

    def _exists(self) -> bool:
        return bool(self._steps())

    def load(self) -> dict[int, Loader]:
        steps = self._steps()
        if not steps:
            logger.warning("No step_*.pt snapshots in %s: nothing to select from.", self._path)
        return {step: (lambda file=file: load_checkpoint(file)) for step, file in steps.items()}

    def save(self, data: Any) -> None:
        raise DatasetError(
            f"SnapshotFolderDataset({self._path}) is read-only: the training engine writes snapshots "
            "(engine.snapshot_every into engine.checkpoint_dir)."
        )
