"""``precision: auto`` decided by measuring, not by CPU or GPU flags.

A flag says that a bf16 path exists, not that it is fast: on an Intel Xeon reporting AVX512-BF16 without AMX,
the ResNet-101 training step measured 0.69× fp32's speed in bf16 (``make bench``, 2026-12-04), while an AMD
machine ran it 1.58× faster. So where a reduced-precision path exists, ``choose_precision`` times a few
forward-and-backward passes of a copy of the real model on the real input shape in fp32 and in that path,
keeps the faster, and caches the answer per machine, torch version, model and shape, so it costs seconds once.
Where no native path exists (an AVX2 CPU: emulated bf16 measured 50–350× slower) nothing is timed: fp32.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from adaptseg.models import conv_bn, cpu_kernels
from adaptseg.training.precision import Amp, resolve_precision

logger = logging.getLogger(__name__)

CACHE_ENV = "ADAPTSEG_CACHE_DIR"
CACHE_FILE = "precision_probe.json"
WARMUP, REPEATS, ROUNDS = 1, 3, 2


@dataclass(frozen=True)
class PrecisionChoice:
    """What ``auto`` became, and the step times (seconds) it was chosen from (empty where nothing was timed)."""

    precision: str
    seconds: dict[str, float]
    reason: str

    def describe(self) -> str:
        timed = ", ".join(f"{name} {value:.3f} s" for name, value in self.seconds.items())
        return f"precision auto -> {self.precision} ({self.reason}{': ' + timed if timed else ''})"


def cache_path() -> Path:
    """``$ADAPTSEG_CACHE_DIR/precision_probe.json``, else ``~/.cache/adaptseg/precision_probe.json``."""
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "adaptseg"
    return Path(root) / CACHE_FILE


def machine_name(device: torch.device) -> str:
    """The processor the measurement is valid for."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def probe_key(model: nn.Module, input_shape: tuple[int, ...], device: torch.device) -> str:
    parameters = sum(p.numel() for p in model.parameters())
    shape = "x".join(str(s) for s in input_shape)
    kernels = (cpu_kernels.FORMS if cpu_kernels.ENABLED else "convolutions") + (
        f", {conv_bn.FORM}" if conv_bn.ENABLED else ""
    )
    return (f"{machine_name(device)} | torch {torch.__version__} | {type(model).__name__} {parameters} | {shape} | "
            f"{kernels}")


def _tensors(output: object) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, list | tuple):
        return [t for item in output for t in _tensors(item)]
    return []


def step_seconds(model: nn.Module, input_shape: tuple[int, ...], device: torch.device, precision: str,
                 channels_last: bool) -> float:
    """Median seconds of one forward and backward pass of a copy of ``model`` (``model`` is not touched)."""
    probe = copy.deepcopy(model).to(device).train()
    if channels_last:
        probe = probe.to(memory_format=torch.channels_last)
    amp = Amp(device.type, precision)
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(input_shape, generator=generator).to(device)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    times = []
    for _ in range(WARMUP + REPEATS):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        with amp.autocast():
            loss = sum(t.float().mean() for t in _tensors(probe(images)))
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - started)
        probe.zero_grad(set_to_none=True)
    return sorted(times[WARMUP:])[REPEATS // 2]


def _load_cache(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def choose_precision(model: nn.Module, input_shape: tuple[int, ...], device: torch.device) -> PrecisionChoice:
    """fp32 or the device's reduced-precision path, whichever trains ``model`` faster here (cached)."""
    candidate = resolve_precision("auto", device)
    if candidate == "fp32":
        return PrecisionChoice("fp32", {}, "no native reduced-precision path on this processor")
    path, key = cache_path(), probe_key(model, input_shape, device)
    cached = _load_cache(path).get(key)
    if cached is not None:
        return PrecisionChoice(cached["precision"], cached["seconds"], f"measured before, cached in {path}")
    layouts = {"fp32": device.type == "cuda", candidate: True}  # the memory layout the engine would use
    seconds: dict[str, float] = {}
    for _ in range(ROUNDS):  # the first round pays one-time costs (kernel selection, thread pools) for both
        for name, channels_last in layouts.items():
            seconds[name] = step_seconds(model, input_shape, device, name, channels_last=channels_last)
    choice = PrecisionChoice(min(seconds, key=seconds.get), seconds, "measured one forward and backward pass")
    from adaptseg.io.atomic import atomic_file  # adaptseg.io reaches back into training at import

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        entries = {**_load_cache(path), key: asdict(choice)}
        with atomic_file(path) as tmp:
            tmp.write_text(json.dumps(entries, indent=2))
    except OSError as error:  # a read-only home still trains; it measures again next time
        logger.warning("could not cache the precision measurement in %s: %s", path, error)
    return choice
