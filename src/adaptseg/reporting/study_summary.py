"""Summaries of a multi-seed study: mean ± std per method and regime, paired differences with 95% intervals,
and how much of the gap to the fine-tuned oracle each method closes.

Adversarial training is noisy, so single runs say little; paired differences (same seed, same pretrained
checkpoint, same data order) remove the variance the methods share.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from adaptseg.reporting.budgets import budget_suffix, split_budget  # noqa: E402

#: Two-sided 95% Student-t quantiles by degrees of freedom (no SciPy dependency for a table lookup).
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
       12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}

#: The method whose gain over source-only is the ceiling of "gap closed".
UPPER_BOUND = "oracle_finetune"
SOURCE_ONLY = "source_only"


def at_budget_of(method: str, baseline: str, present: Collection[str]) -> str:
    """``baseline`` at ``method``'s adaptation budget where the study has it (``dacs_4000_steps`` is held against
    ``source_only_4000_steps``), else ``baseline`` itself: a longer run is never credited with its extra steps."""
    suffix = budget_suffix(method)
    matched = baseline + suffix if suffix and not budget_suffix(baseline) else baseline
    return matched if matched in present else baseline


def budget_pairs(
    methods: Sequence[str], comparisons: Sequence[Sequence[str]], base_steps: int | None
) -> list[tuple[str, str]]:
    """Pairs that hold a run at another budget against runs at its own, so that no extra steps go uncredited or
    unseen: every ``<namespace>_<steps>_steps`` against the fine-tuned oracle at those steps and against its own
    namespace at the next lower budget the study has (its unlabelled name is ``base_steps``; without it, only
    labelled budgets are ordered), and each of ``comparisons`` repeated at every budget both sides ran."""
    present = set(methods)

    def steps(method: str) -> int | None:
        labelled = split_budget(method)[1]
        return base_steps if labelled is None else labelled

    pairs: list[tuple[str, str]] = []
    for method in methods:
        suffix = budget_suffix(method)
        if not suffix:
            continue
        namespace = split_budget(method)[0]
        if namespace != UPPER_BOUND:
            pairs.append((method, UPPER_BOUND + suffix))
        lower = [m for m in methods if split_budget(m)[0] == namespace and m != method
                 and steps(m) is not None and steps(m) < steps(method)]
        if lower:
            pairs.append((method, max(lower, key=steps)))
        pairs += [(a + suffix, b + suffix) for a, b in comparisons if a == namespace]
    return [(a, b) for a, b in pairs if a in present and b in present]


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


def _regime_column(results: pd.DataFrame) -> pd.DataFrame:
    """Studies before the method zoo called the regime ``layout_shift``."""
    if "regime" not in results and "layout_shift" in results:
        results = results.rename(columns={"layout_shift": "regime"})
    return results


def summarise_study(
    results: pd.DataFrame,
    split: str = "val",
    order: Sequence[str] | None = None,
    baselines: Sequence[str] = (SOURCE_ONLY,),
    comparisons: Sequence[Sequence[str]] = (),
    value: str = "miou",
    base_steps: int | None = None,
) -> dict:
    """Tables (markdown, JSON) and a figure of per-method mIoU and paired differences on ``split``.

    ``order``: the methods' column order (others follow, sorted); ``baselines``: every method is compared with
    each of them; ``comparisons``: further ``[method, baseline]`` pairs, repeated at every other budget both
    ran (``budget_pairs``); ``value``: the column summarised (``miou``, or a narrower protocol's ``miou16`` /
    ``miou13``); ``base_steps``: the budget of the rows without a ``_<steps>_steps`` label.
    """
    rows = _regime_column(results)
    rows = rows[rows["split"] == split]
    present = set(rows["method"])
    methods = [m for m in (order or []) if m in present] + sorted(present - set(order or []))
    regimes = list(dict.fromkeys(rows["regime"]))
    # a seed pairs within one machine only: rows of the same seed trained on another processor are other runs
    machines = rows["machine"].fillna("unrecorded") if "machine" in rows else pd.Series("unrecorded", rows.index)
    table = rows.assign(machine=machines).pivot_table(
        index=["regime", "seed", "machine"], columns="method", values=value
    )
    pairs: list[tuple[str, str]] = []
    matched = [(m, at_budget_of(m, b, present)) for b in baselines for m in methods]
    further = [tuple(p) for p in comparisons] + budget_pairs(methods, comparisons, base_steps)
    for a, b in [(m, b) for m, b in matched if m != b] + further:
        if (a, b) not in pairs and (b, a) not in pairs:
            pairs.append((a, b))
    summary: dict = {"split": split, "value": value, "regimes": {}}
    protocol = f" ({value.removeprefix('miou')} classes)" if value != "miou" else ""
    lines = [f"# Method study (target `{split}` mIoU{protocol}, mean ± std over paired seeds)", ""]
    lines += ["| regime | seeds | " + " | ".join(methods) + " |", "|---" * (len(methods) + 2) + "|"]
    notes: list[str] = []
    for regime in regimes:
        part = table.loc[regime]
        stats = {m: {"mean": float(part[m].mean()), "std": float(part[m].std(ddof=1)), "n": int(part[m].count())}
                 for m in methods if m in part}
        paired = {}
        for a, b in pairs:
            if a in part and b in part and (part[a] - part[b]).count() >= 2:  # a method a regime skipped has no pairs
                paired[f"{a} - {b}"] = paired_difference(part[a], part[b])
        gap = _gap_closed(part[[m for m in methods if m in part]])  # in the table's method order
        summary["regimes"][regime] = {"methods": stats, "paired": paired, "gap_closed": gap}
        cells = [f"{stats[m]['mean']:.1f} ± {stats[m]['std']:.1f}" if m in stats and stats[m]["n"] else "–"
                 for m in methods]
        lines.append(f"| {regime} | {int(part.notna().any(axis=1).sum())} | " + " | ".join(cells) + " |")
        kinds = part.index.get_level_values("machine").unique()
        if len(kinds) > 1:
            summary["regimes"][regime]["machines"] = sorted(kinds)
            notes.append(
                f"`{regime}` holds runs of {len(kinds)} machines ({'; '.join(sorted(kinds))}); seeds pair within one."
            )
    lines += [""] + notes if notes else []
    lines += ["", f"Share of the gap between `{SOURCE_ONLY}` and `{UPPER_BOUND}` each method closes (means; both at "
              "the method's budget where the study has them):", ""]
    lines += ["| regime | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for regime in regimes:
        gap = summary["regimes"][regime]["gap_closed"]
        lines.append(f"| {regime} | " + " | ".join(f"{gap[m]:.0%}" if m in gap else "–" for m in methods) + " |")
    lines += _difference_grid(summary, methods, regimes, baselines[0] if baselines else SOURCE_ONLY)
    lines += ["", "Paired differences (mean, 95% interval over seeds; * = interval excludes 0):", ""]
    lines += ["| regime | comparison | seeds | mean | 95% interval |", "|---|---|---|---|---|"]
    for regime in regimes:
        for name, d in summary["regimes"][regime]["paired"].items():
            low, high = d["ci95"]
            star = " *" if _excludes_zero(d) else ""
            lines.append(f"| {regime} | {name} | {d['n']} | {d['mean']:+.1f}{star} | [{low:+.1f}, {high:+.1f}] |")
    return {"json": summary, "markdown": "\n".join(lines) + "\n", "figure": _figure(summary, methods, regimes, split)}


def _difference_grid(summary: dict, methods: list[str], regimes: list[str], baseline: str) -> list[str]:
    """Every method's paired difference with ``baseline`` as a regime × method grid (the cross-shift view)."""
    others = [m for m in methods if m != baseline]
    lines = ["", f"Paired difference with `{baseline}` (mean [95% interval]; * = interval excludes 0):", ""]
    lines += ["| regime | " + " | ".join(others) + " |", "|---" * (len(others) + 1) + "|"]
    for regime in regimes:
        paired, cells = summary["regimes"][regime]["paired"], []
        for m in others:
            d = paired.get(f"{m} - {at_budget_of(m, baseline, methods)}")  # where two or more seeds pair
            if d is None:
                cells.append("–")
                continue
            low, high = d["ci95"]
            cells.append(f"{d['mean']:+.1f}{'*' if _excludes_zero(d) else ''} [{low:+.1f}, {high:+.1f}]")
        lines.append(f"| {regime} | " + " | ".join(cells) + " |")
    return lines


def _excludes_zero(difference: dict) -> bool:
    low, high = difference["ci95"]
    return low > 0 or high < 0


def _gap_closed(part: pd.DataFrame) -> dict[str, float]:
    """(method − source-only) / (fine-tuned oracle − source-only), both bounds at the method's budget where the
    study has them; the means over the runs (seed, machine) where all three exist, so that a method run on fewer
    seeds or another machine is set against its own bounds."""
    gaps, ran = {}, [m for m in part.columns if part[m].notna().any()]
    for method in ran:
        low, high = (at_budget_of(method, bound, ran) for bound in (SOURCE_ONLY, UPPER_BOUND))
        if low not in part or high not in part:
            continue
        both = part[list(dict.fromkeys([method, low, high]))].dropna()
        floor, ceiling = both[low].mean(), both[high].mean()
        if len(both) and ceiling > floor:
            gaps[method] = float((both[method].mean() - floor) / (ceiling - floor))
    return gaps


def _figure(summary: dict, methods: list[str], regimes: list[str], split: str):
    """Bars of every method's mIoU per regime and, below, the share of the source-only → fine-tuned-oracle gap
    each closes (a regime × method grid: which method carries over to which shift, at a glance)."""
    fig, (bars, grid) = plt.subplots(
        2, 1, figsize=(max(10.0, 0.55 * len(methods) * max(1, len(regimes)) ** 0.5), 4.2 + 0.42 * len(regimes) + 1.2),
        height_ratios=[4.2, 0.42 * len(regimes) + 1.2],
    )
    width = 0.8 / max(len(regimes), 1)
    x = np.arange(len(methods))
    for i, regime in enumerate(regimes):
        stats = summary["regimes"][regime]["methods"]
        means = [stats[m]["mean"] if m in stats and stats[m]["n"] else np.nan for m in methods]
        errors = [stats[m]["std"] if m in stats and stats[m]["n"] > 1 else 0.0 for m in methods]
        bars.bar(x + i * width, means, width, yerr=errors, capsize=2, label=f"regime: {regime}")
    bars.set_xticks(x + 0.4 - width / 2, methods, rotation=30, ha="right")
    bars.set_ylabel(f"target {split} mIoU\n(mean ± std over seeds)")
    bars.legend(fontsize=7, ncol=min(len(regimes), 8))
    bars.grid(axis="y", alpha=0.3)
    _gap_grid(grid, summary, methods, regimes)
    fig.tight_layout()
    return fig


def _gap_grid(ax, summary: dict, methods: list[str], regimes: list[str]) -> None:
    """Gap closed (%) per regime and method, red below source-only, blue towards the fine-tuned oracle."""
    shares = np.array([[summary["regimes"][r]["gap_closed"].get(m, np.nan) for m in methods] for r in regimes])
    ax.imshow(np.clip(shares, -1, 1), cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
    for (row, col), share in np.ndenumerate(shares):
        if np.isfinite(share):
            ax.text(col, row, f"{100 * share:.0f}", ha="center", va="center", fontsize=7,
                    color="white" if abs(share) > 0.6 else "black")
    ax.set_xticks(np.arange(len(methods)), methods, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(np.arange(len(regimes)), regimes, fontsize=8)
    ax.set_title(f"% of the gap between {SOURCE_ONLY} and {UPPER_BOUND} closed (mean over seeds; blank: not run)",
                 fontsize=9)


def budget_figure(summary: dict, default_steps: int):
    """mIoU (mean ± std) and the share of the gap closed against adaptation steps, for each regime where some
    namespace ran at two or more budgets (the bounds, usually) and some method beside the bounds ran at another
    budget than the default; ``None`` when none has. A namespace run only at another budget than the default
    (DACS at 2000 steps beside 1000-step baselines) is drawn as a point there.
    Whether a method's share of the gap keeps growing with steps is the question a single budget cannot answer."""
    curves: dict[str, dict[str, list]] = {}
    for regime, part in summary["regimes"].items():
        for label, stats in part["methods"].items():
            if not stats["n"]:
                continue
            namespace, labelled = split_budget(label)
            steps = default_steps if labelled is None else labelled
            point = (steps, stats["mean"], stats["std"] if stats["n"] > 1 else 0.0, part["gap_closed"].get(label))
            curves.setdefault(regime, {}).setdefault(namespace, []).append(point)
    curves = {
        regime: {n: points for n, points in lines.items() if len(points) > 1 or points[0][0] != default_steps}
        for regime, lines in curves.items()
    }
    # a regime where only the bounds ran at another budget has no method to draw against them (empty gap panel)
    regimes = [
        r for r, lines in curves.items()
        if any(len(points) > 1 for points in lines.values()) and set(lines) - {SOURCE_ONLY, UPPER_BOUND}
    ]
    if not regimes:
        return None
    fig, axes = plt.subplots(len(regimes), 2, figsize=(11, 3.8 * len(regimes)), squeeze=False)
    palette = plt.get_cmap("tab10").colors  # one colour per namespace in every regime's panels
    colours = {n: palette[i % len(palette)] for i, n in enumerate(sorted({n for r in regimes for n in curves[r]}))}
    for (scores, shares), regime in zip(axes, regimes, strict=True):
        budgets = sorted({p[0] for points in curves[regime].values() for p in points})
        for namespace, points in sorted(curves[regime].items()):
            steps, means, stds, gaps = zip(*sorted(points), strict=True)
            colour = colours[namespace]
            scores.errorbar(steps, means, yerr=stds, marker="o", capsize=3, color=colour, label=namespace)
            closed = [(s, 100 * g) for s, g in zip(steps, gaps, strict=True) if g is not None]
            if closed and namespace not in (SOURCE_ONLY, UPPER_BOUND):
                shares.plot(*zip(*closed, strict=True), marker="o", color=colour, label=namespace)
        for ax in (scores, shares):
            ax.set_xscale("log", base=2)
            ax.set_xticks(budgets, [str(b) for b in budgets])
            ax.minorticks_off()
            ax.set_xlabel("adaptation steps")
            ax.grid(alpha=0.3)
        scores.set_ylabel(f"target {summary['split']} mIoU")
        scores.set_title(f"regime {regime}: mean ± std over seeds", fontsize=9)
        shares.axhline(90, color="grey", linestyle="--", linewidth=1)
        shares.set_ylabel(f"% of the {SOURCE_ONLY} → {UPPER_BOUND} gap")
        shares.set_title("gap closed, both bounds at the same budget (dashed: 90%)", fontsize=9)
        scores.legend(fontsize=7)
    fig.tight_layout()
    return fig
