"""``torch.compile`` for the models a run trains (engine option ``compile_mode``).

Why: issue 15's profile of the paper's iteration on an H200 found the GPU busy for only 40–55% of the wall
time, about 2,500 kernel launches per iteration of a few tens of µs each. ``"reduce-overhead"`` replays the
segmenter's and discriminators' forward and backward passes as CUDA graphs (one launch each) and fuses the
element-wise work between convolutions; ``"default"`` fuses without graphs. Whether either is faster is a
measurement (the GPU step table has the rows), so the engine's default stays eager.

Each model is compiled in place (``nn.Module.compile``): methods keep calling ``models["segmenter"](x)``, state
dict keys stay the same (checkpoints and resume are unchanged), and :func:`uncompiled` returns the models to
eager form when training ends, so what the engine hands back can be copied, pickled and evaluated as before.
The first iterations pay for compilation (seconds for the small network, minutes for ResNet-101 on 2 CPU
cores); CUDA graph trees need a mark at each iteration's start so that one iteration's graph outputs may be
overwritten by the next (:func:`mark_iteration`).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

#: ``torch.compile`` modes the engine accepts (None: eager).
COMPILE_MODES = (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile_models(models: Iterable[nn.Module], mode: str | None) -> None:
    """Compile each model's forward (and, through AOTAutograd, its backward) in place; ``None`` does nothing."""
    if mode is None:
        return
    for model in models:
        model.compile(mode=mode)


def mark_iteration(mode: str | None) -> None:
    """Tell CUDA graph trees a new iteration begins (the previous iteration's graph outputs are dead)."""
    if mode is not None:
        torch.compiler.cudagraph_mark_step_begin()


def uncompiled(models: Iterable[nn.Module]) -> None:
    """Undo :func:`compile_models`: ``nn.Module.compile`` has no public inverse, it sets this one attribute."""
    for model in models:
        if getattr(model, "_compiled_call_impl", None) is not None:
            model._compiled_call_impl = None


__all__ = ["COMPILE_MODES", "compile_models", "mark_iteration", "uncompiled"]
