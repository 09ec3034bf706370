"""Atomic replacement of files and folders, so that an interrupted write never leaves half a result.

Temporary names carry the writer's process id (``temporary_token``), so that ``adaptseg.io.stale`` can
remove what a killed run left behind without touching the work in progress of a live one.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def temporary_token() -> str:
    """``<pid>-<random>``: unique, and tells a later cleanup whether its writer still runs."""
    return f"{os.getpid()}-{uuid.uuid4().hex[:8]}"


@contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield a fresh staging folder beside ``target``; on success swap it into place, on error delete it.

    The old ``target`` is kept until the new one is complete, then removed, so readers see either the
    old or the new folder, never a mixture.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    token = temporary_token()
    staging = target.with_name(f".{target.name}.staging-{token}")
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    backup = target.with_name(f".{target.name}.old-{token}")
    if target.exists():
        os.replace(target, backup)
    os.replace(staging, target)
    shutil.rmtree(backup, ignore_errors=True)


@contextmanager
def atomic_file(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success ``os.replace`` it onto ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{temporary_token()}")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def exclusive_lock(path: Path, wait: bool = True) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for a read-modify-write that processes
    sharing a folder must not interleave; released when the block ends or the process dies. ``wait=False``
    raises ``BlockingIOError`` at once where another process holds it (so a caller can do other work first)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
