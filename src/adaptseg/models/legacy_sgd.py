"""SGD that applies repeated parameter entries exactly as PyTorch 0.4 did (AdaptSegNet's optimiser quirk).

The original backbone parameter generator lists each tensor once per ancestor module (see
``DeepLabV2.parameter_groups(dedupe=False)``). PyTorch 0.4's SGD looped over the entries one by one, so a
tensor listed ``n`` times was updated ``n`` times per step, with one shared momentum buffer, and the
weight-decay term was added *in place* to the gradient on every entry (so it accumulates: g + wd·p, g +
2·wd·p, ...).

Modern ``torch.optim.SGD`` (2.x) still accepts repeated entries with a UserWarning ("will become an error"),
but gives every repeat a fresh momentum buffer on the first step and does not accumulate weight decay in the
gradient, so it only approximates the original. :class:`LegacySGD` stores each tensor once with a repeat count
(no warning, future-proof) and replays the 0.4 arithmetic. Momentum without dampening or Nesterov, as the
original used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor


class LegacySGD(torch.optim.Optimizer):
    """SGD (momentum, L2 weight decay); a parameter listed ``n`` times in a group gets ``n`` updates per step.

    Groups may carry extra keys (``lr_mult``, ``name``); they are kept. Each group stores its unique tensors
    in ``params`` and their multiplicities in ``repeats``.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
    ) -> None:
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(
                f"lr, momentum and weight_decay must be >= 0, got {lr}, {momentum}, {weight_decay}"
            )
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Collapse repeated tensors of the group into ``params`` (unique) + ``repeats`` (counts)."""
        entries = param_group["params"]
        entries = [entries] if isinstance(entries, Tensor) else list(entries)
        unique: list[Tensor] = []
        repeats: list[int] = []
        position: dict[int, int] = {}
        for p in entries:
            if id(p) in position:
                repeats[position[id(p)]] += 1
            else:
                position[id(p)] = len(unique)
                unique.append(p)
                repeats.append(1)
        super().add_param_group({**param_group, "params": unique, "repeats": repeats})

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, momentum, weight_decay = group["lr"], group["momentum"], group["weight_decay"]
            for p, repeats in zip(group["params"], group["repeats"], strict=True):
                if p.grad is None:
                    continue
                # 0.4 added the decay to p.grad in place on every entry; a local copy has the same arithmetic
                # without leaving a modified .grad behind.
                d_p = p.grad.clone()
                for _ in range(repeats):
                    if weight_decay != 0:
                        d_p.add_(p, alpha=weight_decay)
                    update = d_p
                    if momentum != 0:
                        state = self.state[p]
                        buf = state.get("momentum_buffer")
                        if buf is None:
                            buf = state["momentum_buffer"] = d_p.clone()
                        else:
                            buf.mul_(momentum).add_(d_p)
                        update = buf
                    p.add_(update, alpha=-lr)
        return loss


__all__ = ["LegacySGD"]
