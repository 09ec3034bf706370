import copy

import pytest
import torch

from adaptseg.methods import METHODS, adaptsegnet, get_method, source_only
from adaptseg.training import SOURCE_LABEL, TARGET_LABEL, Amp, adversarial_loss, softmax_upsampled

StepConfig = adaptsegnet.Config
MULTI = StepConfig(lambda_seg=0.1, lambda_adv_main=0.01, lambda_adv_aux=0.002)
SINGLE = StepConfig(lambda_seg=0.0, lambda_adv_main=0.001, lambda_adv_aux=0.0, levels=("main",))
FP32 = Amp("cpu", "fp32")


def adaptsegnet_step(models, batch, config, amp=FP32):
    return {k: float(v) for k, v in adaptsegnet.step(models, batch, config, amp).items()}


def _snapshot(module):
    return [p.detach().clone() for p in module.parameters()]


def _changed(before, module):
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))


class LabelGuard(dict):
    """A target batch that fails the test if anyone asks for a label."""

    def __getitem__(self, key):
        assert key != "label", "the adaptation step read a target label"
        return super().__getitem__(key)

    def get(self, key, default=None):
        assert key != "label", "the adaptation step read a target label"
        return super().get(key, default)


def test_adaptation_step_updates_segmenter_and_both_discriminators(models, batch):
    before = {name: _snapshot(m) for name, m in models.items()}
    optimizers = {name: torch.optim.SGD(m.parameters(), lr=0.1) for name, m in models.items()}
    batch["target"] = LabelGuard(batch["target"])
    metrics = adaptsegnet_step(models, batch, MULTI)
    expected = {"loss_seg", "loss_seg_aux", "loss_adv_main", "loss_adv_aux", "loss_d_main", "loss_d_aux",
                "d_acc_main", "d_acc_aux"}
    assert set(metrics) == expected
    assert all(isinstance(v, float) and torch.isfinite(torch.tensor(v)) for v in metrics.values())
    for optimizer in optimizers.values():
        optimizer.step()
    for name, model in models.items():
        assert _changed(before[name], model), name
        assert all(p.requires_grad for p in model.parameters()), f"{name} left frozen"


def test_discriminator_gradients_come_from_the_discriminator_loss_only(models, batch):
    reference = copy.deepcopy(models)
    adaptsegnet_step(models, batch, MULTI)
    # Recompute the D loss alone on detached predictions of an identical copy (BN in train mode).
    seg = reference["segmenter"]
    with torch.no_grad():
        src, tgt = seg(batch["source"]["image"]), seg(batch["target"]["image"])
    for level, key in (("main", "out"), ("aux", "aux")):
        d = reference[f"discriminator_{level}"]
        loss = 0.5 * adversarial_loss(d(softmax_upsampled(src[key], (32, 32))), SOURCE_LABEL)
        loss = loss + 0.5 * adversarial_loss(d(softmax_upsampled(tgt[key], (32, 32))), TARGET_LABEL)
        loss.backward()
        for got, want in zip(models[f"discriminator_{level}"].parameters(), d.parameters(), strict=True):
            torch.testing.assert_close(got.grad, want.grad, rtol=1e-4, atol=1e-7)


def test_adversarial_loss_reaches_the_segmenter(model_factory, batch):
    grads = {}
    for lam in (0.0, 1.0):
        models = model_factory()
        adaptsegnet_step(models, batch, StepConfig(lambda_adv_main=lam, lambda_adv_aux=lam))
        grads[lam] = torch.cat([p.grad.flatten() for p in models["segmenter"].parameters()])
    assert not torch.allclose(grads[0.0], grads[1.0])


def test_lambda_zero_control_still_passes_the_target_through_the_segmenter(models, batch):
    seen = []
    models["segmenter"].register_forward_hook(lambda module, args, output: seen.append(args[0]))
    running_mean = models["segmenter"].backbone[1].running_mean.clone()
    metrics = adaptsegnet_step(models, batch, StepConfig(lambda_adv_main=0.0, lambda_adv_aux=0.0))
    assert len(seen) == 2
    assert seen[0] is batch["source"]["image"] and seen[1] is batch["target"]["image"]
    assert not torch.equal(running_mean, models["segmenter"].backbone[1].running_mean)
    assert "loss_d_main" in metrics and "loss_d_aux" in metrics


def test_single_level_runs_without_aux_discriminator(model_factory, batch):
    models = model_factory(multi_level=False)
    assert set(adaptsegnet.build_models(models["segmenter"], SINGLE)) == {"discriminator_main"}
    metrics = adaptsegnet_step(models, batch, SINGLE)
    assert "loss_d_main" in metrics and "loss_d_aux" not in metrics and "loss_adv_aux" not in metrics
    with pytest.raises(ValueError, match="aux level"):
        StepConfig(lambda_adv_aux=0.0002, levels=("main",))
    with pytest.raises(ValueError, match="levels"):
        StepConfig(levels=("main", "layer2"))


def test_least_squares_gan_step(models, batch):
    metrics = adaptsegnet_step(models, batch, StepConfig(gan="ls"))
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())


def test_source_only_step_and_the_methods_dict(models, batch):
    metrics = source_only.step({"segmenter": models["segmenter"]}, {"source": batch["source"]}, source_only.Config(), FP32)
    assert set(metrics) == {"loss_seg", "loss_seg_aux"}
    assert models["segmenter"].main_head.weight.grad is not None
    assert METHODS["source_only"] is source_only and get_method("adaptsegnet") is adaptsegnet
    with pytest.raises(ValueError, match="known methods"):
        get_method("cycada")
    with pytest.raises(ValueError, match="target"):
        adaptsegnet_step(models, {"source": batch["source"]}, StepConfig())
    with pytest.raises(ValueError, match=r"lamda_adv_main.*known"):
        StepConfig.from_dict({"lamda_adv_main": 0.1})


def test_bf16_autocast_on_cpu_gives_losses_close_to_fp32(model_factory, batch):
    results = {}
    for precision in ("fp32", "bf16"):
        models = model_factory()
        results[precision] = adaptsegnet_step(models, batch, MULTI, Amp("cpu", precision))
    for name, value in results["fp32"].items():
        if name.startswith("loss"):
            assert results["bf16"][name] == pytest.approx(value, rel=5e-2, abs=1e-2), name
