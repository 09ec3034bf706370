"""The adaptation study: source-only, AdaBN, λ=0 control, AdaptSegNet single/multi-level and two oracles,
over paired seeds and three layout regimes, on the embedded synthetic benchmark.

    make study                       # all seeds and regimes (conf/base/parameters_study.yml)
    python studies/adaptation_study.py --seeds 1 2 --layout-shifts none --adapt-steps 100   # a quick look

It calls the pipelines' node functions directly (they are pure functions), so it trains exactly what
`kedro run` trains, with the project's parameters; each model is logged to MLflow (experiment
``adaptation_study``). λ is chosen on the target ``dev`` split, never on ``val``. Results:
``data/08_reporting/study/results.csv`` (one row per model and split) and ``summary.md`` / ``summary.json``
(mean ± std over seeds, paired differences with 95% intervals), plus ``summary.png``.

``--resume`` keeps the finished rows of ``results.csv`` and trains only what is missing (a seed's pretrained
model is trained again only when one of its rows is missing and its ``model.pt`` is gone).
``--summarise-only`` writes the summary of an existing ``results.csv`` and trains nothing: for rows gathered
by several runs, or on several machines, into one file.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")

import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from adaptseg.io import FolderDataset, RawDomainDataset  # noqa: E402
from adaptseg.pipelines.adaptation.nodes import adapt_to_target  # noqa: E402
from adaptseg.pipelines.evaluation.nodes import evaluate_on_target  # noqa: E402
from adaptseg.pipelines.ingestion.nodes import ingest_source, ingest_target  # noqa: E402
from adaptseg.pipelines.label_remapping.nodes import remap_labels  # noqa: E402
from adaptseg.pipelines.source_pretraining.nodes import finetune_supervised, train_supervised  # noqa: E402
from adaptseg.reporting.study_summary import summarise_study  # noqa: E402
from adaptseg.synth import SynthesisConfig, generate_source, generate_target  # noqa: E402
from adaptseg.training import load_checkpoint, save_checkpoint  # noqa: E402

logger = logging.getLogger("adaptation_study")
PROJECT = Path(__file__).resolve().parents[1]


def load_parameters(env: str | None) -> dict[str, Any]:
    from kedro.config import OmegaConfigLoader

    from adaptseg.settings import CONFIG_LOADER_ARGS

    loader = OmegaConfigLoader(
        conf_source=str(PROJECT / "conf"),
        base_env="base",
        default_run_env=env or "local",
        custom_resolvers=CONFIG_LOADER_ARGS["custom_resolvers"],
    )
    return dict(loader["parameters"])


def prepare_domain_data(work: Path, params: dict, layout_shift: str, data_seed: int, with_source: bool) -> dict:
    """Generate, ingest and remap one regime's data with the pipelines' own nodes and datasets."""
    generator = {**params["synthesis"]["generator"], "seed": data_seed, "layout_shift": layout_shift}
    config = SynthesisConfig.from_dict(generator)
    data: dict[str, Any] = {}
    strip = lambda files: {k.rsplit(".", 1)[0]: v for k, v in files.items()}  # noqa: E731
    domains = [("target", "cityscapes", generate_target, ingest_target)]
    if with_source:
        domains.insert(0, ("source", "gta5", generate_source, ingest_source))
    for domain, kind, generate, ingest in domains:
        raw = RawDomainDataset(kind=kind, root=str(work / f"raw_{domain}"))
        raw.save(strip(generate(config)))
        manifest = ingest(raw.load(), params["ingestion"][domain])
        ids = FolderDataset(str(work / f"train_ids_{domain}"), format="npy", progress=False)
        ids.save(remap_labels(manifest, params["label_remapping"]))
        data[domain] = (manifest, ids.load())
    return data


def with_overrides(params: dict, overrides: list[str]) -> dict:
    """``params`` with ``dotted.key=value`` overrides applied (values parsed as YAML), as ``kedro --params``."""
    for override in overrides:
        key, _, value = override.partition("=")
        params = _with(params, **{key: yaml.safe_load(value)})
    return params


def target_miou(params: dict, model: dict, target: tuple, split: str) -> float:
    """The model's mIoU on one target split, in the project's class protocol."""
    metrics = evaluate_on_target(model, *target, _with(params["evaluation"], split=split))
    return metrics["protocols"][str(params["model"]["num_classes"])]["miou"]


def _with(block: dict, **changes: Any) -> dict:
    out = copy.deepcopy(block)
    for dotted, value in changes.items():
        node = out
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return out


class Study:
    def __init__(self, params: dict, args: argparse.Namespace, out: Path) -> None:
        self.params, self.args, self.out = params, args, out
        self.rows: list[dict] = []
        self.results_path = out / "results.csv"
        if args.resume and self.results_path.exists():
            self.rows = pd.read_csv(self.results_path).to_dict("records")

    def done(self, **key: Any) -> bool:
        return any(all(row.get(k) == v for k, v in key.items()) for row in self.rows)

    def evaluate(self, model: dict, target: tuple, lambda_adv_main: float, **key: Any) -> None:
        """Score ``model`` on dev and val; rows of the same seed, regime and method (another λ) are replaced."""
        self.rows = [row for row in self.rows if not all(row.get(k) == v for k, v in key.items())]
        key = {**key, "lambda_adv_main": lambda_adv_main}
        for split in ("dev", "val"):
            metrics = evaluate_on_target(model, *target, _with(self.params["evaluation"], split=split))
            scores = metrics["protocols"][str(self.params["model"]["num_classes"])]
            self.rows.append(
                {**key, "split": split, "miou": round(scores["miou"], 3), "pixel_accuracy": round(scores["pixel_accuracy"], 3)}
                | {f"iou.{k}": v for k, v in scores["iou"].items()}
            )
        pd.DataFrame(self.rows).to_csv(self.results_path, index=False)

    def engine(self, block: dict, seed: int, steps: int | None, name: str) -> dict:
        engine = {
            **block["engine"],
            "seed": seed,
            "checkpoint_dir": str(self.out / "runs" / name),
            "snapshot_every": 0,
            "overwrite": True,
            "progress": not self.args.quiet,
        }
        if steps:
            engine["max_steps"] = steps
        return _with(block, engine=engine, name=name)


def adaptation_block(params: dict, method: str, lam: float | None) -> dict:
    """Parameters of one study method, built from the project's namespaces (same engine for all)."""
    base = {
        "source_only": "source_only",
        "lambda0_control": "adaptsegnet_multi",
        "adaptsegnet_single": "adaptsegnet_single",
        "adaptsegnet_multi": "adaptsegnet_multi",
    }[method]
    block = copy.deepcopy(params[base]["adaptation"])
    if method == "lambda0_control":
        block["step"] = {**block["step"], "lambda_adv_main": 0.0, "lambda_adv_aux": 0.0}
        block["train_aux_discriminator"] = True  # target batches pass through exactly as during adaptation
    elif method == "adaptsegnet_multi" and lam is not None:
        block["step"] = {**block["step"], "lambda_adv_main": lam, "lambda_adv_aux": lam / 5}
    elif method == "adaptsegnet_single" and lam is not None:
        block["step"] = {**block["step"], "lambda_adv_main": lam}
    return block


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default=None, help="Kedro config environment (default: local over base)")
    parser.add_argument("--seeds", type=int, nargs="*")
    parser.add_argument("--layout-shifts", nargs="*")
    parser.add_argument("--pretrain-steps", type=int, help="override source pretraining (and oracle) steps")
    parser.add_argument("--adapt-steps", type=int, help="override adaptation steps")
    parser.add_argument("--lambda", dest="lam", type=float, help="skip the λ search and use this λ_adv main")
    parser.add_argument("--methods", nargs="*", help="a subset of study.methods")
    parser.add_argument(
        "--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
        help="override parameters as kedro --params does, e.g. adaptsegnet_multi.adaptation.discriminator.ndf=64",
    )
    parser.add_argument("--out", default="data/08_reporting/study")
    parser.add_argument("--resume", action="store_true", help="keep finished rows of results.csv and skip them")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "--summarise-only", action="store_true", help="summarise --out's results.csv; train and evaluate nothing"
    )
    args = parser.parse_args(argv)
    recorded_argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    params = with_overrides(load_parameters(args.env), args.overrides)
    settings = params["study"]
    if args.methods:
        settings["methods"] = args.methods
    seeds = args.seeds or settings["seeds"]
    args.pretrain_steps = args.pretrain_steps or settings.get("pretrain_steps")
    args.adapt_steps = args.adapt_steps or settings.get("adapt_steps")
    shifts = args.layout_shifts or settings["layout_shifts"]
    out = Path(args.out)
    if args.summarise_only:
        results = out / "results.csv"
        if not results.exists():
            raise SystemExit(f"--summarise-only: {results} does not exist (nothing to summarise)")
        rows = pd.read_csv(results)
        lams = sorted(float(x) for x in rows.loc[rows["method"].str.startswith("adaptsegnet"), "lambda_adv_main"].unique())
        write_summary(rows, out, {"argv": recorded_argv, "lambda_adv_main": lams, "study": settings})
        return
    out.mkdir(parents=True, exist_ok=True)
    study = Study(params, args, out)
    started = time.perf_counter()

    import mlflow

    mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"))
    mlflow.set_experiment(settings["name"])

    data: dict[str, dict] = {}
    for shift in shifts:
        data[shift] = prepare_domain_data(out / "data" / shift, params, shift, settings["data_seed"], with_source=shift == shifts[0])
    source = data[shifts[0]]["source"]
    pretrain = params["source_pretraining"]["training"]
    oracle_block = params["oracle"]["training"]

    pretrained: dict[int, dict] = {}

    def pretrained_for(seed: int) -> dict:
        """The seed's source-pretrained model; with --resume, the packed model a previous run saved."""
        cache = out / "runs" / f"source_pretraining_s{seed}" / "model.pt"
        if seed not in pretrained and args.resume and cache.exists():
            cached = load_checkpoint(cache)
            if cached.get("step") == args.pretrain_steps:
                pretrained[seed] = cached
            else:  # a cache from another budget is not this study's checkpoint
                logger.warning("%s has %s pretraining steps, the study asks %d: training again", cache, cached.get("step"), args.pretrain_steps)
        if seed not in pretrained:
            block = study.engine(pretrain, seed, args.pretrain_steps, f"source_pretraining_s{seed}")
            with mlflow.start_run(run_name=f"source_pretraining s{seed}"):
                pretrained[seed] = train_supervised(*source, params["model"], block)[0]
            save_checkpoint(cache, pretrained[seed])
        return pretrained[seed]

    # λ on dev: one seed, the shared-layout regime, the multi-level method; the single-level method uses the same λ.
    lam = args.lam
    if lam is None:
        sel = settings["lambda_selection"]
        target = data.get(sel["layout_shift"], data[shifts[0]])["target"]
        scores = {}
        for candidate in settings["lambda_grid"]:
            name = f"lambda_search_{candidate:g}"
            block = study.engine(adaptation_block(params, "adaptsegnet_multi", candidate), sel["seed"], args.adapt_steps, name)
            start = pretrained_for(sel["seed"])
            with mlflow.start_run(run_name=name):
                model = adapt_to_target(start, *source, target[0], block)[0]
            scores[candidate] = target_miou(params, model, target, sel["split"])
            logger.info("λ=%g: dev mIoU %.2f", candidate, scores[candidate])
        lam = max(scores, key=scores.get)
        (out / "lambda_selection.json").write_text(json.dumps({"dev_miou": scores, "chosen": lam, **sel}, indent=2))
        logger.info("chosen λ_adv main = %g on %s", lam, sel["split"])

    def plan(shift: str) -> tuple[list[int], list[str]]:
        """Seeds and methods of one regime: the layout-shifted regimes may run fewer (``shifted_regimes``),
        unless --seeds / --methods name them for every regime."""
        shifted = settings.get("shifted_regimes") or {}
        if shift == "none" or not shifted:
            return seeds, settings["methods"]
        return (seeds if args.seeds else shifted.get("seeds", seeds)), (
            settings["methods"] if args.methods else shifted.get("methods", settings["methods"])
        )

    for seed in seeds:
        for shift in shifts:
            regime_seeds, methods = plan(shift)
            if seed not in regime_seeds:
                continue
            target = data[shift]["target"]
            source_only = None
            for method in methods:
                key = {"seed": seed, "layout_shift": shift, "method": method}
                lam_used = lam if method.startswith("adaptsegnet") else 0.0
                if study.done(**key, lambda_adv_main=lam_used):  # a resumed row counts only at this λ
                    continue
                name = f"{method}_{shift}_s{seed}"
                start = pretrained_for(seed) if method != "oracle" else None  # only when a row is missing
                with mlflow.start_run(run_name=name):
                    mlflow.log_params({"seed": seed, "layout_shift": shift, "method": method, "lambda_adv_main": lam})
                    if method == "oracle":
                        model = train_supervised(*target, params["model"], study.engine(oracle_block, seed, args.pretrain_steps, name))[0]
                    elif method == "oracle_finetune":  # target labels, from the same checkpoint for the same steps
                        block = study.engine(params["oracle_finetune"]["training"], seed, args.adapt_steps, name)
                        model = finetune_supervised(start, *target, block)[0]
                    elif method == "adabn":  # AdaBN on the source-only model of the same total steps
                        if source_only is None:
                            block = study.engine(adaptation_block(params, "source_only", None), seed, args.adapt_steps, f"source_only_{shift}_s{seed}")
                            source_only = adapt_to_target(start, *source, target[0], block)[0]
                        block = _with(adaptation_block(params, "source_only", None), method="adabn", name=name)
                        model = adapt_to_target(source_only, *source, target[0], block)[0]
                    else:
                        block = study.engine(adaptation_block(params, method, lam), seed, args.adapt_steps, name)
                        model = adapt_to_target(start, *source, target[0], block)[0]
                        if method == "source_only":
                            source_only = model
                study.evaluate(model, target, **key, lambda_adv_main=lam_used)
                logger.info("done %s (%.0f min so far)", name, (time.perf_counter() - started) / 60)

    write_summary(pd.DataFrame(study.rows), out, {"argv": recorded_argv, "lambda_adv_main": lam, "study": settings})
    print(f"wrote {out}/results.csv, summary.md, summary.json, summary.png in {(time.perf_counter() - started) / 60:.1f} min")


def write_summary(rows: pd.DataFrame, out: Path, settings: dict) -> None:
    """summary.md / .json / .png and settings.json of the study's ``val`` rows, beside results.csv."""
    summary = summarise_study(rows, split="val")
    (out / "summary.json").write_text(json.dumps(summary["json"], indent=2))
    (out / "summary.md").write_text(summary["markdown"])
    (out / "settings.json").write_text(json.dumps(settings, indent=2))
    summary["figure"].savefig(out / "summary.png", dpi=110, bbox_inches="tight")
    print(summary["markdown"])


if __name__ == "__main__":
    sys.exit(main())
