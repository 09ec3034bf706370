"""precision: auto decides by measuring, caches the answer, and never touches the model it measures."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from adaptseg.methods import source_only
from adaptseg.training import EngineConfig, load_checkpoint, precision_probe, train
from adaptseg.training.precision_probe import choose_precision, step_seconds


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1))


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(precision_probe.CACHE_ENV, str(tmp_path))
    return tmp_path


def test_without_a_native_path_nothing_is_timed(monkeypatch):
    monkeypatch.setattr(precision_probe, "resolve_precision", lambda p, d: "fp32")
    monkeypatch.setattr(precision_probe, "step_seconds", lambda *a, **k: pytest.fail("timed"))
    choice = choose_precision(_model(), (1, 3, 8, 8), torch.device("cpu"))
    assert choice.precision == "fp32" and choice.seconds == {}
    assert "no native" in choice.describe()


@pytest.mark.parametrize(("fp32", "bf16", "expected"), [(1.0, 2.0, "fp32"), (2.0, 1.0, "bf16")])
def test_the_faster_path_wins_and_is_cached(monkeypatch, cache_dir, fp32, bf16, expected):
    monkeypatch.setattr(precision_probe, "resolve_precision", lambda p, d: "bf16")
    calls = []

    def timed(model, shape, device, precision, channels_last):
        calls.append((precision, channels_last, shape))
        return {"fp32": fp32, "bf16": bf16}[precision]

    monkeypatch.setattr(precision_probe, "step_seconds", timed)
    first = choose_precision(_model(), (2, 3, 8, 8), torch.device("cpu"))
    assert first.precision == expected and first.seconds == {"fp32": fp32, "bf16": bf16}
    assert calls == [("fp32", False, (2, 3, 8, 8)), ("bf16", True, (2, 3, 8, 8))] * precision_probe.ROUNDS
    cached = json.loads((cache_dir / precision_probe.CACHE_FILE).read_text())
    assert [entry["precision"] for entry in cached.values()] == [expected]
    again = choose_precision(_model(), (2, 3, 8, 8), torch.device("cpu"))
    rounds = len(calls)
    assert again.precision == expected and len(calls) == rounds and "cached" in again.reason
    choose_precision(_model(), (2, 3, 16, 16), torch.device("cpu"))  # another shape is measured on its own
    assert len(calls) == 2 * rounds


def test_an_unwritable_cache_still_decides(monkeypatch, cache_dir, caplog):
    monkeypatch.setattr(precision_probe, "resolve_precision", lambda p, d: "bf16")
    monkeypatch.setattr(precision_probe, "step_seconds", lambda m, s, d, p, channels_last: 1.0 if p == "bf16" else 2.0)
    (cache_dir / precision_probe.CACHE_FILE).mkdir()  # a folder where the file should be
    assert choose_precision(_model(), (1, 3, 8, 8), torch.device("cpu")).precision == "bf16"
    assert "could not cache" in caplog.text


def test_timing_leaves_the_model_untouched():
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert step_seconds(model, (2, 3, 8, 8), torch.device("cpu"), "fp32", channels_last=False) > 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_the_engine_trains_in_what_auto_measured_and_records_it(tmp_path, monkeypatch, model_factory, dataset_factory):
    monkeypatch.setattr(precision_probe, "resolve_precision", lambda p, d: "bf16")
    shapes = []

    def timed(model, shape, device, precision, channels_last):
        shapes.append(shape)
        return 3.0 if precision == "bf16" else 1.0

    monkeypatch.setattr(precision_probe, "step_seconds", timed)
    source = dataset_factory(3, seed=1)
    config = EngineConfig(max_steps=2, batch_size=2, device="cpu", precision="auto", checkpoint_dir=str(tmp_path),
                          snapshot_every=0, progress=False)
    result = train(source_only, {"segmenter": model_factory()["segmenter"]}, source, config)
    assert result.precision == "fp32" and result.precision_seconds == {"fp32": 1.0, "bf16": 3.0}
    assert shapes[0] == (2, *source[0]["image"].shape)
    assert load_checkpoint(tmp_path / "last.pt")["precision"] == "fp32"
