"""The loader benchmark writes real-sized files, streams them through the engine's path and cleans up."""

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_data  # noqa: E402


def test_loader_throughput_measures_both_domains_at_the_papers_sizes(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    figures = bench_data.loader_throughput(count=2, steps=2)
    rates = {k: v for k, v in figures.items() if k.endswith("images/s") and "workers" in k}
    assert any(k.startswith("source 1914x1052 -> 1280x720, 0 workers") for k in rates)
    assert any(k.startswith("target 2048x1024 -> 1024x512, 2 workers") for k in rates)
    assert all(v > 0 for v in rates.values())
    assert figures["needed per domain for 2x a 0.069 s GPU step, images/s"] == 29.0
    assert figures["cores needed at one core's rate (both domains)"] > 0
    assert list(tmp_path.iterdir()) == []  # the written images are gone
