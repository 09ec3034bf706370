"""Label remapping: label ids → train ids of a class protocol, plus class-frequency tables."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from adaptseg.data.labels import protocol_class_names, protocol_palette  # noqa: E402
from adaptseg.data.layouts import labels_digest  # noqa: E402
from adaptseg.data.remap import class_pixel_counts, lookup_table, remap_label_file  # noqa: E402
from adaptseg.io.folder import Derived  # noqa: E402

logger = logging.getLogger(__name__)


def remap_labels(manifest: pd.DataFrame, options: dict[str, Any]) -> dict[str, Callable[[], np.ndarray]]:
    """Lazy ``{"<split>/<sample_id>": loader}`` of uint8 train-id maps (255 = ignore), one per sample, with the
    fingerprint of the label files and protocol they come from (``labels_digest``), which the folder keeps.

    The table is the manifest's dataset kind's (SYNTHIA has ids of its own). Loaders run while the catalog
    writes the folder, so memory holds one label at a time.
    """
    kinds = sorted(set(manifest["kind"])) if "kind" in manifest else ["cityscapes"]
    if len(kinds) != 1:
        raise ValueError(f"A manifest mixes dataset kinds {kinds}; remap each domain's manifest on its own.")
    lut = lookup_table(int(options["num_classes"]), kinds[0])
    loaders = {
        f"{row.split}/{row.sample_id}": (lambda path=row.label_path: remap_label_file(path, lut))
        for row in manifest.itertuples()
    }
    return Derived(loaders, made_from=labels_digest(manifest, int(options["num_classes"])))


def count_class_pixels(train_ids: Mapping[str, Callable[[], np.ndarray]], options: dict[str, Any]) -> pd.DataFrame:
    """Pixels of each class in each label map: one row per ``"<split>/<sample_id>"`` (``key``), one column per
    class of the protocol and ``ignored``, and ``made_from``, the fingerprint of the labels counted.

    Every label is read once, here: the class-frequency table sums these rows, and rare-class sampling draws
    from them instead of reading every label again in each training run (GTA5's 24966 maps take minutes).
    """
    num_classes = int(options["num_classes"])
    names = [*protocol_class_names(num_classes), "ignored"]
    keys = sorted(train_ids)
    counts = np.stack([class_pixel_counts(np.asarray(train_ids[key]()), num_classes) for key in keys]) if keys else (
        np.zeros((0, len(names)), dtype=np.int64)
    )
    table = pd.DataFrame(counts, columns=names)
    table.insert(0, "key", keys)
    table.insert(1, "made_from", getattr(train_ids, "made_from", None))
    return table


def count_class_frequencies(
    source_class_pixels: pd.DataFrame, target_class_pixels: pd.DataFrame, options: dict[str, Any]
) -> pd.DataFrame:
    """Pixels and fractions per class, domain and split (the last class row counts ignored pixels), summed
    from the per-image tables of ``count_class_pixels``."""
    names = [*protocol_class_names(int(options["num_classes"])), "ignored"]
    records = []
    for domain, table in (("source", source_class_pixels), ("target", target_class_pixels)):
        totals = table[names].groupby(table["key"].str.split("/", n=1).str[0]).sum()
        for split, counts in totals.iterrows():
            valid = counts[names[:-1]].sum()
            for name, count in counts.items():
                records.append(
                    {
                        "domain": domain,
                        "split": split,
                        "class": name,
                        "pixels": int(count),
                        "fraction": float(count / valid) if name != "ignored" and valid else np.nan,
                    }
                )
    return pd.DataFrame.from_records(records)


def plot_class_frequencies(table: pd.DataFrame, options: dict[str, Any]) -> plt.Figure:
    """Bar chart of class fractions (log scale) for source train and each target split."""
    num_classes = int(options["num_classes"])
    names = list(protocol_class_names(num_classes))
    rows = table[table["class"] != "ignored"]
    groups = [(d, s) for d, s in rows[["domain", "split"]].drop_duplicates().itertuples(index=False)]
    fig, ax = plt.subplots(figsize=(12, 4.5))
    width = 0.8 / max(len(groups), 1)
    x = np.arange(len(names))
    for i, (domain, split) in enumerate(groups):
        part = rows[(rows["domain"] == domain) & (rows["split"] == split)].set_index("class").reindex(names)
        ax.bar(x + i * width, part["fraction"].to_numpy(), width, label=f"{domain} {split}")
    ax.set_yscale("log")
    ax.set_xticks(x + 0.4 - width / 2, names, rotation=45, ha="right")
    for tick, colour in zip(ax.get_xticklabels(), protocol_palette(num_classes) / 255.0, strict=True):
        tick.set_color(colour * 0.8)
    ax.set_ylabel("fraction of labelled pixels")
    ax.set_title(f"Class frequencies ({num_classes}-class protocol)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
