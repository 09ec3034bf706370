"""Per-method training steps. A method is one function; ``STEPS`` maps method names to them.

A step function has the signature ``step(models, batch, config, amp=None) -> dict[str, float]``:

- ``models``: ``{"segmenter": ..., "discriminator_main": ..., "discriminator_aux": ...}`` (only what
  the method needs). The segmenter's ``forward(x)`` returns ``{"out": logits, "aux": logits}``.
- ``batch``: ``{"source": {"image", "label", "name"}, "target": {"image", "name"}}``. Images are
  ``B×3×H×W`` float, labels ``B×H×W`` long (255 = ignore). Target batches carry no label.
- ``config``: a ``StepConfig`` (loss weights and GAN objective).
- ``amp``: a ``precision.Amp``; fp32 when omitted.

A step runs the forward passes and backpropagates its losses with ``amp.backward``. It neither zeroes
nor steps optimisers: the engine zeroes gradients and sets the poly learning rate before the step,
checks the returned losses for NaN/inf, and only then steps every optimiser, so a diverged loss never
reaches the weights. Returned values are plain floats (one host sync per step).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass

import torch
from torch import nn

from adaptseg.config import from_mapping
from adaptseg.data.labels import IGNORE_INDEX
from adaptseg.training.losses import (
    GAN_OBJECTIVES,
    SOURCE_LABEL,
    TARGET_LABEL,
    adversarial_loss,
    discriminator_accuracy,
    segmentation_loss,
    softmax_upsampled,
)
from adaptseg.training.precision import Amp

SEGMENTER = "segmenter"
DISCRIMINATOR_MAIN = "discriminator_main"
DISCRIMINATOR_AUX = "discriminator_aux"

#: Output level → (segmenter output key, discriminator model key).
LEVELS = {"main": ("out", DISCRIMINATOR_MAIN), "aux": ("aux", DISCRIMINATOR_AUX)}


@dataclass(frozen=True)
class StepConfig:
    """Loss weights of a method (defaults: multi-level AdaptSegNet, reference §5.1).

    Single-level AdaptSegNet: ``lambda_seg=0, lambda_adv_aux=0`` (and no aux discriminator).
    λ=0 control: ``lambda_adv_main=0, lambda_adv_aux=0`` (target images still pass through the network).
    LS-GAN: ``gan="ls"`` (the README's single-level recipe uses ``lambda_adv_main=0.01``).
    """

    lambda_seg: float = 0.1  # weight of the aux-head cross-entropy
    lambda_adv_main: float = 0.001  # weight of the main-level adversarial loss (D_main)
    lambda_adv_aux: float = 0.0002  # weight of the aux-level adversarial loss (D_aux)
    gan: str = "vanilla"  # "vanilla" (BCE with logits) or "ls" (least squares)
    ignore_index: int = IGNORE_INDEX
    align_corners: bool = True

    def __post_init__(self) -> None:
        if self.gan not in GAN_OBJECTIVES:
            raise ValueError(f"StepConfig.gan={self.gan!r} is unknown; expected one of {GAN_OBJECTIVES}.")
        for name in ("lambda_seg", "lambda_adv_main", "lambda_adv_aux"):
            value = getattr(self, name)
            if not value >= 0:
                raise ValueError(f"StepConfig.{name} must be >= 0, got {value!r}.")

    @classmethod
    def from_dict(cls, values: Mapping | None) -> StepConfig:
        """Build from a parameters mapping; unknown keys are an error."""
        return from_mapping(cls, values, "step parameter")

    def to_dict(self) -> dict:
        return asdict(self)


StepFn = Callable[..., dict[str, float]]
_FP32 = Amp("cpu", "fp32")


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
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)


def _domain(batch: Mapping, domain: str, step_name: str) -> Mapping:
    if domain not in batch:
        raise ValueError(
            f"{step_name} needs a {domain!r} batch, got keys {sorted(batch)}; "
            f"pass {domain}_dataset to the training engine."
        )
    return batch[domain]


def _floats(values: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """0-dim tensors → floats with a single device-to-host copy."""
    if not values:
        return {}
    stacked = torch.stack([v.detach().float().reshape(()) for v in values.values()]).cpu().tolist()
    return dict(zip(values, stacked))


def _segmentation_losses(
    outputs: Mapping[str, torch.Tensor], labels: torch.Tensor, config: StepConfig
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L_seg = CE(out) + λ_seg · CE(aux), both at label resolution."""
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


def source_only_step(
    models: Mapping[str, nn.Module], batch: Mapping, config: StepConfig, amp: Amp | None = None
) -> dict[str, float]:
    """Supervised step on the labelled ``source`` batch: L = CE(out) + λ_seg · CE(aux).

    Also the oracle's step: give the engine labelled target data as its source dataset.
    """
    amp = amp or _FP32
    source = _domain(batch, "source", "source_only_step")
    with amp.autocast():
        outputs = models[SEGMENTER](source["image"])
        loss, logged = _segmentation_losses(outputs, source["label"], config)
    amp.backward(loss)
    return _floats(logged)


def adaptsegnet_step(
    models: Mapping[str, nn.Module], batch: Mapping, config: StepConfig, amp: Amp | None = None
) -> dict[str, float]:
    """One AdaptSegNet iteration (reference §5.2), single- or multi-level by the loss weights.

    1. Discriminators frozen. Source forward; L_seg = CE(out, y) + λ_seg · CE(aux, y); backward.
    2. Target forward; L_adv = Σ_level λ_adv_level · adv(D_level(softmax_up(t_level)), SOURCE); backward
       (gradients reach the segmenter only). Always run, also when every λ_adv is 0 (the λ=0
       control: in train-mode BatchNorm the target pass still updates the running statistics).
    3. Discriminators unfrozen; on detached predictions, for each D: ½·adv(D(p_src), SOURCE) backward,
       then ½·adv(D(p_tgt), TARGET) backward. No second segmenter forward.

    The aux level is used when ``discriminator_aux`` is in ``models`` (it is then trained whatever
    ``lambda_adv_aux`` is, as in the original); without it ``lambda_adv_aux`` must be 0.
    Target labels are never read.
    """
    amp = amp or _FP32
    source = _domain(batch, "source", "adaptsegnet_step")
    target = _domain(batch, "target", "adaptsegnet_step")
    segmenter = models[SEGMENTER]
    if DISCRIMINATOR_MAIN not in models:
        raise ValueError(f"adaptsegnet_step needs models[{DISCRIMINATOR_MAIN!r}], got {sorted(models)}.")
    if DISCRIMINATOR_AUX not in models and config.lambda_adv_aux > 0:
        raise ValueError(
            f"lambda_adv_aux={config.lambda_adv_aux} but models has no {DISCRIMINATOR_AUX!r}; "
            "add one or set lambda_adv_aux: 0 (single-level)."
        )
    levels = {lvl: (out_key, models[d_key]) for lvl, (out_key, d_key) in LEVELS.items() if d_key in models}
    weights = {"main": config.lambda_adv_main, "aux": config.lambda_adv_aux}
    source_size = tuple(source["image"].shape[-2:])
    target_size = tuple(target["image"].shape[-2:])
    ac = config.align_corners
    logged: dict[str, torch.Tensor] = {}

    with frozen(*(d for _, d in levels.values())):
        # 1. Supervised loss on the source batch.
        with amp.autocast():
            source_out = segmenter(source["image"])
            loss_seg, seg_logged = _segmentation_losses(source_out, source["label"], config)
        amp.backward(loss_seg)
        logged.update(seg_logged)
        source_pred = {}
        for lvl, (out_key, _) in levels.items():
            if source_out.get(out_key) is None:
                raise ValueError(f"The segmenter returned no {out_key!r} output for the {lvl} discriminator.")
            source_pred[lvl] = source_out[out_key].detach()
        del source_out

        # 2. Adversarial loss on the target batch: make target predictions look like source ones.
        with amp.autocast():
            target_out = segmenter(target["image"])
            target_prob, loss_adv = {}, 0.0
            for lvl, (out_key, discriminator) in levels.items():
                if target_out.get(out_key) is None:
                    raise ValueError(f"The segmenter returned no {out_key!r} output for the {lvl} discriminator.")
                target_prob[lvl] = softmax_upsampled(target_out[out_key], target_size, ac)
                adv = adversarial_loss(discriminator(target_prob[lvl]), SOURCE_LABEL, config.gan)
                logged[f"loss_adv_{lvl}"] = adv
                loss_adv = loss_adv + weights[lvl] * adv
        amp.backward(loss_adv)
        del target_out

    # 3. Discriminators on detached predictions: source → SOURCE_LABEL, target → TARGET_LABEL.
    for lvl, (_, discriminator) in levels.items():
        with amp.autocast():
            d_source = discriminator(softmax_upsampled(source_pred[lvl], source_size, ac))
            loss_d_source = 0.5 * adversarial_loss(d_source, SOURCE_LABEL, config.gan)
        amp.backward(loss_d_source)
        with amp.autocast():
            d_target = discriminator(target_prob[lvl].detach())
            loss_d_target = 0.5 * adversarial_loss(d_target, TARGET_LABEL, config.gan)
        amp.backward(loss_d_target)
        logged[f"loss_d_{lvl}"] = (loss_d_source + loss_d_target).detach()
        logged[f"d_acc_{lvl}"] = 0.5 * (
            discriminator_accuracy(d_source, SOURCE_LABEL, config.gan)
            + discriminator_accuracy(d_target, TARGET_LABEL, config.gan)
        )
    return _floats(logged)


#: Method name → step function. Variants (single/multi-level, λ=0 control, LS-GAN) are StepConfigs.
STEPS: dict[str, StepFn] = {
    "source_only": source_only_step,
    "oracle": source_only_step,
    "adaptsegnet": adaptsegnet_step,
}


def get_step(method: str) -> StepFn:
    """The step function of ``method``; a clear error lists the known methods."""
    try:
        return STEPS[method]
    except KeyError:
        raise ValueError(f"Unknown method {method!r}; known methods: {sorted(STEPS)}.") from None
