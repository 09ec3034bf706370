"""Leftovers of killed runs: staging and backup folders, temporary files, version folders left empty.

Every atomic write in the project stages beside its target under a name that carries the writer's process
id (``.<name>.staging-<pid>-<random>``, ``.<name>.old-...``, ``.<name>.tmp-...``). A kill leaves them behind;
:func:`clean_stale` removes those whose writer no longer runs (never a live run's), and then version folders
that hold nothing. It runs when a Kedro session starts and as ``make clean-stale``.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import time
from pathlib import Path

logger = logging.getLogger(__name__)

#: ``.<name>.<kind>-<pid>-<random>``; names from before process ids were recorded have no ``<pid>-``.
LEFTOVER = re.compile(r"^\..+\.(?P<kind>staging|old|tmp)-(?:(?P<pid>\d+)-)?[0-9a-z_]+$")
#: A leftover without a process id counts as stale once it is this old (seconds).
UNKNOWN_WRITER_AGE = 3600.0


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (this process counts as alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, run by another user
        return True
    return True


def is_stale(path: Path, now: float | None = None) -> bool:
    """True for a leftover of a writer that is gone (or, without a process id, one older than an hour)."""
    match = LEFTOVER.match(path.name)
    if match is None:
        return False
    if match["pid"] is not None:
        return not process_alive(int(match["pid"]))
    age = (now or time.time()) - path.lstat().st_mtime
    return age > UNKNOWN_WRITER_AGE


def clean_stale(root: str | Path) -> list[Path]:
    """Remove the stale leftovers under ``root`` and the version folders they leave empty; return what went."""
    root = Path(root)
    if not root.is_dir():
        return []
    removed: list[Path] = []
    for path in sorted(root.rglob(".*"), key=lambda p: len(p.parts)):
        if not path.exists() or not is_stale(path):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
        parent = path.parent
        if parent != root and _looks_like_version(parent) and not any(parent.iterdir()):
            parent.rmdir()  # a versioned dataset's folder that only ever held the temporary file
            removed.append(parent)
    for path in removed:
        logger.warning("Removed a leftover of a killed run: %s", path)
    return removed


def _looks_like_version(folder: Path) -> bool:
    """Kedro's version folders are timestamps: ``2026-12-04T18.35.13.123Z``."""
    return re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}\.\d{2}\.\d{2}\.\d{3}Z", folder.name) is not None


def main(argv: list[str] | None = None) -> None:
    """``python -m adaptseg.io.stale [folder ...]`` (default ``data``): remove and list the leftovers."""
    folders = (argv if argv is not None else sys.argv[1:]) or ["data"]
    removed = [path for folder in folders for path in clean_stale(folder)]
    for path in removed:
        print(f"removed {path}")
    print(f"{len(removed)} leftover(s) of killed runs removed under {', '.join(folders)}")


if __name__ == "__main__":
    main()
