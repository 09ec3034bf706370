"""Configuration mistakes stop a run when its session starts, with one error that names every bad key."""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path
from typing import Any

import pytest
from kedro.config import OmegaConfigLoader
from kedro.framework.hooks import hook_impl
from omegaconf import OmegaConf

from adaptseg.config import ConfigurationError, from_mapping
from adaptseg.config_validation import parameter_problems, validate_parameters
from adaptseg.hooks_validation import ParameterValidationHooks, UnknownEnvironmentError
from adaptseg.methods import adaptsegnet, dacs
from adaptseg.settings import CONFIG_LOADER_ARGS
from adaptseg.synth.config import SynthesisCounts
from adaptseg.training import EngineConfig

PROJECT = Path(__file__).resolve().parents[1]
ENGINE = "source_only.adaptation.engine"


def load_parameters(env: str | None = None, runtime_params: dict | None = None) -> dict[str, Any]:
    """The project's parameters as ``studies/adaptation_study.py`` loads them, ``oc.env`` included."""
    loader = OmegaConfigLoader(
        conf_source=str(PROJECT / "conf"), base_env="base", default_run_env=env or "local",
        custom_resolvers=CONFIG_LOADER_ARGS["custom_resolvers"], runtime_params=runtime_params,
    )
    return dict(loader["parameters"])


@functools.cache
def _base_parameters() -> dict[str, Any]:
    return load_parameters()


def with_params(*dotlist: str) -> dict[str, Any]:
    """The base parameters with ``--params "a.b=c,..."`` applied: parsed and merged as Kedro does."""
    runtime = OmegaConf.to_container(OmegaConf.from_dotlist(list(dotlist)))
    merged = OmegaConf.merge(OmegaConf.create(copy.deepcopy(_base_parameters())), runtime)
    return OmegaConf.to_container(merged)


def problems_of(params: dict[str, Any]) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as caught:
        validate_parameters(params)
    return caught.value


# ----------------------------------------------------------------------------------------- config dataclasses
@pytest.mark.parametrize(
    "value, shown",
    [("abc", r"'abc' \(str\)"), (20.5, r"20.5 \(float\)"), (None, "null"), (True, r"True \(bool\)")],
)
def test_an_int_field_rejects_strings_floats_null_and_bools(value, shown):
    with pytest.raises(ConfigurationError, match=rf"{ENGINE}\.max_steps: got {shown}; expected an integer$"):
        from_mapping(EngineConfig, {"max_steps": value}, "engine parameter", prefix=ENGINE)


def test_types_follow_the_annotations():
    config = EngineConfig.from_dict({"lr": 1, "betas_discriminator": [0.9, 1], "stop_step": None})
    assert config.lr == 1 and config.betas_discriminator == (0.9, 1.0) and config.stop_step is None
    with pytest.raises(ConfigurationError, match=r"lr: got 'fast' \(str\); expected a number"):
        EngineConfig.from_dict({"lr": "fast"})
    with pytest.raises(ConfigurationError, match=r"betas_discriminator: .*expected a list of 2 numbers"):
        EngineConfig.from_dict({"betas_discriminator": [0.9, 0.99, 0.999]})
    with pytest.raises(ConfigurationError, match=r"channels_last: got 'yes' .*true or false or null"):
        EngineConfig.from_dict({"channels_last": "yes"})
    with pytest.raises(ConfigurationError, match=r"levels: got 'main' \(str\); expected a list of strings"):
        adaptsegnet.Config.from_dict({"levels": "main"})
    with pytest.raises(ConfigurationError, match=r"source: got '5' \(str\); expected an integer"):
        SynthesisCounts.from_dict({"source": "5"})


def test_every_problem_of_a_mapping_comes_in_one_error_and_range_checks_stay():
    with pytest.raises(ConfigurationError) as caught:
        dacs.Config.from_dict({"ema": "high", "blur": "no", "emma": 0.9})
    assert [p.key for p in caught.value.problems] == ["emma", "ema", "blur"]
    assert "did you mean ema?" in str(caught.value)
    with pytest.raises(ValueError, match="stop_step"):
        EngineConfig.from_dict({"max_steps": 10, "stop_step": 11})


# ---------------------------------------------------------------------------------------- the parameters tree
@pytest.mark.parametrize(
    "override, key, expected",
    [
        ("max_steps=abc", "max_steps", r"got 'abc' \(str\); expected an integer"),
        ("max_steps=20.5", "max_steps", r"got 20.5 \(float\); expected an integer"),
        ("max_steps=null", "max_steps", r"got null; expected an integer"),
        ("lr=fast", "lr", r"got 'fast' \(str\); expected a number"),
        ("checkpoint_dir=/tmp/run", "checkpoint_dir", r"catalog entry 'source_only.run'.*remove it"),
    ],
)
def test_bad_engine_params_name_the_full_key(override, key, expected):
    error = problems_of(with_params(f"{ENGINE}.{override}"))
    assert [p.key for p in error.problems] == [f"{ENGINE}.{key}"]
    assert re.search(expected, error.problems[0].message), str(error)


def test_a_three_value_input_size_is_named():
    error = problems_of(with_params("source_only.adaptation.input_size.source=[256,128,3]"))
    (problem,) = error.problems
    assert problem.key == "source_only.adaptation.input_size.source"
    assert problem.message.startswith("got [256, 128, 3] (list); expected [width, height]")


def test_a_namespace_typo_is_an_unknown_block_with_a_suggestion():
    error = problems_of(with_params("adaptsegnet_mult.adaptation.engine.max_steps=5"))
    (problem,) = error.problems
    assert problem.key == "adaptsegnet_mult"
    assert "did you mean adaptsegnet_multi?" in problem.message
    assert problem.message.split("known: ")[1].startswith("adaptsegnet_multi")  # closest first


@pytest.mark.parametrize(
    "override, key, suggestion",
    [
        ("adabn.adaptation.bn_mod=train", "adabn.adaptation.bn_mod", "bn_mode"),
        ("evaluation.batchsize=4", "evaluation.batchsize", "batch_size"),
        ("dacs.adaptation.method_config.confidense=0.9", "dacs.adaptation.method_config.confidense",
         "confidence"),
        ("model.options.widht=8", "model.options.widht", "width"),
    ],
)
def test_unknown_keys_are_named_with_the_closest_known_one(override, key, suggestion):
    (problem,) = problems_of(with_params(override)).problems
    assert problem.key == key
    assert f"did you mean {suggestion}?" in problem.message
    assert problem.message.split("known: ")[1].startswith(suggestion)


def test_an_unknown_method_lists_the_known_ones():
    (problem,) = problems_of(with_params("dacs.adaptation.method=dac")).problems
    assert problem.key == "dacs.adaptation.method"
    assert "did you mean dacs?" in problem.message and "adaptsegnet" in problem.message


def test_every_problem_comes_in_one_error():
    error = problems_of(with_params(
        f"{ENGINE}.max_steps=abc", f"{ENGINE}.lr=fast", "adaptsegnet_mult.adaptation.engine.max_steps=5",
        "adabn.adaptation.bn_mod=train", "evaluation.batchsize=4", "dacs.adaptation.method_config.emma=0.9",
        "source_pretraining.training.engine.checkpoint_dir=x", "reporting.published=gta",
    ))
    assert {p.key for p in error.problems} == {
        f"{ENGINE}.max_steps", f"{ENGINE}.lr", "adaptsegnet_mult", "adabn.adaptation.bn_mod",
        "evaluation.batchsize", "dacs.adaptation.method_config.emma",
        "source_pretraining.training.engine.checkpoint_dir", "reporting.published",
    }
    assert isinstance(error, ValueError)
    assert str(error).count("\n  - ") == len(error.problems) == 8


def test_ranges_types_of_other_blocks_and_the_study_grids():
    error = problems_of(with_params(
        "source_pretraining.training.engine.max_steps=0", "model.num_classes=20",
        "synthesis.generator.counts.val=x", "study.grids.dacs=[{confidense: 0.9}]",
        "fda_mbt.ensemble.weights=[1,1]", "source.kind=gta", "source.root=/d",
        "study.comparisons=[[dacs_4000_steps, dacz_2000_steps]]",
    ))
    messages = {p.key: p.message for p in error.problems}
    assert "max_steps=0 must be >= 1" in messages["source_pretraining.training.engine"]
    assert "19, 16, 13" in messages["model.num_classes"]
    assert "expected an integer" in messages["synthesis.generator.counts.val"]
    assert "did you mean confidence?" in messages["study.grids.dacs[0].confidense"]
    assert "one per member (fda, fda_beta05, fda_beta09)" in messages["fda_mbt.ensemble.weights"]
    assert "did you mean gta5?" in messages["source.kind"]
    assert "source.root" not in messages  # a raw-data root from --params is a known key
    assert "did you mean dacs?" in messages["study.comparisons[0][1]"]  # a budget label names a namespace's run
    assert "study.comparisons[0][0]" not in messages


#: The study's ``--dataset synthia`` runtime parameters.
SYNTHIA_SOURCE = {"source": {"kind": "synthia", "root": "data/01_raw/synthetic/synthia"}}


@pytest.mark.parametrize("env", [None, "gta5_cityscapes", "synthia_cityscapes"])
@pytest.mark.parametrize("source", [None, SYNTHIA_SOURCE], ids=["gta5_source", "synthia_source"])
def test_the_projects_own_parameters_validate_in_every_environment(env, source):
    params = load_parameters(env, source)
    assert {"source_only", "study", "evaluation", "synthesis"} <= set(params)
    assert parameter_problems(params) == []


# ------------------------------------------------------------------------------------ through a Kedro session
class _Spy:
    """Records every hook call after the validation hook, to show that nothing ran."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    @hook_impl
    def after_context_created(self, context) -> None:
        self.calls.append("after_context_created")

    @hook_impl
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:
        self.calls.append("before_pipeline_run")

    @hook_impl
    def before_node_run(self, node, catalog, inputs, is_async) -> None:
        self.calls.append(node.name)


def _session(project: Path, **kwargs):
    """A session with the validation hook registered (unless settings.HOOKS already does) and a spy."""
    from kedro.framework.project import settings
    from kedro.framework.session import KedroSession

    session = KedroSession.create(project_path=project, **kwargs)
    if not any(isinstance(hook, ParameterValidationHooks) for hook in settings.HOOKS):
        session._hook_manager.register(ParameterValidationHooks())
    spy = _Spy()
    session._hook_manager.register(spy)
    return session, spy


@pytest.mark.slow
def test_a_session_with_a_namespace_typo_fails_before_anything_runs(project_copy):
    import mlflow
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project_copy)
    runtime = {"adaptsegnet_mult": {"adaptation": {"engine": {"max_steps": 5}}}}
    session, spy = _session(project_copy, runtime_params=runtime)
    typo = r"adaptsegnet_mult: unknown parameters block \(did you mean adaptsegnet_multi\?\)"
    with session, pytest.raises(ConfigurationError, match=typo):
        session.run(pipeline_names=["synthesis"])
    assert spy.calls == []  # no other after_context_created ran (kedro-mlflow's neither): it runs first
    assert mlflow.active_run() is None
    assert not (project_copy / "data").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    "env, hint", [("doesnotexist", ""), ("gta5_cityscape", "Did you mean --env gta5_cityscapes?")]
)
def test_an_unknown_environment_names_the_existing_ones(project_copy, env, hint):
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project_copy)
    session, spy = _session(project_copy, env=env)
    with session, pytest.raises(UnknownEnvironmentError) as caught:
        session.run(pipeline_names=["synthesis"])
    message = str(caught.value)
    assert f"Unknown configuration environment {env!r}" in message and hint in message
    assert "existing environments: base, gta5_cityscapes, local, synthia_cityscapes." in message
    assert spy.calls == []
