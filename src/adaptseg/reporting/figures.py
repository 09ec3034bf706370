"""Figures of the comparison report: per-class IoU bars, training curves, confusion matrices, predictions.

Plain functions from in-memory results to matplotlib ``Figure`` objects, made without pyplot so that no
global figure registry fills up. The pipeline saves them as catalog datasets and embeds them in the HTML
report; a notebook can call them on any metric files.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from adaptseg.data.labels import colorize_train_ids, protocol_class_names, protocol_palette
from adaptseg.reporting.comparison import OURS

History = Mapping[str, Sequence[Mapping[str, float]]]


def method_colours(methods: Sequence[str]) -> dict[str, Any]:
    """One colour per method, the same in every figure of a report (tab10 in the given order)."""
    palette = matplotlib.colormaps["tab10"]
    return {method: palette(i % 10) for i, method in enumerate(methods)}


def figure_to_base64_png(fig: Figure, dpi: int = 110) -> str:
    """The figure as a base64 PNG string, for ``<img src="data:image/png;base64,...">``."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _message(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def per_class_iou_bars(per_class: pd.DataFrame, protocol: int | None = None) -> Figure:
    """Grouped bars: IoU of every class of ``protocol`` (default: the widest), one bar per model of ours."""
    protocol = int(protocol or per_class["protocol"].max())
    rows = per_class[(per_class["protocol"] == protocol) & (per_class["source"] == OURS)]
    classes = list(protocol_class_names(protocol))
    methods = rows["method"].tolist()
    colours = method_colours(methods)
    fig = Figure(figsize=(max(10, 0.75 * len(classes)), 4.2))
    ax = fig.subplots()
    width = 0.8 / max(len(methods), 1)
    x = np.arange(len(classes))
    for i, (_, row) in enumerate(rows.iterrows()):
        values = [row[c] if pd.notna(row[c]) else 0.0 for c in classes]
        ax.bar(x + (i - (len(methods) - 1) / 2) * width, values, width, color=colours[row["method"]],
               label=f"{row['method']} (mIoU {row['miou']:.1f})")
    ax.set_xticks(x, classes, rotation=40, ha="right", fontsize=8)
    ax.set_ylabel("IoU (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"Per-class IoU on target {rows['split'].iloc[0] if len(rows) else ''} ({protocol} classes)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=min(len(methods), 3), loc="upper right")
    fig.tight_layout()
    return fig


def ema(values: Sequence[float], smoothing: float) -> np.ndarray:
    """Exponential moving average (``smoothing`` = weight of the past; 0 returns the values unchanged)."""
    out = np.empty(len(values), dtype=float)
    state = None
    for i, value in enumerate(values):
        state = value if state is None else smoothing * state + (1 - smoothing) * value
        out[i] = state
    return out


def training_curves(
    histories: Mapping[str, History], groups: Mapping[str, Sequence[str]], smoothing: float = 0.0
) -> Figure:
    """One panel per loss group (e.g. segmentation, adversarial, discriminator), one colour per model.

    Within a panel the first metric of the group is drawn solid, the next ones dashed (``main`` vs ``aux``
    level). Raw values are faint; the line is their moving average. Models without such a loss (a supervised
    model has no adversarial loss) simply do not appear in that panel.
    """
    colours = method_colours(list(histories))
    fig = Figure(figsize=(5 * len(groups), 3.6))
    axes = fig.subplots(1, len(groups), squeeze=False)
    styles = ["-", "--", ":", "-."]
    for ax, (group, metrics) in zip(axes[0], groups.items(), strict=True):
        drawn = 0
        for method, history in histories.items():
            for k, metric in enumerate(metrics):
                points = history.get(metric) or []
                if not points:
                    continue
                steps = [p["step"] for p in points]
                values = [p["value"] for p in points]
                if smoothing > 0:
                    ax.plot(steps, values, color=colours[method], alpha=0.2, linewidth=0.8)
                ax.plot(steps, ema(values, smoothing), styles[k % len(styles)], color=colours[method],
                        linewidth=1.4, label=f"{method}: {metric}")
                drawn += 1
        ax.set_title(f"{group} loss")
        robust_limits(ax, [[p["value"] for p in h.get(m) or []] for h in histories.values() for m in metrics])
        if drawn:
            ax.set_xlabel("step")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        else:
            _message(ax, f"no model logged {', '.join(metrics)}")
    fig.tight_layout()
    return fig


def robust_limits(ax, series: Sequence[Sequence[float]]) -> None:
    """Y limits from the 2nd to the 98th percentile of the values (with a margin): the first steps' spikes
    would otherwise flatten every curve into a line at the bottom."""
    present = [np.asarray(v, dtype=float) for v in series if len(v)]
    values = np.concatenate(present) if present else np.empty(0)
    values = values[np.isfinite(values)]
    if len(values) < 5:
        return
    low, high = np.percentile(values, [2, 98])
    margin = 0.1 * (high - low) or 0.05 * max(abs(high), 1e-6)
    ax.set_ylim(low - margin, high + margin)


def normalised_confusion(confusion: Sequence[Sequence[float]]) -> np.ndarray:
    """Each ground-truth row divided by its pixel count (rows without pixels stay zero)."""
    matrix = np.asarray(confusion, dtype=np.float64)
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)


def confusion_matrices(evaluations: Mapping[str, Mapping[str, Any]], columns: int = 3) -> Figure:
    """One row-normalised confusion matrix per model (rows: ground truth, columns: prediction)."""
    methods = list(evaluations)
    columns = max(1, min(columns, len(methods)))
    rows = math.ceil(len(methods) / columns) if methods else 1
    fig = Figure(figsize=(5.2 * columns + 1, 5.0 * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False)
    image = None
    for index, (ax, method) in enumerate(zip(axes.flat, methods, strict=False)):
        metrics = evaluations[method]
        matrix = normalised_confusion(metrics["confusion_matrix"])
        n = matrix.shape[0]
        names = protocol_class_names(n) if n in (19, 16, 13) else [str(i) for i in range(n)]
        image = ax.imshow(matrix, cmap="viridis", vmin=0.0, vmax=1.0)
        ax.set_xticks(range(n), names, rotation=90, fontsize=6)
        ax.set_yticks(range(n), names, fontsize=6)
        main = metrics["protocols"].get(str(n), {}).get("miou", float("nan"))
        ax.set_title(f"{method} (mIoU{n} {main:.1f})", fontsize=9)
        ax.set_xlabel("predicted", fontsize=8)
        if index % columns == 0:
            ax.set_ylabel("ground truth", fontsize=8)
    for ax in list(axes.flat)[len(methods):]:
        ax.axis("off")
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6, label="fraction of the ground-truth row")
    return fig


def prediction_grid(examples: Mapping[str, Any]) -> Figure:
    """Rows: target images; columns: image, ground truth, then each model's colourised prediction.

    ``examples``: ``names``, ``images`` (H×W×3 uint8), ``labels`` and ``predictions[method]`` (H×W train ids),
    ``num_classes``.
    """
    names, images, labels = examples["names"], examples["images"], examples["labels"]
    predictions: Mapping[str, Sequence[np.ndarray]] = examples["predictions"]
    num_classes = int(examples["num_classes"])
    titles = ["image", "ground truth", *predictions]
    rows, columns = max(len(names), 1), len(titles)
    aspect = images[0].shape[0] / images[0].shape[1] if images else 0.5
    fig = Figure(figsize=(2.6 * columns, 2.6 * aspect * rows + 0.6))
    axes = fig.subplots(rows, columns, squeeze=False)
    for r, name in enumerate(names):
        panels = [images[r], colorize_train_ids(labels[r], num_classes)]
        panels += [colorize_train_ids(predictions[m][r], num_classes) for m in predictions]
        for c, panel in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(panel, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize=9)
            if c == 0:
                ax.set_ylabel(name, fontsize=7)
    if not names:
        _message(axes[0, 0], "no target images")
    class_legend(fig, num_classes)
    fig.tight_layout(rect=(0, 0.12 if rows < 3 else 0.06, 1, 1))
    return fig


def class_legend(fig: Figure, num_classes: int) -> None:
    """The classes' colours and names below a figure's panels (black is 'ignored')."""
    from matplotlib.patches import Patch

    known = num_classes in (19, 16, 13)
    names = protocol_class_names(num_classes) if known else [str(i) for i in range(num_classes)]
    colours = protocol_palette(num_classes) / 255.0 if known else ["grey"] * num_classes
    handles = [Patch(color=colour, label=name) for colour, name in zip(colours, names, strict=True)]
    handles.append(Patch(color="black", label="ignored"))
    fig.legend(handles=handles, loc="lower center", ncol=min(10, len(handles)), fontsize=7, frameon=False)
