"""The original AdaptSegNet iteration as a plain PyTorch loop: the baseline row of the GPU step table.

Written from the reference's description of the original training script (shared/reference §5.1–5.2), not
through the project's engine, so the table's first row costs what the original's loop costs on today's
PyTorch with the same network. What the original does that the engine does not, kept on purpose:

- fp32, NCHW, ``torch.backends.cudnn.benchmark = True``;
- the segmenter's SGD over the original's parameter list: the backbone's tensors repeated once per ancestor
  module (``parameter_groups(dedupe=False)``, which today's ``torch.optim.SGD`` accepts with a warning) and the
  heads at 10× the learning rate; one Adam per discriminator; the poly rate set on all three every iteration;
- the discriminators' 0/1 targets built in host memory and copied to the device (a blocking copy each, six per
  iteration);
- a host read (``.item()``) of every loss right after its backward: eight per iteration;
- each discriminator's source and target halves backpropagated separately (four D backward passes).

Models are the project's (``build_segmenter`` and AdaptSegNet's discriminators), so any difference with the
engine's rows is the loop's, not the network's.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

LR, MOMENTUM, WEIGHT_DECAY = 2.5e-4, 0.9, 5e-4  # G: SGD (heads at 10×)
LR_D, BETAS_D = 1e-4, (0.9, 0.99)  # each D: Adam, no weight decay
POWER, NUM_STEPS = 0.9, 250_000  # poly schedule horizon
LAMBDA_SEG = 0.1  # aux cross-entropy
LAMBDA_ADV = {"aux": 0.0002, "main": 0.001}  # D_aux on the aux head, D_main on the main head
OUTPUT_KEY = {"aux": "aux", "main": "out"}  # level → the segmenter's output
SOURCE, TARGET = 0.0, 1.0  # domain labels
IGNORE = 255


@dataclass
class OriginalIteration:
    """The segmenter, one discriminator per level, their optimisers and the device."""

    segmenter: nn.Module
    discriminators: dict[str, nn.Module]
    optimizer: torch.optim.Optimizer
    optimizers_d: dict[str, torch.optim.Optimizer]
    device: torch.device


def build(segmenter: nn.Module, discriminators: Mapping[str, nn.Module], device: torch.device) -> OriginalIteration:
    """Models on ``device`` in train mode and the original's optimisers; ``discriminators`` by level
    ("aux", "main")."""
    segmenter.to(device).train()
    for d in discriminators.values():
        d.to(device).train()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    groups = [{"params": g["params"], "lr": LR * g["lr_mult"], "lr_mult": g["lr_mult"]}
              for g in segmenter.parameter_groups(dedupe=False)]
    with warnings.catch_warnings():  # the repeated backbone tensors: today's SGD warns, then accepts them
        warnings.filterwarnings("ignore", message=".*duplicate parameters.*")
        optimizer = torch.optim.SGD(groups, lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    optimizers_d = {level: torch.optim.Adam(d.parameters(), lr=LR_D, betas=BETAS_D)
                    for level, d in discriminators.items()}
    return OriginalIteration(segmenter, dict(discriminators), optimizer, optimizers_d, device)


def poly(base: float, step: int) -> float:
    return base * (1 - step / NUM_STEPS) ** POWER


def _set_learning_rates(it: OriginalIteration, step: int) -> None:
    for group in it.optimizer.param_groups:
        group["lr"] = poly(LR, step) * group["lr_mult"]
    for optimizer in it.optimizers_d.values():
        for group in optimizer.param_groups:
            group["lr"] = poly(LR_D, step)


def _requires_grad(modules: Sequence[nn.Module], flag: bool) -> None:
    for module in modules:
        for p in module.parameters():
            p.requires_grad = flag


def _host_target(like: torch.Tensor, label: float, device: torch.device) -> torch.Tensor:
    """A constant domain-label map made in host memory and copied over, as the original did (a blocking copy)."""
    return torch.full(like.shape, label).to(device)


def _bce(d_logits: torch.Tensor, label: float, device: torch.device) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(d_logits, _host_target(d_logits, label, device))


def _upsampled(outputs: Mapping[str, torch.Tensor], size: Sequence[int]) -> dict[str, torch.Tensor]:
    """Both heads' logits at the input size (bilinear, align_corners=True)."""
    return {level: F.interpolate(outputs[key], size=tuple(size), mode="bilinear", align_corners=True)
            for level, key in OUTPUT_KEY.items()}


def run_step(it: OriginalIteration, step: int, source: Mapping, target: Mapping) -> dict[str, float]:
    """One iteration (reference §5.2); returns every loss as the host floats the original read."""
    device, ds = it.device, it.discriminators
    for optimizer in (it.optimizer, *it.optimizers_d.values()):
        optimizer.zero_grad()
    _set_learning_rates(it, step)
    _requires_grad(list(ds.values()), False)

    labels = source["label"].long().to(device)
    preds = _upsampled(it.segmenter(source["image"].to(device)), labels.shape[-2:])
    seg = {level: F.cross_entropy(preds[level], labels, ignore_index=IGNORE) for level in OUTPUT_KEY}
    (seg["main"] + LAMBDA_SEG * seg["aux"]).backward()
    losses = {"loss_seg": seg["main"].item(), "loss_seg_aux": seg["aux"].item()}

    images = target["image"].to(device)  # target labels are never read
    target_preds = _upsampled(it.segmenter(images), images.shape[-2:])
    adv = {level: _bce(ds[level](F.softmax(target_preds[level], dim=1)), SOURCE, device) for level in OUTPUT_KEY}
    (LAMBDA_ADV["aux"] * adv["aux"] + LAMBDA_ADV["main"] * adv["main"]).backward()
    losses.update({f"loss_adv_{level}": adv[level].item() for level in OUTPUT_KEY})

    _requires_grad(list(ds.values()), True)
    for level in OUTPUT_KEY:
        losses[f"loss_d_{level}"] = 0.0
    for maps, label in ((preds, SOURCE), (target_preds, TARGET)):
        halves = {level: _bce(ds[level](F.softmax(maps[level].detach(), dim=1)), label, device) / 2
                  for level in OUTPUT_KEY}
        for half in halves.values():
            half.backward()
        for level, half in halves.items():
            losses[f"loss_d_{level}"] += half.item()

    it.optimizer.step()
    for optimizer in it.optimizers_d.values():
        optimizer.step()
    return losses


def train_loop(it: OriginalIteration, source: Sequence[Mapping], target: Sequence[Mapping], steps: int,
               before: Callable[[int], None] = lambda step: None,
               after: Callable[[int], None] = lambda step: None) -> dict[str, float]:
    """``steps`` iterations cycling over the given batches; ``before``/``after`` mark each iteration (timing).
    Returns the first iteration's losses."""
    first: dict[str, float] = {}
    for step in range(steps):
        before(step)
        losses = run_step(it, step, source[step % len(source)], target[step % len(target)])
        after(step)
        first = first or losses
    return first
