"""Best-of-N wall time per item: the least-disturbed measurement on a shared machine."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any


def best_seconds_per_item(fn: Callable[[Any], object], items: Sequence, repeats: int = 3) -> float:
    """The fastest of ``repeats`` passes over ``items``, divided by the number of items."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for item in items:
            fn(item)
        best = min(best, time.perf_counter() - start)
    return best / len(items)
