"""Pipelines of the Kedro project under ``torchrun``, for training on several machines:

    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 \\
        -m adaptseg.train_distributed --env gta5_cityscapes --pipelines adaptation --namespaces adaptsegnet_multi

Every rank runs the selected nodes in the same (topological) order with the project's catalog and parameters
(``--params`` as for ``kedro run``); the engine inside the training nodes joins the process group that
``torchrun`` set up. Rank 0 runs them as ``kedro run`` would, in a Kedro session with the project's hooks: it
saves every output through the catalog and is the one MLflow run (parent, a child per model, the curves as
they come). The other ranks keep their outputs in memory and write nothing, to disk or to MLflow. The run
folders (``<namespace>.run``), ``data/`` and the MLflow store must be ones every machine's rank 0 sees (rank 0
is on the first machine). On one machine, ``kedro run`` with ``engine.nproc_per_node`` does the same.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import yaml  # noqa: E402

logger = logging.getLogger("adaptseg.train_distributed")


def parse_params(text: str | None) -> dict[str, Any]:
    """``a.b=1,c=x`` → ``{"a": {"b": 1}, "c": "x"}`` (values read as YAML, as ``kedro run --params`` does)."""
    params: dict[str, Any] = {}
    items, depth, current = [], 0, ""
    for char in text or "":  # commas inside [...] or {...} belong to the value
        depth += char in "[{"
        depth -= char in "]}"
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    items.append(current)
    for item in filter(None, items):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"--params: expected key=value, got {item!r}")
        *parents, leaf = key.strip().split(".")
        node = params
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return params


def run_nodes(pipeline: Any, catalog: Any) -> dict[str, Any]:
    """A rank other than 0: the pipeline's nodes in the order Kedro's sequential runner takes them (``nodes``
    is topologically sorted), inputs from the catalog or memory, outputs kept in memory only."""
    memory: dict[str, Any] = {}
    for node in pipeline.nodes:
        inputs = {name: memory[name] if name in memory else catalog.load(name) for name in node.inputs}
        logger.info("rank %s: running %s", os.environ.get("RANK", "0"), node.name)
        outputs: Mapping[str, Any] = node.run(inputs)
        memory.update(outputs)
    return memory


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="torchrun ... -m adaptseg.train_distributed", description=__doc__.split("\n")[0])
    parser.add_argument("--env", default=None, help="Kedro configuration environment")
    parser.add_argument("--pipelines", nargs="+", default=["adaptation"], help="registered pipelines to run")
    parser.add_argument("--namespaces", nargs="*", default=None, help="only these namespaces")
    parser.add_argument("--params", default=None, help="runtime parameters, key=value[,key=value]")
    parser.add_argument("--project", type=Path, default=Path.cwd(), help="the Kedro project's folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)

    from kedro.framework.project import pipelines
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project
    from kedro.pipeline import Pipeline

    bootstrap_project(args.project)
    unknown = sorted(set(args.pipelines) - set(pipelines))
    if unknown:
        raise SystemExit(f"unknown pipelines {unknown}; registered: {sorted(pipelines)}")
    selected = Pipeline([pipelines[name] for name in args.pipelines])
    if args.namespaces:
        selected = selected.only_nodes_with_namespaces(args.namespaces)
    with KedroSession.create(project_path=args.project, env=args.env, runtime_params=parse_params(args.params)) as session:
        if int(os.environ.get("RANK", "0")) == 0:  # the same nodes, run and tracked as `kedro run` runs them
            logger.info("rank 0: running %d nodes in a Kedro session", len(selected.nodes))
            session.run(pipeline_names=args.pipelines, namespaces=args.namespaces or None)
        else:
            run_nodes(selected, session.load_context().catalog)


if __name__ == "__main__":
    main()
