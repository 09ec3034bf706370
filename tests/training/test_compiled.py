"""``engine.compile_mode``: compiled training follows the eager one, and the models come back eager."""

import copy

import pytest
import torch

from adaptseg.methods import adaptsegnet
from adaptseg.models import conv_bn
from adaptseg.models.deeplab_v2 import Bottleneck
from adaptseg.training import EngineConfig, train
from tests.models.test_models_conv_bn import tiny

STEP = adaptsegnet.Config(lambda_seg=0.1, lambda_adv_main=0.01, lambda_adv_aux=0.002)


def _run(tmp_path, model_factory, dataset_factory, **engine):
    config = EngineConfig(max_steps=20, stop_step=3, batch_size=2, seed=3, device="cpu", precision="fp32",
                          checkpoint_dir=str(tmp_path), log_every=1, progress=False, **engine)
    source, target = dataset_factory(4, seed=10), dataset_factory(3, labelled=False, seed=20)
    return train("adaptsegnet", model_factory(), source, config, target_dataset=target, method_config=STEP)


def test_compiled_training_follows_the_eager_run_and_hands_back_eager_models(tmp_path, model_factory,
                                                                               dataset_factory):
    eager = _run(tmp_path / "eager", model_factory, dataset_factory)
    compiled = _run(tmp_path / "compiled", model_factory, dataset_factory, compile_mode="default")
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
