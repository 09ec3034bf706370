"""Poly learning-rate schedule (with DAFormer's optional linear warm-up) and the optimisers of the reference
(SGD for G, Adam for each D)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch


def poly_lr(base_lr: float, step: int, max_steps: int, power: float = 0.9, warmup_steps: int = 0) -> float:
    """DeepLab's poly schedule ``base_lr · (1 − step / max_steps) ** power``; 0 from ``max_steps`` on.

    ``warmup_steps`` > 0 scales the first steps by ``(step + 1) / warmup_steps`` (DAFormer's and MIC's linear
    warm-up, 1500 of their 40k iterations): a student with several target losses at full rate from its first
    step can be thrown off its pretrained start before its teacher's labels settle."""
    if max_steps <= 0:
        raise ValueError(f"max_steps must be positive, got {max_steps}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    remaining = max(0.0, 1.0 - float(step) / float(max_steps))
    warmup = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    return base_lr * remaining**power * warmup


def apply_poly_lr(
    optimizer: torch.optim.Optimizer,
    base_lr: float,
    step: int,
    max_steps: int,
    power: float = 0.9,
    warmup_steps: int = 0,
) -> float:
    """Set every group's lr to ``poly_lr(...) · group["lr_mult"]`` (default mult 1); return the poly lr."""
    lr = poly_lr(base_lr, step, max_steps, power, warmup_steps)
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_mult", 1.0)
    return lr


def make_segmenter_optimizer(
    param_groups: Sequence[dict] | Iterable[torch.nn.Parameter],
    lr: float = 2.5e-4,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    fused: bool = False,
) -> torch.optim.Optimizer:
    """SGD of the segmenter (the reference's G optimiser).

    ``param_groups`` is what ``segmenter.parameter_groups()`` returns (dicts with ``params``,
    ``lr_mult``, ``name``) or a plain iterable of parameters (one group, mult 1). ``lr_mult`` and
    ``name`` stay on the groups, so ``apply_poly_lr`` keeps the heads at 10× through the schedule.
    Groups that repeat a tensor (the faithful duplicate-parameter quirk) get :class:`LegacySGD`, which
    replays PyTorch 0.4's arithmetic for repeated entries exactly (``torch.optim.SGD`` only warns about
    them and then initialises momentum and weight decay differently). ``fused`` asks torch for its fused
    kernel (one launch for every tensor: fewer kernel launches per step on a GPU); it has no repeated-tensor
    form, so the quirk and ``fused`` exclude each other.
    """
    items = list(param_groups)
    if items and not isinstance(items[0], dict):
        items = [{"params": items, "lr_mult": 1.0, "name": "all"}]
    groups = []
    for group in items:
        group = dict(group)
        group.setdefault("lr_mult", 1.0)
        group["params"] = list(group["params"])
        group["lr"] = lr * group["lr_mult"]
        groups.append(group)
    if has_repeated_parameters(groups):
        if fused:
            raise ValueError("fused optimisers cannot replay the repeated backbone tensors of the reference's "
                             "quirk (dedupe_backbone_params: false); set fused_optimizers: false or dedupe them.")
        from adaptseg.models.legacy_sgd import LegacySGD

        return LegacySGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay, fused=fused or None)


def has_repeated_parameters(param_groups: Sequence[dict]) -> bool:
    """True when a tensor appears more than once across the groups."""
    seen: set[int] = set()
    for group in param_groups:
        for param in group["params"]:
            if id(param) in seen:
                return True
            seen.add(id(param))
    return False


def make_discriminator_optimizer(
    params: Iterable[torch.nn.Parameter],
    lr: float = 1e-4,
    betas: tuple[float, float] = (0.9, 0.99),
    fused: bool = False,
) -> torch.optim.Adam:
    """Adam of one discriminator (reference: lr 1e-4, betas (0.9, 0.99), no weight decay)."""
    return torch.optim.Adam(
        [{"params": list(params), "lr_mult": 1.0, "name": "discriminator"}],
        lr=lr,
        betas=tuple(betas),
        weight_decay=0.0,
        fused=fused or None,
    )
