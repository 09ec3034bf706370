"""Comparison tables of evaluated models: per-class IoU and mIoU per class protocol, published rows beside.

Input: ``{method: metrics}`` where ``metrics`` is what the evaluation node writes (``method``, ``split``,
``images``, ``step``, ``confusion_matrix``, ``protocols: {"19": {miou, pixel_accuracy, iou: {class: v}}}``).
Kedro-free and pure, so the tables can be rebuilt in a notebook from any set of metric files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from adaptseg.data.labels import TRAIN_CLASSES, protocol_class_names
from adaptseg.reporting.published import PublishedBenchmark

OURS = "ours"
PUBLISHED = "published"
#: The model every other is measured against (the report's gain column).
BASELINE = "source_only"

#: Columns of the per-class table before the class columns.
ID_COLUMNS = (
    "protocol", "source", "method", "row", "split", "images", "step", "precision", "miou", "pixel_accuracy",
)


def protocols_of(evaluations: Mapping[str, Mapping[str, Any]]) -> list[int]:
    """Every protocol any model was scored in, the widest (19) first."""
    return sorted({int(p) for metrics in evaluations.values() for p in metrics["protocols"]}, reverse=True)


def _ours(method: str, metrics: Mapping[str, Any], protocol: int) -> dict[str, Any] | None:
    scores = metrics["protocols"].get(str(protocol))
    if scores is None:
        return None
    return {
        "protocol": protocol,
        "source": OURS,
        "method": method,
        "row": method,
        "split": metrics.get("split"),
        "images": metrics.get("images"),
        "step": metrics.get("step"),
        "precision": metrics.get("precision"),
        "miou": scores["miou"],
        "pixel_accuracy": scores.get("pixel_accuracy"),
        **{name: scores["iou"].get(name) for name in TRAIN_CLASSES},
    }


def _published(row, protocol: int) -> dict[str, Any]:
    return {
        "protocol": protocol,
        "source": PUBLISHED,
        "method": row.compares_to,
        "row": row.label,
        "miou": row.miou,
        **{name: row.iou.get(name) for name in TRAIN_CLASSES},
    }


def per_class_table(
    evaluations: Mapping[str, Mapping[str, Any]], benchmark: PublishedBenchmark | None = None
) -> pd.DataFrame:
    """One row per (protocol, model): mIoU, pixel accuracy and the IoU of each class (percent).

    Class columns are the 19 Cityscapes train classes; a class outside a row's protocol is empty. Where
    ``benchmark`` was measured in the same protocol, each published row follows the model it corresponds to
    (``source == "published"``); published rows without a matching model come last in their protocol.
    """
    rows: list[dict[str, Any]] = []
    for protocol in protocols_of(evaluations):
        published = list(benchmark.rows) if benchmark is not None and benchmark.protocol == protocol else []
        for method, metrics in evaluations.items():
            row = _ours(method, metrics, protocol)
            if row is None:
                continue
            rows.append(row)
            rows += [_published(p, protocol) for p in published if p.compares_to == method]
        rows += [_published(p, protocol) for p in published if p.compares_to not in evaluations]
    table = pd.DataFrame(rows, columns=[*ID_COLUMNS, *TRAIN_CLASSES])
    return table.astype({"miou": float, "pixel_accuracy": float, **{name: float for name in TRAIN_CLASSES}})


def summary_table(per_class: pd.DataFrame) -> pd.DataFrame:
    """mIoU of every row of :func:`per_class_table` per protocol side by side (``miou_19``, ``miou_16``, …)."""
    protocols = sorted(per_class["protocol"].unique(), reverse=True)
    keys = ["source", "method", "row"]
    order = per_class.drop_duplicates(keys)[keys]
    wide = per_class.pivot_table(index=keys, columns="protocol", values="miou", aggfunc="first", dropna=False)
    wide.columns = [f"miou_{p}" for p in wide.columns]
    summary = order.merge(wide.reset_index(), on=keys, how="left")
    ours = per_class[per_class["source"] == OURS].drop_duplicates("method")
    meta = ours.set_index("method")[["split", "images", "step", "precision"]]
    summary = summary.join(meta, on="method")
    summary.loc[summary["source"] != OURS, ["split", "images", "step", "precision"]] = None
    widest = f"miou_{protocols[0]}" if protocols else None
    baseline = summary[(summary["source"] == OURS) & (summary["method"] == BASELINE)]
    summary["gain_vs_source_only"] = (
        summary[widest] - float(baseline[widest].iloc[0]) if widest and len(baseline) else float("nan")
    )
    summary.loc[summary["source"] != OURS, "gain_vs_source_only"] = None
    return summary[[*keys, "split", "images", "step", "precision", *(f"miou_{p}" for p in protocols),
                    "gain_vs_source_only"]]


def number(value: Any, sign: bool = False) -> str:
    """An IoU to one decimal (with its sign for a difference: ``+1.2``), or ``–`` where there is none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{float(value):{'+' if sign else ''}.1f}"


def _label(row: Mapping[str, Any]) -> str:
    return f"*{row['row']}*" if row["source"] == PUBLISHED else f"`{row['row']}`"


def markdown_tables(per_class: pd.DataFrame, summary: pd.DataFrame, published_source: str | None = None) -> str:
    """The comparison as markdown: an mIoU summary, then one per-class table per protocol.

    Published rows are in italics and named ``paper: …``; the note under the tables says where they come
    from and that they were measured on real data.
    """
    protocols = [int(c.split("_")[1]) for c in summary.columns if c.startswith("miou_")]
    ours = summary[summary["source"] == OURS]
    split = ours["split"].iloc[0] if len(ours) else "?"
    lines = [f"# Comparison on target `{split}` (IoU in %)", ""]
    gain = f"mIoU{protocols[0]} − {BASELINE}" if protocols else "gain"
    lines += ["| model | images | step | precision | " + " | ".join(f"mIoU{p}" for p in protocols) + f" | {gain} |"]
    lines += ["|---|---:|---:|---|" + "---:|" * (len(protocols) + 1)]
    for _, row in summary.iterrows():
        ours = row["source"] == OURS
        images = str(int(row["images"])) if ours else ""
        step = str(int(row["step"])) if ours and pd.notna(row["step"]) else ""
        precision = str(row.get("precision") or "") if ours and pd.notna(row.get("precision")) else ""
        cells = [number(row[f"miou_{p}"]) for p in protocols] + [number(row.get("gain_vs_source_only"), sign=True)]
        lines.append(f"| {_label(row)} | {images} | {step} | {precision} | " + " | ".join(cells) + " |")
    for protocol in protocols:
        part = per_class[per_class["protocol"] == protocol]
        classes = list(protocol_class_names(protocol))
        lines += ["", f"## Per-class IoU, {protocol} classes", ""]
        lines += ["| model | " + " | ".join(classes) + " | mIoU |", "|---|" + "---:|" * (len(classes) + 1)]
        for _, row in part.iterrows():
            cells = [number(row[c]) for c in classes] + [number(row["miou"])]
            lines.append(f"| {_label(row)} | " + " | ".join(cells) + " |")
    if published_source and (per_class["source"] == PUBLISHED).any():
        lines += [
            "",
            f"*Italic rows are published numbers, not ours:* {published_source}. They were measured on the real "
            "datasets with the paper's network; our rows come from this run's data and network.",
        ]
    return "\n".join(lines) + "\n"
