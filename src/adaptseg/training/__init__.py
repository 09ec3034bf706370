"""Plain-PyTorch training core: losses, poly schedule, per-method steps, checkpoints, the engine.

Kedro-free and importable on its own. A method is a step function (``STEPS``) plus a ``StepConfig``;
``train`` runs any of them with one ``EngineConfig``.
"""

from adaptseg.training.checkpoint import (
    CheckpointError,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from adaptseg.training.engine import (
    EngineConfig,
    NonFiniteLossError,
    StreamSampler,
    TrainResult,
    epoch_permutation,
    seed_everything,
    train,
)
from adaptseg.training.losses import (
    SOURCE_LABEL,
    TARGET_LABEL,
    adversarial_loss,
    discriminator_accuracy,
    prediction_entropy,
    segmentation_loss,
    softmax_upsampled,
    upsample_logits,
)
from adaptseg.training.precision import Amp, cpu_supports_fast_bf16, resolve_device, resolve_precision
from adaptseg.training.schedules import (
    apply_poly_lr,
    has_repeated_parameters,
    make_discriminator_optimizer,
    make_segmenter_optimizer,
    poly_lr,
)
from adaptseg.training.steps import (
    DISCRIMINATOR_AUX,
    DISCRIMINATOR_MAIN,
    SEGMENTER,
    STEPS,
    StepConfig,
    adaptsegnet_step,
    get_step,
    source_only_step,
)

__all__ = [
    "DISCRIMINATOR_AUX",
    "DISCRIMINATOR_MAIN",
    "SEGMENTER",
    "SOURCE_LABEL",
    "STEPS",
    "TARGET_LABEL",
    "Amp",
    "CheckpointError",
    "EngineConfig",
    "NonFiniteLossError",
    "StepConfig",
    "StreamSampler",
    "TrainResult",
    "adaptsegnet_step",
    "adversarial_loss",
    "apply_poly_lr",
    "capture_rng_state",
    "cpu_supports_fast_bf16",
    "discriminator_accuracy",
    "epoch_permutation",
    "get_step",
    "has_repeated_parameters",
    "load_checkpoint",
    "make_discriminator_optimizer",
    "make_segmenter_optimizer",
    "poly_lr",
    "prediction_entropy",
    "resolve_device",
    "resolve_precision",
    "restore_rng_state",
    "save_checkpoint",
    "seed_everything",
    "segmentation_loss",
    "softmax_upsampled",
    "source_only_step",
    "train",
    "upsample_logits",
]
