"""Scanners that turn a dataset root in its official folder layout into manifest rows.

A scanner never raises on a bad file: it returns every row it could pair and a list of problems
(missing partners, unknown layout), so that validation can report all offending files at once.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANIFEST_COLUMNS = ["domain", "kind", "split", "sample_id", "image_path", "label_path", "width", "height"]

CITYSCAPES_IMAGE_SUFFIX = "_leftImg8bit.png"
CITYSCAPES_LABEL_SUFFIX = "_gtFine_labelIds.png"


@dataclass(frozen=True)
class Problem:
    """One offending file and what is wrong with it."""

    path: str
    reason: str


@dataclass
class ScanResult:
    """Rows paired by a scanner (without sizes yet), the problems it met, and what it decided (to log)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _scan_pairs(images: Path, labels: Path, options: dict[str, Any], layout: str) -> ScanResult:
    """``images/<name>.png`` paired with ``labels/<name>.png`` by name, all in one ``train`` split.

    ``options["list_file"]`` (optional): a text file of names (``00001.png`` per line, as
    ``gta5_list/train.txt``) restricting the scan.
    """
    result = ScanResult()
    for folder in (images, labels):
        if not folder.is_dir():
            result.problems.append(Problem(str(folder), f"folder missing ({layout})"))
    if result.problems:
        return result
    image_names = {p.name for p in images.glob("*.png")}
    label_names = {p.name for p in labels.glob("*.png")}
    wanted = _read_list(options.get("list_file"))
    if wanted is not None:
        image_names &= wanted
        label_names &= wanted
        for name in sorted(wanted - (image_names | label_names)):
            result.problems.append(Problem(str(images / name), "listed but neither image nor label exists"))
    for name in sorted(label_names - image_names):
        result.problems.append(Problem(str(labels / name), "label has no image partner"))
    for name in sorted(image_names - label_names):
        result.problems.append(Problem(str(images / name), "image has no label partner"))
    for name in sorted(image_names & label_names):
        result.rows.append(
            {"split": "train", "sample_id": Path(name).stem, "image_path": str(images / name), "label_path": str(labels / name)}
        )
    return result


def scan_gta5(root: Path, options: dict[str, Any]) -> ScanResult:
    """GTA5: ``images/<name>.png`` paired with ``labels/<name>.png`` (paletted, Cityscapes label ids)."""
    return _scan_pairs(root / "images", root / "labels", options, "GTA5 layout needs images/ and labels/")


def scan_cityscapes(root: Path, options: dict[str, Any]) -> ScanResult:
    """Cityscapes: ``leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png`` with ``gtFine/.../<stem>_gtFine_labelIds.png``.

    Options: ``splits`` (default ``[train, val]``) and ``dev``, which says where the labelled
    model-selection split comes from: ``{split_folder: dev}`` (its own folder, as the synthetic data
    writes it) or ``{from_train_cities: [ulm, zurich]}`` (a fixed set of train cities carved out of
    ``train``, for real Cityscapes). ``{split_folder: dev, otherwise: {...}}`` uses the folder when the root
    has one and otherwise carves train cities (``carve_dev_cities``), so a root with ``train`` and ``val``
    only, as Cityscapes ships, ingests too. Without ``dev`` there is no dev split.
    """
    result = ScanResult()
    splits = list(options.get("splits", ["train", "val"]))
    dev = dict(options.get("dev") or {})
    if "split_folder" in dev and "otherwise" in dev and not (root / "leftImg8bit" / str(dev["split_folder"])).is_dir():
        cities = carve_dev_cities(root, dev["otherwise"])
        result.notes.append(
            f"{root} has no {dev['split_folder']!r} split folder: the labelled dev split is carved out of train, "
            f"whole cities {cities} (parameters ingestion.target.layout.dev.otherwise)"
        )
        dev = {"from_train_cities": cities}
    if "split_folder" in dev:
        splits.append(str(dev["split_folder"]))
    carved = set(dev.get("from_train_cities", []))
    for split in splits:
        image_dir, label_dir = root / "leftImg8bit" / split, root / "gtFine" / split
        if not image_dir.is_dir():
            result.problems.append(Problem(str(image_dir), f"split folder missing for split {split!r}"))
            continue
        split_name = "dev" if split == dev.get("split_folder") else split
        image_stems = {
            p.relative_to(image_dir).as_posix()[: -len(CITYSCAPES_IMAGE_SUFFIX)]: p
            for p in image_dir.glob(f"*/*{CITYSCAPES_IMAGE_SUFFIX}")
        }
        label_stems = {
            p.relative_to(label_dir).as_posix()[: -len(CITYSCAPES_LABEL_SUFFIX)]: p
            for p in label_dir.glob(f"*/*{CITYSCAPES_LABEL_SUFFIX}")
        } if label_dir.is_dir() else {}
        for stem in sorted(set(label_stems) - set(image_stems)):
            result.problems.append(Problem(str(label_stems[stem]), "label has no image partner"))
        for stem in sorted(image_stems):
            if stem not in label_stems:
                result.problems.append(Problem(str(image_stems[stem]), "image has no label partner"))
                continue
            city = stem.split("/", 1)[0]
            row_split = "dev" if split == "train" and city in carved else split_name
            result.rows.append(
                {
                    "split": row_split,
                    "sample_id": Path(stem).name,
                    "image_path": str(image_stems[stem]),
                    "label_path": str(label_stems[stem]),
                }
            )
    _name_duplicates(result)
    missing_cities = carved - {Path(r["image_path"]).parent.name for r in result.rows if r["split"] == "dev"}
    for city in sorted(missing_cities):
        result.problems.append(Problem(str(root / "leftImg8bit" / "train" / city), "dev city has no images"))
    return result


def carve_dev_cities(root: Path, rule: dict[str, Any]) -> list[str]:
    """Whole train cities for a dev split, deterministically: ``cities`` (e.g. Cityscapes' ulm and zurich) where
    the root has them, else the train cities taken in reverse alphabetical order until they hold at least
    ``fraction`` of the train images. Whole cities, so dev never shares a street with train."""
    train = root / "leftImg8bit" / "train"
    counts = {
        folder.name: sum(1 for _ in folder.glob(f"*{CITYSCAPES_IMAGE_SUFFIX}"))
        for folder in sorted(train.iterdir()) if folder.is_dir()
    } if train.is_dir() else {}
    named = [city for city in rule.get("cities", []) if counts.get(city)]
    if named:
        return named
    total, chosen = sum(counts.values()), []
    for city in sorted(counts, reverse=True):
        if len(chosen) == len(counts) - 1 or sum(counts[c] for c in chosen) >= float(rule.get("fraction", 0.07)) * total:
            break
        chosen.append(city)
    return sorted(chosen)


def _name_duplicates(result: ScanResult) -> None:
    """A sample id twice in one split (a file copied into another city): its labels would collide, and one
    image would be scored against the other's label. Both rows go, each named as a problem."""
    seen: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in result.rows:
        seen.setdefault((row["split"], row["sample_id"]), []).append(row)
    for (split, sample_id), rows in seen.items():
        if len(rows) > 1:
            others = ", ".join(r["image_path"] for r in rows)
            for row in rows:
                result.problems.append(Problem(row["image_path"], f"sample id {sample_id!r} occurs {len(rows)} times "
                                                                  f"in split {split!r}: {others}"))
    duplicated = {key for key, rows in seen.items() if len(rows) > 1}
    result.rows = [r for r in result.rows if (r["split"], r["sample_id"]) not in duplicated]


def scan_synthia(root: Path, options: dict[str, Any]) -> ScanResult:
    """SYNTHIA-RAND-CITYSCAPES: ``RGB/<name>.png`` paired with ``GT/LABELS/<name>.png``, one ``train`` split.

    The labels are 16-bit multi-channel PNGs with the SYNTHIA class id in channel 0 (``data.png16``).
    """
    return _scan_pairs(root / "RGB", root / "GT" / "LABELS", options, "SYNTHIA layout needs RGB/ and GT/LABELS/")


SCANNERS: dict[str, Callable[[Path, dict[str, Any]], ScanResult]] = {
    "gta5": scan_gta5,
    "cityscapes": scan_cityscapes,
    "synthia": scan_synthia,
}


def scan_layout(kind: str, root: Path, options: dict[str, Any] | None = None) -> ScanResult:
    """Scan ``root`` with the scanner of dataset ``kind``; a missing root is reported as a problem."""
    if kind not in SCANNERS:
        raise ValueError(f"Unknown dataset kind {kind!r}; choose one of {sorted(SCANNERS)}.")
    root = Path(root)
    if not root.is_dir():
        return ScanResult(problems=[Problem(str(root), "dataset root does not exist")])
    return SCANNERS[kind](root, dict(options or {}))


def _read_list(list_file: str | None) -> set[str] | None:
    if not list_file:
        return None
    path = Path(list_file)
    if not path.is_file():
        raise FileNotFoundError(f"Sample list file {path} does not exist.")
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


def files_digest(*manifests: Any, columns: tuple[str, ...] = ("image_path", "label_path")) -> str:
    """A short fingerprint of the files manifests point at: paths, sizes and modification times.

    Cheap (one ``stat`` per file, no reading), and it changes when the data is regenerated or replaced, which
    is what a resumed run or a snapshot must not silently straddle. A missing file counts as such.
    """
    digest = hashlib.blake2b(digest_size=8)
    for manifest in manifests:
        for column in columns:
            if column not in manifest:
                continue
            for path in manifest[column].dropna():
                try:
                    stat = os.stat(path)
                    digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
                except OSError:
                    digest.update(f"{path}|missing\n".encode())
    return digest.hexdigest()


def labels_digest(manifest: Any, num_classes: int) -> str:
    """The fingerprint train-id labels carry: the label files they were remapped from, and the protocol."""
    return f"{num_classes}-{files_digest(manifest, columns=('label_path',))}"


class StaleDataError(ValueError):
    """Derived data (train-id labels) was made from other source files than those the manifest lists now."""
