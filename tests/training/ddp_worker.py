"""One rank of the data-parallel tests, started by ``torchrun`` (tests/training/test_distributed.py).

Trains AdaptSegNet on the tiny models with batch 1 per rank, logs every checkpoint write with its rank, and,
on the first attempt only, kills rank 1 with SIGKILL in the middle of step ``--kill-at`` when asked.
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import signal
from pathlib import Path
from types import SimpleNamespace

import torch

from adaptseg.methods import adaptsegnet
from adaptseg.training import engine
from tests.training.test_distributed import CONFIG, STEP, datasets, frozen_models


def main() -> None:
    faulthandler.dump_traceback_later(300, exit=True)  # a hung rendezvous fails with its stack, not a CI timeout
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--kill-at", type=int, default=0)
    args = parser.parse_args()
    rank, attempt = int(os.environ["RANK"]), int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    saving = engine.save_checkpoint

    def logged_save(path, state):
        with open(args.out / "writes.log", "a") as log:
            log.write(f"{rank} {attempt} {Path(path).name}\n")
        return saving(path, state)

    engine.save_checkpoint = logged_save

    def step(models, batch, config, amp=None):
        if rank == 1 and attempt == 0 and args.kill_at and step.calls == args.kill_at - 1:
            os.kill(os.getpid(), signal.SIGKILL)
        step.calls += 1
        return adaptsegnet.step(models, batch, config, amp)

    step.calls = 0
    method = SimpleNamespace(**{k: getattr(adaptsegnet, k) for k in ("Config", "TARGET_BATCHES", "CURVES", "build_models")},
                             step=step, __name__="adaptsegnet")
    source, target = datasets()
    result = engine.train(
        method, frozen_models(), source, {**CONFIG, "batch_size": 1, "checkpoint_dir": str(args.out / "run"),
                                          "resume": True},
        target_dataset=target, method_config=STEP,
    )
    torch.save({k: m.state_dict() for k, m in result.models.items()}, args.out / f"rank{rank}.pt")


if __name__ == "__main__":
    main()
