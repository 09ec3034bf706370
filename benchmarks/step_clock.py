"""Timing a training run's iterations without adding host synchronisations inside the timed block.

A run is ``warmup`` iterations (cuDNN autotuning, allocator growth), ``steps`` timed ones and ``profile_steps``
profiled ones. The timed block is wall time between two ``synchronize()`` calls, one before its first iteration
and one after its last, divided by ``steps``: whatever host syncs the loop itself does (loss reads, a NaN guard,
log flushes) are in it, and nothing else is added. Per-iteration times come from CUDA events recorded between
iterations (no sync) or, on a CPU, from the host clock; their median is reported beside the block mean.

GPU memory: the warm-up's peak (autotuning workspaces) is read and reset before the timed block, whose own peak is
reported apart. The profiled iterations come after the timed ones, so the profiler's overhead never touches the
timing; their device activity (kernels, copies, sets; overlaps counted once) over their wall time is the GPU busy
fraction.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

GIB = 2**30


@dataclass(frozen=True)
class Plan:
    """How many iterations of each kind a run does, in this order."""

    warmup: int
    steps: int
    profile_steps: int = 0

    @property
    def total(self) -> int:
        return self.warmup + self.steps + self.profile_steps


def busy_seconds(events: Iterable[Any]) -> float:
    """Seconds during which the device ran anything: the union of the profiler's device-side events' intervals
    (kernels, memory copies and sets), so work overlapping on several streams counts once."""
    intervals = sorted((e.time_range.start, e.time_range.end) for e in events if e.device_type == DeviceType.CUDA)
    total, end = 0.0, float("-inf")
    for start, stop in intervals:
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total / 1e6  # the profiler's times are in µs


class StepClock:
    """Marks iterations before and after they run (``before(step)``, ``after(step)``) and turns the marks into
    the figures of :meth:`figures`."""

    def __init__(self, plan: Plan, device: torch.device) -> None:
        if plan.steps < 1:
            raise ValueError(f"steps={plan.steps}: at least one timed iteration is needed")
        self.plan, self.cuda = plan, device.type == "cuda"
        self.marks: list[Any] = []  # CUDA events or host times, one per timed iteration plus the end
        self.block_seconds: float | None = None
        self.warmup_seconds: float | None = None  # first iteration's start to the timed block's (compilation, autotuning)
        self._first_start: float | None = None
        self.memory: dict[str, float | None] = {}
        self._block_start = 0.0
        self._profiler: profile | None = None
        self._profile_start = 0.0
        self.profile: dict[str, float | None] = {}

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def _mark(self) -> Any:
        if not self.cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def before(self, step: int) -> None:
        plan = self.plan
        if self._first_start is None:
            self._first_start = time.perf_counter()
        if step == plan.warmup:
            self._start_block()
        if plan.warmup <= step < plan.warmup + plan.steps:
            self.marks.append(self._mark())
        if plan.profile_steps and step == plan.warmup + plan.steps:
            self._start_profile()

    def after(self, step: int) -> None:
        plan = self.plan
        if step == plan.warmup + plan.steps - 1:
            self._end_block()
        if plan.profile_steps and step == plan.total - 1:
            self._end_profile()

    def _start_block(self) -> None:
        self._sync()
        if self.cuda:  # the warm-up's peak: cuDNN's autotuning trials allocate their workspaces there
            warmup_peak = torch.cuda.max_memory_allocated() / GIB
            self.memory["warmup_peak_allocated_gib"] = warmup_peak if self.plan.warmup else None
            torch.cuda.reset_peak_memory_stats()
        self._block_start = time.perf_counter()
        self.warmup_seconds = self._block_start - self._first_start if self.plan.warmup else None

    def _end_block(self) -> None:
        self.marks.append(self._mark())
        self._sync()
        self.block_seconds = time.perf_counter() - self._block_start
        if self.cuda:
            self.memory["peak_allocated_gib"] = torch.cuda.max_memory_allocated() / GIB
            self.memory["peak_reserved_gib"] = torch.cuda.max_memory_reserved() / GIB

    def _start_profile(self) -> None:
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.cuda else [])
        self._profiler = profile(activities=activities)
        self._profiler.start()
        self._sync()
        self._profile_start = time.perf_counter()

    def _end_profile(self) -> None:
        self._sync()
        wall = time.perf_counter() - self._profile_start
        self._profiler.stop()
        busy = busy_seconds(self._profiler.events()) if self.cuda else None
        steps = self.plan.profile_steps
        self.profile = {
            "profiled_seconds_per_iteration": wall / steps,
            "gpu_busy_seconds_per_iteration": busy / steps if busy is not None else None,
            "gpu_busy_fraction": busy / wall if busy is not None else None,
        }
        self._profiler = None

    def step_seconds(self) -> list[float]:
        """Each timed iteration's time (call after the run: the events must have completed)."""
        if self.cuda:
            return [a.elapsed_time(b) / 1e3 for a, b in itertools.pairwise(self.marks)]
        return [b - a for a, b in itertools.pairwise(self.marks)]

    def figures(self) -> dict[str, Any]:
        if self.block_seconds is None:
            raise RuntimeError("the timed block never ended: the run stopped before its last timed iteration")
        steps = self.step_seconds()
        return {"seconds_per_iteration": statistics.median(steps),
                "block_seconds_per_iteration": self.block_seconds / self.plan.steps,
                "warmup_seconds": self.warmup_seconds,
                **({f"cuda_{k}": v for k, v in self.memory.items()} if self.cuda else {}), **self.profile}


class ClockedMethod:
    """A method namespace for the engine that marks every iteration on a :class:`StepClock` (through the
    ``before_iteration``/``after_iteration`` hooks, around the method's own) and keeps the first iteration's
    metrics as device tensors (read once after the run, so no sync is added)."""

    def __init__(self, method: ModuleType, clock: StepClock) -> None:
        self._method, self._clock = method, clock
        self.__name__ = method.__name__
        self.first_metrics: dict[str, Any] | None = None
        self.step = self._step if method.step is not None else None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._method, name)

    def _step(self, models: Mapping, batch: Mapping, config: Any, amp: Any) -> dict[str, Any]:
        metrics = self._method.step(models, batch, config, amp)
        if self.first_metrics is None:
            self.first_metrics = {k: v.detach().clone() if isinstance(v, torch.Tensor) else v
                                  for k, v in metrics.items()}
        return metrics

    def before_iteration(self, models: Mapping, step: int, config: Any, context: Any) -> None:
        self._clock.before(step)
        hook = getattr(self._method, "before_iteration", None)
        if hook is not None:
            hook(models, step, config, context)

    def after_iteration(self, models: Mapping, step: int, config: Any, context: Any) -> None:
        hook = getattr(self._method, "after_iteration", None)
        if hook is not None:
            hook(models, step, config, context)
        self._clock.after(step)

    def first_losses(self) -> dict[str, float]:
        return {k: float(v) for k, v in (self.first_metrics or {}).items() if k.startswith("loss")}
