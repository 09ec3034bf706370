"""Summaries of a multi-seed study: mean ± std per method and paired differences with 95% intervals.

Adversarial training is noisy, so single runs say little; paired differences (same seed, same pretrained
checkpoint, same data order) remove the variance the methods share.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

#: Two-sided 95% Student-t quantiles by degrees of freedom (no SciPy dependency for a table lookup).
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
       12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}

#: Column order of the tables: baselines, adaptation methods, then the target-supervised upper bounds.
METHOD_ORDER = ("source_only", "adabn", "lambda0_control", "adaptsegnet_single", "adaptsegnet_multi", "oracle",
                "oracle_finetune")

#: (method, baseline) pairs whose paired differences the study reports.
COMPARISONS = (
    ("adaptsegnet_multi", "source_only"),
    ("adaptsegnet_multi", "lambda0_control"),
    ("adaptsegnet_multi", "adabn"),
    ("adaptsegnet_single", "source_only"),
    ("adabn", "source_only"),
    ("lambda0_control", "source_only"),
)


def t95(dof: int) -> float:
    """The 95% two-sided t quantile for ``dof`` degrees of freedom (nearest tabulated value at or below)."""
    if dof < 1:
        return math.nan
    return T95[max(k for k in T95 if k <= dof)]


def paired_difference(a: pd.Series, b: pd.Series) -> dict:
    """Mean, std and 95% t-interval of ``a - b`` over the seeds both have."""
    diff = (a - b).dropna()
    n = len(diff)
    mean = float(diff.mean()) if n else math.nan
    std = float(diff.std(ddof=1)) if n > 1 else math.nan
    half = t95(n - 1) * std / math.sqrt(n) if n > 1 else math.nan
    return {"n": n, "mean": mean, "std": std, "ci95": [mean - half, mean + half]}


def summarise_study(results: pd.DataFrame, split: str = "val") -> dict:
    """Tables (markdown, JSON) and a figure of per-method mIoU and paired differences on ``split``."""
    rows = results[results["split"] == split]
    order = [m for m in METHOD_ORDER if m in set(rows["method"])]
    shifts = [s for s in ("none", "mild", "strong") if s in set(rows["layout_shift"])]
    table = rows.pivot_table(index=["layout_shift", "seed"], columns="method", values="miou")
    summary: dict = {"split": split, "regimes": {}}
    lines = [f"# Adaptation study (target `{split}` mIoU, mean ± std over paired seeds)", ""]
    header = "| layout shift | seeds | " + " | ".join(order) + " |"
    lines += [header, "|---" * (len(order) + 2) + "|"]
    for shift in shifts:
        part = table.loc[shift]
        stats = {m: {"mean": float(part[m].mean()), "std": float(part[m].std(ddof=1)), "n": int(part[m].count())}
                 for m in order}
        summary["regimes"][shift] = {"methods": stats, "paired": {}}
        cells = [f"{stats[m]['mean']:.1f} ± {stats[m]['std']:.1f}" if stats[m]["n"] else "–" for m in order]
        lines.append(f"| {shift} | {int(part.notna().any(axis=1).sum())} | " + " | ".join(cells) + " |")
        for a, b in COMPARISONS:
            if a in part and b in part and (part[a] - part[b]).count() >= 2:  # a method a regime skipped has no pairs
                summary["regimes"][shift]["paired"][f"{a} - {b}"] = paired_difference(part[a], part[b])
    lines += ["", "Paired differences (mean, 95% interval over seeds):", ""]
    lines += ["| layout shift | comparison | mean | 95% interval |", "|---|---|---|---|"]
    for shift in shifts:
        for name, d in summary["regimes"][shift]["paired"].items():
            lines.append(f"| {shift} | {name} | {d['mean']:+.1f} | [{d['ci95'][0]:+.1f}, {d['ci95'][1]:+.1f}] |")
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / max(len(shifts), 1)
    x = np.arange(len(order))
    for i, shift in enumerate(shifts):
        stats = summary["regimes"][shift]["methods"]
        ax.bar(x + i * width, [stats[m]["mean"] for m in order], width, yerr=[stats[m]["std"] for m in order],
               capsize=3, label=f"layout shift: {shift}")
    ax.set_xticks(x + 0.4 - width / 2, order, rotation=20, ha="right")
    ax.set_ylabel(f"target {split} mIoU (mean ± std over seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return {"json": summary, "markdown": "\n".join(lines) + "\n", "figure": fig}
