import pytest
import torch

from adaptseg.training import apply_poly_lr, make_discriminator_optimizer, make_segmenter_optimizer, poly_lr
from adaptseg.training.schedules import has_repeated_parameters


def test_poly_lr_values():
    assert poly_lr(2.5e-4, 0, 250_000) == pytest.approx(2.5e-4)
    assert poly_lr(2.5e-4, 125_000, 250_000) == pytest.approx(2.5e-4 * 0.5**0.9)
    assert poly_lr(1e-4, 150_000, 250_000) == pytest.approx(1e-4 * 0.4**0.9)
    assert poly_lr(1.0, 10, 10) == 0.0
    assert poly_lr(1.0, 20, 10) == 0.0
    with pytest.raises(ValueError):
        poly_lr(1.0, 0, 0)


def test_linear_warmup_ramps_the_first_steps_then_leaves_poly_alone():
    assert poly_lr(1.0, 0, 100, 1.0, warmup_steps=4) == pytest.approx(0.25)  # (0 + 1) / 4 of poly's 1.0
    assert poly_lr(1.0, 2, 100, 1.0, warmup_steps=4) == pytest.approx(0.75 * 0.98)
    assert poly_lr(1.0, 3, 100, 1.0, warmup_steps=4) == pytest.approx(0.97)  # the full rate from the 4th step
    assert poly_lr(1.0, 50, 100, 1.0, warmup_steps=4) == poly_lr(1.0, 50, 100, 1.0) == pytest.approx(0.5)
    assert poly_lr(1.0, 0, 100, 1.0, warmup_steps=0) == 1.0  # the reference: no warm-up


def test_apply_poly_lr_keeps_the_heads_at_ten_times():
    backbone, heads = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    optimizer = make_segmenter_optimizer(
        [
            {"params": backbone.parameters(), "lr_mult": 1.0, "name": "backbone"},
            {"params": heads.parameters(), "lr_mult": 10.0, "name": "heads"},
        ]
    )
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([2.5e-4, 2.5e-3])
    lr = apply_poly_lr(optimizer, 2.5e-4, 100, 1000)
    assert lr == pytest.approx(2.5e-4 * 0.9**0.9)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([lr, 10 * lr])
    assert [g["name"] for g in optimizer.param_groups] == ["backbone", "heads"]
    assert optimizer.param_groups[0]["momentum"] == 0.9
    assert optimizer.param_groups[0]["weight_decay"] == 5e-4


def test_segmenter_optimizer_accepts_plain_parameters_and_discriminator_uses_adam():
    model = torch.nn.Linear(2, 2)
    sgd = make_segmenter_optimizer(model.parameters())
    assert sgd.param_groups[0]["lr_mult"] == 1.0
    adam = make_discriminator_optimizer(model.parameters())
    assert isinstance(adam, torch.optim.Adam)
    group = adam.param_groups[0]
    assert group["lr"] == 1e-4 and group["betas"] == (0.9, 0.99) and group["weight_decay"] == 0.0
    apply_poly_lr(adam, 1e-4, 5, 10)
    assert group["lr"] == pytest.approx(1e-4 * 0.5**0.9)


def test_repeated_parameter_entries_update_sequentially():
    """The reference's duplicate backbone entries: each entry is one more plain SGD update (LegacySGD)."""
    from adaptseg.models.legacy_sgd import LegacySGD

    weight = torch.nn.Parameter(torch.ones(1))
    groups = [{"params": [weight, weight], "lr_mult": 1.0}]
    assert has_repeated_parameters(groups)
    optimizer = make_segmenter_optimizer(groups, lr=0.1, momentum=0.0, weight_decay=0.0)
    assert isinstance(optimizer, LegacySGD) and optimizer.param_groups[0]["repeats"] == [2]
    weight.grad = torch.ones(1)
    optimizer.step()
    assert weight.item() == pytest.approx(0.8)


def test_fused_optimisers_refuse_the_repeated_backbone_tensors_quirk():
    shared = torch.nn.Parameter(torch.zeros(2))
    groups = [{"params": [shared], "lr_mult": 1.0}, {"params": [shared], "lr_mult": 10.0}]
    with pytest.raises(ValueError, match="fused optimisers cannot replay the repeated backbone tensors"):
        make_segmenter_optimizer(groups, fused=True)
    assert make_segmenter_optimizer([torch.nn.Parameter(torch.zeros(2))], fused=True).defaults["fused"]
