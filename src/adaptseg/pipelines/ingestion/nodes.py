"""Ingestion: scan each raw domain in its dataset layout into a validated manifest."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from adaptseg.data.labels import valid_label_ids
from adaptseg.data.layouts import scan_layout
from adaptseg.data.validation import validate_scan
from adaptseg.io.raw_domain import RawDomain

logger = logging.getLogger(__name__)


def _ingest(raw: RawDomain, options: dict[str, Any], domain: str) -> pd.DataFrame:
    scan = scan_layout(raw.kind, raw.root, options.get("layout", {}))
    for note in scan.notes:
        logger.warning("%s: %s", domain, note)
    manifest = validate_scan(
        scan,
        domain=domain,
        kind=raw.kind,
        root=str(raw.root),
        valid_label_ids=valid_label_ids(raw.kind),
        required_splits=options.get("required_splits", ["train"]),
        workers=options.get("workers"),
    )
    counts = manifest.groupby("split").size().to_dict()
    logger.info("%s (%s at %s): %s samples per split", domain, raw.kind, raw.root, counts)
    return manifest


def ingest_source(raw: RawDomain, options: dict[str, Any]) -> pd.DataFrame:
    """Manifest of the labelled source domain (one row per sample); raises listing every bad file."""
    return _ingest(raw, options, "source")


def ingest_target(raw: RawDomain, options: dict[str, Any]) -> pd.DataFrame:
    """Manifest of the target domain (train, val, dev); raises listing every bad file."""
    return _ingest(raw, options, "target")


def summarise_manifests(source: pd.DataFrame, target: pd.DataFrame) -> dict[str, Any]:
    """Counts and image sizes per domain and split, for the report and Kedro-Viz's JSON preview."""
    summary: dict[str, Any] = {}
    for manifest in (source, target):
        for (domain, split), rows in manifest.groupby(["domain", "split"]):
            sizes = rows.groupby(["width", "height"]).size()
            summary.setdefault(domain, {"kind": rows["kind"].iloc[0], "splits": {}})["splits"][split] = {
                "samples": len(rows),
                "sizes": {f"{w}x{h}": int(n) for (w, h), n in sizes.items()},
            }
    return summary
