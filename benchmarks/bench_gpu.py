"""The GPU step table: the paper's AdaptSegNet iteration, the original's loop against the engine's settings.

Paper setting: DeepLab-v2 ResNet-101 multi-level, 1280×720 source + 1024×512 target, batch 1 + 1, random data
(loading excluded). Each row runs in its own process (``bench_training.child``): ``WARMUP`` iterations, then
``STEPS`` timed as one block between two synchronisations (s/iteration = block / steps; the per-iteration
median from CUDA events beside it), then ``PROFILE_STEPS`` under ``torch.profiler`` for the GPU busy fraction
(``step_clock``). A row that fails or runs out of time says why; the others still run. The whole table is
meant to fit in 5 minutes on an H200 (``BUDGET_S``): rows past the budget are skipped and say so.

``step_table`` takes the device and sizes, so a CPU test runs the same machinery with the small network.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import bench_training
import torch

WARMUP, STEPS, PROFILE_STEPS = 3, 10, 4
BUDGET_S = 285.0  # the table's wall-time budget: rows that would start after it are skipped
ROW_TIMEOUT_S = 150.0
COMPILE_ROW_TIMEOUT_S = 240.0  # compiling ResNet-101's forward and backward happens in the warm-up

ORIGINAL = "original's iteration, fp32, cudnn.benchmark"
_BF16_FROZEN_CL = {"precision": "bf16", "channels_last": True, "bn_mode": "frozen"}
_LOG_FUSED = {"nan_guard": "log", "fused_optimizers": True}
_COMPILED = {**_LOG_FUSED, "compile_mode": "reduce-overhead"}

#: (row label, what its spec sets). BatchNorm "train" is the original's (batch statistics, frozen affine);
#: "frozen" is the project's adaptation default. ``engine`` is merged into the engine's config as is. Ordered by
#: what the table must answer, so that rows past the time budget are the least needed: the original, the
#: default and its A/B rows first, then compiled (CUDA graphs: issue 15 found the GPU idle half the time between
#: ~2,500 launches per iteration) and BatchNorm's other mode, the other precisions and layouts after. A row's
#: ``row_timeout_s`` raises the table's per-row limit for that row.
ROWS: tuple[tuple[str, dict[str, Any]], ...] = (
    (ORIGINAL, {"runner": "original", "precision": "fp32", "bn_mode": "train"}),
    ("ours bf16 + channels-last, BN frozen (adaptation default, folded into the convolutions)",
     dict(_BF16_FROZEN_CL)),
    ("ours bf16 + channels-last, BN frozen, as its own layers (not folded)", {**_BF16_FROZEN_CL, "fold_bn": False}),
    ("ours bf16 + channels-last, BN frozen, nan_guard: log", {**_BF16_FROZEN_CL, "engine": {"nan_guard": "log"}}),
    ("ours bf16 + channels-last, BN frozen, nan_guard: log + fused optimisers",
     {**_BF16_FROZEN_CL, "engine": _LOG_FUSED}),
    ("ours bf16 + channels-last, BN frozen, nan_guard: log + fused + torch.compile reduce-overhead (CUDA graphs)",
     {**_BF16_FROZEN_CL, "engine": _COMPILED, "row_timeout_s": COMPILE_ROW_TIMEOUT_S}),
    ("ours bf16 + channels-last, BN train", {"precision": "bf16", "channels_last": True, "bn_mode": "train"}),
    ("ours bf16 + channels-last, BN train, nan_guard: log + fused + torch.compile reduce-overhead (CUDA graphs)",
     {"precision": "bf16", "channels_last": True, "bn_mode": "train", "engine": _COMPILED,
      "row_timeout_s": COMPILE_ROW_TIMEOUT_S}),
    ("ours fp32, channels-last, BN train", {"precision": "fp32", "channels_last": True, "bn_mode": "train"}),
    ("ours fp32, NCHW, BN train", {"precision": "fp32", "channels_last": False, "bn_mode": "train"}),
    ("ours bf16, NCHW, BN train", {"precision": "bf16", "channels_last": False, "bn_mode": "train"}),
    ("ours bf16, NCHW, BN frozen", {"precision": "bf16", "channels_last": False, "bn_mode": "frozen"}),
    ("ours fp32, NCHW, BN train, deterministic (no autotuning)",
     {"precision": "fp32", "channels_last": False, "bn_mode": "train", "engine": {"deterministic": True}}),
)

COLUMNS = ("row", "s/iteration", "median s/iteration", "iterations/s", "speed-up vs the original's iteration",
           "peak GPU memory allocated in timed steps (GiB)", "peak allocated in warm-up (cuDNN autotuning) (GiB)",
           "GPU busy fraction", "GPU busy s/iteration", "warm-up s (compilation, autotuning)", "note")


def _failure(error: subprocess.CalledProcessError | subprocess.TimeoutExpired) -> str:
    """Why a row's process failed: its last error line (the exception), or the timeout."""
    if isinstance(error, subprocess.TimeoutExpired):
        return f"timed out after {error.timeout:.0f} s"
    lines = [line for line in (error.stderr or "").splitlines() if line.strip()]
    return lines[-1].strip() if lines else f"exit status {error.returncode}"


def run_row(spec: dict, timeout_s: float) -> dict:
    """One row's figures from its own process, or ``{"error": why}``."""
    command = [sys.executable, str(Path(bench_training.__file__).resolve()), json.dumps(spec)]
    try:
        out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=timeout_s)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        return {"error": _failure(error)}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _cpu_precision(spec: dict) -> tuple[dict, str]:
    """On a CPU without native bf16 a bf16 row runs in fp32 (emulated bf16 is hundreds of times slower)."""
    from adaptseg.training.precision import cpu_supports_fast_bf16

    if spec["precision"] != "bf16" or cpu_supports_fast_bf16():
        return spec, ""
    return {**spec, "precision": "fp32"}, "ran in fp32: no native bf16 on this CPU"


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def table_row(label: str, figures: dict, original_seconds: float | None, note: str = "") -> dict:
    """A row of the table from a run's figures (or why it has none: ``error`` or ``skipped``)."""
    if "error" in figures or "skipped" in figures:
        why = f"failed: {figures['error']}" if "error" in figures else figures["skipped"]
        return {**dict.fromkeys(COLUMNS), "row": label, "note": why}
    block = figures["block_seconds_per_iteration"]
    return {
        "row": label,
        "s/iteration": round(block, 4),
        "median s/iteration": round(figures["seconds_per_iteration"], 4),
        "iterations/s": round(1 / block, 2),
        "speed-up vs the original's iteration": _rounded(original_seconds / block if original_seconds else None, 2),
        "peak GPU memory allocated in timed steps (GiB)": _rounded(figures.get("cuda_peak_allocated_gib"), 2),
        "peak allocated in warm-up (cuDNN autotuning) (GiB)":
            _rounded(figures.get("cuda_warmup_peak_allocated_gib"), 2),
        "GPU busy fraction": _rounded(figures.get("gpu_busy_fraction"), 3),
        "GPU busy s/iteration": _rounded(figures.get("gpu_busy_seconds_per_iteration"), 4),
        "warm-up s (compilation, autotuning)": _rounded(figures.get("warmup_seconds"), 1),
        "note": note,
    }


def step_table(device: str, arch: str, source_size: tuple[int, int], target_size: tuple[int, int],
               warmup: int = WARMUP, steps: int = STEPS, profile_steps: int = PROFILE_STEPS,
               budget_s: float = BUDGET_S, row_timeout_s: float = ROW_TIMEOUT_S) -> dict:
    """Every row of ``ROWS`` on ``device`` at the given sizes, each in its own process, within ``budget_s``."""
    base = {"arch": arch, "device": device, "source_size": list(source_size), "target_size": list(target_size),
            "warmup": warmup, "steps": steps, "profile_steps": profile_steps}
    started, rows, losses = time.perf_counter(), [], {}
    original_seconds = None
    for label, row_settings in ROWS:
        settings = dict(row_settings)
        row_limit = max(row_timeout_s, settings.pop("row_timeout_s", 0.0))
        spec, note = _cpu_precision({**base, **settings}) if device == "cpu" else ({**base, **settings}, "")
        left = budget_s - (time.perf_counter() - started)
        if left <= 0:
            rows.append(table_row(label, {"skipped": f"not run: the table's {budget_s:.0f} s budget was spent"}, None))
            continue
        figures = run_row(spec, min(row_limit, left))
        if label == ORIGINAL and "error" not in figures:  # the speed-up's reference
            original_seconds = figures["block_seconds_per_iteration"]
        rows.append(table_row(label, figures, original_seconds, note))
        if "error" not in figures:
            losses[label] = {k: round(v, 4) for k, v in figures["first_step_losses"].items()}
    seconds = round(time.perf_counter() - started, 1)
    return {"table": rows, "first-step losses": losses, "seconds for the table": seconds}


def gpu_step_table() -> dict:
    """The table at the paper's setting on this machine's GPU, or a line saying there is none."""
    if not torch.cuda.is_available():
        return {"skipped": "no CUDA GPU found on this machine (torch.cuda.is_available() is False): "
                           "run `python benchmarks/run.py gpu_step_table` on a GPU machine"}
    figures = {
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "cuDNN": torch.backends.cudnn.version(),
        "setting": "DeepLab-v2 ResNet-101 multi-level, 1280×720 source + 1024×512 target, batch 1 + 1, random data; "
                   f"{WARMUP} warm-up + {STEPS} timed + {PROFILE_STEPS} profiled iterations per row",
        "fp32 convolutions may use TF32 (torch.backends.cudnn.allow_tf32)": torch.backends.cudnn.allow_tf32,
    }
    table = step_table("cuda", "deeplabv2_resnet101", bench_training.PAPER_SOURCE_SIZE,
                       bench_training.PAPER_TARGET_SIZE)
    return {**figures, **table}

