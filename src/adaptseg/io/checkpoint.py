"""Versioned model checkpoints in the catalog, written atomically.

``kedro_datasets_experimental.pytorch.PyTorchDataset`` saves a module's ``state_dict`` only; a trained
model here is a dict (segmenter weights, its architecture and options, discriminators, the training
config), so that evaluation can rebuild the network without guessing.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import fsspec
from kedro.io.core import (
    AbstractVersionedDataset,
    DatasetError,
    Version,
    get_filepath_str,
    get_protocol_and_path,
)

from adaptseg.io.files import check_missing
from adaptseg.training.checkpoint import load_checkpoint, save_checkpoint


class TorchCheckpointDataset(AbstractVersionedDataset[dict, dict]):
    """A checkpoint dict saved with ``torch.save`` (atomically) and loaded with ``weights_only=True``.

    ``missing: none`` loads ``None`` where no checkpoint was saved yet (see ``adaptseg.io.files``).
    """

    def __init__(
        self,
        filepath: str,
        version: Version | None = None,
        metadata: dict[str, Any] | None = None,
        missing: str = "error",
    ) -> None:
        protocol, path = get_protocol_and_path(filepath, version)
        if protocol != "file":
            raise DatasetError(f"TorchCheckpointDataset writes local files only, got {filepath!r}.")
        self._protocol = protocol
        self._fs = fsspec.filesystem(protocol)
        self.metadata = metadata
        self._missing_as_none = check_missing(missing, f"TorchCheckpointDataset({filepath})")
        super().__init__(
            filepath=PurePosixPath(path), version=version, exists_function=self._fs.exists, glob_function=self._fs.glob
        )

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "version": self._version}

    def load(self) -> dict | None:
        if self._missing_as_none and not self.exists():
            return None
        return load_checkpoint(get_filepath_str(self._get_load_path(), self._protocol))

    def save(self, data: dict) -> None:
        save_checkpoint(get_filepath_str(self._get_save_path(), self._protocol), data)

    def _exists(self) -> bool:
        try:
            path = self._get_load_path()
        except DatasetError:
            return False
        return self._fs.exists(get_filepath_str(path, self._protocol))
