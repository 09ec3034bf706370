"""Every training method through the engine: one step moves the weights with finite losses, target labels are
never read, and a stopped-and-resumed run ends with exactly the weights of an uninterrupted one."""

from types import SimpleNamespace

import pytest
import torch

from adaptseg.methods import METHODS
from adaptseg.training import load_checkpoint, train
from tests.tiny_models import DictDataset, TinySegmenter

SIZE = (64, 64)  # layer4 features 8×8: enough for the feature-level discriminator
#: Small, fast knobs for each method (the defaults are the papers').
KNOBS = {
    "source_only": {},
    "adaptsegnet": {"lambda_adv_main": 0.01, "lambda_adv_aux": 0.002, "ndf": 4},
    "feature_level": {"lambda_adv": 0.01, "ndf": 4},
    "minent": {"lambda_ent_main": 0.1, "lambda_ent_aux": 0.02},
    "advent": {"lambda_adv_main": 0.01, "lambda_adv_aux": 0.002, "ndf": 4},
    "fda": {"beta": 0.05, "lambda_ent": 0.1, "entropy_from": 0.0},
    "cbst": {"rounds": 2},
    "dacs": {"ema": 0.9},
}
TRAINED = sorted(KNOBS)
#: Optional parts of a method, run through the same tests: case → (method, knobs).
CASES = {**{name: (name, knobs) for name, knobs in KNOBS.items()},
         "dacs+mic": ("dacs", {"ema": 0.9, "lambda_masked": 1.0, "mask_block": 8})}


def _models(case: str, seed: int = 0) -> tuple[dict, object]:
    name, knobs = CASES[case]
    method = METHODS[name]
    config = method.Config.from_dict(knobs)
    torch.manual_seed(seed)
    segmenter = TinySegmenter()
    return {"segmenter": segmenter, **method.build_models(segmenter, config)}, config


def _engine(folder, **changes) -> dict:
    return {"max_steps": 8, "stop_step": 4, "batch_size": 2, "seed": 3, "device": "cpu", "precision": "fp32",
            "lr": 0.01, "log_every": 1, "checkpoint_dir": str(folder), "checkpoint_every": 1, "snapshot_every": 0,
            "progress": False, **changes}


def _data():
    return DictDataset(5, seed=10, size=SIZE), DictDataset(4, labelled=True, seed=20, size=SIZE)


class NoTargetLabels:
    """A method whose step fails the test if a target batch carries a label."""

    def __init__(self, method):
        self.__dict__.update({k: getattr(method, k) for k in dir(method) if not k.startswith("__")})
        self.__name__ = method.__name__
        self._step = method.step

    def step(self, models, batch, config, amp):
        assert "label" not in batch.get("target", {}), "a target label reached the method"
        return self._step(models, batch, config, amp)


def test_every_method_module_is_tested_here():
    assert set(TRAINED) | {"adabn"} == set(METHODS)


@pytest.mark.parametrize("case", sorted(CASES))
def test_one_step_moves_the_weights_with_finite_losses_and_never_sees_a_target_label(case, tmp_path):
    models, config = _models(case)
    before = [p.detach().clone() for p in models["segmenter"].parameters()]
    source, labelled_target = _data()
    result = train(NoTargetLabels(METHODS[CASES[case][0]]), models, source, _engine(tmp_path, stop_step=1),
                   target_dataset=labelled_target, method_config=config)
    losses = {k: v[0]["value"] for k, v in result.history.items() if k.startswith("loss")}
    assert losses and all(torch.isfinite(torch.tensor(v)) for v in losses.values()), losses
    moved = [not torch.equal(a, b) for a, b in zip(before, result.models["segmenter"].parameters(), strict=True)]
    assert any(moved)
    trainable = [m for k, m in result.models.items() if k.startswith("discriminator")]
    assert all(any(p.grad is not None for p in m.parameters()) for m in trainable)


@pytest.mark.parametrize("case", sorted(CASES))
def test_stop_and_resume_gives_the_weights_of_a_straight_run(case, tmp_path):
    name = CASES[case][0]
    source, target = _data()
    runs = {}
    for label, stops in (("straight", [4]), ("resumed", [2, 4])):
        for stop in stops:
            models, config = _models(case)
            resume = stop != stops[0]
            runs[label] = train(METHODS[name], models, source, _engine(tmp_path / label, stop_step=stop, resume=resume),
                                target_dataset=target, method_config=config)
    assert runs["resumed"].start_step == 2 and runs["resumed"].last_step == 4
    for model_name, model in runs["straight"].models.items():
        other = runs["resumed"].models[model_name].state_dict()
        for key, value in model.state_dict().items():
            torch.testing.assert_close(value, other[key], rtol=0, atol=0, msg=f"{case}: {model_name}.{key}")
    assert load_checkpoint(tmp_path / "resumed" / "last.pt")["step"] == 4


def test_adabn_trains_nothing_and_reestimates_on_target(tmp_path):
    models, config = _models("source_only")
    segmenter = models["segmenter"]
    weights = [p.detach().clone() for p in segmenter.parameters()]
    mean = segmenter.backbone[1].running_mean.clone()
    source, target = _data()
    result = train(SimpleNamespace(**{k: getattr(METHODS["adabn"], k) for k in ("Config", "TARGET_BATCHES", "CURVES",
                                                                                   "build_models", "step", "start")},
                                   __name__="adabn"),
                   {"segmenter": segmenter}, source, _engine(tmp_path), target_dataset=target)
    assert result.last_step == 0 and result.history == {}
    assert all(torch.equal(a, b) for a, b in zip(weights, segmenter.parameters(), strict=True))
    assert not torch.equal(mean, segmenter.backbone[1].running_mean)
