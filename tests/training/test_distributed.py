"""Data-parallel training on CPU with gloo: W ranks × batch B trains like one process × batch W·B."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from adaptseg.methods import REQUIRED, adaptsegnet
from adaptseg.training import EngineConfig, StreamSampler, load_checkpoint, train
from tests.tiny_models import DictDataset, build_models

ROOT = Path(__file__).resolve().parents[2]
STEP = adaptsegnet.Config(lambda_seg=0.1, lambda_adv_main=0.01, lambda_adv_aux=0.002)
CONFIG = dict(max_steps=20, stop_step=6, seed=3, device="cpu", precision="fp32", checkpoint_every=2,
              snapshot_every=0, log_every=2, progress=False)


def frozen_models() -> dict[str, nn.Module]:
    """The tiny models without BatchNorm: statistics are per rank, so only frozen ones can match exactly."""
    models = build_models()
    backbone = models["segmenter"].backbone
    for index, layer in enumerate(backbone):
        if isinstance(layer, nn.BatchNorm2d):
            backbone[index] = nn.Identity()
    return models


def datasets() -> tuple[DictDataset, DictDataset]:
    return DictDataset(5, seed=10), DictDataset(3, labelled=False, seed=20)


def _single_process(folder: Path, **overrides) -> dict[str, nn.Module]:
    source, target = datasets()
    config = EngineConfig(**{**CONFIG, "batch_size": 2, "checkpoint_dir": str(folder), **overrides})
    return train(adaptsegnet, frozen_models(), source, config, target_dataset=target, method_config=STEP).models


def _assert_same_weights(models: dict, states: dict) -> None:
    for name, model in models.items():
        for key, value in model.state_dict().items():
            torch.testing.assert_close(states[name][key], value, rtol=1e-3, atol=1e-5, msg=f"{name}.{key}")


def test_ranks_split_each_step_of_the_one_process_stream():
    one = list(StreamSampler(7, 4, 3, "source", 2, 5))
    ranks = [list(StreamSampler(7, 2, 3, "source", 2, 5, rank=r, world_size=2)) for r in (0, 1)]
    for step in range(3):
        assert one[4 * step: 4 * step + 4] == ranks[0][2 * step: 2 * step + 2] + ranks[1][2 * step: 2 * step + 2]
    with pytest.raises(ValueError, match="rank 2 outside"):
        StreamSampler(7, 2, 3, "source", 0, 1, rank=2, world_size=2)


def test_nproc_per_node_trains_two_ranks_like_one_process_with_twice_the_batch(tmp_path):
    source, target = datasets()
    logged = []
    config = EngineConfig(**{**CONFIG, "batch_size": 1, "nproc_per_node": 2, "checkpoint_dir": str(tmp_path / "ddp")})
    result = train(adaptsegnet, frozen_models(), source, config, target_dataset=target, method_config=STEP,
                   on_metrics=lambda metrics, step: logged.append(step))
    straight = _single_process(tmp_path / "one")
    _assert_same_weights(result.models, {k: m.state_dict() for k, m in straight.items()})
    assert result.last_step == 6 and logged == [2, 4, 6]  # the workers' curves reach the caller's logger
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == ["last.pt"]
    assert load_checkpoint(tmp_path / "ddp" / "last.pt")["step"] == 6


def test_nproc_per_node_refuses_what_cannot_reach_the_workers(tmp_path):
    with pytest.raises(ValueError, match="needs a checkpoint_dir"):
        EngineConfig(nproc_per_node=2)
    with pytest.raises(ValueError, match="max_restarts=1 needs resume=true"):
        EngineConfig(nproc_per_node=2, max_restarts=1, checkpoint_dir=str(tmp_path))
    source, target = datasets()
    config = EngineConfig(**{**CONFIG, "batch_size": 1, "nproc_per_node": 2, "checkpoint_dir": str(tmp_path)})
    with pytest.raises(ValueError, match="cannot be pickled"):
        train(adaptsegnet, frozen_models(), source, config, target_dataset=target, method_config=STEP,
              evaluate_fn=lambda models, step: 0.0)
    stand_in = SimpleNamespace(**{name: getattr(adaptsegnet, name) for name in REQUIRED})
    with pytest.raises(ValueError, match="worker processes can import by name"):
        train(stand_in, frozen_models(), source, config, target_dataset=target, method_config=STEP)


def test_torchrun_resumes_after_a_killed_rank_and_only_rank_0_writes(tmp_path):
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "--max-restarts", "1",
        "--monitor-interval", "0.2", str(ROOT / "tests" / "training" / "ddp_worker.py"), "--out", str(tmp_path),
        "--kill-at", "4",
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")]), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    writes = Counter(tuple(line.split()) for line in (tmp_path / "writes.log").read_text().splitlines())
    assert {rank for rank, _, _ in writes} == {"0"}  # rank 1 never writes
    assert writes == Counter({("0", "0", "last.pt"): 1, ("0", "1", "last.pt"): 2})  # step 2; then steps 4 and 6
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    straight = _single_process(tmp_path / "one")
    for states in ranks:
        _assert_same_weights(straight, states)
