"""Torch datasets over a manifest: images resized and normalised as the original code does.

Images: RGB → bicubic resize to the configured (W, H) → BGR, 0–255, minus the DeepLab mean (no std
scaling), as AdaptSegNet. Labels: train-id maps resized with nearest neighbour. Target training sets are
built without labels, so adaptation code cannot read them by accident.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from adaptseg.data.layouts import StaleDataError, labels_digest
from adaptseg.data.remap import class_pixel_counts as pixels_per_class

#: DeepLab-v2 / AdaptSegNet image mean in B, G, R order.
IMG_MEAN_BGR = np.array([104.00698793, 116.66876762, 122.67891434], dtype=np.float32)


def load_image(path: str, size: Sequence[int] | None) -> np.ndarray:
    """RGB uint8 array of an image, bicubic-resized to ``size`` = (W, H) when given."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        if size is not None and tuple(image.size) != tuple(size):
            image = image.resize(tuple(size), Image.BICUBIC)
        return np.asarray(image)


def normalise_image(rgb: np.ndarray) -> torch.Tensor:
    """CHW float tensor: BGR order, mean subtracted, 0–255 scale (the original's input convention)."""
    bgr = rgb[:, :, ::-1].astype(np.float32) - IMG_MEAN_BGR
    return torch.from_numpy(np.ascontiguousarray(bgr.transpose(2, 0, 1)))


def denormalise_image(image: torch.Tensor) -> np.ndarray:
    """Inverse of :func:`normalise_image`: HWC RGB uint8 for pictures."""
    bgr = image.detach().float().cpu().numpy().transpose(1, 2, 0) + IMG_MEAN_BGR
    return np.clip(bgr[:, :, ::-1], 0, 255).astype(np.uint8)


def resize_labels(train_ids: np.ndarray, size: Sequence[int] | None) -> np.ndarray:
    """Nearest-neighbour resize of a train-id map to ``size`` = (W, H)."""
    if size is None or (train_ids.shape[1], train_ids.shape[0]) == tuple(size):
        return np.asarray(train_ids)
    return np.asarray(Image.fromarray(np.asarray(train_ids)).resize(tuple(size), Image.NEAREST))


class SegmentationDataset(Dataset):
    """Samples of one domain and split: ``{"image", "label"?, "name"}``.

    ``labels`` maps ``"<split>/<sample_id>"`` to a loader of the train-id map (the catalog's
    ``FolderDataset`` gives exactly that); pass ``None`` for unlabelled target training data.
    ``label_size``: ``"input"`` resizes labels to the image size (training: losses at input resolution);
    ``None`` keeps their native resolution (evaluation scores there); or an explicit (W, H).
    ``class_pixels``: label remapping's per-image class counts of these labels (``count_class_pixels``), so
    rare-class sampling need not read every label again; ``None`` counts them when asked.
    """

    def __init__(
        self,
        manifest: pd.DataFrame,
        split: str,
        size: Sequence[int] | None,
        labels: Mapping[str, Callable[[], np.ndarray]] | None = None,
        label_size: Sequence[int] | str | None = "input",
        class_pixels: pd.DataFrame | None = None,
    ) -> None:
        rows = manifest[manifest["split"] == split]
        if rows.empty:
            raise ValueError(f"Split {split!r} is empty in the manifest (splits: {sorted(manifest['split'].unique())}).")
        self.image_paths = rows["image_path"].tolist()
        self.keys = [f"{split}/{s}" for s in rows["sample_id"]]
        self.names = rows["sample_id"].tolist()
        self.size = tuple(size) if size is not None else None
        if label_size == "input":
            self.label_size = self.size
        else:
            self.label_size = tuple(label_size) if label_size is not None else None
        self.labels, self.class_pixels = labels, class_pixels
        made_from = getattr(labels, "made_from", None)
        if made_from is not None:
            protocol = int(made_from.split("-", 1)[0])
            if made_from != labels_digest(manifest, protocol):
                raise StaleDataError(
                    f"The train-id labels of the {rows['domain'].iloc[0] if 'domain' in rows else ''} domain were "
                    "made from other label files than the manifest lists now (the raw data was regenerated or "
                    "replaced since): scoring or training on them would be silently wrong. Rerun "
                    "`kedro run --pipelines ingestion,label_remapping` (and retrain what used them)."
                )
        if labels is not None:
            missing = [k for k in self.keys if k not in labels]
            if missing:
                raise KeyError(f"{len(missing)} train-id label maps missing, e.g. {missing[:5]}; rerun label_remapping.")

    def __len__(self) -> int:
        return len(self.image_paths)

    def class_pixel_counts(self, ignore_index: int = 255, progress: bool = False) -> np.ndarray:
        """Per-image pixel counts of each train id (N×K) at the labels' native resolution: what rare-class
        sampling draws from. From the ``class_pixels`` table when given (K: the protocol's classes), else
        read from every label map (GTA5's 24966: minutes; K up to the largest id found)."""
        if self.labels is None:
            raise ValueError("class_pixel_counts needs labels; this dataset is unlabelled.")
        if self.class_pixels is not None:
            return self._tabled_counts()
        keys = tqdm(self.keys, desc="count classes", unit="label", disable=not progress)
        table = np.zeros((len(self.keys), ignore_index), dtype=np.int64)
        for row, key in enumerate(keys):
            table[row] = pixels_per_class(np.asarray(self.labels[key]()), ignore_index)[:-1]
        present = np.flatnonzero(table.sum(axis=0))
        return table[:, : present.max() + 1 if present.size else 1]

    def _tabled_counts(self) -> np.ndarray:
        """This split's rows of the ``class_pixels`` table, checked against the labels they claim to count."""
        table = self.class_pixels.set_index("key")
        counted_from = {str(v) for v in table["made_from"].dropna().unique()}
        made_from = getattr(self.labels, "made_from", None)
        if made_from is not None and counted_from and counted_from != {made_from}:
            raise StaleDataError(
                f"The class pixel table was counted from other labels ({', '.join(sorted(counted_from))}) than "
                f"the train-id maps now hold ({made_from}). Rerun `kedro run --pipelines label_remapping`."
            )
        missing = [key for key in self.keys if key not in table.index]
        if missing:
            raise KeyError(
                f"The class pixel table has no row for {len(missing)} labels, e.g. {missing[:5]}; rerun "
                "`kedro run --pipelines label_remapping`."
            )
        classes = [c for c in table.columns if c not in ("made_from", "ignored")]
        return table.loc[self.keys, classes].to_numpy(dtype=np.int64)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item: dict[str, Any] = {
            "image": normalise_image(load_image(self.image_paths[index], self.size)),
            "name": self.names[index],
        }
        if self.labels is not None:
            train_ids = resize_labels(self.labels[self.keys[index]](), self.label_size)
            item["label"] = torch.from_numpy(train_ids.astype(np.int64))
        return item
