"""The one training engine behind every method (source-only, oracle, AdaptSegNet, ...).

The engine owns everything that is not the method: device and precision, seeds, the deterministic
source/target sample streams, optimisers and the poly schedule, the NaN guard, progress and metric
logging, atomic checkpoints with exact resume, snapshots, and early stopping on a held-out metric.
The method is a step function from ``steps`` (see its module docstring for the contract).

Step numbering: ``step`` counts completed iterations. Iteration ``i`` (0-based) trains with the poly
learning rate at ``i`` and its metrics are logged at step ``i + 1``; ``step_005000.pt`` holds the
weights after 5000 iterations. Resuming from ``last.pt`` at step ``k`` continues with iteration ``k``:
the data streams, optimiser states, loss-scaler and random generators are restored, so ``k`` steps,
stop, resume, ``m`` steps give the same weights as ``k + m`` steps straight (same device/precision).
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from adaptseg.config import from_mapping
from adaptseg.training.checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from adaptseg.training.precision import DEVICES, PRECISIONS, Amp, resolve_device, resolve_precision
from adaptseg.training.schedules import (
    apply_poly_lr,
    make_discriminator_optimizer,
    make_segmenter_optimizer,
)
from adaptseg.training.steps import SEGMENTER, StepConfig, StepFn, get_step

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"
SNAPSHOT_PATTERN = "step_{step:06d}.pt"

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

MetricsCallback = Callable[[dict[str, float], int], None]
EvaluateFn = Callable[[dict[str, nn.Module], int], float]
History = dict[str, list[dict[str, float]]]


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; the weights were not updated and no checkpoint was written."""

    def __init__(
        self, losses: Mapping[str, float], step: int, checkpoint_path: Path | None, checkpoint_step: int | None
    ):
        self.losses = dict(losses)
        self.step = step
        self.checkpoint_path = checkpoint_path
        names = ", ".join(f"{name}={value}" for name, value in self.losses.items())
        if checkpoint_path is not None:
            where = (
                f"The last good checkpoint is {checkpoint_path} (step {checkpoint_step}); it was not "
                "overwritten. Resume from it (resume: true) after lowering lr or lambda_adv, or after "
                "checking the inputs of this step."
            )
        else:
            where = "No checkpoint was written before (set checkpoint_dir / checkpoint_every to keep one)."
        super().__init__(f"Non-finite loss at step {step}: {names}. {where}")


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
        dedupe_backbone_params: passed to ``segmenter.parameter_groups(dedupe=...)``; False
            reproduces the reference's repeated backbone tensors (≈3× backbone lr and wd).
    Hardware
        device: "auto" | "cpu" | "cuda" ("cuda:N").
        precision: "auto" | "fp32" | "bf16" | "fp16" (see ``precision`` for what auto picks).
        channels_last: None = on for CUDA and for CPU bf16; True/False forces it.
        num_workers: DataLoader worker processes (0 = load in the main process).
        deterministic: torch deterministic algorithms (warn-only) and no cuDNN autotuning.
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
    lr_discriminator: float = 1e-4
    betas_discriminator: tuple[float, float] = (0.9, 0.99)
    dedupe_backbone_params: bool = True
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool | None = None
    num_workers: int = 0
    deterministic: bool = False
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

    def __post_init__(self) -> None:
        self.betas_discriminator = tuple(float(b) for b in self.betas_discriminator)
        if self.checkpoint_dir is not None:
            self.checkpoint_dir = str(self.checkpoint_dir)
        problems = []
        if self.max_steps < 1:
            problems.append(f"max_steps={self.max_steps} must be >= 1")
        if self.stop_step is not None and not 0 <= self.stop_step <= self.max_steps:
            problems.append(f"stop_step={self.stop_step} must lie in [0, max_steps={self.max_steps}]")
        for name in ("batch_size", "log_every"):
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} must be >= 1")
        for name in ("checkpoint_every", "snapshot_every", "eval_every", "num_workers"):
            if getattr(self, name) < 0:
                problems.append(f"{name}={getattr(self, name)} must be >= 0")
        if self.patience is not None and self.patience < 1:
            problems.append(f"patience={self.patience} must be >= 1 or null")
        if self.device not in DEVICES and not str(self.device).startswith("cuda:"):
            problems.append(f"device={self.device!r} must be one of {DEVICES} or 'cuda:N'")
        if self.precision not in PRECISIONS:
            problems.append(f"precision={self.precision!r} must be one of {PRECISIONS}")
        if self.eval_mode not in ("max", "min"):
            problems.append(f"eval_mode={self.eval_mode!r} must be 'max' or 'min'")
        if self.resume and self.checkpoint_dir is None:
            problems.append("resume=true needs a checkpoint_dir to resume from")
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
    checkpoint_path: Path | None = None
    best_step: int | None = None
    best_value: float | None = None
    best_checkpoint_path: Path | None = None
    stopped_early: bool = False
    device: str = "cpu"
    precision: str = "fp32"
    seconds: float = 0.0


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and every GPU)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _stream_seed(seed: int, domain: str, epoch: int) -> int:
    digest = hashlib.blake2b(f"{seed}/{domain}/{epoch}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def epoch_permutation(size: int, seed: int, domain: str, epoch: int) -> torch.Tensor:
    """The sample order of one epoch of a domain: a permutation drawn from (seed, domain, epoch)."""
    generator = torch.Generator().manual_seed(_stream_seed(seed, domain, epoch))
    return torch.randperm(size, generator=generator)


class StreamSampler(Sampler[int]):
    """Indices of an endless shuffled stream, positions ``start_step·B .. stop_step·B``.

    Sample ``p`` of the stream is ``epoch_permutation(size, seed, domain, p // size)[p % size]``, so the
    position follows from the step alone: a resumed run skips straight to where it stopped, and
    batches run across epoch boundaries like the reference's tiled list.
    """

    def __init__(self, size: int, batch_size: int, seed: int, domain: str, start_step: int, stop_step: int):
        self.size, self.batch_size, self.seed, self.domain = size, batch_size, seed, domain
        self.start, self.stop = start_step * batch_size, stop_step * batch_size

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self) -> Iterator[int]:
        epoch, order = None, None
        for position in range(self.start, self.stop):
            this_epoch, index = divmod(position, self.size)
            if this_epoch != epoch:
                epoch = this_epoch
                order = epoch_permutation(self.size, self.seed, self.domain, epoch).tolist()
            yield order[index]


def _seed_worker(worker_id: int) -> None:
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


def _batches(
    dataset: Dataset, domain: str, config: EngineConfig, start_step: int, stop_step: int, device: torch.device
) -> Iterator[dict]:
    try:
        size = len(dataset)
    except TypeError as error:
        raise TypeError(f"The {domain} dataset must be a map-style Dataset with __len__.") from error
    if size < 1:
        raise ValueError(f"The {domain} dataset is empty; the engine needs at least one sample.")
    sampler = StreamSampler(size, config.batch_size, config.seed, domain, start_step, stop_step)
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=sampler,
        num_workers=config.num_workers,
        pin_memory=device.type == "cuda",
        worker_init_fn=_seed_worker if config.num_workers else None,
        # Own generator: worker base seeds never consume (and never depend on) the global torch RNG.
        generator=torch.Generator().manual_seed(_stream_seed(config.seed, f"{domain}-workers", start_step)),
    )
    return iter(loader)


def _to_device(batch: Mapping, device: torch.device, channels_last: bool, keep_label: bool) -> dict:
    """Move one collated batch to the device; target batches lose their labels here."""
    moved = {}
    for key, value in batch.items():
        if key == "label" and not keep_label:
            continue
        if isinstance(value, torch.Tensor):
            value = value.to(device, non_blocking=True)
            if key == "image":
                value = value if value.is_floating_point() else value.float()
                if channels_last and value.dim() == 4:
                    value = value.contiguous(memory_format=torch.channels_last)
            elif key == "label":
                value = value.long()
        moved[key] = value
    if "image" not in moved:
        raise KeyError(f"A batch has no 'image' key (keys: {sorted(batch)}).")
    return moved


def _build_optimizers(models: Mapping[str, nn.Module], config: EngineConfig) -> dict[str, torch.optim.Optimizer]:
    """SGD for the segmenter (from ``parameter_groups``), Adam for every ``discriminator*`` model.

    Any other model (e.g. a frozen teacher) gets no optimiser.
    """
    segmenter = models[SEGMENTER]
    if hasattr(segmenter, "parameter_groups"):
        groups = segmenter.parameter_groups(dedupe=config.dedupe_backbone_params)
    else:
        groups = [p for p in segmenter.parameters() if p.requires_grad]
    optimizers = {SEGMENTER: make_segmenter_optimizer(groups, config.lr, config.momentum, config.weight_decay)}
    for name, model in models.items():
        if name.startswith("discriminator"):
            params = [p for p in model.parameters() if p.requires_grad]
            optimizers[name] = make_discriminator_optimizer(
                params, config.lr_discriminator, config.betas_discriminator
            )
    return optimizers


def _owned_files(folder: Path) -> list[Path]:
    return sorted([*folder.glob(LAST_CHECKPOINT), *folder.glob(BEST_CHECKPOINT), *folder.glob("step_*.pt")])


def _check_resumable(saved: Mapping, config: EngineConfig, step_config: StepConfig, path: Path) -> None:
    saved_engine = saved.get("engine", {})
    current = config.to_dict()
    differences = []
    for name in TRAJECTORY_FIELDS:
        old, new = saved_engine.get(name), current[name]
        if isinstance(old, list | tuple):
            old, new = tuple(old), tuple(new)
        if name in saved_engine and old != new:
            differences.append(f"{name}: checkpoint {old!r}, now {new!r}")
    saved_step = saved.get("step", {})
    for name, new in step_config.to_dict().items():
        if name in saved_step and saved_step[name] != new:
            differences.append(f"{name}: checkpoint {saved_step[name]!r}, now {new!r}")
    if differences:
        raise ValueError(
            f"Cannot resume from {path}: the run was started with other settings ({'; '.join(differences)}). "
            "Restore those settings, or start a new run with overwrite: true or another checkpoint_dir."
        )


class _MetricWindow:
    """Running sums of the metrics since the last log."""

    def __init__(self, state: Mapping | None = None):
        state = state or {}
        self.sums: dict[str, float] = dict(state.get("sums", {}))
        self.count: int = int(state.get("count", 0))

    def add(self, metrics: Mapping[str, float]) -> None:
        for name, value in metrics.items():
            self.sums[name] = self.sums.get(name, 0.0) + value
        self.count += 1

    def flush(self) -> dict[str, float]:
        means = {name: total / self.count for name, total in self.sums.items()} if self.count else {}
        self.sums, self.count = {}, 0
        return means

    def state_dict(self) -> dict:
        return {"sums": dict(self.sums), "count": self.count}


def train(
    step_fn: StepFn | str,
    models: dict[str, nn.Module],
    source_dataset: Dataset,
    config: EngineConfig | Mapping | None = None,
    *,
    target_dataset: Dataset | None = None,
    step_config: StepConfig | Mapping | None = None,
    on_metrics: MetricsCallback | None = None,
    evaluate_fn: EvaluateFn | None = None,
) -> TrainResult:
    """Train ``models`` with ``step_fn`` from ``config.resume``'s starting point to ``config.last_step``.

    Args:
        step_fn: a step function or a method name from ``steps.STEPS`` ("source_only", "oracle",
            "adaptsegnet").
        models: ``{"segmenter": ..., "discriminator_main": ..., "discriminator_aux": ...}``. Moved to
            the training device in place and put in train mode. Construct them after seeding
            (``seed_everything``) if their initialisation should be reproducible.
        source_dataset: labelled map-style dataset; items are dicts with "image" (3×H×W float),
            "label" (H×W integer train ids) and "name". For the oracle, the labelled target set.
        config: ``EngineConfig`` (or a mapping of its fields).
        target_dataset: unlabelled target dataset (items with "image" and "name"); any "label" it
            returns is removed before the step sees the batch.
        step_config: ``StepConfig`` (or a mapping) with the method's loss weights.
        on_metrics: called as ``on_metrics(metrics, step)`` every ``log_every`` steps and after each
            evaluation (e.g. an MLflow logger).
        evaluate_fn: ``evaluate_fn(models, step) -> float`` on held-out data every ``eval_every`` steps,
            called with the models in eval mode under ``torch.no_grad()``; they return to train mode
            afterwards. An improvement writes ``best.pt`` (weights only).
    Returns:
        ``TrainResult`` with the models, the metric history
        (``{"loss_seg": [{"step": 10, "value": 0.7}, ...], ...}``) and checkpoint paths.
    Raises:
        NonFiniteLossError: a returned metric is NaN/inf (nothing is stepped or saved).
    """
    config = config if isinstance(config, EngineConfig) else EngineConfig.from_dict(config)
    step_config = step_config if isinstance(step_config, StepConfig) else StepConfig.from_dict(step_config)
    step_fn = get_step(step_fn) if isinstance(step_fn, str) else step_fn
    if SEGMENTER not in models:
        raise ValueError(f"models must contain {SEGMENTER!r}, got {sorted(models)}.")
    started = time.perf_counter()

    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    amp = Amp(device.type, precision)
    channels_last = config.channels_last if config.channels_last is not None else (
        device.type == "cuda" or precision == "bf16"
    )
    if config.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not config.deterministic
        torch.backends.cudnn.deterministic = config.deterministic
    seed_everything(config.seed)

    for model in models.values():
        model.to(device)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        model.train()
    optimizers = _build_optimizers(models, config)

    folder = Path(config.checkpoint_dir) if config.checkpoint_dir is not None else None
    last_path = folder / LAST_CHECKPOINT if folder is not None else None
    start_step, history, window = 0, {}, _MetricWindow()
    early = {"best_value": None, "best_step": None, "bad_evals": 0}
    saved_path, saved_step = None, None
    if folder is not None and config.resume and last_path.is_file():
        state = load_checkpoint(last_path)
        _check_resumable(state.get("config", {}), config, step_config, last_path)
        missing = sorted(set(models) - set(state["models"]))
        if missing:
            raise ValueError(f"{last_path} holds no weights for {missing} (it has {sorted(state['models'])}).")
        for name, model in models.items():
            model.load_state_dict(state["models"][name])
        for name, optimizer in optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        amp.load_state_dict(state.get("grad_scaler"))
        start_step = int(state["step"])
        history = state.get("history", {})
        window = _MetricWindow(state.get("window"))
        early.update(state.get("early_stopping", {}))
        restore_rng_state(state["rng"])
        saved_path, saved_step = last_path, start_step
        logger.info("Resuming from %s at step %d.", last_path, start_step)
    elif folder is not None:
        existing = _owned_files(folder) if folder.is_dir() else []
        if existing and not config.overwrite:
            raise FileExistsError(
                f"{folder} already holds checkpoints of a run ({', '.join(p.name for p in existing)}). "
                "Set resume: true to continue it, overwrite: true to start over, or use another checkpoint_dir."
            )
        for path in existing:
            path.unlink()
        if config.resume:
            logger.info("resume: true but %s does not exist; starting a new run.", last_path)

    stop_step = config.last_step
    logger.info(
        "Training %s from step %d to %d on %s (%s%s).",
        getattr(step_fn, "__name__", step_fn), start_step, stop_step, device, precision,
        ", channels_last" if channels_last else "",
    )

    def snapshot_state() -> dict:
        return {
            "format_version": CHECKPOINT_FORMAT,
            "step": done,
            "models": {name: model.state_dict() for name, model in models.items()},
            "config": {"engine": config.to_dict(), "step": step_config.to_dict()},
        }

    def full_state() -> dict:
        return {
            **snapshot_state(),
            "optimizers": {name: optimizer.state_dict() for name, optimizer in optimizers.items()},
            "grad_scaler": amp.state_dict(),
            "rng": capture_rng_state(),
            "history": history,
            "window": window.state_dict(),
            "early_stopping": dict(early),
            "precision": precision,
        }

    def record(metrics: Mapping[str, float], step: int) -> None:
        for name, value in metrics.items():
            history.setdefault(name, []).append({"step": step, "value": float(value)})
        if on_metrics is not None:
            on_metrics(dict(metrics), step)

    done = start_step
    stopped_early = False
    best_path = folder / BEST_CHECKPOINT if folder is not None else None
    segmenter_optimizer = optimizers[SEGMENTER]
    discriminator_optimizers = [opt for name, opt in optimizers.items() if name != SEGMENTER]
    if start_step < stop_step:
        source_batches = _batches(source_dataset, "source", config, start_step, stop_step, device)
        target_batches = (
            _batches(target_dataset, "target", config, start_step, stop_step, device)
            if target_dataset is not None else None
        )
        progress = tqdm(
            total=stop_step, initial=start_step, disable=not config.progress, desc="train", unit="it",
            dynamic_ncols=True,
        )
        window_started, timed_steps = time.perf_counter(), 0
        try:
            for step in range(start_step, stop_step):
                lr = apply_poly_lr(segmenter_optimizer, config.lr, step, config.max_steps, config.power)
                for optimizer in discriminator_optimizers:
                    apply_poly_lr(optimizer, config.lr_discriminator, step, config.max_steps, config.power)
                for optimizer in optimizers.values():
                    optimizer.zero_grad(set_to_none=True)

                batch = {"source": _to_device(next(source_batches), device, channels_last, keep_label=True)}
                if target_batches is not None:
                    batch["target"] = _to_device(next(target_batches), device, channels_last, keep_label=False)
                metrics = {name: float(value) for name, value in step_fn(models, batch, step_config, amp).items()}
                bad = {name: value for name, value in metrics.items() if not math.isfinite(value)}
                if bad:
                    raise NonFiniteLossError(bad, step + 1, saved_path, saved_step)
                amp.step(optimizers.values())
                done = step + 1
                timed_steps += 1
                progress.update(1)

                window.add({**metrics, "lr": lr})
                if done % config.log_every == 0 or done == stop_step:
                    means = window.flush()
                    elapsed = time.perf_counter() - window_started
                    if elapsed > 0:
                        means["iterations_per_second"] = timed_steps / elapsed
                    record(means, done)
                    progress.set_postfix(
                        {k: f"{v:.4g}" for k, v in means.items() if k.startswith("loss")}, refresh=False
                    )
                    window_started, timed_steps = time.perf_counter(), 0

                if evaluate_fn is not None and config.eval_every and done % config.eval_every == 0:
                    for model in models.values():
                        model.eval()
                    with torch.no_grad():
                        value = float(evaluate_fn(models, done))
                    for model in models.values():
                        model.train()
                    record({config.eval_metric: value}, done)
                    best = early["best_value"]
                    improved = math.isfinite(value) and (
                        best is None or (value > best if config.eval_mode == "max" else value < best)
                    )
                    if improved:
                        early.update(best_value=value, best_step=done, bad_evals=0)
                        if best_path is not None:
                            save_checkpoint(best_path, snapshot_state())
                    else:
                        early["bad_evals"] += 1
                    if config.patience is not None and early["bad_evals"] >= config.patience:
                        stopped_early = True
                        logger.info(
                            "Early stop at step %d: %s did not improve for %d evaluations (best %.4g at step %d).",
                            done, config.eval_metric, early["bad_evals"], early["best_value"], early["best_step"],
                        )

                if folder is not None:
                    if config.snapshot_every and done % config.snapshot_every == 0:
                        save_checkpoint(folder / SNAPSHOT_PATTERN.format(step=done), snapshot_state())
                    due = bool(config.checkpoint_every) and done % config.checkpoint_every == 0
                    if due or done == stop_step or stopped_early:
                        saved_path, saved_step = save_checkpoint(last_path, full_state()), done
                if stopped_early:
                    break
        finally:
            progress.close()

    seconds = time.perf_counter() - started
    return TrainResult(
        models=models,
        history=history,
        last_step=done,
        checkpoint_path=saved_path,
        best_step=early["best_step"],
        best_value=early["best_value"],
        best_checkpoint_path=best_path if early["best_step"] is not None and best_path is not None else None,
        stopped_early=stopped_early,
        device=str(device),
        precision=precision,
        seconds=seconds,
    )
