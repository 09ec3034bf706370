"""Versioned checkpoints through the catalog dataset."""

import torch
from kedro.io.core import Version

from adaptseg.io import TorchCheckpointDataset


def test_versioned_round_trip(tmp_path):
    path = str(tmp_path / "model.pt")
    TorchCheckpointDataset(path, version=Version(None, "2026-01-01T00.00.00.000Z")).save({"w": torch.ones(2), "step": 3})
    TorchCheckpointDataset(path, version=Version(None, "2026-01-02T00.00.00.000Z")).save({"w": torch.zeros(2), "step": 4})
    latest = TorchCheckpointDataset(path, version=Version(None, None))
    assert latest.exists() and latest.load()["step"] == 4
    older = TorchCheckpointDataset(path, version=Version("2026-01-01T00.00.00.000Z", None)).load()
    assert older["step"] == 3 and torch.equal(older["w"], torch.ones(2))
