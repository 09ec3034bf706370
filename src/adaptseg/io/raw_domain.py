"""A raw dataset root (GTA5, Cityscapes, SYNTHIA layout) as a catalog entry.

Loading gives a :class:`RawDomain` handle (kind + root) for the ingestion scanner; saving writes a
generated domain (the synthetic default) into that root. Both ends are one catalog entry, so Kedro runs
``synthesis`` before ``ingestion`` and Kedro-Viz draws the lineage. A root that this project did not
write is never overwritten (see ``FolderDataset.protect_marker``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kedro.io.core import DatasetError

from adaptseg.io.folder import FolderDataset

SYNTHETIC_MARKER = ".adaptseg-synthetic"
KNOWN_KINDS = ("gta5", "cityscapes", "synthia")


@dataclass(frozen=True)
class RawDomain:
    """Where a domain's files are and which dataset layout they follow."""

    kind: str
    root: Path


class RawDomainDataset(FolderDataset):
    """Catalog entry for a raw domain root: ``{type: adaptseg.io.RawDomainDataset, kind: gta5, root: ...}``."""

    def __init__(self, kind: str, root: str, metadata: dict[str, Any] | None = None) -> None:
        if kind not in KNOWN_KINDS:
            raise DatasetError(f"Unknown dataset kind {kind!r} for root {root}; choose one of {KNOWN_KINDS}.")
        super().__init__(path=root, format="png", protect_marker=SYNTHETIC_MARKER, metadata=metadata)
        self._kind = kind

    def _describe(self) -> dict[str, Any]:
        return {"kind": self._kind, "root": str(self._path)}

    def load(self) -> RawDomain:  # type: ignore[override]
        if not self._path.is_dir():
            raise DatasetError(
                f"Dataset root {self._path} ({self._kind}) does not exist. Generate the synthetic default with "
                "`kedro run --pipelines synthesis`, or point the catalog's root at your copy of the data."
            )
        return RawDomain(kind=self._kind, root=self._path)
