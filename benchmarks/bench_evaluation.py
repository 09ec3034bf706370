"""Evaluation benchmark: from upsampled logits to the confusion matrix, our route against the original's.

Both routes start after the forward pass and the bilinear upsampling to 2048×1024 (shared, not timed), from
the same NCHW logits (as the original upsampled them) and the same ground-truth label ids in memory.

- Original (evaluate_cityscapes.py + compute_iou.py): numpy argmax over the class axis of the transposed
  C×H×W array, save the train-id PNG and a paletted colour PNG, reload the prediction PNG, map the
  ground-truth label ids with the per-id masked loop, accumulate ``bincount(n·gt + pred)``.
- Ours: ``class_argmax`` (a running max over the class planes), ground truth through a 256-entry lookup
  table (the project precomputes this once in ``label_remapping``; counted here anyway), one ``bincount``
  (``ConfusionMatrix.update``). "ours + export" adds the Cityscapes label-id PNG and the colour PNG, which
  the pipeline writes as a separate, optional output.

Then argmax alternatives on the same logits, and upsampling + argmax together.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from timing import best_seconds_per_item

from adaptseg.data.labels import CITYSCAPES_LABELS, TRAIN_PALETTE, label_id_to_train_id_lut
from adaptseg.evaluation import ConfusionMatrix, class_argmax, upsampled_prediction
from adaptseg.evaluation.export import colour_image, label_id_image

NUM_CLASSES = 19
HEIGHT, WIDTH = 1024, 2048
#: DeepLab-v2's output for a 1024×512 input (output stride 8).
LOGIT_SIZE = (65, 129)

#: The original's label2train table: every label id 0..33 and -1 with its train id (255 = ignore).
LABEL2TRAIN = [(label.id, label.train_id if 0 <= label.train_id < 255 else 255) for label in CITYSCAPES_LABELS]


def _original_palette() -> list[int]:
    flat = TRAIN_PALETTE.flatten().tolist()
    return flat + [0] * (768 - len(flat))


PALETTE = _original_palette()


def original_route(logits: torch.Tensor, label_ids: np.ndarray, folder: Path, name: str) -> tuple[np.ndarray, dict]:
    """The original's path from upsampled logits (1×C×H×W) to this image's confusion matrix, timed per stage."""
    times = {}
    start = time.perf_counter()
    output = logits[0].numpy().transpose(1, 2, 0)
    output = np.asarray(np.argmax(output, axis=2), dtype=np.uint8)
    times["argmax"] = time.perf_counter() - start

    start = time.perf_counter()
    colour = Image.fromarray(output).convert("P")
    colour.putpalette(PALETTE)
    Image.fromarray(output).save(folder / f"{name}.png")
    colour.save(folder / f"{name}_color.png")
    times["save 2 PNGs"] = time.perf_counter() - start

    start = time.perf_counter()
    prediction = np.array(Image.open(folder / f"{name}.png"))
    times["reload PNG"] = time.perf_counter() - start

    start = time.perf_counter()
    label = np.copy(label_ids)
    for label_id, train_id in LABEL2TRAIN:
        label[label_ids == label_id] = train_id
    label = np.array(label, dtype=np.int64)
    times["map GT loop"] = time.perf_counter() - start

    start = time.perf_counter()
    gt, pred = label.flatten(), prediction.flatten()
    keep = (gt >= 0) & (gt < NUM_CLASSES)
    hist = np.bincount(NUM_CLASSES * gt[keep].astype(int) + pred[keep], minlength=NUM_CLASSES**2)
    times["bincount"] = time.perf_counter() - start
    return hist.reshape(NUM_CLASSES, NUM_CLASSES), times


def our_route(logits: torch.Tensor, label_ids: np.ndarray, lut: np.ndarray, confusion: ConfusionMatrix) -> torch.Tensor:
    """Ours: ``class_argmax``, lookup-table ground truth, one bincount into ``confusion``."""
    prediction = class_argmax(logits)
    confusion.update(prediction, torch.from_numpy(np.take(lut, label_ids)).unsqueeze(0))
    return prediction


def argmax_channels_last_copy(logits: torch.Tensor) -> torch.Tensor:
    """The previous ``upsampled_prediction`` reduction: a channels-last copy, then argmax over the last axis."""
    return logits.permute(0, 2, 3, 1).contiguous().argmax(dim=-1).to(torch.uint8)


def _inputs(count: int, seed: int = 0) -> tuple[list[torch.Tensor], list[torch.Tensor], list[np.ndarray]]:
    """Low-resolution logits, their NCHW upsampling (smooth regions, as a network gives), blocky label ids."""
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    low, logits, labels = [], [], []
    for _ in range(count):
        low.append(torch.randn(1, NUM_CLASSES, *LOGIT_SIZE, generator=generator) * 3)
        logits.append(F.interpolate(low[-1], size=(HEIGHT, WIDTH), mode="bilinear", align_corners=True))
        coarse = rng.integers(0, 34, size=(HEIGHT // 16, WIDTH // 16), dtype=np.uint8)
        labels.append(np.repeat(np.repeat(coarse, 16, 0), 16, 1))
    return low, logits, labels


def _best_ms(fn: Callable[[Any], object], items: list, repeats: int) -> float:
    return round(best_seconds_per_item(fn, items, repeats) * 1e3, 1)


def _compare_routes(logits: list[torch.Tensor], labels: list[np.ndarray], repeats: int, folder: Path) -> dict:
    """Both routes on the same upsampled logits: same confusion matrix, then time per image and per stage."""
    lut = label_id_to_train_id_lut(NUM_CLASSES)
    original_total = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    ours = ConfusionMatrix(NUM_CLASSES)
    for i, (logit, label) in enumerate(zip(logits, labels, strict=True)):
        original_total += original_route(logit, label, folder, f"img{i}")[0]
        our_route(logit, label, lut, ours)
    figures: dict[str, Any] = {"same confusion matrix (original vs ours)": bool(np.array_equal(original_total, ours.numpy()))}

    # interleaved repeats, best of each: both routes see the same background load (the machine is shared)
    pairs = list(zip(logits, labels, strict=True))
    best_original, stages, best_ours = float("inf"), {}, float("inf")
    for _ in range(repeats):
        start, times = time.perf_counter(), {}
        for i, (logit, label) in enumerate(pairs):
            for key, value in original_route(logit, label, folder, f"img{i}")[1].items():
                times[key] = times.get(key, 0.0) + value
        if (elapsed := time.perf_counter() - start) < best_original:
            best_original, stages = elapsed, times
        start = time.perf_counter()
        for logit, label in pairs:
            our_route(logit, label, lut, ConfusionMatrix(NUM_CLASSES))
        best_ours = min(best_ours, time.perf_counter() - start)
    original_ms = best_original / len(pairs) * 1e3
    ours_ms = round(best_ours / len(pairs) * 1e3, 1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the original route is single-threaded NumPy: the same footing
    try:
        ours_one_thread_ms = _best_ms(lambda p: our_route(p[0], p[1], lut, ConfusionMatrix(NUM_CLASSES)), pairs, repeats)
    finally:
        torch.set_num_threads(threads)
    names = itertools.count()

    def ours_with_export(pair: tuple[torch.Tensor, np.ndarray]) -> None:
        prediction = our_route(pair[0], pair[1], lut, ConfusionMatrix(NUM_CLASSES))[0].numpy()
        name = next(names)
        label_id_image(prediction).save(folder / f"ours{name}.png")
        colour_image(prediction).save(folder / f"ours{name}_color.png")

    export_ms = _best_ms(ours_with_export, pairs, max(1, repeats // 2))
    figures["original ms/image"] = round(original_ms, 1)
    figures |= {f"original: {k} ms/image": round(v / len(logits) * 1e3, 1) for k, v in stages.items()}
    figures["ours ms/image"] = ours_ms
    figures["speed-up"] = round(original_ms / ours_ms, 1)
    figures["ours, 1 torch thread ms/image"] = ours_one_thread_ms
    figures["speed-up, 1 torch thread"] = round(original_ms / ours_one_thread_ms, 1)
    figures["ours + export (label-id PNG + colour PNG) ms/image"] = export_ms
    figures["speed-up with export"] = round(original_ms / export_ms, 1)
    return figures


def evaluation_route(images: int = 3, repeats: int = 4) -> dict:
    """Our logits→confusion route against the original's on 19×1024×2048 logits, plus argmax variants."""
    low, logits, labels = _inputs(images)
    figures: dict[str, Any] = {
        "logits": f"{NUM_CLASSES}x{HEIGHT}x{WIDTH} float32",
        "images": images,
        "torch threads": torch.get_num_threads(),
        "load average (1 min) at start": round(os.getloadavg()[0], 2),
    }
    with tempfile.TemporaryDirectory(prefix="adaptseg-bench-eval-") as tmp:
        figures |= _compare_routes(logits, labels, repeats, Path(tmp))

    # argmax alternatives on the same upsampled logits (class axis 1)
    reference = [logit.argmax(dim=1) for logit in logits]
    variants: dict[str, Callable[[torch.Tensor], Any]] = {
        "torch.argmax(dim=1)": lambda x: x.argmax(dim=1),
        "channels-last copy + argmax (previous upsampled_prediction)": argmax_channels_last_copy,
        "torch.max(dim=1).indices": lambda x: x.max(dim=1).indices,
        "running max over class planes, NumPy (class_argmax)": class_argmax,
        "bf16 cast + argmax(dim=1)": lambda x: x.to(torch.bfloat16).argmax(dim=1),
        "bf16 cast + torch.max(dim=1)": lambda x: x.to(torch.bfloat16).max(dim=1).indices,
        "numpy argmax of the transposed array (original)": lambda x: np.argmax(x[0].numpy().transpose(1, 2, 0), axis=2),
    }
    for name, fn in variants.items():
        figures[f"argmax {name} ms/image"] = _best_ms(fn, logits, max(1, repeats // 2))
        differ = sum(int((torch.as_tensor(np.asarray(fn(x))).long().reshape(r.shape) != r).sum())
                     for x, r in zip(logits, reference, strict=True))
        figures[f"argmax {name} pixels differing from fp32 argmax"] = differ
    channels_last = [x.contiguous(memory_format=torch.channels_last) for x in logits]
    del logits
    figures["argmax torch.argmax(dim=1) on logits already channels-last ms/image"] = _best_ms(
        lambda x: x.argmax(dim=1), channels_last, max(1, repeats // 2))
    del channels_last

    # upsampling + argmax together (what evaluation runs per image after the forward pass)
    def upsample(x: torch.Tensor, layout: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
        return F.interpolate(x.contiguous(memory_format=layout), (HEIGHT, WIDTH), mode="bilinear", align_corners=True)

    figures["upsampled_prediction equals NCHW upsample + argmax"] = all(
        torch.equal(upsampled_prediction(x, (HEIGHT, WIDTH)).long(), upsample(x).argmax(dim=1)) for x in low
    )
    totals = {
        "NCHW upsample + channels-last copy argmax (previous upsampled_prediction)":
            lambda x: argmax_channels_last_copy(upsample(x)),
        "channels-last upsample + argmax(dim=1)": lambda x: upsample(x, torch.channels_last).argmax(dim=1),
        "NCHW upsample + class_argmax (upsampled_prediction)": lambda x: upsampled_prediction(x, (HEIGHT, WIDTH)),
    }
    for name, fn in totals.items():
        figures[f"{name} ms/image"] = _best_ms(fn, low, max(1, repeats // 2))
    return figures
