"""The GPU benchmark of every method: on a machine without CUDA it says so; its child runs every method."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_training  # noqa: E402

from adaptseg.methods import METHODS  # noqa: E402


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without a GPU")
def test_gpu_methods_benchmark_says_clearly_that_no_gpu_was_found():
    figures = bench_training.methods_paper_resolution_cuda()
    assert list(figures) == ["skipped"] and "no CUDA GPU found" in figures["skipped"]


@pytest.mark.parametrize("name", [n for n, m in METHODS.items() if m.step is not None])
def test_the_benchmark_child_runs_every_method(name):
    """What the GPU rows run, on the CPU at a tiny size: the same code path, finite first losses."""
    spec = {"arch": "deeplabv2_small", "method": name, "method_config": bench_training.GPU_METHOD_CONFIGS.get(name, {}),
            "precision": "fp32", "bn_mode": "frozen", "steps": 1, "warmup": 1, "device": "cpu",
            "source_size": (64, 128), "target_size": (64, 128)}
    figures = bench_training.child(spec)
    assert figures["seconds_per_iteration"] > 0 and figures["precision"] == "fp32"
    assert figures["first_step_losses"] and all(v == v for v in figures["first_step_losses"].values())
