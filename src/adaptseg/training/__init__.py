"""Plain-PyTorch training core: losses, poly schedule, precision, checkpoints, sample streams, the engine.

Kedro-free and importable on its own. The engine runs any method of ``adaptseg.methods``.
"""

from adaptseg.training.checkpoint import (
    CheckpointError,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from adaptseg.training.context import SEGMENTER, Context
from adaptseg.training.engine import (
    EngineConfig,
    NonFiniteLossError,
    TrainResult,
    state_digest,
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
from adaptseg.training.streams import StreamSampler, epoch_permutation, seed_everything

__all__ = [
    "SEGMENTER",
    "SOURCE_LABEL",
    "TARGET_LABEL",
    "Amp",
    "CheckpointError",
    "Context",
    "EngineConfig",
    "NonFiniteLossError",
    "StreamSampler",
    "TrainResult",
    "adversarial_loss",
    "apply_poly_lr",
    "capture_rng_state",
    "cpu_supports_fast_bf16",
    "discriminator_accuracy",
    "epoch_permutation",
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
    "state_digest",
    "train",
    "upsample_logits",
]
