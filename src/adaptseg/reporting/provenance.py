"""What produced a run: the code version (git) and the data version, as MLflow tag values.

A number in MLflow is only worth keeping when one can say which code and which data gave it. These
helpers never fail: outside a git checkout (an installed package, a copied project) they say "unknown".
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

UNKNOWN = "unknown"


def _git(project_path: Path, *args: str) -> str | None:
    """Output of a read-only git command in ``project_path``; ``None`` when git or the repository is missing."""
    try:
        done = subprocess.run(
            ["git", "--no-optional-locks", "-C", str(project_path), *args],  # never touches the index
            capture_output=True,
            text=True,
            timeout=10,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_tags(project_path: str | Path) -> dict[str, str]:
    """``git.commit``, ``git.branch`` and ``git.dirty`` (uncommitted changes to tracked files) of the project."""
    path = Path(project_path)
    commit = _git(path, "rev-parse", "HEAD")
    if commit is None:
        return {"git.commit": UNKNOWN, "git.branch": UNKNOWN, "git.dirty": UNKNOWN}
    status = _git(path, "status", "--porcelain", "--untracked-files=no")
    return {
        "git.commit": commit,
        "git.branch": _git(path, "rev-parse", "--abbrev-ref", "HEAD") or UNKNOWN,
        "git.dirty": UNKNOWN if status is None else str(bool(status)).lower(),
    }


def stable_hash(value: Any, length: int = 12) -> str:
    """Short SHA-256 of a JSON-able value with sorted keys: equal configurations give equal hashes."""
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def resolved_synthesis(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The synthetic generator's full configuration (defaults filled in), or the raw parameters.

    Hashing the resolved configuration makes two parameter files that mean the same data hash the same.
    """
    if not params:
        return None
    generator = dict(params.get("generator") or {})
    try:
        from adaptseg.synth import SynthesisConfig

        generator = dataclasses.asdict(SynthesisConfig.from_dict(generator))
    except Exception:  # an invalid configuration fails in the synthesis node, with its own message
        pass
    return {**{k: v for k, v in params.items() if k != "generator"}, "generator": generator}


def data_tags(
    raw_domains: Mapping[str, Mapping[str, Any]], synthesis: Mapping[str, Any] | None
) -> dict[str, str]:
    """Tags that identify the data a run read.

    ``raw_domains``: ``{"source": {"kind", "root"}, "target": {...}}`` as the catalog resolved them (run-time
    overrides included). ``data.synthesis_hash`` identifies the generated data when the roots are the
    synthetic ones; ``data.version`` combines everything into one value to group runs by.
    """
    tags = {f"data.{name}": f"{spec.get('kind', '?')}:{spec.get('root', '?')}" for name, spec in raw_domains.items()}
    resolved = resolved_synthesis(synthesis)
    if resolved is not None:
        tags["data.synthesis_hash"] = stable_hash(resolved)
    tags["data.version"] = stable_hash({"raw": raw_domains, "synthesis": resolved})
    return tags
