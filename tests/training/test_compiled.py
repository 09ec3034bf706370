"""``engine.compile_mode``: compiled training follows the eager one, and the models come back eager."""

import copy

import pytest
import torch

from adaptseg.models import conv_bn
from adaptseg.models.deeplab_v2 import Bottleneck
from adaptseg.training import EngineConfig
from tests.models.test_models_conv_bn import tiny
from tests.training.test_training_engine import _config, _run


def test_compiled_training_follows_the_eager_run_and_hands_back_eager_models(tmp_path, model_factory,
                                                                               dataset_factory):
    eager = _run(model_factory, dataset_factory, _config(tmp_path / "eager"))
    compiled = _run(model_factory, dataset_factory, _config(tmp_path / "compiled", compile_mode="default"))
    for name, model in eager.models.items():
        other = compiled.models[name]
        assert getattr(other, "_compiled_call_impl", None) is None, name  # plain module again
        copy.deepcopy(other)
        state = other.state_dict()
        assert list(state) == list(model.state_dict())  # no "_orig_mod." prefixes: checkpoints unchanged
        for key, value in model.state_dict().items():  # fused kernels round differently
            torch.testing.assert_close(value, state[key], rtol=1e-4, atol=1e-5, msg=f"{name}.{key}")
    for curve in ("loss_seg", "loss_adv_main", "loss_d_main"):
        assert [e["value"] for e in compiled.history[curve]] == pytest.approx(
            [e["value"] for e in eager.history[curve]], rel=1e-4, abs=1e-6), curve


def test_folded_batchnorm_compiles_without_a_graph_break():
    """The fold's Python-side cache would split every block's graph in two: compiled code computes it inline."""
    model, x = tiny(Bottleneck), torch.randn(1, 3, 33, 41)
    assert conv_bn.ENABLED
    expected = model(x)["out"]
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")  # fullgraph: a break is an error
    torch.testing.assert_close(compiled(x)["out"], expected, rtol=1e-5, atol=1e-6)


def test_unknown_compile_mode_is_refused():
    with pytest.raises(ValueError, match="compile_mode='fast'"):
        EngineConfig(compile_mode="fast")
