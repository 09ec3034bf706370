"""Ensembles as published: the average of several trained models' main-head outputs, evaluated like a model.

ADVENT's "AdvEnt+MinEnt" averages the two models' logits 0.5/0.5; FDA's multi-band transfer (MBT) averages
the softmax of three models trained with β 0.01, 0.05 and 0.09. Bilinear upsampling is linear, so averaging
at the logits' resolution and upsampling afterwards (as the evaluation does) equals averaging the upsampled
outputs, as the originals do.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

COMBINE = ("logits", "probabilities")


class EnsembleSegmenter(nn.Module):
    """Several segmenters as one: ``forward`` returns ``{"out": the weighted mean of their main outputs}``.

    ``combine="probabilities"`` averages softmax maps (the output is then probabilities, whose argmax the
    evaluation takes like that of logits).
    """

    def __init__(self, members: Sequence[nn.Module], weights: Sequence[float] | None = None, combine: str = "logits"):
        super().__init__()
        if not members:
            raise ValueError("An ensemble needs at least one member.")
        if combine not in COMBINE:
            raise ValueError(f"combine={combine!r} is unknown; expected one of {COMBINE}.")
        weights = [1.0] * len(members) if weights is None else [float(w) for w in weights]
        if len(weights) != len(members) or any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"weights {weights} must be {len(members)} non-negative numbers with a positive sum.")
        classes = {int(m.num_classes) for m in members}
        if len(classes) != 1:
            raise ValueError(f"Ensemble members predict different class counts: {sorted(classes)}.")
        self.members = nn.ModuleList(members)
        self.register_buffer("weights", torch.tensor(weights) / sum(weights))
        self.combine = combine
        self.num_classes = classes.pop()

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        total = None
        for weight, member in zip(self.weights, self.members, strict=True):
            out = member(x)["out"].float()
            out = out.softmax(dim=1) if self.combine == "probabilities" else out
            total = weight * out if total is None else total + weight * out
        return {"out": total}
