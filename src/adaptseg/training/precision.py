"""Device and numeric precision: which autocast to use, and how to backpropagate and step under it.

Choices made by ``precision="auto"``:

- CUDA: bf16 autocast when the GPU supports bf16 natively (Ampere and newer), otherwise fp16 autocast
  with a ``GradScaler``. bf16 has fp32's exponent range, so it needs no loss scaling; that keeps the
  four backward passes and three optimisers of an adaptation step simple.
- CPU: bf16 autocast when the CPU has a native bf16 path (AMX tiles or AVX512-BF16), otherwise fp32.

That is the candidate from flags alone. The training engine does not trust it: ``precision_probe`` times the
candidate against fp32 on the model being trained and keeps the faster (AVX512-BF16 without AMX measured
0.69× fp32's speed in bf16).

Losses are always computed in fp32 (the functions in ``losses`` cast logits with ``.float()``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable

import torch

logger = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; ``"cuda"`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} was requested but CUDA is not available; use 'auto' or 'cpu'.")
        return torch.device(device)
    if device == "cpu":
        return torch.device("cpu")
    raise ValueError(f"Unknown device={device!r}; expected one of {DEVICES} (or 'cuda:N').")


def cpu_supports_fast_bf16() -> bool:
    """True when the CPU computes bf16 natively (AMX tiles or AVX512-BF16)."""
    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        check = getattr(torch.cpu, probe, None)
        try:
            if check is not None and check():
                return True
        except Exception:  # pragma: no cover - private probes may change between releases
            continue
    return False


def _cuda_supports_bf16() -> bool:
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # pragma: no cover - older signature
        return torch.cuda.is_bf16_supported()


def resolve_precision(precision: str, device: torch.device) -> str:
    """Map ``"auto"`` to ``"fp32"``, ``"bf16"`` or ``"fp16"`` for ``device`` (see module docstring)."""
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision={precision!r}; expected one of {PRECISIONS}.")
    if precision == "bf16" and device.type == "cpu" and not cpu_supports_fast_bf16():
        logger.warning(
            "precision='bf16' on a CPU without native bf16 (no AMX or AVX512-BF16): PyTorch emulates it, "
            "which measured 50 to 350 times slower than fp32 on an AVX2 machine (make bench, 'hardware'). "
            "Use precision 'auto' or 'fp32' here."
        )
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if _cuda_supports_bf16() else "fp16"
    return "bf16" if cpu_supports_fast_bf16() else "fp32"


class Amp:
    """Autocast region, backward and optimiser step for one precision.

    Step functions wrap forward passes and loss computations in ``amp.autocast()`` and call
    ``amp.backward(loss)``; the engine calls ``amp.step(optimizers)``. With fp16 a single
    ``GradScaler`` serves every optimiser: each optimiser is unscaled and checked for inf/NaN
    gradients on its own (and skipped alone), then the scale is updated once per iteration.
    """

    def __init__(self, device_type: str = "cpu", precision: str = "fp32") -> None:
        if precision not in _DTYPES:
            raise ValueError(f"Amp needs a resolved precision in {tuple(_DTYPES)}, got {precision!r}.")
        self.device_type = device_type
        self.precision = precision
        self.dtype = _DTYPES[precision]
        self.scaler = torch.amp.GradScaler(device_type) if precision == "fp16" else None

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, optimizers: Iterable[torch.optim.Optimizer]) -> None:
        if self.scaler is None:
            for optimizer in optimizers:
                optimizer.step()
            return
        stepped = False
        for optimizer in optimizers:
            # GradScaler refuses an optimiser that received no gradient this iteration.
            if any(p.grad is not None for group in optimizer.param_groups for p in group["params"]):
                self.scaler.step(optimizer)
                stepped = True
        if stepped:
            self.scaler.update()

    def state_dict(self) -> dict | None:
        return self.scaler.state_dict() if self.scaler is not None else None

    def load_state_dict(self, state: dict | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)

    def __repr__(self) -> str:
        return f"Amp(device_type={self.device_type!r}, precision={self.precision!r})"
