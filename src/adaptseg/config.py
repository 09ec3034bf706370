"""Strict construction of config dataclasses from YAML mappings: a misspelt key is an error, not a default."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def reject_unknown_keys(what: str, values: Mapping[str, Any], known: set[str]) -> None:
    """Raise a ``ValueError`` naming every key of ``values`` that ``known`` lacks."""
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"Unknown {what} key(s) {unknown}; known: {sorted(known)}.")


def from_mapping(cls: type[T], values: Mapping[str, Any] | None, what: str) -> T:
    """``cls(**values)`` for a dataclass, after checking that every key is one of its fields."""
    values = dict(values or {})
    reject_unknown_keys(what, values, {f.name for f in fields(cls)})
    return cls(**values)
