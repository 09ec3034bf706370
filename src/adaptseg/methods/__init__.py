"""Unsupervised domain adaptation methods as plug-ins: one module per method, one dict from name to module.

Kedro-free. The training engine runs any module that has these names (no base class, no registry):

``Config``
    Frozen dataclass of the method's knobs, built with ``Config.from_dict(mapping)``: unknown keys are an
    error. Every config extends :class:`common.SegmentationConfig` (λ_seg, ignore index, align_corners).
``TARGET_BATCHES``
    True when each iteration reads a batch of unlabelled target images (``batch["target"]``). Target
    labels never reach a method: the engine strips them.
``CURVES``
    ``{panel: (metric names)}``: the training curves the method logs, grouped as the report plots them.
``build_models(segmenter, config) -> {name: module}``
    The extra models the method trains or keeps (discriminators, an EMA teacher, a pseudo-labeller). The
    engine gives every ``discriminator*`` model an Adam optimiser, the segmenter SGD, the others none; all
    of them are saved in checkpoints and restored on resume.
``step(models, batch, config, amp) -> {name: 0-dim tensor}``
    One iteration: forward passes and ``amp.backward`` of its losses. It neither zeroes nor steps
    optimisers (the engine does, after checking the returned values are finite). ``None``: no iterations.
    ``batch`` holds ``"source"`` (images, labels), ``"target"`` (images) when ``TARGET_BATCHES``, and
    ``"progress"``: completed iterations / the schedule's horizon, in [0, 1).

Optional hooks (absent means nothing to do), each given a :class:`adaptseg.training.context.Context`:

``start(models, config, context)``
    Once, before the first iteration of a fresh (not resumed) run.
``before_iteration(models, step, config, context)`` / ``after_iteration(models, step, config, context)``
    Around every iteration (``step`` counts completed iterations before it); the engine has stepped the
    optimisers before ``after_iteration``.

Adding a method is a module here, an entry in ``METHODS``, a parameters block and its tests.
"""

from __future__ import annotations

from types import ModuleType

from adaptseg.methods import adabn, adaptsegnet, advent, cbst, dacs, fda, feature_level, minent, source_only

#: Method name → module. The names are what parameters' ``method:`` keys say.
METHODS: dict[str, ModuleType] = {
    "source_only": source_only,
    "adabn": adabn,
    "adaptsegnet": adaptsegnet,
    "feature_level": feature_level,
    "minent": minent,
    "advent": advent,
    "fda": fda,
    "cbst": cbst,
    "dacs": dacs,
}

#: What every method module defines (``step`` may be None); the hooks are optional.
REQUIRED = ("Config", "TARGET_BATCHES", "CURVES", "build_models", "step")
HOOKS = ("start", "before_iteration", "after_iteration")


def get_method(name: str) -> ModuleType:
    """The module of method ``name``; an unknown name is an error that lists the known ones."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"Unknown method {name!r}; known methods: {sorted(METHODS)}.") from None


def curve_panels() -> dict[str, tuple[str, ...]]:
    """Every method's curves merged by panel (first-seen order), for figures that show any mix of methods."""
    panels: dict[str, list[str]] = {}
    for method in METHODS.values():
        for panel, names in method.CURVES.items():
            known = panels.setdefault(panel, [])
            known += [name for name in names if name not in known]
    return {panel: tuple(names) for panel, names in panels.items()}


__all__ = ["HOOKS", "METHODS", "REQUIRED", "curve_panels", "get_method"]
