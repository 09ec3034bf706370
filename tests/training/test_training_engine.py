from types import SimpleNamespace

import pytest
import torch

import adaptseg.training.precision as precision_module
from adaptseg.methods import adaptsegnet
from adaptseg.training import (
    EngineConfig,
    NonFiniteLossError,
    StreamSampler,
    epoch_permutation,
    load_checkpoint,
    poly_lr,
    resolve_precision,
    train,
)

STEP = adaptsegnet.Config(lambda_seg=0.1, lambda_adv_main=0.01, lambda_adv_aux=0.002)


def with_step(step):
    """AdaptSegNet with another per-iteration step (a spy or a saboteur)."""
    return SimpleNamespace(**{k: getattr(adaptsegnet, k) for k in ("Config", "TARGET_BATCHES", "CURVES", "build_models")},
                           step=step, __name__="adaptsegnet_variant")


def _config(tmp_path, **overrides):
    values = dict(
        max_steps=20, stop_step=5, batch_size=2, seed=3, device="cpu", precision="fp32", num_workers=0,
        checkpoint_dir=str(tmp_path), checkpoint_every=2, snapshot_every=0, log_every=1, progress=False,
    )
    values.update(overrides)
    return EngineConfig(**values)


def _datasets(dataset_factory):
    return dataset_factory(5, seed=10), dataset_factory(3, labelled=False, seed=20)


def _run(model_factory, dataset_factory, config, **kwargs):
    source, target = _datasets(dataset_factory)
    return train(adaptsegnet, model_factory(), source, config, target_dataset=target, method_config=STEP, **kwargs)


def test_stop_and_resume_gives_the_same_weights_as_a_straight_run(tmp_path, model_factory, dataset_factory):
    straight = _run(model_factory, dataset_factory, _config(tmp_path / "straight"))
    _run(model_factory, dataset_factory, _config(tmp_path / "split", stop_step=3))
    resumed = _run(model_factory, dataset_factory, _config(tmp_path / "split", resume=True))
    assert straight.last_step == resumed.last_step == 5
    for name, model in straight.models.items():
        other = resumed.models[name].state_dict()
        for key, value in model.state_dict().items():
            torch.testing.assert_close(value, other[key], rtol=0, atol=0, msg=f"{name}.{key}")
    assert straight.history["loss_seg"] == resumed.history["loss_seg"]
    assert [e["step"] for e in resumed.history["loss_d_main"]] == [1, 2, 3, 4, 5]
    assert load_checkpoint(tmp_path / "split" / "last.pt")["step"] == 5


def test_warmup_ramps_every_optimiser_resumes_exactly_and_no_run_resumes_with_it_off(tmp_path, model_factory,
                                                                             dataset_factory):
    straight = _run(model_factory, dataset_factory, _config(tmp_path / "straight", warmup_steps=4))
    lrs = [e["value"] for e in straight.history["lr"]]
    assert lrs == pytest.approx([poly_lr(2.5e-4, step, 20, 0.9, warmup_steps=4) for step in range(5)])
    assert lrs[0] < lrs[1] < lrs[2] < lrs[3] and lrs[4] < lrs[3]  # ramp over 4 steps, then poly's decay
    _run(model_factory, dataset_factory, _config(tmp_path / "split", warmup_steps=4, stop_step=2))
    resumed = _run(model_factory, dataset_factory, _config(tmp_path / "split", warmup_steps=4, resume=True))
    for name, model in straight.models.items():
        for key, value in model.state_dict().items():
            torch.testing.assert_close(value, resumed.models[name].state_dict()[key], rtol=0, atol=0)
    with pytest.raises(ValueError, match="warmup_steps"):  # a resume with another warm-up is another run
        _run(model_factory, dataset_factory, _config(tmp_path / "split", resume=True))
    assert straight.run_id != _run(model_factory, dataset_factory, _config(tmp_path / "plain")).run_id
    rcs = {"temperature": 0.01, "min_share": 0.0}  # the other setting the identity names only when on
    _run(model_factory, dataset_factory, _config(tmp_path / "rcs", stop_step=2, rare_class_sampling=rcs))
    with pytest.raises(ValueError, match="rare_class_sampling"):
        _run(model_factory, dataset_factory, _config(tmp_path / "rcs", resume=True))


def nan_on_call(call: int, loss: str):
    """AdaptSegNet's step whose ``loss`` is NaN on its ``call``-th call."""
    calls = []

    def diverging_step(models, batch, config, amp=None):
        metrics = adaptsegnet.step(models, batch, config, amp)
        calls.append(1)
        if len(calls) == call:
            metrics[loss] = torch.tensor(float("nan"))
        return metrics

    return with_step(diverging_step)


def test_non_finite_loss_raises_and_keeps_the_last_good_checkpoint(tmp_path, model_factory, dataset_factory):
    source, target = _datasets(dataset_factory)
    last = tmp_path / "last.pt"
    with pytest.raises(NonFiniteLossError, match="loss_adv_main") as caught:
        train(nan_on_call(3, "loss_adv_main"), model_factory(), source, _config(tmp_path), target_dataset=target,
              method_config=STEP)
    error = caught.value
    assert error.step == 3 and error.checkpoint_path == last
    assert str(last) in str(error)
    assert load_checkpoint(last)["step"] == 2


def test_nan_guard_log_reads_back_per_window_and_still_stops_at_the_first_bad_step(tmp_path, model_factory,
                                                                                 dataset_factory):
    source, target = _datasets(dataset_factory)
    config = _config(tmp_path, nan_guard="log", log_every=4, checkpoint_every=2, stop_step=8)
    with pytest.raises(NonFiniteLossError, match="loss_adv_main") as caught:
        train(nan_on_call(3, "loss_adv_main"), model_factory(), source, config, target_dataset=target,
              method_config=STEP)
    assert caught.value.step == 3  # found at step 4's checkpoint, before it was written
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 2


def test_nan_guard_log_and_fused_optimisers_train_like_the_defaults(tmp_path, model_factory, dataset_factory):
    runs = {
        name: _run(model_factory, dataset_factory, _config(tmp_path / name, log_every=2, **engine))
        for name, engine in {"default": {}, "log": {"nan_guard": "log"},
                             "fused": {"nan_guard": "log", "fused_optimizers": True}}.items()
    }
    default = runs["default"]
    for name, run in runs.items():
        for model, weights in default.models.items():
            other = run.models[model].state_dict()
            for key, value in weights.state_dict().items():  # fused kernels may round differently
                torch.testing.assert_close(value, other[key], rtol=1e-4, atol=1e-6, msg=f"{name}: {model}.{key}")
        assert [e["step"] for e in run.history["loss_seg"]] == [2, 4, 5]
        for curve in ("loss_seg", "loss_d_main", "lr"):
            assert [e["value"] for e in run.history[curve]] == pytest.approx(
                [e["value"] for e in default.history[curve]], rel=1e-5), (name, curve)
    assert runs["log"].models["segmenter"].state_dict()["main_head.bias"].equal(
        default.models["segmenter"].state_dict()["main_head.bias"])  # the guard changes when, not what
    assert all(group.get("fused") for group in torch.load(tmp_path / "fused" / "last.pt", weights_only=False)
               ["optimizers"]["segmenter"]["param_groups"])


def test_target_labels_never_reach_the_step_and_streams_are_deterministic(tmp_path, model_factory, dataset_factory):
    seen = []

    def spy_step(models, batch, config, amp=None):
        seen.append((list(batch["source"]["name"]), list(batch["target"]["name"]), set(batch["target"])))
        return adaptsegnet.step(models, batch, config, amp)

    source = dataset_factory(5, seed=10)
    labelled_target = dataset_factory(3, labelled=True, seed=20)
    config = _config(tmp_path, checkpoint_dir=None, stop_step=4, batch_size=2)
    train(with_step(spy_step), model_factory(), source, config, target_dataset=labelled_target, method_config=STEP)
    assert all("label" not in keys for _, _, keys in seen)
    # Each epoch visits every source sample once; batches run across epoch boundaries.
    source_names = [name for names, _, _ in seen for name in names]
    assert sorted(source_names[:5]) == [f"img_{i:03d}" for i in range(5)]
    order = [*epoch_permutation(5, 3, "source", 0).tolist(), *epoch_permutation(5, 3, "source", 1).tolist()]
    assert source_names == [f"img_{i:03d}" for i in order[:8]]
    assert list(StreamSampler(5, 2, 3, "source", 2, 4)) == order[4:8]


def test_history_callback_snapshots_and_early_stopping(tmp_path, model_factory, dataset_factory):
    logged = []
    scores = iter([0.5, 0.4, 0.3, 0.9])

    def evaluate(models, step):
        assert not models["segmenter"].training and not torch.is_grad_enabled()
        return next(scores)

    config = _config(tmp_path, stop_step=10, log_every=2, snapshot_every=2, eval_every=2, patience=2,
                     eval_metric="dev_miou")
    result = _run(model_factory, dataset_factory, config, on_metrics=lambda m, s: logged.append((s, m)),
                  evaluate_fn=evaluate)
    assert result.stopped_early and result.last_step == 6
    assert result.best_step == 2 and result.best_value == 0.5
    assert load_checkpoint(result.best_checkpoint_path)["step"] == 2
    assert load_checkpoint(result.checkpoint_path)["step"] == 6
    assert sorted(p.name for p in tmp_path.glob("step_*.pt")) == ["step_000002.pt", "step_000004.pt", "step_000006.pt"]
    assert result.history["dev_miou"] == [{"step": 2, "value": 0.5}, {"step": 4, "value": 0.4},
                                          {"step": 6, "value": 0.3}]
    assert [e["step"] for e in result.history["loss_seg"]] == [2, 4, 6]
    assert all(isinstance(e["value"], float) for e in result.history["loss_seg"])
    assert any("loss_seg" in m for _, m in logged) and any("dev_miou" in m for _, m in logged)
    assert all(model.training for model in result.models.values())


def test_fresh_run_refuses_to_mix_with_an_existing_run(tmp_path, model_factory, dataset_factory):
    _run(model_factory, dataset_factory, _config(tmp_path, stop_step=1))
    with pytest.raises(FileExistsError, match="resume"):
        _run(model_factory, dataset_factory, _config(tmp_path, stop_step=1))
    with pytest.raises(ValueError, match="seed"):
        _run(model_factory, dataset_factory, _config(tmp_path, stop_step=2, seed=4, resume=True))
    result = _run(model_factory, dataset_factory, _config(tmp_path, stop_step=1, overwrite=True))
    assert result.last_step == 1


def test_bf16_engine_path_runs_on_cpu(tmp_path, model_factory, dataset_factory):
    result = _run(model_factory, dataset_factory, _config(tmp_path, precision="bf16", stop_step=2))
    assert result.precision == "bf16"
    assert all(torch.isfinite(torch.tensor(e["value"])) for e in result.history["loss_seg"])
    weight = result.models["segmenter"].backbone[0].weight
    assert weight.dtype == torch.float32 and weight.is_contiguous(memory_format=torch.channels_last)


def test_engine_config_rejects_unknown_and_invalid_values():
    with pytest.raises(ValueError, match="lamda_adv"):
        EngineConfig.from_dict({"lamda_adv": 0.1})
    with pytest.raises(ValueError, match="stop_step"):
        EngineConfig(max_steps=10, stop_step=11)
    config = EngineConfig.from_dict({"betas_discriminator": [0.9, 0.99], "stop_step": 150000})
    assert config.betas_discriminator == (0.9, 0.99) and config.last_step == 150000


def test_precision_auto_follows_the_hardware(monkeypatch):
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("fp16", cpu) == "fp16"
    monkeypatch.setattr(precision_module, "cpu_supports_fast_bf16", lambda: False)
    assert resolve_precision("auto", cpu) == "fp32"
    monkeypatch.setattr(precision_module, "cpu_supports_fast_bf16", lambda: True)
    assert resolve_precision("auto", cpu) == "bf16"
    with pytest.raises(ValueError, match="fp64"):
        resolve_precision("fp64", cpu)


def test_forced_bf16_on_a_cpu_without_native_bf16_warns(monkeypatch, caplog):
    cpu = torch.device("cpu")
    monkeypatch.setattr(precision_module, "cpu_supports_fast_bf16", lambda: False)
    with caplog.at_level("WARNING", logger=precision_module.__name__):
        assert resolve_precision("bf16", cpu) == "bf16"  # honoured, but the user is told what it costs
    assert "emulates" in caplog.text
    caplog.clear()
    monkeypatch.setattr(precision_module, "cpu_supports_fast_bf16", lambda: True)
    with caplog.at_level("WARNING", logger=precision_module.__name__):
        resolve_precision("bf16", cpu)
    assert caplog.text == ""


def test_resume_refuses_a_run_that_started_from_other_weights_or_knobs(tmp_path, model_factory, dataset_factory):
    _run(model_factory, dataset_factory, _config(tmp_path, stop_step=2))
    source, target = _datasets(dataset_factory)
    other_start = model_factory(seed=7)  # "the pretrained model changed"
    with pytest.raises(ValueError, match="starting weights"):
        train(adaptsegnet, other_start, source, _config(tmp_path, resume=True), target_dataset=target, method_config=STEP)
    other_knobs = adaptsegnet.Config(lambda_seg=0.1, lambda_adv_main=0.5, lambda_adv_aux=0.002)
    with pytest.raises(ValueError, match="lambda_adv_main"):
        train(adaptsegnet, model_factory(), source, _config(tmp_path, resume=True), target_dataset=target,
              method_config=other_knobs)
    resumed = _run(model_factory, dataset_factory, _config(tmp_path, resume=True))
    assert resumed.start_step == 2 and resumed.last_step == 5
    assert load_checkpoint(tmp_path / "last.pt")["run_id"] == resumed.run_id


def test_a_checkpoint_never_keeps_non_finite_weights_and_the_advice_is_one_that_works(tmp_path, model_factory,
                                                                                   dataset_factory):
    def poisoning_step(models, batch, config, amp=None):
        metrics = adaptsegnet.step(models, batch, config, amp)
        poisoning_step.calls += 1
        if poisoning_step.calls == 4:  # finite losses, but the weights blow up before step 4 is saved
            with torch.no_grad():
                models["segmenter"].main_head.bias.fill_(float("inf"))
        return metrics

    poisoning_step.calls = 0
    source, target = _datasets(dataset_factory)
    with pytest.raises(NonFiniteLossError, match="weights of segmenter") as caught:
        train(with_step(poisoning_step), model_factory(), source, _config(tmp_path, checkpoint_every=2),
              target_dataset=target, method_config=STEP)
    assert caught.value.checkpoint_path == tmp_path / "last.pt"
    kept = load_checkpoint(tmp_path / "last.pt")
    assert kept["step"] == 2 and all(torch.isfinite(v).all() for v in kept["models"]["segmenter"].values())
    assert "start a new run (resume: false, overwrite: true)" in str(caught.value)  # not a refused resume


def test_divergence_before_the_first_checkpoint_says_when_it_was_due(tmp_path, model_factory, dataset_factory):
    def nan_step(models, batch, config, amp=None):
        metrics = adaptsegnet.step(models, batch, config, amp)
        return {**metrics, "loss_seg": torch.tensor(float("nan"))}

    source, target = _datasets(dataset_factory)
    with pytest.raises(NonFiniteLossError, match=r"No checkpoint was written before it \(the first was due at step 10\)"):
        train(with_step(nan_step), model_factory(), source, _config(tmp_path, checkpoint_every=10),
              target_dataset=target, method_config=STEP)


def test_a_fresh_run_says_which_files_of_the_previous_run_it_removes(tmp_path, model_factory, dataset_factory, caplog):
    _run(model_factory, dataset_factory, _config(tmp_path, stop_step=1))
    with caplog.at_level("WARNING", logger="adaptseg.training.engine"):
        _run(model_factory, dataset_factory, _config(tmp_path, stop_step=1, overwrite=True))
    assert "removing the previous run's last.pt" in caplog.text


def test_the_metric_window_never_drops_an_unread_divergence():
    """nan_guard: log keeps device flags; flushing or checkpointing the window before they are read is an error,
    and settling names the first non-finite step."""
    from adaptseg.training.engine import _MetricWindow

    window = _MetricWindow()
    window.add({"loss_seg": torch.tensor(1.0)}, checked_step=3)
    window.add({"loss_seg": torch.tensor(float("nan"))}, checked_step=4)
    for read in (window.flush, window.state_dict):
        with pytest.raises(RuntimeError, match="finite-checks not read"):
            read()
    assert window.settle() == 4
    window = _MetricWindow()
    window.add({"loss_seg": torch.tensor(1.0)}, checked_step=1)
    window.add({"loss_seg": torch.tensor(3.0)}, checked_step=2)
    assert window.settle() is None and window.flush() == {"loss_seg": 2.0}
