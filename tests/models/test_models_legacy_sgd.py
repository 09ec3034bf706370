"""LegacySGD replays PyTorch 0.4's handling of repeated parameter entries (reference §2.5)."""

from __future__ import annotations

import warnings

import pytest
import torch

from adaptseg.models import LegacySGD, deeplabv2_small


def _torch04_steps(grads: list[float], repeats: int, lr: float, momentum: float, wd: float) -> float:
    """PyTorch 0.4's SGD loop on one scalar listed ``repeats`` times (decay added to the grad in place)."""
    p, buf = 1.0, None
    for g in grads:
        d_p = g  # p.grad, modified in place by every entry
        for _ in range(repeats):
            d_p = d_p + wd * p
            buf = d_p if buf is None else buf * momentum + d_p
            p = p - lr * buf
    return p


def test_repeated_entries_match_pytorch_04() -> None:
    grads = [0.5, -0.2, 0.3, 0.1]
    p = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no duplicate-parameter warning
        group = {"params": [p, p, p], "lr_mult": 1.0}
        optimizer = LegacySGD([group], lr=0.1, momentum=0.9, weight_decay=0.01)
    for g in grads:
        p.grad = torch.tensor([g], dtype=torch.float64)
        optimizer.step()
    assert p.item() == pytest.approx(_torch04_steps(grads, 3, 0.1, 0.9, 0.01), rel=1e-12)
    assert optimizer.param_groups[0]["repeats"] == [3] and optimizer.param_groups[0]["lr_mult"] == 1.0


def test_unique_entries_match_torch_sgd() -> None:
    torch.manual_seed(0)
    a = torch.nn.Parameter(torch.randn(4, 3))
    b = torch.nn.Parameter(a.detach().clone())
    legacy = LegacySGD([a], lr=0.05, momentum=0.9, weight_decay=5e-4)
    modern = torch.optim.SGD([b], lr=0.05, momentum=0.9, weight_decay=5e-4)
    for _ in range(3):
        grad = torch.randn(4, 3)
        a.grad, b.grad = grad.clone(), grad.clone()
        legacy.step()
        modern.step()
    torch.testing.assert_close(a, b)


def test_accepts_quirk_parameter_groups() -> None:
    model = deeplabv2_small(5, width=8)
    groups = model.parameter_groups(dedupe=False)
    optimizer = LegacySGD(groups, lr=2.5e-4, momentum=0.9, weight_decay=5e-4)
    backbone = optimizer.param_groups[0]
    assert sum(backbone["repeats"]) == len(groups[0]["params"]) > len(backbone["params"])
    assert backbone["name"] == "backbone" and optimizer.param_groups[1]["lr_mult"] == 10.0
    # torch's own SGD still takes the repeats, with a warning (documented in deeplab_v2.parameter_groups)
    with pytest.warns(UserWarning, match="duplicate parameters"):
        torch.optim.SGD(groups, lr=2.5e-4, momentum=0.9)
