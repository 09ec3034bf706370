"""The whole parameters tree checked at once, before anything runs.

A misspelt namespace (``--params "adaptsegnet_mult.adaptation..."``) or key (``evaluation.batchsize``) would
otherwise be merged in and ignored, and a wrongly typed value (``max_steps=abc``) would fail minutes later
inside a node with a traceback that names no key. :func:`validate_parameters` walks every block the project
knows against the schema table below (the one place that says which keys each block has) and raises one
:class:`~adaptseg.config.ConfigurationError` listing every problem, each under its full dotted key. Method
knobs, engine settings and the generator's configuration are checked by building their config dataclasses
with the code the nodes run, so the two never disagree.

The project hook ``adaptseg.hooks_validation.ParameterValidationHooks`` calls it when a Kedro session starts.
"""

from __future__ import annotations

import difflib
import inspect
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from adaptseg.config import (
    ConfigurationError,
    Problem,
    closest_first,
    describe,
    join_key,
    mapping_problems,
    type_problems,
    unknown_key_problem,
    unknown_key_problems,
)
from adaptseg.evaluation.ensemble import COMBINE
from adaptseg.io.raw_domain import KNOWN_KINDS
from adaptseg.methods import METHODS
from adaptseg.models import BN_MODES, SEGMENTER_BUILDERS
from adaptseg.pipelines.adaptation.pipeline import NAMESPACES as ADAPTATION_NAMESPACES
from adaptseg.pipelines.evaluation.pipeline import ENSEMBLES
from adaptseg.pipelines.source_pretraining.pipeline import DOMAINS
from adaptseg.pipelines.synthesis.nodes import SOURCE_FOLDERS
from adaptseg.reporting.budgets import split_budget
from adaptseg.reporting.published import BENCHMARKS
from adaptseg.synth.config import SynthesisConfig
from adaptseg.training import EngineConfig
from adaptseg.training.precision import DEVICES, PRECISIONS

__all__ = ["ConfigurationError", "Problem", "SCHEMAS", "parameter_problems", "validate_parameters"]

#: A check: the problems of one value, found at its full dotted key (empty when it is valid).
Check = Callable[[Any, str], list[Problem]]

#: The class protocols (19 for GTA5; 16 and 13 for the SYNTHIA subsets).
PROTOCOLS = (19, 16, 13)
#: The supervised training namespaces (``<namespace>.training``).
SUPERVISED_NAMESPACES = (*DOMAINS, "oracle_finetune")
#: Every namespace that trains a model, and every namespace a study may list.
TRAINED_NAMESPACES = (*SUPERVISED_NAMESPACES, *ADAPTATION_NAMESPACES)
STUDY_NAMESPACES = (*TRAINED_NAMESPACES, *ENSEMBLES)

HEADING = "Invalid parameters (conf/<env>/parameters*.yml and --params together); fix every line below"


# ----------------------------------------------------------------------------------------------- entry points
def validate_parameters(params: Mapping[str, Any]) -> None:
    """Raise one :class:`ConfigurationError` listing every problem of ``params`` (``context.params``)."""
    problems = parameter_problems(params)
    if problems:
        raise ConfigurationError(problems, HEADING)


def parameter_problems(params: Mapping[str, Any]) -> list[Problem]:
    """Every problem of the parameters tree: unknown blocks, then each block's own, then cross-block ones."""
    problems: list[Problem] = []
    for name, value in params.items():
        if str(name).startswith("_"):  # YAML anchor holders (``_adaptation_engine``): Kedro's hidden keys
            continue
        if name not in SCHEMAS:
            problems.append(unknown_key_problem(str(name), SCHEMAS, what="parameters block"))
            continue
        problems += SCHEMAS[name](value, str(name))
    return problems + study_grid_problems(params)


# -------------------------------------------------------------------------------------------- building blocks
def typed(annotation: Any) -> Check:
    """A value of a type annotation (``int``, ``str | None``, ``list[str]``...)."""
    return lambda value, key: type_problems(value, annotation, key)


def choice(options: Iterable[Any], nullable: bool = False) -> Check:
    """One of a fixed set of values; a near miss gets a suggestion."""
    options = tuple(options)

    def check(value: Any, key: str) -> list[Problem]:
        if (value is None and nullable) or any(type(value) is type(o) and value == o for o in options):
            return []
        shown = [str(o) for o in options] + (["null"] if nullable else [])
        close = difflib.get_close_matches(value, shown, n=1) if isinstance(value, str) else []
        hint = f"; did you mean {close[0]}? Expected" if close else "; expected"
        ranked = closest_first(value, shown) if isinstance(value, str) else shown
        return [Problem(key, f"got {describe(value)}{hint} one of: {', '.join(ranked)}")]

    return check


def integer(minimum: int | None = None, nullable: bool = False) -> Check:
    """An integer (never a bool or a float), at least ``minimum``."""
    annotation = int | None if nullable else int

    def check(value: Any, key: str) -> list[Problem]:
        problems = type_problems(value, annotation, key)
        if not problems and value is not None and minimum is not None and value < minimum:
            problems.append(Problem(key, f"got {value!r}; expected an integer >= {minimum}"))
        return problems

    return check


def number(minimum: float | None = None, below: float | None = None) -> Check:
    """A number (an int is one too) in ``[minimum, below)``."""
    bounds = " and ".join([f">= {minimum}"] * (minimum is not None) + [f"< {below}"] * (below is not None))

    def check(value: Any, key: str) -> list[Problem]:
        problems = type_problems(value, float, key)
        if problems:
            return problems
        if (minimum is not None and value < minimum) or (below is not None and value >= below):
            return [Problem(key, f"got {value!r}; expected a number {bounds}")]
        return []

    return check


def size(value: Any, key: str) -> list[Problem]:
    """An image size ``[W, H]`` of two positive integers."""
    if not type_problems(value, tuple[int, int], key) and min(value) >= 1:
        return []
    return [Problem(key, f"got {describe(value)}; expected [width, height], two integers >= 1")]


def device(value: Any, key: str) -> list[Problem]:
    """A training or inference device, as ``EngineConfig`` accepts it."""
    if isinstance(value, str) and (value in DEVICES or value.startswith("cuda:")):
        return []
    return [Problem(key, f"got {describe(value)}; expected one of: {', '.join(DEVICES)}, or cuda:N")]


def list_of(check: Check, nullable: bool = False) -> Check:
    """A list whose every item passes ``check`` (items are named ``key[i]``)."""

    def list_check(value: Any, key: str) -> list[Problem]:
        if value is None and nullable:
            return []
        if not isinstance(value, list | tuple):
            return [Problem(key, f"got {describe(value)}; expected a list")]
        return [p for i, item in enumerate(value) for p in check(item, f"{key}[{i}]")]

    return list_check


def block(schema: Mapping[str, Check], required: Iterable[str] = (), nullable: bool = False) -> Check:
    """A mapping with the keys of ``schema`` (others are unknown keys), each value checked by its entry."""
    required = tuple(required)

    def check(value: Any, key: str) -> list[Problem]:
        if value is None and nullable:
            return []
        if not isinstance(value, Mapping):
            return [Problem(key, f"got {describe(value)}; expected a mapping with keys {', '.join(schema)}")]
        problems = unknown_key_problems(value, schema, key)
        problems += [Problem(join_key(key, name), "missing; add it")
                     for name in required if name not in value]
        for name, item in value.items():
            if name in schema:
                problems += schema[name](item, join_key(key, str(name)))
        return problems

    return check


def mapping_of(check: Check, nullable: bool = False) -> Check:
    """A mapping with free keys whose every value passes ``check``."""

    def mapping_check(value: Any, key: str) -> list[Problem]:
        if value is None and nullable:
            return []
        if not isinstance(value, Mapping):
            return [Problem(key, f"got {describe(value)}; expected a mapping")]
        return [p for name, item in value.items() for p in check(item, join_key(key, str(name)))]

    return mapping_check


def all_of(*checks: Check) -> Check:
    """Every check's problems."""
    return lambda value, key: [p for check in checks for p in check(value, key)]


def built(factory: Callable[[Any], Any], values: Any, key: str) -> list[Problem]:
    """The problems of building a config with the code the node runs, under the mapping's key."""
    try:
        factory(values)
    except ConfigurationError as error:
        return [problem.under(key) for problem in error.problems]
    except (ValueError, TypeError) as error:
        return [Problem(key, str(error))]
    return []


# ----------------------------------------------------------------------------------------- config dataclasses
def engine(value: Any, key: str) -> list[Problem]:
    """``EngineConfig`` fields; ``checkpoint_dir`` belongs to the catalog's ``<namespace>.run`` entry."""
    if not isinstance(value, Mapping):
        return [Problem(key, f"got {describe(value)}; expected a mapping of engine settings")]
    namespace = key.split(".", 1)[0]
    problems = []
    if "checkpoint_dir" in value:
        problems.append(Problem(
            join_key(key, "checkpoint_dir"),
            f"is set by the catalog entry '{namespace}.run' (data/06_models/runs/{namespace}); remove it",
        ))
    # the training node adds the run folder: checked with it, `resume: true` is as valid as it will be there
    settings = {**value, "checkpoint_dir": f"data/06_models/runs/{namespace}"}
    return problems + built(EngineConfig.from_dict, settings, key)


def method_config(method: str) -> Check:
    """The knobs of method ``method`` (``Config.from_dict`` of its module), or null for its defaults."""

    def check(value: Any, key: str) -> list[Problem]:
        if value is not None and not isinstance(value, Mapping):
            return [Problem(key, f"got {describe(value)}; expected a mapping of {method} knobs (or null)")]
        return built(METHODS[method].Config.from_dict, value, key)

    return check


def synthesis_generator(value: Any, key: str) -> list[Problem]:
    """``SynthesisConfig`` fields, nested ones included (counts, appearance, corruption); null: defaults."""
    if value is None:
        return []
    if not isinstance(value, Mapping):
        return [Problem(key, f"got {describe(value)}; expected a mapping of generator settings")]
    values = dict(value)
    cities = values.get("target_cities")
    if isinstance(cities, Mapping):  # from_dict also takes one city as a bare string
        values["target_cities"] = {k: [v] if isinstance(v, str) else v for k, v in cities.items()}
    problems = mapping_problems(SynthesisConfig, values, key, "synthesis generator key")
    return problems or built(SynthesisConfig.from_dict, values, key)


def model_options(value: Any, key: str) -> list[Problem]:
    """A mapping of keyword options; the architecture's own are checked in :func:`model`."""
    if value is None or isinstance(value, Mapping):
        return []
    return [Problem(key, f"got {describe(value)}; expected a mapping of the architecture's options")]


def builder_options(arch: str) -> dict[str, Any] | None:
    """The keyword options (and their types) of architecture ``arch``'s builder; None if it takes any."""
    builder = SEGMENTER_BUILDERS[arch]
    parameters = inspect.signature(builder).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return None
    try:
        hints = typing.get_type_hints(builder)
    except Exception:  # an annotation that does not resolve: check the names only
        hints = {}
    return {name: hints.get(name, Any) for name in parameters if name != "num_classes"}


def architecture_options(value: Mapping[str, Any], key: str) -> list[Problem]:
    """``model.options`` against the builder of ``model.arch``: unknown options and wrong types."""
    arch, options = value.get("arch"), value.get("options")
    if arch not in SEGMENTER_BUILDERS or not isinstance(options, Mapping):
        return []
    known = builder_options(arch)
    if known is None:
        return []
    prefix = join_key(key, "options")
    problems = unknown_key_problems(options, known, prefix, f"{arch} option")
    for name, option in options.items():
        if name in known:
            problems += type_problems(option, known[name], join_key(prefix, str(name)))
    return problems


def model(value: Any, key: str) -> list[Problem]:
    """The segmenter spec every stage shares."""
    problems = MODEL(value, key)
    return problems + (architecture_options(value, key) if isinstance(value, Mapping) else [])


# ------------------------------------------------------------------------------------------------- namespaces
def adaptation(value: Any, key: str) -> list[Problem]:
    """``<namespace>.adaptation``: the method, its knobs (checked once the method is known) and the engine."""
    problems = ADAPTATION(value, key)
    if isinstance(value, Mapping) and value.get("method") in METHODS:
        problems += method_config(value["method"])(value.get("method_config"), join_key(key, "method_config"))
    return problems


def ensemble(name: str) -> Check:
    """``<ensemble>.ensemble``: how the members' outputs are combined, one weight per member."""
    members = ENSEMBLES[name]

    def weights(value: Any, key: str) -> list[Problem]:
        if value is None:
            return []
        problems = type_problems(value, list[float], key)
        if not problems and (len(value) != len(members) or min(value) < 0 or sum(value) <= 0):
            problems.append(Problem(
                key, f"got {value!r}; expected {len(members)} numbers >= 0 with a positive sum, one per "
                f"member ({', '.join(members)})",
            ))
        return problems

    return block({"name": typed(str), "combine": choice(COMBINE), "weights": weights}, required=("name",))


def namespace(inner: str, check: Check) -> Check:
    """A top-level namespace block holding one inner block (``adaptation``, ``training``, ``ensemble``)."""
    return block({inner: check}, required=(inner,))


# -------------------------------------------------------------------------------------------------- the study
def study_grid_problems(params: Mapping[str, Any]) -> list[Problem]:
    """``study.grids``: each entry merged over its namespace's ``method_config`` must build the method's
    ``Config`` (a misspelt knob would otherwise fail hours into a study); ``follows`` names another grid."""
    study = params.get("study")
    grids = study.get("grids") if isinstance(study, Mapping) else None
    if not isinstance(grids, Mapping):
        return []
    problems: list[Problem] = []
    for name, grid in grids.items():
        key = f"study.grids.{name}"
        if name not in TRAINED_NAMESPACES:
            problems.append(unknown_key_problem(str(name), TRAINED_NAMESPACES, "study.grids", "namespace"))
        elif isinstance(grid, Mapping):
            follows = block({"follows": choice([g for g in grids if g != name])}, required=("follows",))
            problems += follows(grid, key)
        elif isinstance(grid, list | tuple) and grid:
            problems += _grid_entry_problems(params, str(name), grid, key)
        else:
            problems.append(Problem(key, f"got {describe(grid)}; expected a non-empty list of "
                                         "method_config changes, or {follows: <namespace>}"))
    return problems


def _grid_entry_problems(params: Mapping[str, Any], name: str, grid: list, key: str) -> list[Problem]:
    """Each grid entry over the namespace's own method_config, built by its method's ``Config``."""
    inner = "training" if name in SUPERVISED_NAMESPACES else "adaptation"
    settings = (params.get(name) or {}).get(inner) if isinstance(params.get(name), Mapping) else None
    if not isinstance(settings, Mapping):
        return []
    method = "source_only" if inner == "training" else settings.get("method")
    base = settings.get("method_config") or {}
    if method not in METHODS or not isinstance(base, Mapping) or method_config(method)(base, key):
        return []  # the namespace's own block is invalid: reported there, not again per grid entry
    problems: list[Problem] = []
    for i, entry in enumerate(grid):
        if not isinstance(entry, Mapping):
            expected = f"expected a mapping of {method} knobs"
            problems.append(Problem(f"{key}[{i}]", f"got {describe(entry)}; {expected}"))
            continue
        problems += method_config(method)({**base, **entry}, f"{key}[{i}]")
    return problems


# ------------------------------------------------------------------------------------------------ the schemas
INGESTION_DOMAIN = block({
    "required_splits": list_of(typed(str)),
    "workers": integer(1, nullable=True),
    "layout": block(
        {
            "list_file": typed(str | None),  # gta5 / synthia: restrict the scan to the listed names
            "splits": list_of(typed(str)),  # cityscapes
            "dev": block(
                {
                    "split_folder": typed(str),
                    "from_train_cities": list_of(typed(str)),
                    "otherwise": block({"cities": list_of(typed(str)), "fraction": number(0.0, below=1.0)}),
                },
                nullable=True,
            ),
        },
        nullable=True,
    ),
})

MODEL = block(
    {
        "arch": choice(SEGMENTER_BUILDERS),
        "num_classes": choice(PROTOCOLS),
        "options": model_options,
        "init_weights": typed(str | None),
    },
    required=("arch", "num_classes"),
)

ADAPTATION = block(
    {
        "name": typed(str),
        "method": choice(METHODS),
        "method_config": lambda value, key: [],  # checked by the method's Config in adaptation()
        "bn_mode": choice(BN_MODES),
        "input_size": block({"source": size, "target": size}, required=("source", "target")),
        "engine": engine,
    },
    required=("name", "method", "bn_mode", "input_size", "engine"),
)

TRAINING = block(
    {
        "name": typed(str),
        "split": typed(str),
        "input_size": size,
        "bn_mode": choice(BN_MODES),
        "engine": engine,
        "method_config": method_config("source_only"),
    },
    required=("name", "split", "input_size", "bn_mode", "engine"),
)

EVALUATION = block(
    {
        "split": typed(str),
        "input_size": size,
        "batch_size": integer(1),
        "device": device,
        "align_corners": typed(bool),
        "protocols": list_of(choice(PROTOCOLS)),
        "export": block({"enabled": typed(bool), "colour": typed(bool)}, nullable=True),
    },
    required=("split", "input_size"),
)

STUDY_NAMESPACE_LIST = list_of(choice(STUDY_NAMESPACES))


def budget_labelled(check: Check) -> Check:
    """``check`` on a study row's method, which may carry a budget label: ``dacs_2000_steps`` is ``dacs`` run
    with ``--adapt-steps 2000`` (``reporting.budgets``)."""

    def inner(value: Any, key: str) -> list[Problem]:
        return check(split_budget(value)[0] if isinstance(value, str) else value, key)

    return inner


STUDY = block(
    {
        "name": typed(str),
        "seeds": list_of(integer(0)),
        "data_seed": integer(0),
        "pretrain_steps": integer(1),
        "adapt_steps": integer(1),
        "precision": choice(PRECISIONS, nullable=True),
        "threads": integer(1),
        "jobs": integer(1, nullable=True),
        "selection": block({"seed": integer(0), "split": typed(str)}, nullable=True),
        "namespaces": STUDY_NAMESPACE_LIST,
        "baselines": STUDY_NAMESPACE_LIST,
        "comparisons": list_of(all_of(typed(tuple[str, str]), list_of(budget_labelled(choice(STUDY_NAMESPACES))))),
        "regimes": mapping_of(
            block(
                {"generator": synthesis_generator, "namespaces": STUDY_NAMESPACE_LIST,
                 "seeds": list_of(integer(0)), "knobs_from": typed(str)},
                nullable=True,
            )
        ),
        "grids": mapping_of(lambda value, key: [], nullable=True),  # checked by study_grid_problems
    },
    required=("name", "seeds", "data_seed", "pretrain_steps", "adapt_steps", "namespaces", "regimes"),
)

RAW_DOMAIN = block({"kind": choice(KNOWN_KINDS), "root": typed(str)})

#: Every top-level parameters block and its check: the one place that says which keys each block has.
def _predict_config(values: Any) -> Any:
    from adaptseg.inference import PredictConfig  # imported when checked: the predict code is not small

    return PredictConfig.from_dict(values)


SCHEMAS: dict[str, Check] = {
    "synthesis": block(
        {
            "preview_pairs": integer(0),
            "source_layout": choice(SOURCE_FOLDERS),
            "generator": synthesis_generator,
        },
        required=("generator",),
    ),
    "ingestion": block({"source": INGESTION_DOMAIN, "target": INGESTION_DOMAIN}),
    "label_remapping": block({"num_classes": choice(PROTOCOLS)}, required=("num_classes",)),
    "model": model,
    "evaluation": EVALUATION,
    "model_selection": block({
        "split": typed(str),
        "entropy_split": typed(str),
        "entropy_images": integer(1),
        "every": integer(1, nullable=True),
    }),
    "reporting": block({
        "title": typed(str),
        "examples": integer(0),
        "published": choice(BENCHMARKS, nullable=True),
        "smoothing": number(0, below=1),
        "dpi": integer(1),
    }),
    "study": STUDY,
    # MLflow: each trained model logged in its child run (log_models) and registered (register_models)
    "tracking": block({"log_models": typed(bool), "register_models": typed(bool)}),
    # predict.input/output/model are read by the catalog (catalog_predict.yml); every key is checked by the
    # dataclass the node builds, so the two never disagree
    "predict": lambda value, key: built(_predict_config, value, key),
    # the raw-data roots: globals.yml gives them to the catalog; `--params "source.root=..."` overrides them
    "source": RAW_DOMAIN,
    "target": RAW_DOMAIN,
    **{name: namespace("training", TRAINING) for name in SUPERVISED_NAMESPACES},
    **{name: namespace("adaptation", adaptation) for name in ADAPTATION_NAMESPACES},
    **{name: namespace("ensemble", ensemble(name)) for name in ENSEMBLES},
}
