"""Strict construction of config dataclasses from YAML mappings: a misspelt key or a wrongly typed value is an
error that names it, not a silent default or a traceback from deep inside training.

Every value is checked against its dataclass field's annotation before the dataclass is built (its
``__post_init__`` then checks ranges). Problems are collected, not raised one at a time: a
:class:`ConfigurationError` lists every one, each under its full dotted key, so that one run of
``kedro run`` shows everything to fix.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import numbers
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypeVar

T = TypeVar("T")


# --------------------------------------------------------------------------------------------- problems
@dataclass(frozen=True)
class Problem:
    """One configuration problem: the full dotted key it is about and what is wrong there."""

    key: str
    message: str

    def under(self, prefix: str) -> Problem:
        """The same problem seen from a mapping that holds this one under ``prefix``."""
        return Problem(join_key(prefix, self.key), self.message)

    def __str__(self) -> str:
        return f"{self.key}: {self.message}" if self.key else self.message


class ConfigurationError(ValueError):
    """Every problem found in a configuration, raised once: each line names a dotted key and what to do."""

    def __init__(self, problems: Iterable[Problem], heading: str = "Invalid configuration") -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.heading = heading
        count = len(self.problems)
        lines = [f"{heading} ({count} problem{'s' if count != 1 else ''}):"]
        lines += [f"  - {problem}" for problem in self.problems]
        super().__init__("\n".join(lines))


def join_key(prefix: str, key: str) -> str:
    """``prefix.key`` (either may be empty), the way parameters are addressed on the command line."""
    return ".".join(part for part in (prefix, key) if part)


def describe(value: Any) -> str:
    """A value as the user wrote it, with its type: ``'abc' (str)``; None is YAML's ``null``."""
    if value is None:
        return "null"
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return f"{shown} ({type(value).__name__})"


def closest_first(key: str, known: Iterable[str]) -> list[str]:
    """``known`` with the keys similar to ``key`` first (likeliest first), then the others alphabetically."""
    known = sorted(str(k) for k in known)
    close = difflib.get_close_matches(str(key), known, n=len(known))
    return close + [k for k in known if k not in close]


def unknown_key_problem(key: str, known: Iterable[str], prefix: str = "", what: str = "key") -> Problem:
    """An unknown ``key``: a suggestion when one is close, and the known keys, closest first."""
    ranked = closest_first(key, known)
    close = difflib.get_close_matches(key, ranked, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return Problem(join_key(prefix, key), f"unknown {what}{hint}; known: {', '.join(ranked)}")


def unknown_key_problems(
    values: Mapping[str, Any], known: Iterable[str], prefix: str = "", what: str = "key"
) -> list[Problem]:
    """One problem per key of ``values`` that ``known`` lacks."""
    known = set(known)
    return [unknown_key_problem(str(k), known, prefix, what) for k in values if k not in known]


def reject_unknown_keys(what: str, values: Mapping[str, Any], known: set[str]) -> None:
    """Raise a :class:`ConfigurationError` naming every key of ``values`` that ``known`` lacks."""
    problems = unknown_key_problems(values, known, what=f"{what} key")
    if problems:
        unknown = sorted(str(k) for k in values if k not in known)
        raise ConfigurationError(problems, f"Unknown {what} key(s) {unknown}")


# --------------------------------------------------------------------------------------------- types
@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    """A dataclass's field annotations as types (strings under ``from __future__ import annotations``)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, Any) for f in fields(cls)}


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    """A float field takes ints too (YAML writes ``lr: 1`` as an int)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_sequence(value: Any) -> bool:
    """YAML gives lists where the dataclass says tuple: both are accepted."""
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def expected(annotation: Any) -> str:
    """What a value of ``annotation`` looks like, in the words of a YAML file."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return "any value"
    if annotation is type(None) or annotation is None:
        return "null"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(expected(arg) for arg in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(arg) for arg in args)
    simple = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if annotation in simple:
        return simple[annotation]
    if origin in (tuple, list) or annotation in (tuple, list):
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_plural(args[0])}"
        if origin is tuple and args:
            if len(set(args)) == 1:
                return f"a list of {len(args)} {_plural(args[0])}"
            return f"a list of {len(args)} values ({', '.join(expected(a) for a in args)})"
        return f"a list of {_plural(args[0])}" if args else "a list"
    if origin in (dict, Mapping) or annotation in (dict, Mapping):
        return f"a mapping of {_plural(args[1])}" if len(args) == 2 and args[1] is not Any else "a mapping"
    if dataclasses.is_dataclass(annotation):
        return f"a mapping of {annotation.__name__} fields"
    return getattr(annotation, "__name__", str(annotation))


def _plural(annotation: Any) -> str:
    plurals = {bool: "booleans", int: "integers", float: "numbers", str: "strings"}
    return plurals.get(annotation, expected(annotation))


def type_problems(value: Any, annotation: Any, key: str) -> list[Problem]:
    """Problems of ``value`` against a type annotation (empty when it fits); nested dataclasses are checked
    field by field, so their problems carry their own keys."""
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        if isinstance(value, annotation):
            return []
        if isinstance(value, Mapping):
            return mapping_problems(annotation, value, key)
    elif typing.get_origin(annotation) in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if any(matches(value, option) for option in options):
            return []
        nested = [o for o in options if dataclasses.is_dataclass(o) and isinstance(value, Mapping)]
        if nested:
            return mapping_problems(nested[0], value, key)
    elif matches(value, annotation):
        return []
    return [Problem(key, f"got {describe(value)}; expected {expected(annotation)}")]


def matches(value: Any, annotation: Any) -> bool:
    """Whether ``value`` is a valid YAML value of ``annotation`` (bools are never numbers)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return True
    if annotation is type(None) or annotation is None:
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, arg) for arg in args)
    if origin is typing.Literal:
        return value in args
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return _is_int(value)
    if annotation is float:
        return _is_number(value)
    if annotation is str:
        return isinstance(value, str)
    if origin is tuple or annotation is tuple:
        return _is_sequence(value) and _tuple_matches(value, args)
    if origin in (list, Sequence) or annotation is list:
        return _is_sequence(value) and (not args or all(matches(v, args[0]) for v in value))
    if origin in (dict, Mapping) or annotation in (dict, Mapping):
        if not isinstance(value, Mapping):
            return False
        key_type, value_type = args if len(args) == 2 else (Any, Any)
        return all(matches(k, key_type) and matches(v, value_type) for k, v in value.items())
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        return isinstance(value, annotation) or (
            isinstance(value, Mapping) and not mapping_problems(annotation, value, "")
        )
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True  # an annotation this checker does not know: the dataclass's own checks decide


def _tuple_matches(value: Sequence, args: tuple) -> bool:
    if not args:
        return True
    if len(args) == 2 and args[1] is Ellipsis:
        return all(matches(v, args[0]) for v in value)
    return len(value) == len(args) and all(matches(v, a) for v, a in zip(value, args, strict=True))


def mapping_problems(
    cls: type, values: Mapping[str, Any] | None, prefix: str = "", what: str = "key"
) -> list[Problem]:
    """Every unknown key and every wrongly typed value of ``values`` for dataclass ``cls``, under ``prefix``.

    A field whose value is a mapping and whose type a dataclass is checked field by field."""
    if values is None:
        return []
    if not isinstance(values, Mapping):
        return [Problem(prefix, f"got {describe(values)}; expected a mapping of {cls.__name__} fields")]
    hints = field_types(cls)
    problems = unknown_key_problems(values, hints, prefix, what)
    for name, value in values.items():
        if name in hints:
            problems += type_problems(value, hints[name], join_key(prefix, name))
    return problems


def from_mapping(cls: type[T], values: Mapping[str, Any] | None, what: str, prefix: str = "") -> T:
    """``cls(**values)`` for a dataclass, after checking every key is a field and every value fits its type.

    ``what`` names the kind of setting in the message ("engine parameter"); ``prefix`` is where the mapping
    sits in the parameters (``source_only.adaptation.engine``), so that each problem names its full key.
    """
    if values is not None and not isinstance(values, Mapping):
        problem = Problem(prefix, f"got {describe(values)}; expected a mapping")
        raise ConfigurationError([problem], f"Invalid {what}s")
    values = dict(values or {})
    problems = mapping_problems(cls, values, prefix, f"{what} key")
    if problems:
        unknown = sorted(str(k) for k in values if k not in field_types(cls))
        only_unknown = bool(unknown) and len(unknown) == len(problems)
        heading = f"Unknown {what} key(s) {unknown}" if only_unknown else f"Invalid {what}s"
        raise ConfigurationError(problems, heading)
    return cls(**values)
