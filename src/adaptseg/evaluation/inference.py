"""Inference over a labelled dataset as the reference protocol does it, feeding a confusion matrix.

Input resized to the evaluation input size (done by the dataset), main-head logits upsampled bilinearly
(``align_corners=True``) to the label resolution, argmax, confusion matrix accumulated on the device.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from adaptseg.data.torch_datasets import SegmentationDataset
from adaptseg.evaluation.metrics import ConfusionMatrix
from adaptseg.training.losses import prediction_entropy, upsample_logits


def _argmax_over_planes(planes: np.ndarray) -> np.ndarray:
    """C×H×W → H×W uint8 first maximal class: one vectorised compare/max/fill per class plane.

    Strictly-greater updates keep the first maximal class on ties, as ``argmax`` does.
    """
    best = planes[0].copy()
    out = np.zeros(planes.shape[1:], dtype=np.uint8)
    greater = np.empty(planes.shape[1:], dtype=bool)
    for c in range(1, planes.shape[0]):
        np.greater(planes[c], best, out=greater)
        np.maximum(best, planes[c], out=best)
        np.putmask(out, greater, c)
    return out


def class_argmax(logits: torch.Tensor) -> torch.Tensor:
    """Train-id map (B×H×W, uint8) of B×C×H×W logits: the first maximal class, as ``argmax(dim=1)``.

    On the CPU, torch's reduction over the strided class axis of NCHW logits is slow (``argmax(dim=1)``
    several times slower than a running max over the class planes), so float NCHW logits go through
    :func:`_argmax_over_planes`; channels-last logits reduce over contiguous memory with ``argmax``.
    Accelerators use ``argmax(dim=1)``. NaN logits are not supported (torch would pick the NaN class).
    Figures: ``benchmarks/bench_evaluation.py``.
    """
    if logits.device.type != "cpu" or logits.dim() != 4 or logits.shape[1] > 256:
        return logits.argmax(dim=1).to(torch.uint8)
    if logits.dtype in (torch.float32, torch.float64) and logits.is_contiguous():
        array = logits.detach().numpy()
        return torch.from_numpy(np.stack([_argmax_over_planes(item) for item in array]))
    if logits.is_contiguous(memory_format=torch.channels_last):
        return logits.argmax(dim=1).to(torch.uint8)
    return logits.max(dim=1).indices.to(torch.uint8)


def upsampled_prediction(logits: torch.Tensor, size: tuple[int, int], align_corners: bool = True) -> torch.Tensor:
    """Train-id prediction (B×H×W, uint8) from logits upsampled to ``size`` = (H, W).

    Bilinear with ``align_corners=True`` as the original evaluation, then :func:`class_argmax`.
    """
    return class_argmax(upsample_logits(logits, size, align_corners))


def labelled_dataset(
    manifest: pd.DataFrame,
    split: str,
    input_size: Sequence[int],
    labels: Mapping[str, Callable[[], np.ndarray]],
) -> SegmentationDataset:
    """Images resized to ``input_size`` (W, H), labels kept at their native resolution, as the protocol scores."""
    return SegmentationDataset(manifest, split, input_size, labels=labels, label_size=None)


@torch.inference_mode()
def predict_dataset(
    segmenter: torch.nn.Module,
    dataset: Dataset,
    num_classes: int,
    *,
    batch_size: int = 4,
    device: torch.device | str = "cpu",
    align_corners: bool = True,
    on_prediction: Callable[[str, torch.Tensor], None] | None = None,
    progress: bool = True,
) -> ConfusionMatrix:
    """Run ``segmenter`` (eval mode, main head) over ``dataset`` and accumulate the confusion matrix.

    ``on_prediction(name, prediction)`` receives each H×W train-id prediction (for exports).
    """
    device = torch.device(device)
    segmenter.eval().to(device)
    confusion = ConfusionMatrix(num_classes, device=device)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_labelled)
    for batch in tqdm(loader, desc="evaluating", disable=not progress):
        logits = segmenter(batch["image"].to(device))["out"]
        # labels stay at their native resolution, which may differ between images of one batch
        for index, (name, label) in enumerate(zip(batch["name"], batch["label"], strict=True)):
            label = label.to(device)[None]
            prediction = upsampled_prediction(logits[index : index + 1], tuple(label.shape[-2:]), align_corners)
            confusion.update(prediction, label)
            if on_prediction is not None:
                on_prediction(name, prediction[0])
    return confusion


def collate_labelled(items: Sequence[dict]) -> dict:
    """Images stacked (the dataset resizes them to the input size); labels kept as a list, since they stay at
    their native resolution, which need not be the same for every image. Images of different sizes are an
    error that names them."""
    sizes = {tuple(item["image"].shape) for item in items}
    if len(sizes) > 1:
        names = ", ".join(f"{item['name']} {tuple(item['image'].shape[-2:])}" for item in items)
        raise ValueError(f"Images of one batch have different sizes after resizing ({names}); set input_size.")
    return {
        "image": torch.stack([item["image"] for item in items]),
        "label": [item["label"] for item in items],
        "name": [item["name"] for item in items],
    }


@torch.inference_mode()
def mean_prediction_entropy(
    segmenter: torch.nn.Module,
    dataset: Dataset,
    *,
    batch_size: int = 4,
    device: torch.device | str = "cpu",
    align_corners: bool = True,
    progress: bool = False,
) -> float:
    """Mean normalised prediction entropy (0 = certain, 1 = uniform) of the main head over ``dataset``.

    A model-selection signal that needs no labels: logits are upsampled to the input resolution (as ADVENT
    does), and the per-image means are averaged with equal weight per image.
    """
    device = torch.device(device)
    segmenter.eval().to(device)
    total, count = 0.0, 0
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    for batch in tqdm(loader, desc="entropy", disable=not progress):
        images = batch["image"].to(device)
        logits = segmenter(images)["out"]
        entropy = prediction_entropy(logits, tuple(images.shape[-2:]), align_corners)
        total += float(entropy) * images.shape[0]
        count += images.shape[0]
    return total / count if count else float("nan")
