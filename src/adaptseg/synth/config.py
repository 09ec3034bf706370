"""`SynthesisConfig`: everything the generator needs, validated, with the project's defaults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from adaptseg.config import from_mapping, reject_unknown_keys

from .appearance import AppearanceStrengths
from .corruptions import CORRUPTIONS, SEVERITIES
from .layout import LAYOUT_SHIFTS

TARGET_SPLITS = ("train", "val", "dev")

#: Real Cityscapes city names. Train and val follow the real splits; dev takes three real train cities
#: that the synthetic train split leaves out, so the three splits never share a city.
DEFAULT_CITIES: dict[str, tuple[str, ...]] = {
    "train": (
        "aachen", "bochum", "bremen", "cologne", "darmstadt", "dusseldorf", "erfurt", "hamburg", "hanover",
        "jena", "krefeld", "monchengladbach", "strasbourg", "stuttgart", "tubingen",
    ),
    "val": ("frankfurt", "lindau", "munster"),
    "dev": ("weimar", "zurich", "ulm"),
}


def _size(name: str, value: Any) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a (width, height) pair of integers, got {value!r}.") from exc
    if w < 32 or h < 16 or (w, h) != tuple(value):
        raise ValueError(f"{name} must be integers of at least (32, 16), got {value!r}.")
    return w, h


@dataclass(frozen=True)
class SynthesisCounts:
    """How many images each split gets."""

    source: int = 500
    train: int = 500
    val: int = 150
    dev: int = 100

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"counts.{f.name} must be an integer >= 0, got {value!r}.")

    @classmethod
    def from_dict(cls, data: dict) -> SynthesisCounts:
        return from_mapping(cls, data, "counts")


@dataclass(frozen=True)
class TargetCorruption:
    """A corruption of every target image (``corruptions.CORRUPTIONS``): a shift of another kind than the
    appearance shift, at a severity from 1 (mild) to 5 (strong)."""

    kind: str
    severity: int

    def __post_init__(self):
        if not isinstance(self.kind, str) or self.kind not in CORRUPTIONS:
            raise ValueError(f"corruption.kind must be one of {list(CORRUPTIONS)}, got {self.kind!r}.")
        integer = isinstance(self.severity, int) and not isinstance(self.severity, bool)
        if not integer or self.severity not in SEVERITIES:
            raise ValueError(
                f"corruption.severity must be an integer in {list(SEVERITIES)}, got {self.severity!r}."
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TargetCorruption:
        """From ``{kind: ..., severity: ...}``; an unknown or a missing key is an error that names it."""
        known = {f.name for f in fields(cls)}
        reject_unknown_keys("corruption", data, known)
        missing = sorted(known - set(data))
        if missing:
            raise ValueError(f"corruption is missing key(s) {missing}; it needs {sorted(known)}.")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "severity": self.severity}


@dataclass(frozen=True)
class SynthesisConfig:
    """Parameters of the procedural GTA5-like → Cityscapes-like benchmark.

    ``seed`` fixes everything: each sample's random stream is derived from (seed, domain, split, index), so
    changing a count or a size never changes the other samples' layouts. ``layout_shift`` (none, mild,
    strong) sets how far the target's layout statistics depart from the source's; ``appearance`` holds the
    target's appearance-shift strengths (0: looks like the source). ``corruption`` (none by default) corrupts
    every target image on top, with a shift of another kind (fog, noise, blur, ...; ``TargetCorruption``).
    """

    seed: int = 0
    # (width, height). The source camera matches the target's, so that a shared layout is shared in pixels too:
    # a 16:9 source beside a 2:1 target differs in field of view and object scale, which the discriminator
    # sees however good the predictions are (docs/study/investigation.md). Real GTA5 keeps its own sizes.
    source_size: tuple[int, int] = (256, 128)
    target_size: tuple[int, int] = (256, 128)  # 2:1 like Cityscapes' 2048×1024 → 1024×512
    counts: SynthesisCounts = field(default_factory=SynthesisCounts)
    layout_shift: str = "none"
    appearance: AppearanceStrengths = field(default_factory=AppearanceStrengths)
    target_cities: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_CITIES))
    corruption: TargetCorruption | None = None

    def __post_init__(self):
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}.")
        object.__setattr__(self, "source_size", _size("source_size", self.source_size))
        object.__setattr__(self, "target_size", _size("target_size", self.target_size))
        if self.layout_shift not in LAYOUT_SHIFTS:
            raise ValueError(f"layout_shift must be one of {list(LAYOUT_SHIFTS)}, got {self.layout_shift!r}.")
        if not isinstance(self.counts, SynthesisCounts):
            raise ValueError("counts must be a SynthesisCounts (use SynthesisConfig.from_dict for plain dicts).")
        if not isinstance(self.appearance, AppearanceStrengths):
            raise ValueError("appearance must be an AppearanceStrengths (use SynthesisConfig.from_dict).")
        if self.corruption is not None and not isinstance(self.corruption, TargetCorruption):
            raise ValueError(
                "corruption must be None or a TargetCorruption (use SynthesisConfig.from_dict for a mapping "
                f"{{kind, severity}}), got {self.corruption!r}."
            )
        cities = dict(DEFAULT_CITIES)
        reject_unknown_keys("target_cities", self.target_cities, set(TARGET_SPLITS))
        for split, names in self.target_cities.items():
            if isinstance(names, str):
                names = (names,)
            names = tuple(names)
            if not names or any(not isinstance(n, str) or not n.isidentifier() or n != n.lower() for n in names):
                raise ValueError(
                    f"target_cities.{split} must be a non-empty list of lower-case city names, got {names!r}."
                )
            if len(set(names)) != len(names):
                raise ValueError(f"target_cities.{split} repeats a city: {names!r}.")
            cities[split] = names
        object.__setattr__(self, "target_cities", cities)

    @classmethod
    def from_dict(cls, data: dict | None) -> SynthesisConfig:
        """Build from plain (YAML) values; unknown keys are an error that names them."""
        data = dict(data or {})
        reject_unknown_keys("synthesis config", data, {f.name for f in fields(cls)})
        if "counts" in data and isinstance(data["counts"], dict):
            data["counts"] = SynthesisCounts.from_dict(data["counts"])
        if "appearance" in data and isinstance(data["appearance"], dict):
            data["appearance"] = AppearanceStrengths.from_dict(data["appearance"])
        if "target_cities" in data and data["target_cities"] is not None:
            data["target_cities"] = dict(data["target_cities"])
        if isinstance(data.get("corruption"), Mapping):
            data["corruption"] = TargetCorruption.from_dict(data["corruption"])
        elif data.get("corruption") is not None and not isinstance(data["corruption"], TargetCorruption):
            raise ValueError(
                f"corruption must be a mapping {{kind, severity}} or null, got {data['corruption']!r}; "
                f"kinds: {list(CORRUPTIONS)}, severities: {list(SEVERITIES)}."
            )
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (for logging as parameters); ``from_dict(to_dict())`` gives an equal config."""
        return {
            "seed": self.seed,
            "source_size": list(self.source_size),
            "target_size": list(self.target_size),
            "counts": {f.name: getattr(self.counts, f.name) for f in fields(self.counts)},
            "layout_shift": self.layout_shift,
            "appearance": self.appearance.to_dict(),
            "target_cities": {k: list(v) for k, v in self.target_cities.items()},
            # absent when None: data versions hashed from configurations without one stay what they were
            **({} if self.corruption is None else {"corruption": self.corruption.to_dict()}),
        }

    def count(self, split: str) -> int:
        return getattr(self.counts, split)
