"""The one training engine behind every method (source-only, oracle, AdaptSegNet, ADVENT, ...).

The engine owns everything that is not the method: device and precision, seeds, the deterministic
source/target sample streams, optimisers and the poly schedule, the NaN guard, progress and metric
logging, atomic checkpoints with exact resume, snapshots, and early stopping on a held-out metric.
The method is a module of ``adaptseg.methods`` (its docstring states the contract), passed in: the engine
never imports the methods, they import the contract (``training.context``).

A run has four parts, one method each on :class:`_Run`: start or resume, one iteration, evaluation and
early stop, checkpoints. :func:`train` strings them together.

Step numbering: ``step`` counts completed iterations. Iteration ``i`` (0-based) trains with the poly
learning rate at ``i`` and its metrics are logged at step ``i + 1``; ``step_005000.pt`` holds the
weights after 5000 iterations. Resuming from ``last.pt`` at step ``k`` continues with iteration ``k``:
the data streams, optimiser states, loss-scaler and random generators are restored, so ``k`` steps,
stop, resume, ``m`` steps give the same weights as ``k + m`` steps straight (same device/precision).
A run's identity (its trajectory settings, method, method knobs and a digest of the starting weights) is
stored in every checkpoint: a resume or a snapshot from another run is refused, never silently used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from adaptseg.config import from_mapping
from adaptseg.training.checkpoint import (
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from adaptseg.training.compiled import COMPILE_MODES, compile_models, mark_iteration, uncompiled
from adaptseg.training.context import SEGMENTER, Context
from adaptseg.training.distributed import (
    World,
    agree,
    average_gradients,
    average_metrics,
    barrier,
    broadcast_models,
    join,
    launched,
)
from adaptseg.training.precision import DEVICES, PRECISIONS, Amp, resolve_device, resolve_precision
from adaptseg.training.precision_probe import PrecisionChoice, choose_precision
from adaptseg.training.schedules import apply_poly_lr, make_discriminator_optimizer, make_segmenter_optimizer
from adaptseg.training.streams import (
    ClassDraw,
    RareClassSampling,
    batch_stream,
    class_pixel_counts,
    seed_everything,
    to_device,
)

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 2
LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"
SNAPSHOT_PATTERN = "step_{step:06d}.pt"

#: When the losses are checked for NaN/inf: every iteration (a host sync each), or at each log flush.
NAN_GUARDS = ("step", "log")

#: Engine fields that define the optimisation trajectory: a resume with other values is refused.
TRAJECTORY_FIELDS = (
    "max_steps",
    "batch_size",
    "seed",
    "lr",
    "momentum",
    "weight_decay",
    "power",
    "lr_discriminator",
    "betas_discriminator",
    "dedupe_backbone_params",
)

#: Trajectory settings the run identity names only when on (runs from before they existed keep their id).
OPTIONAL_TRAJECTORY_OFF = {"rare_class_sampling": None, "warmup_steps": 0}


def optional_trajectory(config: EngineConfig) -> dict[str, Any]:
    """The ``OPTIONAL_TRAJECTORY_OFF`` settings that are on, for the run identity (earlier runs keep their id)."""
    named = {}
    for name, off in OPTIONAL_TRAJECTORY_OFF.items():
        value = getattr(config, name)
        if value != off:
            named[name] = value.to_dict() if hasattr(value, "to_dict") else value
    return named


MetricsCallback = Callable[[dict[str, float], int], None]
EvaluateFn = Callable[[dict[str, nn.Module], int], float]
History = dict[str, list[dict[str, float]]]


class NonFiniteLossError(RuntimeError):
    """A loss (or, at a checkpoint, a weight) became NaN or infinite; nothing was stepped or saved after it.

    ``checkpoint_path`` is the last checkpoint whose weights and losses were all finite (None when none was
    written); the message says what to do with it.
    """

    def __init__(
        self,
        losses: Mapping[str, float],
        step: int,
        checkpoint_path: Path | None,
        checkpoint_step: int | None,
        why_no_checkpoint: str = "",
    ):
        self.losses = dict(losses)
        self.step = step
        self.checkpoint_path = checkpoint_path
        names = ", ".join(f"{name}={value}" for name, value in self.losses.items())
        if checkpoint_path is not None:
            where = (
                f"The last checkpoint with finite weights and losses is {checkpoint_path} (step {checkpoint_step}); "
                "it was not overwritten. A resumed run keeps the settings it started with, so: to train on with a "
                "lower lr or lambda, start a new run (resume: false, overwrite: true) from the same starting model; "
                "to retry unchanged (after fixing the inputs of this step), resume from it (resume: true)."
            )
        else:
            where = f"No checkpoint was written before it{why_no_checkpoint}. Lower lr or lambda and start again."
        super().__init__(f"Non-finite values at step {step}: {names}. {where}")


@dataclass
class EngineConfig:
    """Everything the engine needs besides the method. Defaults follow the reference (§5.1).

    Schedule and stopping
        max_steps: poly-schedule horizon (NUM_STEPS, 250000).
        stop_step: last step actually trained (NUM_STEPS_STOP, 150000 in the reference);
            ``None`` trains to ``max_steps``.
        batch_size: images per domain per iteration (1 source + 1 target in the reference).
        seed: seeds Python, NumPy and torch, and the per-epoch sample permutations.
    Optimisers (built by the engine)
        lr, momentum, weight_decay: SGD of the segmenter; its groups keep their ``lr_mult``
            (heads at 10×) through the schedule.
        lr_discriminator, betas_discriminator: Adam of each discriminator, no weight decay.
        power: poly exponent, applied to every optimiser every iteration.
        warmup_steps: linear learning-rate warm-up of every optimiser over the first N steps (DAFormer's and
            MIC's recipe); 0 (default, the reference) starts at the full rate.
        dedupe_backbone_params: passed to ``segmenter.parameter_groups(dedupe=...)``; False
            reproduces the reference's repeated backbone tensors (≈3× backbone lr and wd).
    Hardware
        device: "auto" | "cpu" | "cuda" ("cuda:N").
        precision: "auto" | "fp32" | "bf16" | "fp16"; auto times fp32 against the device's reduced-precision
            path on the model and keeps the faster (``precision_probe``).
        channels_last: None = on for CUDA and for CPU bf16; True/False forces it.
        num_workers: DataLoader worker processes (0 = load in the main process).
        nproc_per_node: data-parallel training processes on this machine (``training.distributed``), started
            through torch's elastic launcher; ``batch_size`` is per process. Under ``torchrun`` the
            launcher's settings apply instead.
        max_restarts: restarts of all processes after one fails (they resume from ``last.pt``: set resume).
        deterministic: torch deterministic algorithms (warn-only) and no cuDNN autotuning.
        nan_guard: "step" reads every iteration's losses back before the optimisers step (a non-finite loss
            never reaches the weights; one device-to-host synchronisation per iteration); "log" checks them on
            the device and reads them back every ``log_every`` steps and before a checkpoint or evaluation
            (the GPU never waits for the host inside the window; a divergence is reported with its first step,
            the weights of that window are lost, and no checkpoint is written from them).
        fused_optimizers: torch's fused SGD and Adam kernels (fewer launches per step); not with the
            reference's repeated backbone tensors.
        compile_mode: ``torch.compile`` every model in place with this mode ("default", "reduce-overhead" for
            CUDA graphs, "max-autotune", "max-autotune-no-cudagraphs"); None (default) trains eagerly
            (``training.compiled``). The first iterations compile.
    Checkpoints
        checkpoint_dir: run folder for ``last.pt`` (+ ``best.pt``, ``step_XXXXXX.pt``);
            None writes nothing.
        checkpoint_every: write ``last.pt`` every N steps (always also at the end).
        snapshot_every: keep weights-only ``step_XXXXXX.pt`` every N steps for model selection
            (reference: 5000); 0 disables.
        resume: continue from ``checkpoint_dir/last.pt`` when it exists.
        overwrite: a fresh (non-resumed) run deletes an existing run's checkpoints in
            ``checkpoint_dir``; otherwise finding them is an error.
    Logging
        log_every: every N steps, the mean of each metric over the last N steps goes to the
            history and to ``on_metrics``.
        progress: show a tqdm progress bar.
    Held-out evaluation (optional ``evaluate_fn(models, step) -> float``)
        eval_every: call it every N steps (0 = never).
        eval_metric: name of its value in the history / callback (e.g. "dev_miou").
        eval_mode: "max" (higher is better) or "min".
        patience: stop after this many evaluations without improvement (None = never stop).
    """

    max_steps: int = 250_000
    stop_step: int | None = None
    batch_size: int = 1
    seed: int = 1234
    lr: float = 2.5e-4
    momentum: float = 0.9
    weight_decay: float = 5e-4
    power: float = 0.9
    warmup_steps: int = 0
    lr_discriminator: float = 1e-4
    betas_discriminator: tuple[float, float] = (0.9, 0.99)
    dedupe_backbone_params: bool = True
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool | None = None
    num_workers: int = 0
    deterministic: bool = False
    nan_guard: str = "step"
    fused_optimizers: bool = False
    compile_mode: str | None = None
    nproc_per_node: int = 1
    max_restarts: int = 0
    checkpoint_dir: str | None = None
    checkpoint_every: int = 1000
    snapshot_every: int = 5000
    resume: bool = False
    overwrite: bool = False
    log_every: int = 10
    progress: bool = True
    eval_every: int = 0
    eval_metric: str = "eval"
    eval_mode: str = "max"
    patience: int | None = None
    rare_class_sampling: RareClassSampling | None = None  # {temperature, min_share}: source drawn class first

    def __post_init__(self) -> None:
        self.betas_discriminator = tuple(float(b) for b in self.betas_discriminator)
        if isinstance(self.rare_class_sampling, Mapping):
            self.rare_class_sampling = RareClassSampling.from_dict(self.rare_class_sampling)
        if self.checkpoint_dir is not None:
            self.checkpoint_dir = str(self.checkpoint_dir)
        problems = []
        if self.max_steps < 1:
            problems.append(f"max_steps={self.max_steps} must be >= 1")
        if self.stop_step is not None and not 0 <= self.stop_step <= self.max_steps:
            problems.append(f"stop_step={self.stop_step} must lie in [0, max_steps={self.max_steps}]")
        for name in ("batch_size", "log_every", "nproc_per_node"):
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} must be >= 1")
        for name in ("checkpoint_every", "snapshot_every", "eval_every", "num_workers", "max_restarts", "warmup_steps"):
            if getattr(self, name) < 0:
                problems.append(f"{name}={getattr(self, name)} must be >= 0")
        if self.patience is not None and self.patience < 1:
            problems.append(f"patience={self.patience} must be >= 1 or null")
        if self.device not in DEVICES and not str(self.device).startswith("cuda:"):
            problems.append(f"device={self.device!r} must be one of {DEVICES} or 'cuda:N'")
        if self.precision not in PRECISIONS:
            problems.append(f"precision={self.precision!r} must be one of {PRECISIONS}")
        if self.nan_guard not in NAN_GUARDS:
            problems.append(f"nan_guard={self.nan_guard!r} must be one of {NAN_GUARDS}")
        if self.compile_mode not in COMPILE_MODES:
            problems.append(f"compile_mode={self.compile_mode!r} must be one of {COMPILE_MODES}")
        if self.eval_mode not in ("max", "min"):
            problems.append(f"eval_mode={self.eval_mode!r} must be 'max' or 'min'")
        if self.resume and self.checkpoint_dir is None:
            problems.append("resume=true needs a checkpoint_dir to resume from")
        if self.nproc_per_node > 1 and self.checkpoint_dir is None:
            problems.append(f"nproc_per_node={self.nproc_per_node} needs a checkpoint_dir (the trained weights come back through it)")
        if self.max_restarts and not self.resume:
            problems.append(f"max_restarts={self.max_restarts} needs resume=true (restarted processes resume from last.pt)")
        if len(self.betas_discriminator) != 2:
            problems.append(f"betas_discriminator={self.betas_discriminator} must have two values")
        if problems:
            raise ValueError("Invalid EngineConfig: " + "; ".join(problems) + ".")

    @property
    def last_step(self) -> int:
        """The step training ends at: ``stop_step`` or ``max_steps``."""
        return self.max_steps if self.stop_step is None else self.stop_step

    @classmethod
    def from_dict(cls, values: Mapping | None) -> EngineConfig:
        """Build from a parameters mapping (e.g. Kedro ``params:``); unknown keys are an error."""
        return from_mapping(cls, values, "engine parameter")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    """What ``train`` returns. ``models`` hold the weights of the last step (on the training device)."""

    models: dict[str, nn.Module]
    history: History
    last_step: int
    start_step: int = 0
    run_id: str | None = None
    checkpoint_path: Path | None = None
    best_step: int | None = None
    best_value: float | None = None
    best_checkpoint_path: Path | None = None
    stopped_early: bool = False
    device: str = "cpu"
    precision: str = "fp32"
    seconds: float = 0.0
    precision_seconds: dict[str, float] = field(default_factory=dict)  # the step times auto chose from


def state_digest(state: Mapping[str, torch.Tensor]) -> str:
    """A short hash of a state dict's names and values: which weights a run started from."""
    digest = hashlib.blake2b(digest_size=12)
    for name, tensor in state.items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def method_name(method: ModuleType) -> str:
    return getattr(method, "__name__", str(method)).rsplit(".", 1)[-1]


def _floats(values: Mapping[str, torch.Tensor | float]) -> dict[str, float]:
    """0-dim tensors → floats with a single device-to-host copy."""
    tensors = {k: v for k, v in values.items() if isinstance(v, torch.Tensor)}
    out = {k: float(v) for k, v in values.items() if not isinstance(v, torch.Tensor)}
    if tensors:
        stacked = torch.stack([v.detach().float().reshape(()) for v in tensors.values()]).cpu().tolist()
        out.update(zip(tensors, stacked, strict=True))
    return {k: out[k] for k in values}


class _MetricWindow:
    """Running sums of the metrics since the last log, each over the iterations that reported it.

    A method may report a metric on some iterations only (FDA's entropy once it is switched on): its mean is
    over those iterations. Under ``nan_guard: log`` the sums stay on the device with one all-finite flag per
    iteration, and :meth:`settle` reads them back together in one copy.
    """

    def __init__(self, state: Mapping | None = None):
        state = state or {}
        self.sums: dict[str, float | torch.Tensor] = dict(state.get("sums", {}))
        counts = state.get("counts")
        if counts is None:  # checkpoints of format 1 kept one count for every metric
            counts = {name: int(state.get("count", 0)) for name in self.sums}
        self.counts: dict[str, int] = dict(counts)
        self.checks: list[tuple[int, torch.Tensor]] = []  # (step, all finite) not read back yet

    def add(self, metrics: Mapping[str, float | torch.Tensor], checked_step: int | None = None) -> None:
        """``checked_step``: keep, for that step, a device flag saying whether its tensors were all finite."""
        tensors = []
        for name, value in metrics.items():
            if isinstance(value, torch.Tensor):
                value = value.detach().float().reshape(())
                tensors.append(value)
            self.sums[name] = self.sums.get(name, 0.0) + value
            self.counts[name] = self.counts.get(name, 0) + 1
        if checked_step is not None and tensors:
            self.checks.append((checked_step, torch.isfinite(torch.stack(tensors)).all()))

    def settle(self) -> int | None:
        """Device values to floats in one copy; the first step whose losses were not finite, if any."""
        flags = {("finite", step): flag for step, flag in self.checks}
        if not flags and not any(isinstance(v, torch.Tensor) for v in self.sums.values()):
            return None
        values = _floats({**self.sums, **flags})
        self.sums, self.checks = {name: values[name] for name in self.sums}, []
        return next((step for (_, step) in flags if not values[("finite", step)]), None)

    def flush(self) -> dict[str, float]:
        self._settle_checked()
        means = {name: total / self.counts[name] for name, total in self.sums.items()}
        self.sums, self.counts = {}, {}
        return means

    def state_dict(self) -> dict:
        self._settle_checked()
        return {"sums": dict(self.sums), "counts": dict(self.counts)}

    def _settle_checked(self) -> None:
        """Settle, refusing to drop a finite-check nobody read: the guard settles (and stops) first."""
        if self.checks:
            raise RuntimeError(f"{len(self.checks)} finite-checks not read: settle() and act on a divergence first")
        self.settle()


def _build_optimizers(models: Mapping[str, nn.Module], config: EngineConfig) -> dict[str, torch.optim.Optimizer]:
    """SGD for the segmenter (from ``parameter_groups``), Adam for every ``discriminator*`` model.

    Any other model (an EMA teacher, a pseudo-labeller) gets no optimiser.
    """
    segmenter = models[SEGMENTER]
    if hasattr(segmenter, "parameter_groups"):
        groups = segmenter.parameter_groups(dedupe=config.dedupe_backbone_params)
    else:
        groups = [p for p in segmenter.parameters() if p.requires_grad]
    fused = config.fused_optimizers
    optimizers = {SEGMENTER: make_segmenter_optimizer(groups, config.lr, config.momentum, config.weight_decay, fused)}
    for name, model in models.items():
        if name.startswith("discriminator"):
            params = [p for p in model.parameters() if p.requires_grad]
            optimizers[name] = make_discriminator_optimizer(
                params, config.lr_discriminator, config.betas_discriminator, fused
            )
    return optimizers


def _owned_files(folder: Path) -> list[Path]:
    return sorted([*folder.glob(LAST_CHECKPOINT), *folder.glob(BEST_CHECKPOINT), *folder.glob("step_*.pt")])


def _differences(saved: Mapping[str, Any], current: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``name: checkpoint X, now Y`` for every key both mappings have and disagree on (lists as tuples)."""
    found = []
    for name, new in current.items():
        if name not in saved:
            continue
        old = saved[name]
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            found += _differences(old, new, f"{prefix}{name}.")
            continue
        if isinstance(old, list | tuple):
            old, new = tuple(old), tuple(new) if isinstance(new, list | tuple) else new
        if old != new:
            found.append(f"{prefix}{name}: checkpoint {old!r}, now {new!r}")
    return found


class _Run:
    """One training run's state and its four parts: start or resume, iteration, evaluation, checkpoints."""

    def __init__(
        self,
        method: ModuleType,
        models: dict[str, nn.Module],
        config: EngineConfig,
        method_config: Any,
        target_dataset: Dataset | None,
        on_metrics: MetricsCallback | None,
        evaluate_fn: EvaluateFn | None,
        data_digest: str | None = None,
        label: str | None = None,
        precision: PrecisionChoice | None = None,
        world: World | None = None,
    ) -> None:
        if SEGMENTER not in models:
            raise ValueError(f"models must contain {SEGMENTER!r}, got {sorted(models)}.")
        self.method, self.models, self.config, self.method_config = method, models, config, method_config
        self.on_metrics, self.evaluate_fn = on_metrics, evaluate_fn
        self.label = label or method_name(method)
        self.world = world or World()
        self.started = time.perf_counter()
        self.device = resolve_device(config.device)
        self.precision_choice = precision
        self.precision = precision.precision if precision is not None else resolve_precision(config.precision, self.device)
        self.amp = Amp(self.device.type, self.precision)
        self.channels_last = (
            config.channels_last if config.channels_last is not None
            else self.device.type == "cuda" or self.precision == "bf16"
        )
        if config.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = not config.deterministic
            torch.backends.cudnn.deterministic = config.deterministic
        seed_everything(config.seed)
        self.identity = {
            "engine": {name: getattr(config, name) for name in TRAJECTORY_FIELDS} | optional_trajectory(config),
            "method": method_name(method),
            "method_config": method_config.to_dict() if hasattr(method_config, "to_dict") else dict(method_config or {}),
            "start_digest": state_digest(models[SEGMENTER].state_dict()),
            "data_digest": data_digest,
        }
        self.run_id = hashlib.blake2b(
            json.dumps(self.identity, sort_keys=True, default=list).encode(), digest_size=8
        ).hexdigest()
        for model in models.values():
            model.to(self.device)
            if self.channels_last:
                model.to(memory_format=torch.channels_last)
            model.train()
        broadcast_models(models, self.world)
        compile_models(models.values(), config.compile_mode)
        self.optimizers = _build_optimizers(models, config)
        self.context = Context(
            target=target_dataset, device=self.device, amp=self.amp, channels_last=self.channels_last,
            batch_size=config.batch_size, progress=config.progress and self.world.is_main, max_steps=config.max_steps,
        )
        self.folder = Path(config.checkpoint_dir) if config.checkpoint_dir is not None else None
        self.start_step = self.done = 0
        self.history: History = {}
        self.window = _MetricWindow()
        self.early = {"best_value": None, "best_step": None, "bad_evals": 0}
        self.saved_path: Path | None = None
        self.saved_step: int | None = None
        self.stopped_early = False

    # ------------------------------------------------------------------ start or resume
    def start_or_resume(self) -> None:
        """Restore ``last.pt`` when resuming (refusing another run's), else start fresh: clear or refuse
        an existing run's files and call the method's ``start`` hook."""
        last = self.folder / LAST_CHECKPOINT if self.folder is not None else None
        if last is not None and self.config.resume and last.is_file():
            self._resume(last)
            barrier(self.world)  # nobody writes last.pt before every rank has read it
            return
        if self.folder is not None and self.world.is_main:
            existing = _owned_files(self.folder) if self.folder.is_dir() else []
            if existing and not self.config.overwrite:
                raise FileExistsError(
                    f"{self.folder} already holds checkpoints of a run ({', '.join(p.name for p in existing)}). "
                    "Set resume: true to continue it, overwrite: true to start over, or use another checkpoint_dir."
                )
            if existing:
                logger.warning(
                    "Starting a new run in %s (overwrite: true): removing the previous run's %s.",
                    self.folder, ", ".join(p.name for p in existing),
                )
            for path in existing:
                path.unlink()
            if self.config.resume:
                logger.info("resume: true but %s does not exist; starting a new run.", last)
        barrier(self.world)
        start = getattr(self.method, "start", None)
        if start is not None:
            start(self.models, self.method_config, self.context)

    def _resume(self, path: Path) -> None:
        state = load_checkpoint(path)
        saved = state.get("config", {})
        current = {k: v for k, v in self.identity.items() if not k.endswith("_digest")}
        current["engine"] = OPTIONAL_TRAJECTORY_OFF | current["engine"]  # a run with them on never resumes off
        differences = _differences(saved, current)
        if saved.get("start_digest") not in (None, self.identity["start_digest"]):
            differences.append("the starting weights (the pretrained model) changed since the run began")
        if saved.get("data_digest") not in (None, self.identity["data_digest"]):
            differences.append("the training data changed since the run began (regenerated or replaced files)")
        if differences:
            raise ValueError(
                f"Cannot resume from {path}: the run was started with other settings ({'; '.join(differences)}). "
                "Restore those settings, or start a new run with overwrite: true or another checkpoint_dir."
            )
        missing = sorted(set(self.models) - set(state["models"]))
        if missing:
            raise ValueError(f"{path} holds no weights for {missing} (it has {sorted(state['models'])}).")
        for name, model in self.models.items():
            model.load_state_dict(state["models"][name])
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        self.amp.load_state_dict(state.get("grad_scaler"))
        self.start_step = self.done = int(state["step"])
        self.history = state.get("history", {})
        self.window = _MetricWindow(state.get("window"))
        self.early.update(state.get("early_stopping", {}))
        restore_rng_state(state["rng"])
        if state.get("precision") not in (None, self.precision):
            logger.warning(
                "%s trained in %s until step %d and continues in %s (precision %s on this machine): the "
                "resumed steps are not bit-identical to an uninterrupted run. Set precision: %s to keep it.",
                self.label, state["precision"], self.done, self.precision, self.config.precision, state["precision"],
            )
        self.saved_path, self.saved_step = path, self.done
        logger.info("Resuming from %s at step %d.", path, self.done)

    # ------------------------------------------------------------------ iterations
    def train(self, source: Dataset, target: Dataset | None) -> None:
        """Iterations from the start (or resumed) step to the last one, or to an early stop."""
        stop_step = self.config.last_step
        if self.method.step is None or self.done >= stop_step:
            return
        if self.method.TARGET_BATCHES and target is None:
            raise ValueError(f"{method_name(self.method)} reads target images: pass target_dataset to the engine.")
        draws = {"source": self.rare_class_draw(source)}
        streams = {
            domain: batch_stream(
                dataset, domain, batch_size=self.config.batch_size, seed=self.config.seed,
                num_workers=self.config.num_workers, start_step=self.done, stop_step=stop_step, device=self.device,
                rank=self.world.rank, world_size=self.world.size, draw=draws.get(domain),
            )
            for domain, dataset in (("source", source), ("target", target))
            if domain == "source" or self.method.TARGET_BATCHES
        }
        logger.info(
            "Training %s (%s) from step %d to %d on %s (%s%s)%s.", self.label, method_name(self.method),
            self.done, stop_step, self.device, self.precision, ", channels_last" if self.channels_last else "",
            f", rank {self.world.rank} of {self.world.size}" if self.world.active else "",
        )
        progress = tqdm(
            total=stop_step, initial=self.done, disable=not (self.config.progress and self.world.is_main), unit="it",
            dynamic_ncols=True,
            desc=f"train {self.label}",
        )
        window_started, timed = time.perf_counter(), 0
        try:
            for step in range(self.done, stop_step):
                self.iteration(step, streams)
                self.done, timed = step + 1, timed + 1
                progress.update(1)
                if self.done % self.config.log_every == 0 or self.done == stop_step:
                    self.guard()
                    means = average_metrics(self.window.flush(), self.world)
                    means["iterations_per_second"] = timed / max(time.perf_counter() - window_started, 1e-9)
                    self.record(means)
                    progress.set_postfix({k: f"{v:.4g}" for k, v in means.items() if k.startswith("loss")}, refresh=False)
                    window_started, timed = time.perf_counter(), 0
                self.evaluate()
                self.checkpoint(final=self.done == stop_step)
                if self.stopped_early:
                    break
        finally:
            progress.close()

    def rare_class_draw(self, source: Dataset) -> ClassDraw | None:
        """Rare-class sampling's draw over the source images, when the engine block asks for it."""
        if self.config.rare_class_sampling is None:
            return None
        counts = class_pixel_counts(source, progress=self.config.progress and self.world.is_main)
        draw = ClassDraw(counts, self.config.rare_class_sampling)
        logger.info("Rare-class sampling of %s: class probabilities %s.", self.label, draw.describe())
        return draw

    def iteration(self, step: int, streams: Mapping[str, Iterator[dict]]) -> None:
        """One iteration: poly learning rates, the method's step, the NaN guard, the optimiser steps; its
        metrics go to the window."""
        config, hooks = self.config, self.method
        schedule = (step, config.max_steps, config.power, config.warmup_steps)
        lr = apply_poly_lr(self.optimizers[SEGMENTER], config.lr, *schedule)
        for name, optimizer in self.optimizers.items():
            if name != SEGMENTER:
                apply_poly_lr(optimizer, config.lr_discriminator, *schedule)
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=True)
        mark_iteration(config.compile_mode)
        before = getattr(hooks, "before_iteration", None)
        if before is not None:
            before(self.models, step, self.method_config, self.context)
        batch: dict[str, Any] = {
            domain: to_device(next(stream), self.device, self.channels_last, keep_label=domain == "source")
            for domain, stream in streams.items()
        }
        batch["progress"] = step / config.max_steps  # how far along the schedule (FDA's entropy switch)
        losses = self.method.step(self.models, batch, self.method_config, self.amp)
        if config.nan_guard == "step":
            losses = _floats(losses)
            bad = {name: value for name, value in losses.items() if not math.isfinite(value)}
            if bad:
                raise self.diverged(bad, step + 1)
            self.window.add(losses)
        else:  # checked on the device, read back with the window (guard)
            self.window.add(losses, checked_step=step + 1)
        average_gradients(self.models.values(), self.world)
        self.amp.step(self.optimizers.values())
        after = getattr(hooks, "after_iteration", None)
        if after is not None:
            after(self.models, step, self.method_config, self.context)
        self.window.add({"lr": lr})

    def record(self, metrics: Mapping[str, float]) -> None:
        for name, value in metrics.items():
            self.history.setdefault(name, []).append({"step": self.done, "value": float(value)})
        if self.on_metrics is not None and self.world.is_main:
            self.on_metrics(dict(metrics), self.done)

    # ------------------------------------------------------------------ evaluation and early stop
    def evaluate(self) -> None:
        """Every ``eval_every`` steps: the held-out metric, ``best.pt`` on improvement, early stop on patience."""
        config = self.config
        if self.evaluate_fn is None or not config.eval_every or self.done % config.eval_every:
            return
        self.guard()
        for model in self.models.values():
            model.eval()
        with torch.no_grad():
            value = float(self.evaluate_fn(self.models, self.done))
        for model in self.models.values():
            model.train()
        self.record({config.eval_metric: value})
        best = self.early["best_value"]
        improved = math.isfinite(value) and (
            best is None or (value > best if config.eval_mode == "max" else value < best)
        )
        if improved:
            self.early.update(best_value=value, best_step=self.done, bad_evals=0)
            if self.folder is not None and self.world.is_main:
                save_checkpoint(self.folder / BEST_CHECKPOINT, self.snapshot_state())
        else:
            self.early["bad_evals"] += 1
        if config.patience is not None and self.early["bad_evals"] >= config.patience:
            self.stopped_early = True
            logger.info(
                "Early stop at step %d: %s did not improve for %d evaluations (best %.4g at step %d).",
                self.done, config.eval_metric, self.early["bad_evals"], self.early["best_value"], self.early["best_step"],
            )

    # ------------------------------------------------------------------ checkpoints
    def snapshot_state(self) -> dict:
        return {
            "format_version": CHECKPOINT_FORMAT,
            "step": self.done,
            "run_id": self.run_id,
            "models": {name: model.state_dict() for name, model in self.models.items()},
            "config": {**self.identity, "engine": self.config.to_dict()},
        }

    def full_state(self) -> dict:
        return {
            **self.snapshot_state(),
            "optimizers": {name: optimizer.state_dict() for name, optimizer in self.optimizers.items()},
            "grad_scaler": self.amp.state_dict(),
            "rng": capture_rng_state(),
            "history": self.history,
            "window": self.window.state_dict(),
            "early_stopping": dict(self.early),
            "precision": self.precision,
        }

    def checkpoint(self, final: bool) -> None:
        """A snapshot every ``snapshot_every`` steps; ``last.pt`` every ``checkpoint_every``, at the end and at an
        early stop. Only finite weights are saved: a checkpoint is always one to go back to."""
        if self.folder is None:
            return
        config = self.config
        snapshot = bool(config.snapshot_every) and self.done % config.snapshot_every == 0
        due = bool(config.checkpoint_every) and self.done % config.checkpoint_every == 0
        if not (snapshot or due or final or self.stopped_early):
            return
        self.guard()
        broken = self.non_finite_weights()
        if broken:
            raise self.diverged({f"weights of {name}": math.nan for name in broken}, self.done)
        if snapshot and self.world.is_main:
            save_checkpoint(self.folder / SNAPSHOT_PATTERN.format(step=self.done), self.snapshot_state())
        if due or final or self.stopped_early:
            if self.world.is_main:
                save_checkpoint(self.folder / LAST_CHECKPOINT, self.full_state())
            self.saved_path, self.saved_step = self.folder / LAST_CHECKPOINT, self.done

    def guard(self) -> None:
        """Stop at the first non-finite step the window holds (``nan_guard: log`` checks them here)."""
        first_bad = self.window.settle()
        if first_bad is not None:
            bad = {name: value for name, value in self.window.sums.items() if not math.isfinite(value)}
            raise self.diverged(bad or {"loss": math.nan}, first_bad)

    def non_finite_weights(self) -> list[str]:
        """Models with a NaN or infinite parameter or floating buffer (one device sync for all of them)."""
        flags = {
            name: torch.stack([~torch.isfinite(t).all() for t in (*model.parameters(), *model.buffers())
                               if t.is_floating_point()]).any()
            for name, model in self.models.items() if any(True for _ in model.parameters())
        }
        return [name for name, flag in zip(flags, torch.stack(list(flags.values())).tolist(), strict=True) if flag] if flags else []

    def diverged(self, bad: Mapping[str, float], step: int) -> NonFiniteLossError:
        """The error for a run that stopped on non-finite values, pointing at the last good checkpoint."""
        if self.folder is None:
            why = " (no checkpoint folder: this run writes none)"
        elif not self.config.checkpoint_every:
            why = " (checkpoint_every is 0: only the last step is saved)"
        else:
            why = f" (the first was due at step {self.start_step + self.config.checkpoint_every})"
        return NonFiniteLossError(bad, step, self.saved_path, self.saved_step, why)

    def result(self) -> TrainResult:
        best = self.folder / BEST_CHECKPOINT if self.folder is not None and self.early["best_step"] is not None else None
        return TrainResult(
            models=self.models,
            history=self.history,
            last_step=self.done,
            start_step=self.start_step,
            run_id=self.run_id,
            checkpoint_path=self.saved_path,
            best_step=self.early["best_step"],
            best_value=self.early["best_value"],
            best_checkpoint_path=best,
            stopped_early=self.stopped_early,
            device=str(self.device),
            precision=self.precision,
            seconds=time.perf_counter() - self.started,
            precision_seconds=dict(self.precision_choice.seconds) if self.precision_choice is not None else {},
        )


def train(
    method: ModuleType,
    models: dict[str, nn.Module],
    source_dataset: Dataset,
    config: EngineConfig | Mapping | None = None,
    *,
    target_dataset: Dataset | None = None,
    method_config: Any = None,
    on_metrics: MetricsCallback | None = None,
    evaluate_fn: EvaluateFn | None = None,
    data_digest: str | None = None,
    label: str | None = None,
) -> TrainResult:
    """Train ``models`` with ``method`` from ``config.resume``'s starting point to ``config.last_step``.

    Args:
        method: a module of ``adaptseg.methods`` (``methods.get_method(name)`` finds one by name), or any
            object with the same names (tests pass stand-ins).
        models: ``{"segmenter": ..., **method.build_models(segmenter, method_config)}``. Moved to the training
            device in place and put in train mode. Build them after ``seed_everything`` if their
            initialisation should be reproducible.
        source_dataset: labelled map-style dataset; items are dicts with "image" (3×H×W float), "label" (H×W
            integer train ids) and "name". For the oracle, the labelled target set.
        config: ``EngineConfig`` (or a mapping of its fields).
        target_dataset: unlabelled target dataset (items with "image" and "name"); any "label" it returns is
            removed before a method sees the batch. Streamed when the method reads target batches, and given
            to its hooks (``Context.target``) in any case.
        method_config: ``method.Config`` (or a mapping of its fields).
        on_metrics: called as ``on_metrics(metrics, step)`` every ``log_every`` steps and after each
            evaluation (e.g. an MLflow logger).
        evaluate_fn: ``evaluate_fn(models, step) -> float`` on held-out data every ``eval_every`` steps,
            called with the models in eval mode under ``torch.no_grad()``; they return to train mode
            afterwards. An improvement writes ``best.pt`` (weights only).
        data_digest: identifies the data the run reads (``data.layouts.files_digest``); part of the run's
            identity, so a resume after the data changed is refused.
        label: what the progress bar and the log call the run (the namespace; default: the method's name).
    Returns:
        ``TrainResult`` with the models, the metric history
        (``{"loss_seg": [{"step": 10, "value": 0.7}, ...], ...}``) and checkpoint paths.
    Raises:
        NonFiniteLossError: a returned metric is NaN/inf (nothing is stepped or saved).
    """
    config = config if isinstance(config, EngineConfig) else EngineConfig.from_dict(config)
    if not isinstance(method_config, method.Config):
        method_config = method.Config.from_dict(method_config)
    if config.nproc_per_node > 1 and not launched():
        from adaptseg.training.launch import train_in_processes

        return train_in_processes(
            method, models, source_dataset, config, target_dataset=target_dataset, method_config=method_config,
            on_metrics=on_metrics, evaluate_fn=evaluate_fn, data_digest=data_digest, label=label,
        )
    world = join(resolve_device(config.device))
    precision = None
    if config.precision == "auto" and method.step is not None and len(source_dataset):
        # measured on the real model and input shape (cached per machine): flags alone picked a slower bf16
        if world.is_main:
            shape = (config.batch_size, *tuple(source_dataset[0]["image"].shape))
            precision = choose_precision(models[SEGMENTER], shape, resolve_device(config.device))
            logger.info("%s: %s.", label or method_name(method), precision.describe())
        precision = agree(precision, world)
    try:  # _Run compiles the models (compile_mode): whatever fails after that, they come back plain
        run = _Run(
            method, models, config, method_config, target_dataset, on_metrics, evaluate_fn, data_digest, label,
            precision, world,
        )
        run.start_or_resume()
        run.train(source_dataset, target_dataset)
    finally:
        uncompiled(models.values())  # hand back plain modules: copied, pickled and evaluated as before
    return run.result()
