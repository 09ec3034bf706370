"""How a study names a run at another adaptation budget than its default: ``<namespace>_<steps>_steps``.

The study runner writes the label, the summary reads it and configuration validation accepts it in comparisons;
one module says it for all three. Kept free of pandas and matplotlib so validation can import it cheaply.
"""

from __future__ import annotations

import re

_SUFFIX = re.compile(r"_(\d+)_steps$")


def budget_label(namespace: str, steps: int) -> str:
    """``dacs`` run with ``--adapt-steps 2000`` summarises as ``dacs_2000_steps``."""
    return f"{namespace}_{steps}_steps"


def budget_suffix(label: str) -> str:
    """The ``_<steps>_steps`` part of ``label``, or ``""`` for a run at the study's default budget."""
    found = _SUFFIX.search(label)
    return found.group() if found else ""


def split_budget(label: str) -> tuple[str, int | None]:
    """``("dacs", 2000)`` for ``dacs_2000_steps``; ``(label, None)`` for an unlabelled (default-budget) run."""
    found = _SUFFIX.search(label)
    return (label[: found.start()], int(found.group(1))) if found else (label, None)
