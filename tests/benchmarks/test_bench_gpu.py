"""The GPU step table: on a machine without CUDA it says so; its whole machinery runs on the CPU at tiny sizes."""

import math
import sys
import time
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch.autograd import DeviceType

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_gpu  # noqa: E402
import original_iteration  # noqa: E402
import run  # noqa: E402
from step_clock import Plan, StepClock, busy_seconds  # noqa: E402

from adaptseg.methods import adaptsegnet  # noqa: E402
from adaptseg.models import build_segmenter  # noqa: E402
from adaptseg.training.engine import EngineConfig  # noqa: E402

TINY = (32, 64)  # H, W: the discriminator's five stride-2 convolutions need 32 pixels a side


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without a GPU")
def test_gpu_step_table_says_clearly_that_no_gpu_was_found():
    figures = bench_gpu.gpu_step_table()
    assert list(figures) == ["skipped"] and "no CUDA GPU found" in figures["skipped"]
    assert "gpu_step_table" in run.BENCHMARKS and run.BENCHMARKS["gpu_step_table"] is bench_gpu.gpu_step_table


def test_the_table_runs_every_row_on_the_cpu_at_tiny_sizes(monkeypatch):
    """Every row in its own process through the same code as on a GPU: a finite time, or a stated reason. Compiled
    rows are left out here (a minute of compilation each on 2 cores; ``tests/training/test_compiled.py`` trains
    through the engine's compiled path)."""
    monkeypatch.setattr(bench_gpu, "ROWS", tuple(
        (label, settings) for label, settings in bench_gpu.ROWS if "compile_mode" not in settings.get("engine", {})))
    assert len(bench_gpu.ROWS) >= 10
    figures = bench_gpu.step_table("cpu", "deeplabv2_small", TINY, TINY, warmup=1, steps=2, profile_steps=1,
                                   budget_s=3600, row_timeout_s=600)
    rows = figures["table"]
    print("\n".join(run._section("gpu_step_table (CPU, tiny)", figures)))
    assert [row["row"] for row in rows] == [label for label, _ in bench_gpu.ROWS]
    assert all(tuple(row) == bench_gpu.COLUMNS for row in rows)
    for row in rows:
        seconds = row["s/iteration"]
        assert (seconds is not None and math.isfinite(seconds) and seconds > 0) or row["note"], row
        assert row["GPU busy fraction"] is None and row["peak GPU memory allocated in timed steps (GiB)"] is None
    original, ours = rows[0], rows[1]
    assert original["row"] == bench_gpu.ORIGINAL and original["s/iteration"] > 0
    assert original["speed-up vs the original's iteration"] == 1.0 and ours["speed-up vs the original's iteration"] > 0
    assert all(math.isfinite(v) for v in figures["first-step losses"][bench_gpu.ORIGINAL].values())
    known = {f.name for f in fields(EngineConfig)}
    for row, (_, settings) in zip(rows, bench_gpu.ROWS, strict=True):
        unknown = set(settings.get("engine", {})) - known
        if unknown:  # knobs the engine does not have yet: the row fails and says which
            assert row["s/iteration"] is None and row["note"].startswith("failed:")
            assert any(name in row["note"] for name in unknown), row["note"]
        else:
            assert row["s/iteration"] > 0, row
    assert "| row | s/iteration |" in run._markdown({"machine": {"when": "now", "cpu_count": 2},
                                                      "benchmarks": {"gpu_step_table": figures}})


def test_a_failing_row_says_why_and_the_budget_skips_the_rest(monkeypatch):
    monkeypatch.setattr(bench_gpu, "ROWS", bench_gpu.ROWS[:2])
    figures = bench_gpu.step_table("cpu", "no_such_arch", TINY, TINY, warmup=0, steps=1, profile_steps=0)
    assert figures["table"][0]["note"].startswith("failed:") and "no_such_arch" in figures["table"][0]["note"]
    figures = bench_gpu.step_table("cpu", "deeplabv2_small", TINY, TINY, budget_s=0)
    assert all("budget was spent" in row["note"] for row in figures["table"])


def test_the_original_iteration_trains_with_finite_first_losses():
    """The original's loop on the project's models: finite losses, and every model's weights move."""
    torch.manual_seed(0)
    segmenter = build_segmenter("deeplabv2_small", 19, multi_level=True, bn_mode="train", depth=18, width=32)
    built = adaptsegnet.build_models(segmenter, adaptsegnet.Config())
    discriminators = {"aux": built["discriminator_aux"], "main": built["discriminator_main"]}
    it = original_iteration.build(segmenter, discriminators, torch.device("cpu"))
    before = {name: [p.detach().clone() for p in model.parameters()]
              for name, model in {"segmenter": segmenter, **discriminators}.items()}
    source = {"image": torch.randn(1, 3, *TINY) * 50, "label": torch.randint(0, 19, (1, *TINY))}
    target = {"image": torch.randn(1, 3, *TINY) * 50}
    losses = original_iteration.train_loop(it, [source], [target], steps=1)
    assert set(losses) == {"loss_seg", "loss_seg_aux", "loss_adv_aux", "loss_adv_main", "loss_d_aux", "loss_d_main"}
    assert all(math.isfinite(v) for v in losses.values())
    assert all(abs(losses[f"loss_d_{level}"] - math.log(2)) < 0.05 for level in ("aux", "main"))  # D at chance
    for name, model in {"segmenter": segmenter, **discriminators}.items():
        assert any(not torch.equal(a, b) for a, b in zip(before[name], model.parameters(), strict=True)), name
    backbone, heads = it.optimizer.param_groups
    assert heads["lr"] == pytest.approx(10 * backbone["lr"])  # the heads at 10× through the poly schedule


def test_busy_seconds_counts_overlapping_device_work_once():
    def event(start, end, device=DeviceType.CUDA):
        return SimpleNamespace(time_range=SimpleNamespace(start=start, end=end), device_type=device)

    events = [event(0, 100), event(50, 150), event(120, 130), event(300, 400), event(0, 1000, DeviceType.CPU)]
    assert busy_seconds(events) == pytest.approx(250e-6)
    assert busy_seconds([]) == 0


def test_the_step_clock_times_only_the_block_between_warm_up_and_profile():
    clock = StepClock(Plan(warmup=1, steps=3, profile_steps=1), torch.device("cpu"))
    for step in range(5):
        clock.before(step)
        clock.after(step)
    figures = clock.figures()
    assert len(clock.step_seconds()) == 3 and figures["block_seconds_per_iteration"] >= 0
    assert figures["gpu_busy_fraction"] is None and figures["profiled_seconds_per_iteration"] >= 0
    with pytest.raises(RuntimeError, match="never ended"):
        StepClock(Plan(1, 2), torch.device("cpu")).figures()


class _FakeEvent:
    """A CUDA event stand-in: records the host time (the CUDA branch's arithmetic, on a machine without one)."""

    def __init__(self, enable_timing: bool) -> None:
        assert enable_timing
        self.at = 0.0

    def record(self) -> None:
        self.at = time.perf_counter()

    def elapsed_time(self, other: "_FakeEvent") -> float:
        return (other.at - self.at) * 1e3  # ms, as CUDA events report


def test_the_step_clock_cuda_branch_reads_memory_and_events(monkeypatch):
    """The GPU branch's calls and arithmetic, with torch.cuda's clock and memory counters stood in for."""
    peaks = iter([3 * 2**30, 2 * 2**30])  # the warm-up's peak, then the timed block's
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: calls.append("sync"))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda: next(peaks))
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda: 4 * 2**30)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda: calls.append("reset"))
    monkeypatch.setattr(torch.cuda, "Event", _FakeEvent)
    clock = StepClock(Plan(warmup=2, steps=3), torch.device("cuda"))
    for step in range(5):
        clock.before(step)
        clock.after(step)
    figures = clock.figures()
    assert calls == ["sync", "reset", "sync"]  # one sync before the block, one after it, none inside
    assert figures["cuda_warmup_peak_allocated_gib"] == 3 and figures["cuda_peak_allocated_gib"] == 2
    assert figures["cuda_peak_reserved_gib"] == 4 and len(clock.step_seconds()) == 3
    assert figures["seconds_per_iteration"] >= 0 and figures["block_seconds_per_iteration"] >= 0


def test_a_run_spec_switches_the_cpu_matmul_forms_and_batchnorm_folding(monkeypatch):
    import bench_training

    from adaptseg.models import conv_bn, cpu_kernels

    monkeypatch.setattr(cpu_kernels, "ENABLED", True)
    monkeypatch.setattr(conv_bn, "ENABLED", True)
    bench_training._segmenter_and_method({"arch": "deeplabv2_small", "matmul_kernels": False, "fold_bn": False})
    assert not cpu_kernels.ENABLED and not conv_bn.ENABLED  # the other sides of the two A/B benchmarks
    bench_training._segmenter_and_method({"arch": "deeplabv2_small"})
    assert cpu_kernels.ENABLED and conv_bn.ENABLED


def test_the_folding_benchmark_alternates_the_two_forms_on_one_model():
    import bench_training

    from adaptseg.models import conv_bn

    figures = bench_training.frozen_bn_folding(rounds=2, cases=(("deeplabv2_small", 1, (32, 48)),))
    assert figures["deeplabv2_small 1×3×32×48 fp32: folded speed-up"] > 0
    assert conv_bn.ENABLED and not conv_bn.UNDER_CPU_AUTOCAST  # left as found
