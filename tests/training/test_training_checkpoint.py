import random

import numpy as np
import pytest
import torch

import adaptseg.training.checkpoint as checkpoint_module
from adaptseg.training import (
    CheckpointError,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)


def test_roundtrip_with_rng_state_loads_weights_only(tmp_path):
    model = torch.nn.Linear(3, 2)
    state = {"step": 7, "models": {"segmenter": model.state_dict()}, "rng": capture_rng_state(),
             "config": {"engine": {"lr": 2.5e-4, "betas_discriminator": (0.9, 0.99)}}}
    expected = (random.random(), np.random.rand(), torch.rand(3))
    path = save_checkpoint(tmp_path / "run" / "last.pt", state)
    loaded = load_checkpoint(path)  # weights_only=True by default
    assert loaded["step"] == 7
    torch.testing.assert_close(loaded["models"]["segmenter"]["weight"], model.weight)
    restore_rng_state(loaded["rng"])
    assert (random.random(), np.random.rand()) == expected[:2]
    torch.testing.assert_close(torch.rand(3), expected[2])
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]


def test_crash_during_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"step": 1})
    before = path.read_bytes()

    def crashing_save(obj, handle):
        handle.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module.torch, "save", crashing_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"step": 2})
    assert path.read_bytes() == before
    assert load_checkpoint(path)["step"] == 1
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_missing_and_corrupt_files_name_the_path(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_checkpoint(missing)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt.pt"):
        load_checkpoint(corrupt)
    good = tmp_path / "good.pt"
    save_checkpoint(good, {"w": torch.ones(1000)})
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="truncated.pt"):
        load_checkpoint(truncated)
