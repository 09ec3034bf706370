"""Benchmarks: `make bench` (or `python benchmarks/run.py [name ...]`).

Each benchmark returns a dict of measured figures; the runner writes them all to
``data/08_reporting/benchmarks/benchmarks.json`` and a markdown table beside it. Run alone on the machine:
two CPU-heavy jobs at once on 2 cores ruin each other's timings.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_data  # noqa: E402
import bench_evaluation  # noqa: E402
import bench_gpu  # noqa: E402
import bench_training  # noqa: E402

BENCHMARKS = {
    "hardware": bench_training.hardware,
    "remap_throughput": bench_data.remap_throughput,
    "data_pipelines": bench_data.data_pipelines,
    "loader_throughput": bench_data.loader_throughput,
    "resnet101_adaptation_step": bench_training.resnet101_step,
    "small_adaptation_step": bench_training.small_step,
    "conv_shapes": bench_training.conv_shapes,
    "resnet101_cpu_matmul_forms": bench_training.resnet101_cpu_matmul_forms,
    "frozen_bn_folding": bench_training.frozen_bn_folding,
    "gpu_step_table": bench_gpu.gpu_step_table,
    "methods_paper_resolution_cuda": bench_training.methods_paper_resolution_cuda,
    "evaluation_route": bench_evaluation.evaluation_route,
}

OUT = Path("data/08_reporting/benchmarks")


def _cell(value: object) -> str:
    return "–" if value is None else str(value)


def _table(rows: list[dict]) -> list[str]:
    """A list of same-keyed rows (a benchmark's ``table``) as a markdown table, one column per key."""
    columns = list(rows[0]) if rows else []
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]


def _section(name: str, figures: dict) -> list[str]:
    """One benchmark: its figures as ``| figure | value |``, then its ``table`` (if any) with its own columns."""
    lines = [f"## {name}", "", "| figure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in figures.items() if k != "table"]
    if figures.get("table"):
        lines += ["", *_table(figures["table"])]
    return lines + [""]


def _markdown(results: dict) -> str:
    lines = [f"# Benchmarks ({results['machine']['when']}, {results['machine']['cpu_count']} cores)", ""]
    for name, figures in results["benchmarks"].items():
        lines += _section(name, figures)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", choices=[*BENCHMARKS, []], help="benchmarks to run (default: all)")
    args = parser.parse_args(argv)
    names = args.names or list(BENCHMARKS)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "benchmarks.json"
    results = json.loads(path.read_text()) if path.exists() else {"benchmarks": {}}
    # figures of benchmarks that no longer exist (renamed, folded into another) would linger in the report
    results["benchmarks"] = {k: v for k, v in results.get("benchmarks", {}).items() if k in BENCHMARKS}
    import torch

    results["machine"] = {
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    for name in names:
        print(f"== {name}", flush=True)
        figures = BENCHMARKS[name]()
        results["benchmarks"][name] = figures
        for key, value in figures.items():
            if key == "table":
                print("\n".join(f"   {line}" for line in _table(value)), flush=True)
            else:
                print(f"   {key}: {value}", flush=True)
        path.write_text(json.dumps(results, indent=2))
    (OUT / "benchmarks.md").write_text(_markdown(results))
    print(f"wrote {path} and {OUT / 'benchmarks.md'}")


if __name__ == "__main__":
    main()
