"""Which snapshot of an adaptation run to report, and on what evidence, stated next to each choice.

Papers in this line pick the best snapshot on Cityscapes val, which is also their test set (AdaptSegNet #19,
ADVENT #3, #15). That number is reported here, labelled as such, beside two choices that do not look at the
test labels: the last snapshot, and the one with the lowest mean prediction entropy on target-train images.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

LAST = "last"
BEST_ON_TEST = "best_val"
MIN_ENTROPY = "min_entropy"

#: The label that must travel with a test-label selection.
TEST_LABEL_SELECTION = "selected on the test labels (as the papers do)"


def selection_labels(val_split: str, entropy_split: str, entropy_images: int) -> dict[str, str]:
    """Human-readable label of each selection rule, naming the data it looked at."""
    return {
        LAST: "last snapshot (no selection)",
        BEST_ON_TEST: f"highest mIoU on target {val_split}: {TEST_LABEL_SELECTION}",
        MIN_ENTROPY: (
            f"lowest mean prediction entropy on the first {entropy_images} target {entropy_split} images "
            "(needs no target labels)"
        ),
    }


def _pick(records: Sequence[dict[str, Any]], key: str, better: Callable[[float, float], bool]) -> dict | None:
    """The first record (in step order) with the best finite ``key``; None when none is finite."""
    best = None
    for record in records:
        value = record.get(key)
        if value is None or not math.isfinite(value):
            continue
        if best is None or better(value, best[key]):
            best = record
    return best


def select_snapshots(records: Sequence[dict[str, Any]], labels: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The three selections over per-snapshot ``{step, val_miou, train_entropy, ...}`` records.

    Ties go to the earlier step; a rule with nothing to choose from gets ``step: None``. Each selection
    repeats the chosen snapshot's val mIoU, so the cost of selecting without test labels reads directly as
    the difference to the test-label selection.
    """
    ordered = sorted(records, key=lambda r: r["step"])
    chosen = {
        LAST: ordered[-1] if ordered else None,
        BEST_ON_TEST: _pick(ordered, "val_miou", lambda a, b: a > b),
        MIN_ENTROPY: _pick(ordered, "train_entropy", lambda a, b: a < b),
    }
    return {
        rule: {"label": labels[rule], **(record if record is not None else {"step": None})}
        for rule, record in chosen.items()
    }
