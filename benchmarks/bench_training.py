"""Training-step benchmarks: the faithful fp32 step (the original's cost) against the engine's fast path.

Each configuration runs in its own process (peak memory is per process) through the real engine
(`adaptseg.training.train`), or through the original's loop (``original_iteration``, the GPU table's baseline),
on in-memory random data: warm-up steps are excluded from the timing (``step_clock``), and the first step's
losses from the same initial weights and batch are compared across precisions.

The fast path is what the engine's ``precision="auto"`` picks on this machine (``adaptseg.training.precision``):
bf16 autocast + channels-last on a CPU with native bf16 (AMX or AVX512-BF16), mixed precision on CUDA, and
plain fp32 otherwise. A CPU without native bf16 emulates it hundreds of times slower than fp32 (``hardware``
measures by how much), so there the forced-bf16 run is skipped and said so instead of taking hours.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from types import ModuleType
from typing import Any

import numpy as np
import original_iteration
import torch
from step_clock import ClockedMethod, Plan, StepClock
from timing import best_seconds_per_item
from torch.utils.data import Dataset

SOURCE_SIZE, TARGET_SIZE = (180, 320), (128, 256)  # (H, W): the reference CPU timing's 320×180 / 256×128
PAPER_SOURCE_SIZE, PAPER_TARGET_SIZE = (720, 1280), (512, 1024)  # the paper's GTA5 / Cityscapes input sizes


class RandomImages(Dataset):
    def __init__(self, size: tuple[int, int], labelled: bool, count: int = 8) -> None:
        g = torch.Generator().manual_seed(0)
        self.images = torch.randn(count, 3, *size, generator=g) * 50
        self.labels = torch.randint(0, 19, (count, *size), generator=g) if labelled else None

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        item = {"image": self.images[i], "name": str(i)}
        if self.labels is not None:
            item["label"] = self.labels[i]
        return item


def _segmenter_and_method(spec: dict) -> tuple[ModuleType, Any, dict[str, torch.nn.Module]]:
    """The method, its config and freshly initialised models (seed 0) of ``spec``."""
    from adaptseg.methods import get_method
    from adaptseg.models import build_segmenter, conv_bn, cpu_kernels

    cpu_kernels.ENABLED = spec.get("matmul_kernels", True)
    conv_bn.ENABLED = spec.get("fold_bn", True)
    torch.manual_seed(0)
    arch = spec["arch"]
    options = {"depth": 18, "width": 32} if arch == "deeplabv2_small" else {}
    method = get_method(spec.get("method", "adaptsegnet"))
    method_config = method.Config.from_dict(spec.get("method_config"))
    segmenter = build_segmenter(arch, 19, multi_level=True, bn_mode=spec.get("bn_mode", "train"), **options)
    if segmenter.bn_mode == "frozen" and arch == "deeplabv2_small":
        _estimate_bn_statistics(segmenter, tuple(spec.get("target_size", TARGET_SIZE)))
    return method, method_config, {"segmenter": segmenter, **method.build_models(segmenter, method_config)}


def _estimate_bn_statistics(segmenter: torch.nn.Module, size: tuple[int, int]) -> None:
    """Frozen BatchNorm as a pretrained model has it: statistics of one random image, on the CPU before the
    engine moves the model. For the small network (He init): with a fresh network's mean 0 and variance 1 its
    activations grow layer by layer and the step diverged to NaN by step 5. ResNet-101's N(0, 0.01) init keeps
    its activations small and its step finite as it is (estimated statistics made it diverge by step 3)."""
    norms = [m for m in segmenter.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    segmenter.set_bn_mode("train")
    for module in norms:
        module.momentum = None  # a plain average over the batches seen: here, the one batch
        module.reset_running_stats()
    with torch.no_grad():
        segmenter(RandomImages(size, False, count=1).images)
    for module, momentum in zip(norms, momenta, strict=True):
        module.momentum = momentum
    segmenter.set_bn_mode("frozen")


def _datasets(spec: dict) -> tuple[RandomImages, RandomImages]:
    source_size, target_size = tuple(spec.get("source_size", SOURCE_SIZE)), tuple(spec.get("target_size", TARGET_SIZE))
    return RandomImages(source_size, True, count=4), RandomImages(target_size, False, count=4)


def _through_engine(spec: dict, plan: Plan) -> dict:
    """``plan.total`` iterations through ``adaptseg.training.train``; ``spec["engine"]`` is merged into its config
    (unknown keys are the engine's to refuse)."""
    from adaptseg.training import train
    from adaptseg.training.precision import resolve_device

    method, method_config, models = _segmenter_and_method(spec)
    clock = StepClock(plan, resolve_device(spec.get("device", "auto")))
    clocked = ClockedMethod(method, clock)
    # One log flush per `steps` iterations: a realistic logging cadence, and the only host read of the
    # metrics inside the timed block when the engine reads them at flushes only.
    config = {"max_steps": plan.total, "batch_size": 1, "precision": spec["precision"],
              "device": spec.get("device", "auto"), "log_every": plan.steps, "progress": False,
              "checkpoint_dir": None, "seed": 0, "channels_last": spec.get("channels_last"), **spec.get("engine", {})}
    source, target = _datasets(spec)
    result = train(clocked, models, source, config, target_dataset=target, method_config=method_config)
    return {**clock.figures(), "first_step_losses": clocked.first_losses(), "precision": result.precision,
            "device": str(result.device)}


def _batches(data: RandomImages, pin: bool) -> list[dict[str, torch.Tensor]]:
    """Every item as a batch of one, in pinned memory on a GPU machine (the original's loaders pinned theirs)."""
    batches = [{k: v.unsqueeze(0) for k, v in data[i].items() if k != "name"} for i in range(len(data))]
    return [{k: v.pin_memory() for k, v in b.items()} for b in batches] if pin else batches


def _original_loop(spec: dict, plan: Plan) -> dict:
    """``plan.total`` iterations of the original's loop (``original_iteration``): fp32, NCHW, AdaptSegNet."""
    from adaptseg.training.precision import resolve_device

    if spec.get("method", "adaptsegnet") != "adaptsegnet" or spec["precision"] != "fp32":
        raise ValueError("the original's loop is AdaptSegNet in fp32 only")
    _, _, models = _segmenter_and_method(spec)
    device = resolve_device(spec.get("device", "auto"))
    clock = StepClock(plan, device)
    levels = {"aux": models["discriminator_aux"], "main": models["discriminator_main"]}
    it = original_iteration.build(models["segmenter"], levels, device)
    source, target = (_batches(data, pin=device.type == "cuda") for data in _datasets(spec))
    first = original_iteration.train_loop(it, source, target, plan.total, clock.before, clock.after)
    return {**clock.figures(), "first_step_losses": first, "precision": "fp32", "device": str(device)}


def child(spec: dict) -> dict:
    """One run of ``spec["warmup"] + spec["steps"] (+ spec["profile_steps"])`` iterations of ``spec["method"]``
    (AdaptSegNet multi-level by default), through the engine or, with ``runner: original``, the original's loop.

    Figures: ``seconds_per_iteration`` (median of the timed iterations), ``block_seconds_per_iteration`` (the
    timed block's wall time / steps), first-step losses, peak RSS and, on CUDA, peak memory and the profiled
    iterations' GPU busy fraction (``step_clock``).
    """
    plan = Plan(spec["warmup"], spec["steps"], spec.get("profile_steps", 0))
    run = _original_loop if spec.get("runner", "engine") == "original" else _through_engine
    figures = run(spec, plan)
    figures["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return figures


def _run(**spec) -> dict:
    out = subprocess.run([sys.executable, __file__, json.dumps(spec)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _matmul_tflops(dtype: torch.dtype, n: int, repeats: int = 3) -> float:
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e12


def _fast_path() -> tuple[str, bool]:
    """The precision and channels-last setting the engine's defaults resolve to on this machine."""
    from adaptseg.training.precision import resolve_device, resolve_precision

    device = resolve_device("auto")
    precision = resolve_precision("auto", device)
    return precision, device.type == "cuda" or precision == "bf16"


def hardware() -> dict:
    """What this machine offers the fast path: the CPU's vector ISA, native bf16, matmul throughput, CUDA."""
    from adaptseg.training.precision import cpu_supports_fast_bf16

    native = cpu_supports_fast_bf16()
    precision, channels_last = _fast_path()
    figures = {
        "CPU vector capability (torch)": torch.backends.cpu.get_cpu_capability(),
        "AMX tiles": bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()),
        "native CPU bf16 (AMX or AVX512-BF16)": native,
        "fp32 matmul 2048² TFLOP/s": round(_matmul_tflops(torch.float32, 2048), 3),
        # Emulated bf16 is slow enough that a 2048² product would take a minute: measure a smaller one.
        "bf16 matmul TFLOP/s": round(_matmul_tflops(torch.bfloat16, 2048 if native else 384), 4),
        "CUDA device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        "engine fast path here": precision + (" + channels_last" if channels_last else ""),
    }
    figures["bf16 / fp32 matmul"] = round(figures["bf16 matmul TFLOP/s"] / figures["fp32 matmul 2048² TFLOP/s"], 3)
    return figures


def _step_pair(arch: str, steps: int, warmup: int) -> dict:
    """The faithful fp32 step against the fast path, both at the reference CPU timing's sizes."""
    fp32 = _run(arch=arch, precision="fp32", steps=steps, warmup=warmup)
    precision, _ = _fast_path()
    if precision == "fp32":
        return {
            "device": fp32["device"],
            "fp32 s/iteration": round(fp32["seconds_per_iteration"], 3),
            "fp32 peak RSS GiB": round(fp32["peak_rss_gib"], 2),
            "fast path": "none on this machine: precision auto resolves to fp32 (no native bf16, no CUDA), "
                         "so the engine runs the fp32 step above; forced bf16 is emulated (see hardware) and skipped",
            "first-step losses fp32": {k: round(v, 4) for k, v in fp32["first_step_losses"].items()},
        }
    return _compare(fp32, _run(arch=arch, precision="auto", steps=steps, warmup=warmup))


def _interleaved(settings: dict[str, dict], rounds: int, **common) -> tuple[dict, dict[str, float]]:
    """Each setting's step (``common`` + the setting), in rounds that run every setting once, each run its own
    process; best of the rounds (load from elsewhere only ever slows a run down), every round listed."""
    runs: dict[str, list[float]] = {name: [] for name in settings}
    for _ in range(rounds):
        for name, setting in settings.items():
            runs[name].append(_run(**common, **setting)["seconds_per_iteration"])
    best = {name: min(times) for name, times in runs.items()}
    figures = {f"{name} s/iteration, best of {rounds} (each round)": f"{best[name]:.3f} ({', '.join(f'{t:.3f}' for t in times)})"
               for name, times in runs.items()}
    return figures, best


def resnet101_cpu_matmul_forms(rounds: int = 3) -> dict:
    """The ResNet-101 step in bf16 with the 1×1 convolutions and the ASPP heads as oneDNN convolutions against
    their matmul forms (``models.cpu_kernels``), fp32 beside them; interleaved rounds, each run its own process."""
    if _fast_path()[0] != "bf16":
        return {"skipped": "no native bf16 on this CPU: the matmul forms only run under CPU bf16 autocast"}
    settings = {"fp32": {"precision": "fp32"}, "bf16 convolutions": {"precision": "bf16", "matmul_kernels": False},
                "bf16 matmul forms": {"precision": "bf16", "matmul_kernels": True}}
    figures, best = _interleaved(settings, rounds, arch="deeplabv2_resnet101", steps=6, warmup=3)
    figures["bf16 convolutions: speed-up over fp32"] = round(best["fp32"] / best["bf16 convolutions"], 2)
    figures["bf16 matmul forms: speed-up over fp32"] = round(best["fp32"] / best["bf16 matmul forms"], 2)
    return figures


#: (network, batch, input H×W) for the folding A/B: ``make run``'s adaptation input, the CPU reference size, and
#: a quarter of the paper's 1280×720 (where activations, which folding spares a pass over, outweigh the weights).
FOLDING_CASES = (("deeplabv2_small", 2, (128, 256)), ("deeplabv2_resnet101", 1, (180, 320)),
                 ("deeplabv2_resnet101", 1, (360, 640)))


def frozen_bn_folding(rounds: int = 7, cases: tuple = FOLDING_CASES) -> dict:
    """Forward + backward of the segmenter with frozen BatchNorm (the adaptation default) as its own layers
    against folded into the convolutions (``models.conv_bn``), in fp32 and in this machine's fast path (folded
    there too for the measurement, although the engine does not fold under CPU bf16).

    The two forms alternate in one process on the same model and input, one pass each per round, after a
    warm-up pass of each; the median of the rounds (a shared 2-core machine's step times drift by ±10% between
    processes, more than the difference measured here)."""
    from adaptseg.models import build_segmenter, conv_bn

    precision, channels_last = _fast_path()
    paths = [("fp32", False)] + ([(precision, channels_last)] if precision != "fp32" else [])
    figures: dict = {"rounds": rounds}
    try:
        for arch, batch, size in cases:
            options = {"depth": 18, "width": 32} if arch == "deeplabv2_small" else {}
            torch.manual_seed(0)
            model = build_segmenter(arch, 19, multi_level=True, bn_mode="frozen", **options)
            if arch == "deeplabv2_small":
                _estimate_bn_statistics(model, size)
            for path, last in paths:
                form = torch.channels_last if last else torch.contiguous_format
                model = model.to(memory_format=form)
                x = torch.randn(batch, 3, *size).contiguous(memory_format=form)

                def once(_: object, model: torch.nn.Module = model, x: torch.Tensor = x, path: str = path) -> None:
                    model.zero_grad(set_to_none=True)
                    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=path == "bf16"):
                        out = model(x)
                    (out["out"].float().square().mean() + out["aux"].float().square().mean()).backward()

                times: dict[bool, list[float]] = {False: [], True: []}
                for round_ in range(rounds + 1):
                    for fold in (False, True):
                        conv_bn.ENABLED = conv_bn.UNDER_CPU_AUTOCAST = fold
                        seconds = best_seconds_per_item(once, range(1), repeats=1)
                        if round_:  # round 0 warms both forms up
                            times[fold].append(seconds)
                label = f"{arch} {batch}×3×{size[0]}×{size[1]} {path}" + (" channels-last" if last else "")
                plain, folded = (float(np.median(times[fold])) for fold in (False, True))
                figures[f"{label}: BN layers / folded s per pass (median)"] = f"{plain:.4f} / {folded:.4f}"
                figures[f"{label}: folded speed-up"] = round(plain / folded, 3)
    finally:
        conv_bn.ENABLED, conv_bn.UNDER_CPU_AUTOCAST = True, False
    return figures


def resnet101_step() -> dict:
    """ResNet-101 multi-level AdaptSegNet iteration, 1 source (320×180) + 1 target (256×128) image."""
    return _step_pair("deeplabv2_resnet101", steps=4, warmup=2)


def small_step() -> dict:
    """The CPU default network (dilated ResNet-18, width 32), same iteration."""
    return _step_pair("deeplabv2_small", steps=10, warmup=3)


# ResNet-101's convolution shapes at the bench's 320×180 source (output stride 8: 23×40 from layer2 on),
# as (name, in, out, kernel, dilation, height, width).
RESNET101_CONV_SHAPES = (
    ("layer1 3×3 64", 64, 64, 3, 1, 45, 80),
    ("layer2 3×3 128", 128, 128, 3, 1, 23, 40),
    ("layer3 3×3 256, dilation 2", 256, 256, 3, 2, 23, 40),
    ("layer4 3×3 512, dilation 4", 512, 512, 3, 4, 23, 40),
    ("layer3 1×1 1024→256", 1024, 256, 1, 1, 23, 40),
    ("layer3 1×1 256→1024", 256, 1024, 1, 1, 23, 40),
    ("layer4 1×1 512→2048", 512, 2048, 1, 1, 23, 40),
    ("ASPP 3×3 2048→19, dilation 12", 2048, 19, 3, 12, 23, 40),
)


def conv_shapes() -> dict:
    """Forward + backward of single convolutions of ResNet-101's shapes, fp32 against bf16 autocast, both
    channels-last: which layers the bf16 fast path speeds up and which it does not."""
    from adaptseg.training.precision import cpu_supports_fast_bf16

    if not cpu_supports_fast_bf16():
        return {"skipped": "no native bf16 on this CPU (bf16 is emulated: see hardware)"}

    def ms_per_pass(conv: torch.nn.Conv2d, x: torch.Tensor, bf16: bool) -> float:
        def once(_: object) -> None:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = conv(x)
            out.float().sum().backward()

        return best_seconds_per_item(once, range(10)) * 1e3

    figures = {}
    for name, c_in, c_out, kernel, dilation, height, width in RESNET101_CONV_SHAPES:
        conv = torch.nn.Conv2d(c_in, c_out, kernel, padding=dilation * (kernel // 2), dilation=dilation, bias=False)
        conv = conv.to(memory_format=torch.channels_last)
        x = torch.randn(1, c_in, height, width).contiguous(memory_format=torch.channels_last).requires_grad_()
        fp32, bf16 = ms_per_pass(conv, x, False), ms_per_pass(conv, x, True)
        figures[f"{name}: fp32 / bf16 ms, speed-up"] = f"{fp32:.2f} / {bf16:.2f}, {fp32 / bf16:.2f}×"
    return figures


#: What every method's GPU row runs with: the project's adaptation default (frozen BatchNorm) and, for the
#: self-training methods, a round and a teacher from the first step.
GPU_METHOD_CONFIGS = {"fda": {"entropy_from": 0.0}, "cbst": {"rounds": 1}}


def methods_paper_resolution_cuda(steps: int = 6, warmup: int = 3) -> dict:
    """Every training method's iteration at the paper's setting on a GPU, through the engine the pipelines use.

    ResNet-101 multi-level, 1280×720 source + 1024×512 target, batch 1+1, precision ``auto`` (bf16 autocast +
    channels-last on GPUs that have bf16), BatchNorm frozen (the project's adaptation default), random data
    (loading excluded), median of ``steps`` after ``warmup``. Peak memory is that of the timed steps (cuDNN's
    autotuning trials happen in the warm-up and are reported apart). Each method in its own process.
    """
    from adaptseg.methods import METHODS

    if not torch.cuda.is_available():
        return {"skipped": "no CUDA GPU found on this machine (torch.cuda.is_available() is False): "
                           "run `python benchmarks/run.py methods_paper_resolution_cuda` on a GPU machine"}
    figures: dict = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    for name, method in METHODS.items():
        if method.step is None:
            continue
        run = _run(arch="deeplabv2_resnet101", method=name, method_config=GPU_METHOD_CONFIGS.get(name, {}),
                   precision="auto", bn_mode="frozen", steps=steps, warmup=warmup, device="cuda",
                   source_size=PAPER_SOURCE_SIZE, target_size=PAPER_TARGET_SIZE)
        figures[name] = {
            "s/iteration": round(run["seconds_per_iteration"], 4),
            "peak GPU memory allocated GiB (timed steps)": round(run["cuda_peak_allocated_gib"], 2),
            "peak allocated GiB in the warm-up (cuDNN autotuning)": round(run["cuda_warmup_peak_allocated_gib"], 2),
            "precision": run["precision"],
            "first-step losses": {k: round(v, 4) for k, v in run["first_step_losses"].items()},
        }
    return figures


def _compare(fp32: dict, fast: dict, label: str | None = None) -> dict:
    """Side-by-side figures of the fp32 run and the fast-path run ``label`` names."""
    label = label or f"{fast['precision']} + channels_last"
    rel = {k: abs(fast["first_step_losses"][k] - v) / max(abs(v), 1e-8) for k, v in fp32["first_step_losses"].items()}
    return {
        "device": fast["device"],
        "fp32 s/iteration": round(fp32["seconds_per_iteration"], 3),
        f"{label} s/iteration": round(fast["seconds_per_iteration"], 3),
        "speed-up": round(fp32["seconds_per_iteration"] / fast["seconds_per_iteration"], 2),
        "fp32 peak RSS GiB": round(fp32["peak_rss_gib"], 2),
        f"{fast['precision']} peak RSS GiB": round(fast["peak_rss_gib"], 2),
        "max relative first-step loss difference": round(max(rel.values()), 4),
        "first-step losses fp32": {k: round(v, 4) for k, v in fp32["first_step_losses"].items()},
        f"first-step losses {fast['precision']}": {k: round(v, 4) for k, v in fast["first_step_losses"].items()},
    }


if __name__ == "__main__":
    print(json.dumps(child(json.loads(sys.argv[1]))))
