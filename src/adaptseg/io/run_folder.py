"""A training run's folder (``last.pt``, ``best.pt``, ``step_XXXXXX.pt``) as a catalog dataset.

The catalog says once where each namespace's run lives (``"{namespace}.run"``); the training node writes
its checkpoints there through the engine, and model selection reads the snapshots from the same entry, so
the two can never point at different folders. Referenced in YAML as ``adaptseg.io.RunFolderDataset``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kedro.io.core import AbstractDataset, DatasetError

from adaptseg.training.checkpoint import load_checkpoint

logger = logging.getLogger(__name__)

#: Snapshot file names as the engine writes them (``SNAPSHOT_PATTERN = "step_{step:06d}.pt"``).
SNAPSHOT_NAME = re.compile(r"^step_(\d+)\.pt$")

Loader = Callable[[], dict]


@dataclass(frozen=True)
class RunFolder:
    """Where one training run keeps its checkpoints; nothing is read until asked."""

    path: Path

    def snapshots(self) -> dict[int, Loader]:
        """``{step: loader}`` (sorted by step) of the weights-only ``step_*.pt`` files; ``{}`` when none.

        Loaders read lazily with ``weights_only=True``, so a selection node holds one snapshot at a time.
        """
        if not self.path.is_dir():
            return {}
        found = {}
        for file in self.path.iterdir():
            match = SNAPSHOT_NAME.match(file.name)
            if match and file.is_file():
                found[int(match.group(1))] = file
        return {step: (lambda file=file: load_checkpoint(file)) for step, file in sorted(found.items())}


class RunFolderDataset(AbstractDataset[None, RunFolder]):
    """``load()`` gives the run's :class:`RunFolder`; saving is refused (only the training engine writes)."""

    def __init__(self, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}

    def _exists(self) -> bool:
        return True  # a folder to write into; it need not exist before the run

    def load(self) -> RunFolder:
        return RunFolder(self._path)

    def save(self, data: Any) -> None:
        raise DatasetError(
            f"RunFolderDataset({self._path}) is read-only: the training engine writes its checkpoints there."
        )
