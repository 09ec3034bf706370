"""Soak: kill a small adaptation at random moments, resume it each time, and check that it ends exactly where an
uninterrupted run ends, with nothing left behind.

    make soak                              # 30 kills
    python studies/soak.py --kills 25 --out /tmp/soak

A child process trains multi-level AdaptSegNet (the CPU default network, narrowed, on small random images)
with a checkpoint every step and ``resume: true``, and reports each step it completes. The parent starts it,
lets it complete 0 to 2 more steps, kills it with SIGKILL a random fraction of a step later (so kills land in
forward and backward passes and in checkpoint writes alike), removes what a killed run leaves (as the next Kedro
session does: ``adaptseg.io.stale``) and starts it again, ``--kills`` times; then it lets the run finish and
compares every tensor of every model with an uninterrupted run's, and checks that no temporary file or folder
remains.
Prints one line per kill and a JSON summary (also written to ``--out/soak.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

STEPS = 80


def child(folder: str, steps: int) -> None:
    """The run the parent kills: identical settings on every start, resumed from ``folder/last.pt``."""
    import torch

    from adaptseg.methods import adaptsegnet
    from adaptseg.models import build_segmenter
    from adaptseg.training import seed_everything, train

    class Images(torch.utils.data.Dataset):
        def __init__(self, labelled: bool, seed: int) -> None:
            g = torch.Generator().manual_seed(seed)
            self.images = torch.randn(6, 3, 64, 64, generator=g) * 40
            self.labels = torch.randint(0, 19, (6, 64, 64), generator=g) if labelled else None

        def __len__(self) -> int:
            return len(self.images)

        def __getitem__(self, i: int) -> dict:
            item = {"image": self.images[i], "name": str(i)}
            return {**item, "label": self.labels[i]} if self.labels is not None else item

    seed_everything(0)
    segmenter = build_segmenter("deeplabv2_small", 19, depth=18, width=8, bn_mode="train")
    config = adaptsegnet.Config(lambda_adv_main=0.1, lambda_adv_aux=0.02, ndf=8)
    models = {"segmenter": segmenter, **adaptsegnet.build_models(segmenter, config)}
    engine = {"max_steps": steps, "batch_size": 2, "seed": 1, "device": "cpu", "precision": "fp32", "lr": 0.01,
              "checkpoint_dir": folder, "checkpoint_every": 1, "snapshot_every": 5, "resume": True, "log_every": 1,
              "progress": False}
    print("ready", flush=True)
    train(adaptsegnet, models, Images(True, 1), engine, target_dataset=Images(False, 2), method_config=config,
          on_metrics=lambda metrics, step: print(f"step {step}", flush=True))
    print("finished", flush=True)


def _start(folder: Path, steps: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, __file__, "--child", str(folder), "--steps", str(steps)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )


def _weights(folder: Path) -> dict:
    from adaptseg.training import load_checkpoint

    return load_checkpoint(folder / "last.pt")


def _losses(history: dict) -> dict:
    """The history without wall-clock figures (iterations per second differ between any two runs)."""
    return {name: points for name, points in history.items() if name != "iterations_per_second"}


def soak(out: Path, kills: int, steps: int = STEPS, seed: int = 0) -> dict:
    """Run the soak; return its figures (kills, their moments, steps reached, equality, leftovers)."""
    import torch

    from adaptseg.io.stale import LEFTOVER, clean_stale

    rng = random.Random(seed)
    straight, killed = out / "straight", out / "killed"
    for folder in (straight, killed):
        if folder.exists():
            raise SystemExit(f"{folder} exists: give --out a fresh folder")
    began = time.perf_counter()
    reference = _start(straight, steps)
    reference.stdout.readline()
    training_began = time.perf_counter()
    reference.communicate()
    seconds_per_step = (time.perf_counter() - training_began) / steps
    moments, reached, removed = [], [], 0
    for kill in range(kills):
        removed += len(clean_stale(killed))  # what the next session does before it resumes
        process = _start(killed, steps)
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError("the child did not start; run it alone: python studies/soak.py --child DIR")
        more = rng.randint(0, 2)
        for _ in range(more):
            if not process.stdout.readline().startswith("step"):
                break
        fraction = rng.random()
        time.sleep(fraction * seconds_per_step)
        process.send_signal(signal.SIGKILL)
        process.wait()
        step = torch.load(killed / "last.pt", weights_only=True)["step"] if (killed / "last.pt").exists() else 0
        moments.append(f"{more} step(s) + {fraction:.2f}")
        reached.append(int(step))
        if step >= steps:
            raise RuntimeError(f"the run finished before kill {kill + 1}: give it more --steps than kills")
        print(f"kill {kill + 1}/{kills}: {more} more step(s) and {fraction:.2f} of one, then SIGKILL; last "
              f"checkpoint at step {step}", flush=True)
    removed += len(clean_stale(killed))
    last = _start(killed, steps)
    output, _ = last.communicate()
    if "finished" not in output:
        raise RuntimeError("the resumed run did not finish")
    a, b = _weights(straight), _weights(killed)
    mismatched = [
        f"{model}.{key}" for model, state in a["models"].items() for key, value in state.items()
        if not torch.equal(value, b["models"][model][key])
    ]
    leftovers = [str(p) for p in out.rglob(".*") if LEFTOVER.match(p.name)]
    figures = {
        "kills": kills, "steps": steps, "seconds_per_step": round(seconds_per_step, 3), "kill_moments": moments, "last_checkpoint_step_at_each_kill": reached,
        "leftovers_removed_between_starts": removed, "final_step": b["step"],
        "tensors_compared": sum(len(state) for state in a["models"].values()),
        "tensors_differing": mismatched, "bit_identical": not mismatched and a["step"] == b["step"],
        "histories_equal": _losses(a["history"]) == _losses(b["history"]), "leftovers_after": leftovers,
        "minutes": round((time.perf_counter() - began) / 60, 1),
    }
    (out / "soak.json").write_text(json.dumps(figures, indent=2))
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--seed", type=int, default=0, help="of the kill moments")
    parser.add_argument("--out", default="data/08_reporting/soak")
    parser.add_argument("--child", metavar="FOLDER", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.steps)
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    figures = soak(out, args.kills, args.steps, args.seed)
    print(json.dumps({k: v for k, v in figures.items() if not k.startswith(("kill_moments", "last_checkpoint"))},
                     indent=2))
    if not figures["bit_identical"] or figures["leftovers_after"]:
        raise SystemExit("soak failed: the resumed run differs from the uninterrupted one, or leftovers remain")


if __name__ == "__main__":
    os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
    main()
