"""The comparison report as one self-contained HTML file: inline CSS, plots as base64 PNG, no external assets.

One file that can be mailed, attached to an MLflow run or opened from disk years later, without a server
and without network access.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from adaptseg.data.labels import protocol_class_names
from adaptseg.reporting.comparison import BASELINE, OURS, PUBLISHED, number

#: Report sections after the tables: (anchor id, heading, key of the figure, explanation).
FIGURE_SECTIONS: tuple[tuple[str, str, str, str], ...] = (
    ("per-class-iou", "Per-class IoU", "per_class_iou",
     "IoU of each class on the target evaluation split, one bar per model."),
    ("training-curves", "Training curves", "training_curves",
     "Segmentation, adversarial and discriminator losses as logged during training (faint: raw values; "
     "line: moving average)."),
    ("confusion-matrices", "Confusion matrices", "confusion_matrices",
     "Rows are ground-truth classes, columns predictions; each row is normalised by its pixel count, so the "
     "diagonal is the recall of the class."),
    ("predictions", "Predictions on target images", "prediction_grid",
     "The first columns are the target image and its ground truth; then each model's prediction "
     "(Cityscapes colours, black = ignored)."),
)

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1500px;
       padding: 0 1rem; color: #222; }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
p.meta, p.note { color: #555; font-size: 0.9rem; }
nav a { margin-right: 1rem; }
div.table { overflow-x: auto; margin: 0.6rem 0 1.2rem; }
table { border-collapse: collapse; font-size: 0.8rem; }
th, td { border: 1px solid #ddd; padding: 0.2rem 0.45rem; text-align: right; }
th { background: #f4f4f4; } td.label, th.label { text-align: left; white-space: nowrap; }
tr.published td { font-style: italic; color: #666; background: #fafafa; }
figure { margin: 0.5rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
"""


def _table(header: Sequence[str], rows: Sequence[tuple[str, Sequence[str]]]) -> str:
    """A table whose first column is a label; ``rows`` are ``(css class, cells)``."""
    head = "".join(f'<th class="label">{html.escape(h)}</th>' if i == 0 else f"<th>{html.escape(h)}</th>"
                   for i, h in enumerate(header))
    body = []
    for css, cells in rows:
        tds = "".join(f'<td class="label">{html.escape(c)}</td>' if i == 0 else f"<td>{html.escape(c)}</td>"
                      for i, c in enumerate(cells))
        body.append(f'<tr class="{css}">{tds}</tr>')
    return f'<div class="table"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def summary_html(summary: pd.DataFrame) -> str:
    """mIoU per protocol of every model (and published row)."""
    protocols = [c for c in summary.columns if c.startswith("miou_")]
    gain = f"mIoU{protocols[0].split('_')[1]} − {BASELINE}" if protocols else "gain"
    header = ["model", "source", "images", "step", "precision", *(f"mIoU{c.split('_')[1]}" for c in protocols), gain]
    rows = []
    for _, r in summary.iterrows():
        ours = r["source"] == OURS
        precision = r.get("precision")
        cells = [str(r["row"]), "ours" if ours else "published (real data)",
                 str(int(r["images"])) if ours and pd.notna(r["images"]) else "",
                 str(int(r["step"])) if ours and pd.notna(r["step"]) else "",
                 str(precision) if ours and isinstance(precision, str) else "",
                 *(number(r[c]) for c in protocols), number(r.get("gain_vs_source_only"), sign=True)]
        rows.append(("ours" if ours else PUBLISHED, cells))
    return _table(header, rows)


def study_html(study: Mapping[str, Any], regime: str = "none") -> str:
    """The study's seed spread beside this run: mean ± std per method and the paired difference with
    source-only (95% interval), for one regime of ``make study``'s summary.json."""
    part = (study.get("regimes") or {}).get(regime)
    if not part:
        return '<p class="note">The study has no results for this regime.</p>'
    paired = part.get("paired") or {}
    rows = []
    for method, stats in part["methods"].items():
        if not stats.get("n"):
            continue
        diff = paired.get(f"{method} - {BASELINE}")
        interval = f"{diff['mean']:+.1f} [{diff['ci95'][0]:+.1f}, {diff['ci95'][1]:+.1f}]" if diff else "–"
        gap = (part.get("gap_closed") or {}).get(method)
        rows.append(("ours", [method, str(stats["n"]), f"{stats['mean']:.1f} ± {stats['std']:.1f}", interval,
                              f"{gap:.0%}" if gap is not None else "–"]))
    header = ["model", "seeds", "mIoU mean ± std", f"− {BASELINE}, mean [95% interval]", "gap to oracle closed"]
    return _table(header, rows)


def per_class_html(per_class: pd.DataFrame, protocol: int) -> str:
    """Per-class IoU and mIoU of every row of one protocol."""
    part = per_class[per_class["protocol"] == protocol]
    classes = list(protocol_class_names(protocol))
    rows = [("ours" if r["source"] == OURS else PUBLISHED, [str(r["row"]), *(number(r[c]) for c in classes),
                                                             number(r["miou"])])
            for _, r in part.iterrows()]
    return _table(["model", *classes, "mIoU"], rows)


def render_report(
    title: str,
    per_class: pd.DataFrame,
    summary: pd.DataFrame,
    figures: Mapping[str, str],
    published_source: str | None = None,
    meta: Sequence[str] = (),
    study: Mapping[str, Any] | None = None,
) -> str:
    """The whole report. ``figures`` maps the keys of :data:`FIGURE_SECTIONS` to base64 PNG strings; ``study``
    is ``make study``'s summary.json, whose seed spread goes beside this run's single numbers."""
    protocols = sorted(per_class["protocol"].unique(), reverse=True)
    nav = " ".join(f'<a href="#{anchor}">{html.escape(heading)}</a>'
                   for anchor, heading in [("comparison", "Comparison"), *((a, h) for a, h, _, _ in FIGURE_SECTIONS)])
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        *(f'<p class="meta">{html.escape(line)}</p>' for line in meta),
        f"<nav>{nav}</nav>",
        '<section id="comparison"><h2>Comparison</h2>',
        "<h3>mIoU per class protocol</h3>",
        summary_html(summary),
    ]
    if study:
        parts += [
            "<h3>Across seeds: the study (make study, shared layout)</h3>",
            '<p class="note">One run is one seed; adversarial training moves by points between seeds. These are '
            "the study's paired results on the same benchmark (its own budget and knobs chosen on dev), "
            "beside which this run's numbers should be read.</p>",
            study_html(study),
        ]
    for protocol in protocols:
        parts += [f"<h3>Per-class IoU, {int(protocol)} classes</h3>", per_class_html(per_class, int(protocol))]
    if published_source and (per_class["source"] == PUBLISHED).any():
        parts.append(
            f'<p class="note">Rows in italics are <strong>published numbers on real data</strong>, not ours: '
            f"{html.escape(published_source)}. Our rows come from this run's data and network.</p>"
        )
    parts.append("</section>")
    for anchor, heading, key, text in FIGURE_SECTIONS:
        parts.append(f'<section id="{anchor}"><h2>{html.escape(heading)}</h2><p class="note">{html.escape(text)}</p>')
        if figures.get(key):
            image = f'<img alt="{html.escape(heading)}" src="data:image/png;base64,{figures[key]}">'
            parts.append(f"<figure>{image}</figure>")
        else:
            parts.append('<p class="note">Not available for this run.</p>')
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
