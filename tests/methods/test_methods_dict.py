"""Every method module keeps the contract the engine relies on (adaptseg.methods docstring)."""

import pytest

from adaptseg.methods import HOOKS, METHODS, REQUIRED, curve_panels
from adaptseg.methods.common import SegmentationConfig


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_module_contract(name):
    method = METHODS[name]
    missing = [attr for attr in REQUIRED if not hasattr(method, attr)]
    assert not missing, f"{name} lacks {missing}"
    assert issubclass(method.Config, SegmentationConfig)
    config = method.Config.from_dict({})
    assert method.Config.from_dict(config.to_dict()) == config  # round trip through parameters
    with pytest.raises(ValueError, match="known"):
        method.Config.from_dict({"no_such_knob": 1})
    assert method.step is None or callable(method.step)
    assert all(getattr(method, hook, None) is None or callable(getattr(method, hook)) for hook in HOOKS)
    assert isinstance(method.TARGET_BATCHES, bool)
    assert all(isinstance(names, tuple) for names in method.CURVES.values())


def test_curve_panels_merge_every_method():
    panels = curve_panels()
    assert panels["segmentation"][:2] == ("loss_seg", "loss_seg_aux")
    assert "loss_adv_main" in panels["adversarial"]
