"""What every method shares: the supervised loss and its knobs, freezing models.

Kedro-free. A method module imports from here, from ``adaptseg.training.losses`` and from the engine's contract
(``adaptseg.training.context``); nothing here knows a method's name.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from adaptseg.config import from_mapping
from adaptseg.data.labels import IGNORE_INDEX
from adaptseg.training.context import SEGMENTER
from adaptseg.training.losses import segmentation_loss, upsample_logits
from adaptseg.training.precision import Amp

C = TypeVar("C", bound="SegmentationConfig")


@dataclass(frozen=True)
class SegmentationConfig:
    """The supervised part every method has: CE(out) + λ_seg · CE(aux) on labelled images.

    Method configs extend it with their own knobs; ``from_dict`` rejects keys the method does not have, so a
    misspelt knob is an error, not a silent default.
    """

    lambda_seg: float = 0.1  # weight of the aux-head cross-entropy
    ignore_index: int = IGNORE_INDEX
    align_corners: bool = True

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.startswith("lambda_") and not (isinstance(value, int | float) and value >= 0):
                raise ValueError(f"{type(self).__qualname__}.{f.name} must be a number >= 0, got {value!r}.")

    @classmethod
    def from_dict(cls: type[C], values: Mapping[str, Any] | None) -> C:
        """Build from a parameters mapping; unknown keys are an error that lists the known ones."""
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(values or {}).items()}
        return from_mapping(cls, values, f"{cls.__module__.rsplit('.', 1)[-1]} method parameter")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@contextlib.contextmanager
def frozen(*modules: nn.Module | None) -> Iterator[None]:
    """Disable gradients of the modules' parameters inside the block; restore the flags afterwards."""
    params = [p for m in modules if m is not None for p in m.parameters()]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)


def domain_batch(batch: Mapping, domain: str, method: str) -> Mapping:
    """``batch[domain]``, or an error that says which dataset the engine was not given."""
    if domain not in batch:
        raise ValueError(
            f"{method} needs a {domain!r} batch, got keys {sorted(batch)}; pass {domain}_dataset to the training engine."
        )
    return batch[domain]


def segmentation_losses(
    outputs: Mapping[str, torch.Tensor], labels: torch.Tensor, config: SegmentationConfig
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L_seg = CE(out) + λ_seg · CE(aux), both at label resolution; returns the total and the logged terms."""
    loss_main = segmentation_loss(outputs["out"], labels, config.ignore_index, config.align_corners)
    logged = {"loss_seg": loss_main}
    total = loss_main
    if outputs.get("aux") is not None:
        loss_aux = segmentation_loss(outputs["aux"], labels, config.ignore_index, config.align_corners)
        logged["loss_seg_aux"] = loss_aux
        total = total + config.lambda_seg * loss_aux
    elif config.lambda_seg > 0:
        raise ValueError(
            f"lambda_seg={config.lambda_seg} but the segmenter returned no 'aux' output; "
            "set lambda_seg: 0 for single-output models."
        )
    return total, logged


def supervised_step(
    models: Mapping[str, nn.Module], labelled: Mapping, config: SegmentationConfig, amp: Amp, **forward: Any
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Forward a labelled batch, backpropagate L_seg; returns the (graph-free) outputs and the logged losses.

    The outputs are detached, for methods that reuse the source predictions (discriminator updates);
    ``forward`` goes to the segmenter (``return_features=True``).
    """
    with amp.autocast():
        outputs = models[SEGMENTER](labelled["image"], **forward)
        loss, logged = segmentation_losses(outputs, labelled["label"], config)
    amp.backward(loss)
    return {k: v.detach() for k, v in outputs.items() if v is not None}, {k: v.detach() for k, v in logged.items()}


class FrozenCopy(nn.Module):
    """A copy of a network that never trains and always evaluates: an EMA teacher, a pseudo-labeller.

    Its parameters take no gradient and it stays in eval mode whatever ``train()`` asks (the engine puts every
    model in train mode), so its BatchNorm statistics and dropout never move. It is saved in checkpoints
    like any model, so a resumed run labels with the same weights.
    """

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = copy.deepcopy(network)
        for parameter in self.network.parameters():
            parameter.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> FrozenCopy:
        return super().train(False)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.network(*args, **kwargs)

    @torch.no_grad()
    def copy_from(self, network: nn.Module) -> None:
        """Take ``network``'s current weights and buffers."""
        self.network.load_state_dict(network.state_dict())


def weighted_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, config: SegmentationConfig
) -> torch.Tensor:
    """Pixel-wise weighted cross-entropy at label resolution, mean over every pixel (ignored ones count 0)."""
    logits = upsample_logits(logits, tuple(labels.shape[-2:]), config.align_corners)
    loss = F.cross_entropy(logits, labels.long(), ignore_index=config.ignore_index, reduction="none")
    return (loss * weights).mean()
