"""Training-step benchmarks: the faithful fp32 step (the original's cost) against the engine's fast path.

Each configuration runs in its own process (peak memory is per process) through the real engine
(`adaptseg.training.train`) on in-memory random data: warm-up steps are excluded from the timing, and the
first step's losses from the same initial weights and batch are compared across precisions.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time

import torch
from torch.utils.data import Dataset

SOURCE_SIZE, TARGET_SIZE = (180, 320), (128, 256)  # (H, W): the reference CPU timing's 320×180 / 256×128


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


def child(arch: str, precision: str, steps: int, warmup: int) -> dict:
    from adaptseg.models import FCDiscriminator, build_segmenter
    from adaptseg.training import train

    torch.manual_seed(0)
    options = {"depth": 18, "width": 32} if arch == "deeplabv2_small" else {}
    models = {
        "segmenter": build_segmenter(arch, 19, multi_level=True, bn_mode="train", **options),
        "discriminator_main": FCDiscriminator(19),
        "discriminator_aux": FCDiscriminator(19),
    }
    step_times: list[float] = []
    last = [time.perf_counter()]

    def tick(metrics, step):
        now = time.perf_counter()
        step_times.append(now - last[0])
        last[0] = now

    config = {"max_steps": steps + warmup, "batch_size": 1, "precision": precision, "log_every": 1,
              "progress": False, "checkpoint_dir": None, "seed": 0}
    result = train("adaptsegnet", models, RandomImages(SOURCE_SIZE, True), config,
                   target_dataset=RandomImages(TARGET_SIZE, False), on_metrics=tick)
    first = {k: v[0]["value"] for k, v in result.history.items() if k.startswith("loss")}
    timed = step_times[warmup:]
    return {"seconds_per_iteration": statistics.median(timed), "first_step_losses": first,
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "precision": result.precision}


def _run(arch: str, precision: str, steps: int, warmup: int) -> dict:
    out = subprocess.run([sys.executable, __file__, arch, precision, str(steps), str(warmup)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def resnet101_step() -> dict:
    """ResNet-101 multi-level AdaptSegNet iteration, 1 source (320×180) + 1 target (256×128) image."""
    fp32 = _run("deeplabv2_resnet101", "fp32", steps=4, warmup=2)
    bf16 = _run("deeplabv2_resnet101", "bf16", steps=4, warmup=2)
    return _compare(fp32, bf16)


def small_step() -> dict:
    """The CPU default network (dilated ResNet-18, width 32), same iteration."""
    return _compare(_run("deeplabv2_small", "fp32", 10, 3), _run("deeplabv2_small", "bf16", 10, 3))


def _compare(fp32: dict, bf16: dict) -> dict:
    rel = {k: abs(bf16["first_step_losses"][k] - v) / max(abs(v), 1e-8) for k, v in fp32["first_step_losses"].items()}
    return {
        "fp32 s/iteration": round(fp32["seconds_per_iteration"], 3),
        "bf16 + channels_last s/iteration": round(bf16["seconds_per_iteration"], 3),
        "speed-up": round(fp32["seconds_per_iteration"] / bf16["seconds_per_iteration"], 2),
        "fp32 peak RSS GiB": round(fp32["peak_rss_gib"], 2),
        "bf16 peak RSS GiB": round(bf16["peak_rss_gib"], 2),
        "max relative first-step loss difference": round(max(rel.values()), 4),
        "first-step losses fp32": {k: round(v, 4) for k, v in fp32["first_step_losses"].items()},
        "first-step losses bf16": {k: round(v, 4) for k, v in bf16["first_step_losses"].items()},
    }


if __name__ == "__main__":
    arch, precision, steps, warmup = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    print(json.dumps(child(arch, precision, steps, warmup)))
