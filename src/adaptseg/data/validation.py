"""Validation of a scanned dataset: every file decodes, partners agree in size, label ids are known.

All problems are collected and raised together in one :class:`DatasetValidationError` that names each
offending file and the reason, so a user fixes a broken copy in one pass rather than one file per run.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from adaptseg.data.layouts import MANIFEST_COLUMNS, Problem, ScanResult
from adaptseg.data.png16 import png_bit_depth
from adaptseg.data.remap import read_label_ids

#: Image modes that convert to 8-bit RGB without losing or clipping values.
IMAGE_MODES = ("RGB", "RGBA", "RGBX", "L", "LA", "P", "PA", "CMYK", "YCbCr")


class DatasetValidationError(ValueError):
    """A dataset failed validation; the message lists every problem."""

    def __init__(self, domain: str, root: str, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        lines = [f"{len(self.problems)} problem(s) in the {domain} dataset at {root}:"]
        lines += [f"  - {p.path}: {p.reason}" for p in self.problems]
        super().__init__("\n".join(lines))


def _inspect_pair(row: dict[str, Any], valid_ids: np.ndarray) -> tuple[dict[str, Any], list[Problem]]:
    """Decode an image/label pair fully (truncation shows only on decode) and check sizes and ids."""
    problems: list[Problem] = []
    sizes = {}
    label = None
    for key in ("image_path", "label_path"):
        path = row[key]
        try:
            if key == "label_path" and png_bit_depth(path) == 16:  # SYNTHIA: ids in channel 0 of 16 bits
                label = read_label_ids(path)
                sizes[key] = (label.shape[1], label.shape[0])
                continue
            with Image.open(path) as im:
                im.load()
                sizes[key] = im.size
                if key == "label_path":
                    label = np.asarray(im)
                elif im.mode not in IMAGE_MODES:
                    problems.append(Problem(path, f"image mode {im.mode!r} is not 8 bits per channel (the network "
                                                  "reads 8-bit RGB; a 16-bit image would arrive as near white): "
                                                  "convert it to 8-bit RGB"))
        except Exception as exc:  # PIL raises many types for broken files
            problems.append(Problem(path, f"unreadable or truncated PNG ({type(exc).__name__}: {exc})"))
    if len(sizes) == 2 and sizes["image_path"] != sizes["label_path"]:
        (iw, ih), (lw, lh) = sizes["image_path"], sizes["label_path"]
        problems.append(Problem(row["label_path"], f"label is {lw}×{lh} but its image is {iw}×{ih}"))
    if label is not None:
        if label.ndim != 2:
            problems.append(Problem(row["label_path"], f"label must be single-channel, has shape {label.shape}"))
        else:
            counts = np.bincount(label.ravel(), minlength=256) if label.dtype == np.uint8 else None
            present = np.flatnonzero(counts) if counts is not None else np.unique(label)
            unknown = sorted(int(v) for v in present if not (0 <= v < valid_ids.size and valid_ids[v]))
            unknown = unknown[:20] + ([f"... {len(unknown) - 20} more"] if len(unknown) > 20 else [])
            if unknown:
                problems.append(Problem(row["label_path"], f"label ids outside the dataset's id table: {unknown}"))
    width, height = sizes.get("image_path", (None, None))
    return {**row, "width": width, "height": height}, problems


def validate_scan(
    scan: ScanResult,
    *,
    domain: str,
    kind: str,
    root: str,
    valid_label_ids: Iterable[int],
    required_splits: Sequence[str],
    workers: int | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Decode and check every scanned pair; return the manifest or raise with every problem found.

    The manifest has one row per sample with the columns of :data:`MANIFEST_COLUMNS`.
    """
    valid = np.zeros(256, dtype=bool)
    valid[[i for i in valid_label_ids if 0 <= i < 256]] = True
    problems = list(scan.problems)
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:  # PIL decodes without the GIL
        results = list(
            tqdm(
                pool.map(lambda r: _inspect_pair(r, valid), scan.rows),
                total=len(scan.rows),
                desc=f"validating {domain}",
                disable=not progress,
            )
        )
    rows = []
    for row, row_problems in results:
        problems += row_problems
        rows.append({"domain": domain, "kind": kind, **row})
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    for split in required_splits:
        if not (manifest["split"] == split).any():
            problems.append(Problem(str(Path(root)), f"split {split!r} is empty"))
    if problems:
        raise DatasetValidationError(domain, root, problems)
    manifest["width"] = manifest["width"].astype(int)
    manifest["height"] = manifest["height"].astype(int)
    return manifest.sort_values(["split", "sample_id"], kind="stable").reset_index(drop=True)
