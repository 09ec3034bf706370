"""A raw dataset root (GTA5, Cityscapes, SYNTHIA layout) as a catalog entry.

Loading gives a :class:`RawDomain` handle (kind + root) for the ingestion scanner; saving writes a
generated domain (the synthetic default) into that root. Both ends are one catalog entry, so Kedro runs
``synthesis`` before ``ingestion`` and Kedro-Viz draws the lineage. A root that this project did not
write is never overwritten (see ``FolderDataset.protect_marker``).
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

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

    def save(self, data: dict[str, Any]) -> None:
        """Write a generated domain, holding this root's writer lock for the rest of the process."""
        hold_writer_lock(self._path)
        super().save(data)

    def load(self) -> RawDomain:  # type: ignore[override]
        if not self._path.is_dir():
            raise DatasetError(
                f"Dataset root {self._path} ({self._kind}) does not exist. Generate the synthetic default with "
                "`kedro run --pipelines synthesis`, or point the catalog's root at your copy of the data."
            )
        return RawDomain(kind=self._kind, root=self._path)


#: Writer locks this process holds, by root: kept until it exits, so that everything one run generates
#: (source and target of one seed) is written before another process may write there.
_LOCKS: dict[Path, IO[str]] = {}


def hold_writer_lock(root: Path) -> None:
    """Take the exclusive lock of a generated root (``.<root>.lock`` beside it) or fail naming its holder.

    Two `synthesis` runs at once (seeds 0 and 1, say) otherwise interleave their writes and leave one seed's
    source beside the other's target, both exiting 0. The lock is released when the holding process ends,
    however it ends.
    """
    root = Path(root).resolve()
    if root in _LOCKS:
        return
    lock_path = root.parent / f".{root.name}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(lock_path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise DatasetError(
            f"{root} is being written by {holder}, another run of the synthesis pipeline. Two runs writing "
            "the generated data at once would mix their domains; wait for it to finish (or stop it), then rerun."
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"process {os.getpid()}")
    handle.flush()
    _LOCKS[root] = handle
