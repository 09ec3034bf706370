"""How right a study's trained models are on their regime's target train images: the pseudo-labels a
self-training method starting from them would learn from.

    python studies/pseudo_labels.py --out data/08_reporting/study --regimes fog contrast --seeds 1 2 3 \\
        --namespaces source_pretraining adabn adaptsegnet_multi dacs_rcs

Why DACS helps from one start and not from another is a question about its teacher's labels. This reads
models the study (``adaptation_study.py``, same ``--out`` and options) has trained, never trains one (a model
or dev choice that is not there is reported and skipped), and scores each model's argmax on target ``train``
with ``adaptseg.evaluation.pseudo_labels``: accuracy, mIoU, and per ``--thresholds`` the share of pixels above
that confidence and how many of those are right. Target train labels are read to explain results after the
fact; nothing is chosen from them. Writes ``<out>/pseudo_labels.csv`` (one row per model, merged with earlier
runs), prints the means over seeds and plots them (``pseudo_labels.png``, at the first threshold).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import adaptation_study as study
import numpy as np
import pandas as pd

from adaptseg.data.labels import protocol_class_names
from adaptseg.evaluation.inference import labelled_dataset
from adaptseg.evaluation.pseudo_labels import largest_shares, pseudo_label_quality
from adaptseg.io.atomic import atomic_file, exclusive_lock
from adaptseg.models.packaging import unpack_segmenter
from adaptseg.training.precision import resolve_device

logger = logging.getLogger("pseudo_labels")
KEY = ["regime", "seed", "namespace", "adapt_steps"]


class NotInStudy(LookupError):
    """A model or dev choice the study folder does not hold."""


class ReadOnlyStudy(study.Study):
    """The study's folders and catalogs, without ever choosing knobs (which would train the grid)."""

    def select(self, namespace: str, regime: study.Regime) -> dict:
        chosen = self.selection.get(regime.name, {}).get(namespace)
        if chosen is None or chosen["grid"] != self.plan.grids[namespace]:
            raise NotInStudy(f"{namespace}: no dev choice for regime {regime.name!r} in selection.json")
        return chosen["chosen"]


def measure(runner: ReadOnlyStudy, namespace: str, seed: int, regime: study.Regime,
            thresholds: Sequence[float]) -> dict:
    """One trained model's pseudo-label quality on its regime's target train split."""
    scope = runner.scope(namespace, seed, regime)
    if not (scope / "done").is_file():
        raise NotInStudy(f"{namespace}, seed {seed}, regime {regime.name!r}: not trained in {scope}")
    evaluation = runner.evaluation.only_nodes_with_namespaces([namespace])
    catalog = runner.catalog(evaluation, regime, seed, runner.params)
    params = runner.params["evaluation"]
    dataset = labelled_dataset(catalog.load("target_manifest"), "train", params["input_size"],
                               catalog.load("target_train_ids"))
    segmenter = unpack_segmenter(catalog.load(f"{namespace}.model"))
    quality = pseudo_label_quality(segmenter, dataset, thresholds, batch_size=int(params.get("batch_size", 4)),
                                   device=resolve_device(params.get("device", "auto")),
                                   align_corners=bool(params.get("align_corners", True)))
    row = {"regime": regime.name, "seed": seed, "namespace": namespace, "adapt_steps": runner.plan.steps["adapt"],
           "images": quality["images"], "accuracy": round(quality["accuracy"], 2), "miou": round(quality["miou"], 2)}
    for level in quality["thresholds"]:
        row[f"coverage@{level['threshold']:g}"] = round(level["coverage"], 2)
        row[f"accuracy@{level['threshold']:g}"] = round(level["accuracy"], 2)
    row["most_predicted"] = largest_shares(quality["predicted_share"], protocol_class_names(segmenter.num_classes))
    return row


def merged(path: Path, rows: list[dict]) -> pd.DataFrame:
    """``rows`` over the file's earlier rows (a row replaces the one with its regime, seed, namespace, budget)."""
    new = pd.DataFrame(rows)
    if path.is_file():
        old = pd.read_csv(path)
        keep = ~old.set_index(KEY).index.isin(new.set_index(KEY).index)
        new = pd.concat([old[keep], new], ignore_index=True)
    return new.sort_values(KEY, kind="stable").reset_index(drop=True)


def means_table(rows: pd.DataFrame) -> str:
    """Markdown: each regime and namespace's means over its seeds."""
    numbers = [c for c in rows.columns if c not in (*KEY, "images", "most_predicted")]
    grouped = rows.groupby(["regime", "namespace"], sort=False)
    table = grouped[numbers].mean().round(1)
    table.insert(0, "seeds", grouped.size())
    table["most predicted (first seed)"] = grouped["most_predicted"].first()
    table = table.reset_index().astype(object).fillna("–").astype(str)
    lines = ["| " + " | ".join(table.columns) + " |", "|---" * len(table.columns) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in table.itertuples(index=False)])


def figure(rows: pd.DataFrame, threshold: float, namespaces: Sequence[str]):
    """Per regime, each namespace's argmax accuracy, share of pixels above ``threshold`` and accuracy of those
    (mean ± std over seeds): where a self-training start's labels are right, at a glance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    regimes = list(dict.fromkeys(rows["regime"]))
    namespaces = [n for n in namespaces if n in set(rows["namespace"])]
    panels = [("accuracy", "argmax accuracy (%)"), (f"coverage@{threshold:g}", f"pixels above {threshold:g} (%)"),
              (f"accuracy@{threshold:g}", "accuracy of those pixels (%)")]
    fig, axes = plt.subplots(1, 3, figsize=(max(10.0, 1.1 * len(regimes) * 3), 3.6), sharey=True)
    width, x = 0.8 / len(namespaces), np.arange(len(regimes))
    stats = rows.groupby(["regime", "namespace"])
    means, stds = stats.mean(numeric_only=True), stats.std(numeric_only=True)
    for ax, (column, title) in zip(axes, panels, strict=True):
        for i, namespace in enumerate(namespaces):  # a threshold no row was measured at leaves its panel empty
            keys = [(r, namespace) for r in regimes]
            mean = [means[column].get(k, np.nan) if column in means else np.nan for k in keys]
            std = [stds[column].get(k, np.nan) if column in stds else np.nan for k in keys]
            ax.bar(x + i * width, mean, width, yerr=np.nan_to_num(std), capsize=2, label=namespace)
        ax.set_xticks(x + 0.4 - width / 2, regimes, fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylim(0, 100)
    axes[0].set_ylabel("target train, mean ± std over seeds")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=len(namespaces), bbox_to_anchor=(0.5, -0.08))
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="the study folder (adaptation_study.py's --out)")
    parser.add_argument("--namespaces", nargs="+", required=True,
                        help="trained namespaces, e.g. source_pretraining (the start of DACS) adaptsegnet_multi")
    parser.add_argument("--regimes", nargs="*", help="a subset of study.regimes")
    parser.add_argument("--seeds", type=int, nargs="*", help="these seeds in every regime")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.968, 0.9],
                        help="confidence thresholds (default: DACS's 0.968, and 0.9)")
    parser.add_argument("--pretrain-steps", type=int, help="the study's --pretrain-steps, where it had one")
    parser.add_argument("--adapt-steps", type=int, help="the study's --adapt-steps, where it had one")
    parser.add_argument("--env", default=None, help="Kedro config environment (default: local over base)")
    parser.add_argument("--dataset", choices=sorted(study.DATASETS), default="gta5")
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                        help="the study's --set overrides, where it had any")
    parser.add_argument("--summarise-only", action="store_true",
                        help="print and plot the rows pseudo_labels.csv has for these options; measure nothing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    out = Path(args.out)
    if not (out / "runs").is_dir():
        raise SystemExit(f"--out {out}: not a study folder (it has no runs/); run studies/adaptation_study.py first")
    params, catalog_config = study.load_parameters(args.env, args.dataset)
    params = study.with_overrides(params, args.overrides)
    plan_args = argparse.Namespace(seeds=args.seeds, regimes=args.regimes, namespaces=args.namespaces,
                                   pretrain_steps=args.pretrain_steps, adapt_steps=args.adapt_steps, no_selection=False)
    plan = study.Plan.from_settings(params["study"], plan_args)
    path = out / "pseudo_labels.csv"
    skipped = []
    if args.summarise_only:
        if not path.is_file():
            raise SystemExit(f"--summarise-only: {path} does not exist (nothing measured yet)")
        table = pd.read_csv(path)
    else:
        with study.torch_threads(params["study"]["threads"]):  # as the study trains: scores reproduce exactly
            table, skipped = measure_all(ReadOnlyStudy(params, catalog_config, plan, out, quiet=True), args.thresholds)
    wanted = {(r.name, s, n): i for i, (r, s, n) in
              enumerate((r, s, n) for r in plan.regimes for n in r.namespaces for s in r.seeds)}
    rank = [wanted.get(key) for key in zip(table["regime"], table["seed"], table["namespace"], strict=True)]
    shown = table.assign(rank=rank)  # the study's order of regimes and namespaces, not alphabetical
    shown = shown[shown["rank"].notna() & (shown["adapt_steps"] == plan.steps["adapt"])]
    shown = shown.sort_values("rank", kind="stable").drop(columns="rank").dropna(axis=1, how="all")
    if shown.empty:
        raise SystemExit(f"{path} has no row of --regimes / --seeds / --namespaces")
    print("\n".join([means_table(shown), *skipped]))
    with atomic_file(out / "pseudo_labels.png") as tmp:
        figure(shown, args.thresholds[0], args.namespaces).savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    print(f"wrote {path} and pseudo_labels.png", file=sys.stderr)


def measure_all(runner: ReadOnlyStudy, thresholds: Sequence[float]) -> tuple[pd.DataFrame, list[str]]:
    """Every planned model that is there, merged into ``pseudo_labels.csv``; and what was skipped, and why."""
    rows, skipped = [], []
    for regime in runner.plan.regimes:
        for seed in regime.seeds:
            for namespace in regime.namespaces:
                try:
                    rows.append(measure(runner, namespace, seed, regime, thresholds))
                    logger.info("%s", rows[-1])
                except NotInStudy as missing:
                    skipped.append(f"skipped: {missing}")
    if not rows:
        raise SystemExit("\n".join([*skipped, f"No trained model matched --regimes / --seeds / --namespaces in "
                                               f"{runner.out}"]))
    path = runner.out / "pseudo_labels.csv"
    with exclusive_lock(runner.out / ".study.lock"), atomic_file(path) as tmp:
        table = merged(path, rows)
        table.to_csv(tmp, index=False)
    return table, skipped


if __name__ == "__main__":
    main()
