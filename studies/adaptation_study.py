"""The method study: every adaptation namespace over paired seeds and several target shifts, on the embedded
synthetic benchmark, with knobs chosen on the labelled target ``dev`` split only.

    make study                                            # conf/base/parameters_study.yml
    python studies/adaptation_study.py --seeds 1 2 --regimes none --adapt-steps 100 --namespaces source_only adabn

It runs the project's own pipelines through Kedro's runner: synthesis, ingestion and label remapping per
target regime, then the training node of each namespace (``source_pretraining``, the adaptation namespaces,
the oracles) and its evaluation node on ``dev`` and ``val``, with the project's parameters and a catalog that
puts every output in a folder of its own under ``--out``. Those folders are named by a hash of everything
that made them (the namespace's parameters, its starting model's folder, the data), so a rerun reuses what
is done and trains what is missing or changed: a study resumes where it stopped, and several processes or
machines can share one ``--out``: each takes the models no other is making and waits only when nothing else is
left (``--jobs N`` starts N on this machine, one per core by default, each with ``study.threads`` threads);
``selection.json`` and ``results.csv`` merge under a file lock.

Knobs: a namespace with a grid (``study.grids``) trains once per grid entry on the selection seed in each
regime; the entry with the highest ``dev`` mIoU is used for every seed of that regime. ``val`` is read only to
report. Files under ``--out``: ``results.csv`` (one row per model and split), ``selection.json``,
``summary.md`` / ``summary.json`` / ``summary.png`` and ``settings.json``; each model is an MLflow run
(experiment ``study.name``).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import pandas as pd  # noqa: E402
import yaml  # noqa: E402
from kedro.pipeline import Pipeline  # noqa: E402

from adaptseg.io.atomic import atomic_file, exclusive_lock  # noqa: E402
from adaptseg.reporting.budgets import budget_label  # noqa: E402

logger = logging.getLogger("adaptation_study")
PROJECT = Path(__file__).resolve().parents[1]
#: The data pipelines every regime runs first, and the node name suffixes of a namespace's evaluation.
DATA_PIPELINES = ("synthesis", "ingestion", "label_remapping")
EVALUATION_NODES = (".evaluate", ".evaluate_ensemble", ".tabulate_metrics")


# ---------------------------------------------------------------------------------------------- parameters
#: --dataset → the source domain's kind and where the synthetic generator writes it (runtime parameters, as
#: `kedro run --params "source.kind=synthia,source.root=..."` gives them: the catalog and the generator agree).
DATASETS = {
    "gta5": {},
    "synthia": {"source": {"kind": "synthia", "root": "data/01_raw/synthetic/synthia"}},
}


def load_parameters(env: str | None, dataset: str = "gta5") -> tuple[dict[str, Any], dict[str, Any]]:
    """The project's parameters and catalog configuration in environment ``env`` (over base) for a source
    ``dataset`` layout."""
    from kedro.config import OmegaConfigLoader

    from adaptseg.settings import CONFIG_LOADER_ARGS

    loader = OmegaConfigLoader(
        conf_source=str(PROJECT / "conf"), base_env="base", default_run_env=env or "local",
        custom_resolvers=CONFIG_LOADER_ARGS["custom_resolvers"], runtime_params=DATASETS[dataset],
    )
    return dict(loader["parameters"]), dict(loader["catalog"])


def write_atomically(path: Path, text: str) -> None:
    """A file later runs read (metrics, selection): whole or not at all, even if this process is killed, and
    never torn by another process sharing ``--out``."""
    with atomic_file(path) as tmp:
        tmp.write_text(text)


def with_changes(block: Mapping, changes: Mapping[str, Any]) -> dict:
    """A deep copy of ``block`` with ``{"dotted.key": value}`` changes applied."""
    out = copy.deepcopy(dict(block))
    for dotted, value in changes.items():
        node = out
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return out


def with_overrides(params: dict, overrides: Iterable[str]) -> dict:
    """``params`` with ``dotted.key=value`` overrides applied (values parsed as YAML), as ``kedro --params``."""
    changes = {}
    for override in overrides:
        key, _, value = override.partition("=")
        changes[key] = yaml.safe_load(value)
    return with_changes(params, changes)


def digest(*parts: Any) -> str:
    return hashlib.blake2b(json.dumps(parts, sort_keys=True, default=str).encode(), digest_size=5).hexdigest()


# ---------------------------------------------------------------------------------------------- the plan
@dataclass
class Regime:
    """A target shift: generator changes applied to the target, and which seeds and namespaces it runs.

    ``knobs_from``: the regime whose dev choices this one uses instead of choosing again on its own dev split
    (held-out shifts test whether knobs chosen on the generator's own shift carry over).
    """

    name: str
    generator: dict[str, Any]
    seeds: list[int]
    namespaces: list[str]
    knobs_from: Regime | None = None


@dataclass
class Plan:
    regimes: list[Regime]
    grids: dict[str, list[dict[str, Any]]]
    selection_seed: int
    selection_split: str
    data_seed: int
    steps: dict[str, int] = field(default_factory=dict)  # {"pretrain": n, "adapt": m}
    precision: str | None = None  # one precision for every model of the study (None: each block's own)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], args: argparse.Namespace) -> Plan:
        every = {}
        for name, spec in settings["regimes"].items():
            spec = dict(spec or {})
            seeds = args.seeds or spec.get("seeds") or settings["seeds"]
            namespaces = args.namespaces or spec.get("namespaces") or settings["namespaces"]
            every[name] = Regime(name, dict(spec.get("generator") or {}), list(seeds), list(namespaces))
        for name, spec in settings["regimes"].items():
            source = (spec or {}).get("knobs_from")
            if source is not None:
                if source not in every or (settings["regimes"][source] or {}).get("knobs_from"):
                    raise SystemExit(f"study.regimes.{name}.knobs_from: {source!r} is not a regime that chooses "
                                     f"its own knobs ({sorted(every)})")
                every[name].knobs_from = every[source]
        unknown = sorted(set(args.regimes or []) - set(every))
        if unknown:
            raise SystemExit(f"--regimes {unknown}: not in study.regimes ({sorted(settings['regimes'])})")
        regimes = [r for name, r in every.items() if not args.regimes or name in args.regimes]
        selection = settings.get("selection") or {}
        steps = {"pretrain": args.pretrain_steps or settings["pretrain_steps"], "adapt": args.adapt_steps or settings["adapt_steps"]}
        grids = {} if args.no_selection else dict(settings.get("grids") or {})
        return cls(
            regimes, grids, int(selection.get("seed", 1)), selection.get("split", "dev"), int(settings["data_seed"]),
            steps, settings.get("precision"),
        )


# ---------------------------------------------------------------------------------------------- the runner
class Study:
    """Runs the project's pipelines namespace by namespace, each output in a folder named by what made it."""

    def __init__(self, params: dict, catalog_config: dict, plan: Plan, out: Path, quiet: bool) -> None:
        from kedro.framework.project import pipelines
        from kedro.framework.startup import bootstrap_project
        from kedro.io.catalog_config_resolver import CatalogConfigResolver

        from adaptseg.pipelines.evaluation.pipeline import ENSEMBLES

        bootstrap_project(PROJECT)
        for noisy in ("kedro", "adaptseg.io"):  # bootstrapping configured them; a study logs per model instead
            logging.getLogger(noisy).setLevel(logging.WARNING)
        self.pipelines = {name: pipelines[name] for name in pipelines if name != "__default__"}
        everything = sum(self.pipelines.values(), Pipeline([]))
        self.training_nodes = {n.namespace: n for n in everything.nodes if n.namespace and "training" in n.tags}
        self.evaluation = self.pipelines["evaluation"]
        self.ensembles = ENSEMBLES
        self.params, self.plan, self.out, self.quiet = params, plan, out, quiet
        self.resolver = CatalogConfigResolver(catalog_config)
        self.selection: dict[str, dict] = self.stored_selection()  # dev choices earlier runs made in this folder

    # -------------------------------------------------------------- parameters of one namespace
    def block_key(self, namespace: str) -> str:
        """The namespace's parameters block (``<namespace>.adaptation`` or ``<namespace>.training``)."""
        node = self.node(namespace)
        (key,) = [i.removeprefix("params:") for i in node.inputs if i.startswith(f"params:{namespace}.")]
        return key

    def node(self, namespace: str):
        if namespace not in self.training_nodes:
            raise SystemExit(f"No training node in namespace {namespace!r}; namespaces: {sorted(self.training_nodes)}")
        return self.training_nodes[namespace]

    def block(self, namespace: str, seed: int, knobs: Mapping[str, Any]) -> dict:
        """The namespace's parameters for this seed and budget, with a grid entry's ``method_config`` knobs."""
        first, second = self.block_key(namespace).split(".")
        block = copy.deepcopy(self.params[first][second])
        trains_from_scratch = any(i.startswith("params:model") for i in self.node(namespace).inputs)
        steps = self.plan.steps["pretrain" if trains_from_scratch else "adapt"]
        engine = {**block.get("engine", {}), "seed": seed, "snapshot_every": 0}
        if self.plan.precision:
            engine["precision"] = self.plan.precision
        if steps:
            engine["max_steps"] = steps
        block["engine"] = engine
        if knobs:
            block["method_config"] = {**block.get("method_config", {}), **knobs}
        return block

    def start_of(self, namespace: str) -> str | None:
        """The namespace whose model this one starts from (an input ``<other>.model``), if any."""
        starts = [i.split(".")[0] for i in self.node(namespace).inputs if i.endswith(".model")]
        return starts[0] if starts else None

    def reads_target(self, namespace: str) -> bool:
        return any(i.startswith("target_") for i in self.node(namespace).inputs)

    # -------------------------------------------------------------- folders
    def data_root(self, regime: Regime) -> Path:
        return self.out / "data" / f"{regime.name}-{digest(self.generator(regime))}"

    def generator(self, regime: Regime | None = None) -> dict:
        """What makes the regime's data (the generator's settings; the base settings without a regime).

        The source layout counts where it is not GTA5's, the layout of every study before SYNTHIA's, so
        that their folders stay valid.
        """
        layout = self.params["synthesis"].get("source_layout", "gta5")
        made_of = {**self.params["synthesis"]["generator"], **({} if layout == "gta5" else {"source_layout": layout})}
        if regime is None:
            return made_of
        return {**made_of, "seed": self.plan.data_seed, **regime.generator}

    def scope(self, namespace: str, seed: int, regime: Regime, knobs: Mapping[str, Any] | None = None) -> Path:
        """The folder of one trained model: a hash of its parameters, its start's folder and its data.

        An ensemble's folder is a hash of its members' folders and of how it combines them. Folders enter the
        hash relative to ``--out``, so a study folder can be moved or copied to another machine and resumed.
        """
        if namespace in self.ensembles:
            members = [self.scope(m, seed, regime) for m in self.ensembles[namespace]]
            return self._addressed(f"s{seed}/{regime.name}/{namespace}", members, lambda ms: [ms, self.params[namespace]])
        knobs = self.knobs(namespace, regime) if knobs is None else knobs
        start = self.start_of(namespace)
        starts = [] if start is None else [self.scope(start, seed, regime)]
        where = f"s{seed}" if not self.reads_target(namespace) and start is None else f"s{seed}/{regime.name}"
        return self._addressed(f"{where}/{namespace}", starts, lambda folders: [
            self.block(namespace, seed, knobs),
            self.params["model"] if start is None else folders[0],
            self.generator(regime) if self.reads_target(namespace) else self.generator(),
        ])

    def _addressed(self, where: str, folders: list[Path], made_of: Callable[[Any], list]) -> Path:
        """``runs/<where>/<hash of made_of(folders relative to --out)>``; a folder named by the absolute paths
        (studies before 2026-12-05) is used where it exists, so their trained models stay found."""
        root = self.out / "runs" / where
        folder = root / digest(*made_of([str(f.relative_to(self.out)) for f in folders] if folders else None))
        if not folders or folder.exists():
            return folder
        legacy = root / digest(*made_of([str(f) for f in folders]))
        return legacy if legacy.exists() else folder

    def knobs(self, namespace: str, regime: Regime) -> dict:
        """The grid entry chosen on dev for this regime (none without a grid; another's with ``follows``; another
        regime's with ``knobs_from``)."""
        grid = self.plan.grids.get(namespace)
        if grid is None:
            return {}
        if isinstance(grid, Mapping):
            return self.knobs(grid["follows"], regime)
        return self.select(namespace, regime.knobs_from or regime)

    def catalog(
        self,
        pipeline: Pipeline,
        regime: Regime,
        seed: int,
        params: Mapping[str, Any],
        roots: Mapping[str, Path] | None = None,
        outputs_root: Path | None = None,
    ):
        """A catalog of the project's entries for ``pipeline``'s datasets, each rooted in its own folder.

        ``roots`` gives the folder of a namespace's datasets (the one being trained, with its knobs); other
        namespaces' datasets are in their chosen scope, shared data in the regime's data folder, and
        ``outputs_root`` (when given) takes every output of the pipeline.
        """
        from kedro.io import DataCatalog

        roots = dict(roots or {})
        config = {}
        for name in pipeline.datasets():
            if name.startswith("params:") or name == "parameters":
                continue
            namespace = name.split(".")[0] if "." in name else None
            if outputs_root is not None and name in pipeline.all_outputs():
                root = outputs_root
            elif namespace is None:
                root = self.data_root(regime)
            else:
                root = roots.get(namespace) or self.scope(namespace, seed, regime)
            config[name] = _rooted(self.resolver.resolve_pattern(name), root)
        catalog = DataCatalog.from_config(config)
        for name in pipeline.datasets():
            if name.startswith("params:"):
                catalog[name] = _lookup(params, name.removeprefix("params:"))
        return catalog

    # -------------------------------------------------------------- running
    def run(self, pipeline, catalog) -> None:
        from kedro.runner import SequentialRunner

        SequentialRunner().run(pipeline, catalog)

    def prepare_data(self, regime: Regime) -> None:
        """Generate, ingest and remap the regime's data with the data pipelines (once per generator setting)."""
        root = self.data_root(regime)
        if (root / "done").is_file():
            return
        with claimed(root):  # another process sharing --out may be making it: wait, then use its data
            if (root / "done").is_file():
                return
            logger.info("data for regime %s -> %s", regime.name, root)
            pipeline = sum((self.pipelines[p] for p in DATA_PIPELINES), Pipeline([]))
            generator = {k: v for k, v in self.generator(regime).items() if k != "source_layout"}
            params = with_changes(self.params, {"synthesis.generator": generator})
            self.run(pipeline, self.catalog(pipeline, regime, self.plan.selection_seed, params))
            (root / "done").write_text("data pipelines finished\n")

    def train(
        self, namespace: str, seed: int, regime: Regime, knobs: Mapping[str, Any] | None = None, wait: bool = True
    ) -> Path:
        """Train ``namespace`` (and, first, what it starts from) unless its folder already holds the model.
        ``wait=False``: ``BlockingIOError`` where another process sharing ``--out`` is training it or its start."""
        if namespace in self.ensembles:  # evaluated from its members' weights: train those
            for member in self.ensembles[namespace]:
                self.train(member, seed, regime, wait=wait)
            return self.scope(namespace, seed, regime)
        knobs = self.knobs(namespace, regime) if knobs is None else dict(knobs)
        scope = self.scope(namespace, seed, regime, knobs)
        if (scope / "done").is_file():
            return scope
        start = self.start_of(namespace)
        if start is not None:
            self.train(start, seed, regime, wait=wait)
        with claimed(scope, wait):  # another process sharing --out may be training it: wait, then use its model
            if not (scope / "done").is_file():
                self._train(namespace, seed, regime, knobs, scope)
        return scope

    def _train(self, namespace: str, seed: int, regime: Regime, knobs: Mapping[str, Any], scope: Path) -> None:
        import mlflow

        block = with_changes(self.block(namespace, seed, knobs), {"engine.progress": not self.quiet})
        params = with_changes(self.params, {self.block_key(namespace): block})
        pipeline = Pipeline([self.node(namespace)])
        catalog = self.catalog(pipeline, regime, seed, params, {namespace: scope})
        began = time.perf_counter()
        with mlflow.start_run(run_name=f"{namespace} {regime.name} s{seed}"):
            mlflow.log_params({"namespace": namespace, "seed": seed, "regime": regime.name, "scope": scope.name,
                               **{f"knob.{k}": v for k, v in knobs.items()}})
            self.run(pipeline, catalog)
        # whole or absent: other processes test for it without the lock, then read the machine from it
        write_atomically(scope / "done", json.dumps({"namespace": namespace, "seed": seed, "regime": regime.name,
                                                     "knobs": knobs, "seconds": time.perf_counter() - began,
                                                     "machine": this_machine(block.get("engine", {}).get("device", "auto")),
                                                     "code": this_code()}))
        logger.info("trained %s (%s, seed %d) in %.0f s -> %s", namespace, regime.name, seed,
                    time.perf_counter() - began, scope)

    def evaluate(
        self, namespace: str, seed: int, regime: Regime, split: str, knobs: Mapping[str, Any] | None = None,
        wait: bool = True,
    ) -> dict:
        """The namespace's evaluation nodes on ``split`` (metrics kept beside the model, exports off)."""
        scope = self.train(namespace, seed, regime, knobs, wait)
        root = scope / f"eval_{split}"
        metrics_file = root / "metrics.json"
        if not metrics_file.is_file():
            with claimed(root, wait):
                if not metrics_file.is_file():
                    self._evaluate(namespace, seed, regime, split, scope, root)
        return json.loads(metrics_file.read_text())

    def _evaluate(self, namespace: str, seed: int, regime: Regime, split: str, scope: Path, root: Path) -> None:
        nodes = [n for n in self.evaluation.only_nodes_with_namespaces([namespace]).nodes
                 if n.name.endswith(EVALUATION_NODES)]
        pipeline = Pipeline(nodes)
        evaluation = {**self.params["evaluation"], "split": split, "export": {"enabled": False}}
        params = with_changes(self.params, {"evaluation": evaluation})
        catalog = self.catalog(pipeline, regime, seed, params, {namespace: scope}, outputs_root=root)
        self.run(pipeline, catalog)
        write_atomically(root / "metrics.json", json.dumps(catalog.load(f"{namespace}.metrics")))

    def select(self, namespace: str, regime: Regime) -> dict:
        """The grid entry of ``namespace`` with the best ``dev`` mIoU on the selection seed, in this regime."""
        entries = self.plan.grids[namespace]
        chosen = self.selection.setdefault(regime.name, {}).get(namespace)
        if chosen is not None and chosen["grid"] == entries:
            return chosen["chosen"]  # a changed grid is chosen again (its trained entries are reused)
        self.prepare_data(regime)  # another regime's choice (knobs_from) may not have its data here yet
        for entry in entries:  # first the entries no other process is training, then wait for those in turn
            with suppress(BlockingIOError):
                self.evaluate(namespace, self.plan.selection_seed, regime, self.plan.selection_split, entry, wait=False)
        scores = []
        for entry in entries:
            metrics = self.evaluate(namespace, self.plan.selection_seed, regime, self.plan.selection_split, entry)
            scores.append(_miou(metrics, self.params))
            logger.info("selection %s %s %s: %s mIoU %.2f", regime.name, namespace, entry, self.plan.selection_split, scores[-1])
        best = max(range(len(entries)), key=scores.__getitem__)
        self.selection[regime.name][namespace] = {
            "grid": entries, f"{self.plan.selection_split}_miou": scores, "chosen": entries[best],
            "seed": self.plan.selection_seed, "split": self.plan.selection_split,
        }
        self.save_selection()
        return entries[best]

    @property
    def selection_file(self) -> Path:
        return self.out / "selection.json"

    def stored_selection(self) -> dict[str, dict]:
        """``--out``'s selection.json as earlier runs and other processes left it; empty when none chose yet."""
        return json.loads(self.selection_file.read_text()) if self.selection_file.is_file() else {}

    def save_selection(self) -> None:
        """selection.json, merged with what other processes sharing ``--out`` chose for other regimes."""
        with exclusive_lock(self.out / ".study.lock"):
            merged = self.stored_selection()
            for regime, chosen in self.selection.items():
                merged.setdefault(regime, {}).update(chosen)
            self.selection = merged
            write_atomically(self.selection_file, json.dumps(merged, indent=2))

    def study(self) -> None:
        started = time.perf_counter()
        for regime in self.plan.regimes:
            self.prepare_data(regime)
        for regime in self.plan.regimes:
            for namespace in regime.namespaces:
                self.knobs(namespace, regime)  # every grid chosen on dev before any seed's main runs
        work = [(namespace, seed, regime) for seed in sorted({s for r in self.plan.regimes for s in r.seeds})
                for regime in self.plan.regimes if seed in regime.seeds for namespace in regime.namespaces]
        wait = False  # processes sharing --out take what no other is making, and wait only when nothing is left
        while work:
            left = []
            for namespace, seed, regime in work:
                try:
                    for split in ("dev", "val"):
                        metrics = self.evaluate(namespace, seed, regime, split, wait=wait)
                        self.record(namespace, seed, regime, split, metrics)
                except BlockingIOError:  # another process is making it or its start: back to it later
                    left.append((namespace, seed, regime))
                    continue
                logger.info("done %s %s s%d (%.0f min so far)", namespace, regime.name, seed,
                            (time.perf_counter() - started) / 60)
            wait = wait or len(left) == len(work)
            work = left

    def trained_by(self, namespace: str, seed: int, regime: Regime) -> dict[str, str]:
        """The machine and the code that trained the model (an ensemble: its first member's), for its rows;
        "unrecorded" for models trained before the study recorded them (machine 2026-12-05, code 2026-12-06)."""
        if namespace in self.ensembles:
            return self.trained_by(self.ensembles[namespace][0], seed, regime)
        done = json.loads((self.scope(namespace, seed, regime) / "done").read_text())
        return {"machine": done.get("machine", "unrecorded"), "code": done.get("code", "unrecorded")}

    def record(self, namespace: str, seed: int, regime: Regime, split: str, metrics: Mapping) -> None:
        main = str(self.params["model"]["num_classes"])
        scores = metrics["protocols"][main]
        narrower = {f"miou{p}": round(v["miou"], 3) for p, v in metrics["protocols"].items() if p != main}
        row = (
            {"seed": seed, "regime": regime.name, "method": namespace, "split": split,
             "adapt_steps": self.plan.steps["adapt"], "pretrain_steps": self.plan.steps["pretrain"],
             "knobs": json.dumps(self.knobs(namespace, regime), sort_keys=True),
             **self.trained_by(namespace, seed, regime),
             "miou": round(scores["miou"], 3), **narrower, "pixel_accuracy": round(scores["pixel_accuracy"], 3)}
            | {f"iou.{k}": v for k, v in scores["iou"].items()}
        )
        default_steps = self.params["study"]["adapt_steps"]
        key = row_key(row, default_steps)
        results = self.out / "results.csv"
        # Merged with the file under a lock: processes sharing --out (other seeds, regimes or budgets) each add
        # their rows; a row replaces only the one with its seed, regime, namespace, split and budget.
        with exclusive_lock(self.out / ".study.lock"):
            rows = pd.read_csv(results).to_dict("records") if results.is_file() else []
            rows = [r for r in rows if row_key(r, default_steps) != key] + [row]
            with atomic_file(results) as tmp:
                pd.DataFrame(rows).to_csv(tmp, index=False)


def this_machine(device: str = "auto") -> str:
    """The processor or GPU that ``device`` (the engine's setting) trains on, and the torch version: fp32
    training is reproducible on one machine kind, not across kinds (different kernels round differently, and
    adversarial training amplifies it), so rows pair within one. On a CPU, a thread count other than the
    study's one is part of the kind too (``study.threads``)."""
    import torch

    from adaptseg.training.precision import resolve_device
    from adaptseg.training.precision_probe import machine_name

    resolved = resolve_device(device)
    threads = torch.get_num_threads()
    suffix = f", {threads} threads" if resolved.type == "cpu" and threads != 1 else ""
    return f"{machine_name(resolved)}, torch {torch.__version__}{suffix}"


def this_code() -> str:
    """The commit that trains a model, ``+dirty`` with uncommitted changes to tracked files: rows are addressed by
    their configuration, not their code (a new commit reuses the models), so each says which code made it."""
    from adaptseg.reporting.provenance import UNKNOWN, git_tags

    tags = git_tags(PROJECT)
    if tags["git.commit"] == UNKNOWN:
        return UNKNOWN
    return tags["git.commit"][:12] + ("+dirty" if tags["git.dirty"] == "true" else "")


def default_jobs(threads: int) -> int:
    """One study process per ``threads`` cores; one where CUDA is present (the engines' ``device: auto``)."""
    from adaptseg.training.precision import resolve_device

    return 1 if resolve_device("auto").type != "cpu" else max(1, (os.cpu_count() or 1) // threads)


@contextmanager
def workers(argv: Sequence[str], out: Path, jobs: int) -> Iterator[None]:
    """``jobs - 1`` more processes of this study over the same ``--out`` while this one runs it, each logging
    to ``<out>/worker-<k>.log``; waited for at the end, so the summary written after covers their rows. One
    that failed is named with its log; a stopped study stops them."""
    import subprocess

    if jobs <= 1:
        yield
        return
    argv = [a for a in argv if not a.startswith("--jobs=")]
    while "--jobs" in argv:  # the flag and its value
        del argv[argv.index("--jobs"):argv.index("--jobs") + 2]
    command = [sys.executable, str(Path(__file__).resolve()), *argv, "--jobs", "1", "--quiet"]
    logs = [out / f"worker-{k}.log" for k in range(1, jobs)]
    children = []
    for log in logs:
        with open(log, "w") as handle:
            children.append(subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT))
    logger.info("%d more study process(es) over %s, logging to %s", len(children), out, ", ".join(map(str, logs)))
    try:
        yield
    except BaseException:
        for child in children:
            child.terminate()
        raise
    failed = [str(log) for child, log in zip(children, logs, strict=True) if child.wait() != 0]
    if failed:
        raise SystemExit(f"study processes failed; their logs: {', '.join(failed)}")


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch's intra-op threads set to ``count`` while the study trains, and given back after (a caller such as
    a test process keeps its own)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def open_tracking(uri: str, experiment: str, out: Path) -> None:
    """MLflow's store and the study's experiment, opened by one process sharing ``out`` at a time: the first to
    touch a fresh SQLite store creates its tables, and two doing it at once fail in alembic's migration (seen
    when two processes started a study on a new machine together)."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    with exclusive_lock(out / ".study.lock"):
        mlflow.set_experiment(experiment)


def _miou(metrics: Mapping, params: Mapping) -> float:
    return float(metrics["protocols"][str(params["model"]["num_classes"])]["miou"])


def _lookup(params: Mapping, dotted: str) -> Any:
    value: Any = params
    for key in dotted.split("."):
        value = value[key]
    return value


def _rooted(config: Any, root: Path) -> Any:
    """A catalog entry's config with every ``data/...`` path moved under ``root``."""
    if isinstance(config, dict):
        return {k: _rooted(v, root) for k, v in config.items()}
    if isinstance(config, str) and config.startswith("data/"):
        return str(root / config.removeprefix("data/"))
    return config


# ---------------------------------------------------------------------------------------------- entry point
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default=None, help="Kedro config environment (default: local over base)")
    parser.add_argument(
        "--dataset", choices=sorted(DATASETS), default="gta5",
        help="the synthetic source's layout: gta5, or synthia (SYNTHIA-RAND-CITYSCAPES, 16/13-class summaries too)",
    )
    parser.add_argument("--seeds", type=int, nargs="*", help="these seeds in every regime")
    parser.add_argument("--regimes", nargs="*", help="a subset of study.regimes")
    parser.add_argument("--namespaces", nargs="*", help="these namespaces in every regime")
    parser.add_argument("--pretrain-steps", type=int, help="override source pretraining (and oracle) steps")
    parser.add_argument("--adapt-steps", type=int, help="override the steps of every adaptation namespace")
    parser.add_argument("--no-selection", action="store_true", help="use the parameters' knobs, no dev grid")
    parser.add_argument(
        "--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
        help="override parameters as kedro --params does, e.g. adaptsegnet_multi.adaptation.method_config.ndf=64",
    )
    parser.add_argument("--out", help="default: data/08_reporting/study, or study_synthia with --dataset synthia")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "--jobs", type=int,
        help="processes sharing --out, each taking the models no other is making (default study.jobs; null: one "
             "per study.threads cores, one where CUDA is present); the others log to <out>/worker-<k>.log",
    )
    parser.add_argument("--summarise-only", action="store_true", help="summarise --out's results.csv; train nothing")
    args = parser.parse_args(argv)
    recorded_argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    params, catalog_config = load_parameters(args.env, args.dataset)
    params = with_overrides(params, args.overrides)
    from adaptseg.config_validation import validate_parameters

    validate_parameters(params)  # every block and --set override checked before anything trains
    settings = params["study"]
    out = Path(args.out or ("data/08_reporting/study" + ("" if args.dataset == "gta5" else f"_{args.dataset}")))
    protocols = PROTOCOLS[args.dataset]
    if args.summarise_only:
        results = out / "results.csv"
        if not results.exists():
            raise SystemExit(f"--summarise-only: {results} does not exist (nothing to summarise)")
        write_summary(pd.read_csv(results), out, settings, {"argv": recorded_argv, "study": settings}, protocols)
        return
    plan = Plan.from_settings(settings, args)
    out.mkdir(parents=True, exist_ok=True)
    open_tracking(os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"), settings["name"], out)
    from adaptseg import tracking

    # whatever a Kedro session of this process left: each model's run is named and tagged with the study's own
    # env (what load_parameters read), and no model is logged
    tracking.configure(args.env or "local", {"log_models": False})
    study = Study(params, catalog_config, plan, out, args.quiet)
    check_results(out / "results.csv", plan.steps["pretrain"], settings["pretrain_steps"])
    started = time.perf_counter()
    with workers(recorded_argv, out, args.jobs or settings["jobs"] or default_jobs(settings["threads"])):
        with torch_threads(settings["threads"]):  # the count is part of what a row reproduces
            study.study()
    results = out / "results.csv"  # every process's rows, not only this one's
    write_summary(pd.read_csv(results) if results.is_file() else pd.DataFrame(), out, settings,
                  {"argv": recorded_argv, "study": settings, "selection": study.selection,
                   "minutes": round((time.perf_counter() - started) / 60, 1)}, protocols)
    print(f"wrote {out}/results.csv, summary.md, summary.json, summary.png in {(time.perf_counter() - started) / 60:.1f} min")


#: --dataset → the class protocols summarised beside the model's own (SYNTHIA reports 16 and 13 classes).
PROTOCOLS = {"gta5": (), "synthia": (16, 13)}


def write_summary(
    rows: pd.DataFrame, out: Path, settings: Mapping, recorded: Mapping, protocols: Iterable[int] = ()
) -> None:
    """summary.md / .json / .png (and summary_<protocol>.* per narrower protocol) of the study's ``val`` rows,
    and settings.json, beside results.csv."""
    from adaptseg.reporting.study_summary import budget_figure, summarise_study

    out.mkdir(parents=True, exist_ok=True)
    check_one_pretraining(rows, out / "results.csv", settings["pretrain_steps"])
    base = base_budget(rows, settings["adapt_steps"])  # the steps of unlabelled rows, in the tables and the plot
    rows = label_budgets(rows, settings["adapt_steps"])
    for protocol in (None, *protocols):
        summary = summarise_study(
            rows, split="val", order=settings["namespaces"], baselines=settings.get("baselines", ["source_only"]),
            comparisons=settings.get("comparisons", []), value="miou" if protocol is None else f"miou{protocol}",
            base_steps=base,
        )
        stem = "summary" if protocol is None else f"summary_{protocol}"
        # each file whole or not there: processes sharing --out (--jobs) may finish and write at the same time
        write_atomically(out / f"{stem}.json", json.dumps(summary["json"], indent=2))
        write_atomically(out / f"{stem}.md", summary["markdown"])
        save_figure(summary["figure"], out / f"{stem}.png")
        print(summary["markdown"])
        budgets = budget_figure(summary["json"], base)
        if budgets is not None:
            save_figure(budgets, out / f"{stem}_budgets.png")
    write_atomically(out / "settings.json", json.dumps(recorded, indent=2, default=str))


def save_figure(figure, path: Path) -> None:
    with atomic_file(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


def claimed(folder: Path, wait: bool = True):
    """An exclusive lock beside ``folder`` (``.<name>.lock``) while this process makes what goes in it, so that
    processes sharing ``--out`` make each dataset, model and evaluation once (the others wait, then read it;
    with ``wait=False`` they get ``BlockingIOError`` and do something else first)."""
    return exclusive_lock(folder.parent / f".{folder.name}.lock", wait)


def check_results(results: Path, pretrain_steps: int, default_pretrain: int) -> None:
    """Before a run adds to ``results.csv``: the rows earlier runs wrote there (other seeds, regimes, namespaces
    or ``--adapt-steps``, other processes) are kept, and ``Study.record`` replaces one only with the same seed,
    regime, namespace, split and budget. One folder holds one source-pretraining budget: a run at another
    ``--pretrain-steps`` is refused, since its models pair with none of the rows there (rows without
    ``pretrain_steps`` were pretrained for the study's default)."""
    if results.is_file():
        check_one_pretraining(pd.read_csv(results), results, default_pretrain, pretrain_steps)


def row_key(row: Mapping, default_steps: int) -> tuple:
    """What a recorded row replaces: the one of the same seed, regime, namespace, split and adaptation budget
    (rows from before budgets were recorded count as the study's default budget)."""
    steps = row.get("adapt_steps")
    steps = default_steps if steps is None or pd.isna(steps) else steps
    return int(row["seed"]), str(row["regime"]), str(row["method"]), str(row["split"]), int(steps)


def check_one_pretraining(rows: pd.DataFrame, where: Path, default_pretrain: int, wanted: int | None = None) -> None:
    """Refuse rows of several source-pretraining budgets (or of another than ``wanted``): budgets of adaptation
    are told apart in the summary, pretraining budgets are not, and their models never pair."""
    held = rows["pretrain_steps"].fillna(default_pretrain) if "pretrain_steps" in rows else pd.Series([default_pretrain])
    budgets = sorted(set(held.astype(int)) | ({int(wanted)} if wanted is not None else set()))
    if len(budgets) > 1:
        raise SystemExit(
            f"{where}: rows of source pretraining for {budgets} steps; one results.csv holds one pretraining budget "
            "(their models never pair). Give this run another --out."
        )


def adapt_budgets(rows: pd.DataFrame, default_steps: int) -> pd.Series:
    """Each row's adaptation budget; rows without one (studies before 2026-12-05) had the study's default, as
    ``row_key`` counts them."""
    held = rows["adapt_steps"] if "adapt_steps" in rows else pd.Series(index=rows.index, dtype=float)
    return held.fillna(default_steps).astype(int)


def base_budget(rows: pd.DataFrame, default_steps: int) -> int:
    """The budget whose rows keep their namespace's name: the study's default where the rows hold it, else the
    smallest they hold (a study run wholly at another ``--adapt-steps`` keeps plain names)."""
    budgets = set(adapt_budgets(rows, default_steps))
    return default_steps if default_steps in budgets or not budgets else min(budgets)


def label_budgets(rows: pd.DataFrame, default_steps: int) -> pd.DataFrame:
    """Rows of several adaptation budgets (results.csv files of runs with other ``--adapt-steps``, concatenated):
    those of a budget other than ``base_budget`` summarise as methods of their own, ``<namespace>_<steps>_steps``,
    which the summary holds against source-only and the oracle at the same budget. Rows without ``adapt_steps``
    count as the study's default budget (``adapt_budgets``)."""
    if rows.empty:
        return rows
    steps = adapt_budgets(rows, default_steps)
    other = steps != base_budget(rows, default_steps)
    labelled = pd.Series([budget_label(m, int(n)) for m, n in zip(rows["method"], steps, strict=True)], index=rows.index)
    return rows.assign(method=rows["method"].where(~other, labelled))


if __name__ == "__main__":
    sys.exit(main())
