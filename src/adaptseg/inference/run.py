"""Segmenting a folder of user images: the work behind ``python -m adaptseg.predict`` and the ``predict``
pipeline, which differ only in where the folder, the model and the outputs come from.

:func:`segment_folder` reads the images in sorted order, batch by batch, and returns the outputs as
``{key: loader}`` for a folder writer (``adaptseg.io.FolderDataset``) plus a summary:

- ``label_ids/<relative path>``: Cityscapes label ids (the official results format), at the image's size;
- ``overlays/<relative path>``: the image blended with its class colours;
- ``contact_sheet``: up to ``contact_sheet`` images spread over the folder, with overlays and a legend.

Predictions are kept compressed in memory until they are written (a label map typically to a few percent)
and the overlays are drawn only when written, from the image read again, so a folder of thousands of
video frames needs neither thousands of full-size arrays nor a second inference pass.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from adaptseg.config import ConfigurationError, Problem, from_mapping
from adaptseg.evaluation.export import label_id_image
from adaptseg.inference.images import ImageFolder, NoImagesError, UnreadableImageError, UserImage
from adaptseg.inference.models import LOADED_FROM, ModelInputs, model_inputs
from adaptseg.inference.policies import POLICIES, normalise, predict_resized, predict_sliding, resize_rgb
from adaptseg.inference.render import SheetEntry, contact_sheet, overlay, sheet_entry
from adaptseg.models.packaging import unpack_segmenter
from adaptseg.training.precision import DEVICES, PRECISIONS, Amp, resolve_device, resolve_precision

logger = logging.getLogger(__name__)

Loader = Callable[[], Any]
#: Names listed per kind in the log; the summary holds them all.
LOGGED_NAMES = 10


@dataclass(frozen=True)
class PredictConfig:
    """The ``predict`` parameters block (``conf/base/parameters_predict.yml``); the command's options.

    ``input``, ``output`` and ``model`` are what the catalog reads (``catalog_predict.yml``) in the pipeline,
    and the command's arguments; ``input_size`` (W, H) is used only for a checkpoint that carries none.
    """

    input: str | None = None
    output: str | None = None
    model: str | None = None
    batch_size: int = 4
    policy: str = "resize"
    overlap: float = 0.33
    precision: str = "auto"
    device: str = "auto"
    input_size: tuple[int, int] = (256, 128)
    overlay_opacity: float = 0.5
    contact_sheet: int = 8

    def __post_init__(self) -> None:
        problems = []
        if self.batch_size < 1:
            problems.append(Problem("batch_size", f"got {self.batch_size}; expected an integer >= 1"))
        if self.policy not in POLICIES:
            problems.append(Problem("policy", f"got {self.policy!r}; expected one of: {', '.join(POLICIES)}"))
        if not 0 <= self.overlap < 1:
            problems.append(Problem("overlap", f"got {self.overlap}; expected a share of a window in [0, 1)"))
        if self.precision not in PRECISIONS:
            expected = ", ".join(PRECISIONS)
            problems.append(Problem("precision", f"got {self.precision!r}; expected one of: {expected}"))
        if not (self.device in DEVICES or self.device.startswith("cuda:")):
            expected = ", ".join((*DEVICES, "cuda:N"))
            problems.append(Problem("device", f"got {self.device!r}; expected one of: {expected}"))
        if len(self.input_size) != 2 or min(self.input_size) < 1:
            size = list(self.input_size)
            problems.append(Problem("input_size", f"got {size}; expected [width, height], both >= 1"))
        if not 0 < self.overlay_opacity <= 1:
            opacity = self.overlay_opacity
            problems.append(Problem("overlay_opacity", f"got {opacity}; expected a number in (0, 1]"))
        if self.contact_sheet < 1:
            problems.append(Problem("contact_sheet", f"got {self.contact_sheet}; expected an integer >= 1"))
        if problems:
            raise ConfigurationError(problems, "Invalid predict parameters")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> PredictConfig:
        """Build from the parameters block; unknown keys and wrong types are one error naming each key."""
        if isinstance(values, Mapping):  # YAML lists where the dataclass says tuple
            values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return from_mapping(cls, values, "predict parameter")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Compressed:
    """A train-id map held zlib-compressed until it is written."""

    shape: tuple[int, int]
    data: bytes

    @classmethod
    def of(cls, train_ids: np.ndarray) -> Compressed:
        train_ids = np.ascontiguousarray(train_ids, dtype=np.uint8)
        return cls(train_ids.shape, zlib.compress(train_ids.tobytes(), 1))

    def array(self) -> np.ndarray:
        return np.frombuffer(zlib.decompress(self.data), dtype=np.uint8).reshape(self.shape)


@dataclass
class Segmentation:
    """What :func:`segment_folder` made: ``outputs`` for a folder writer (``{key: loader}``) and a summary."""

    outputs: dict[str, Any]
    summary: dict[str, Any]
    predictions: dict[str, Compressed] = field(default_factory=dict, repr=False)


def inference_precision(precision: str, device: torch.device) -> str:
    """``auto``: bf16 or fp16 autocast on a GPU (``resolve_precision``); fp32 on a CPU, where it gives the
    evaluation's predictions exactly (the evaluation runs in fp32). Explicit choices are kept."""
    if precision == "auto" and device.type == "cpu":
        return "fp32"
    return resolve_precision(precision, device)


def spread(keys: list[str], count: int) -> list[str]:
    """Up to ``count`` keys evenly spread over ``keys`` (first and last included): a sheet of a video's
    frames shows its whole length, not its first second."""
    if len(keys) <= count:
        return list(keys)
    return [keys[i] for i in sorted({round(i) for i in np.linspace(0, len(keys) - 1, count)})]


def _batches(keys: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(keys), size):
        yield keys[start : start + size]


def _read(folder: ImageFolder, key: str, skipped: dict[str, str]) -> UserImage | None:
    """The image of ``key``, or None with the reason recorded in ``skipped``."""
    try:
        return folder.read(key)
    except UnreadableImageError as error:
        skipped[folder.name(key)] = str(error)
        return None


def _predictions(
    segmenter: torch.nn.Module,
    folder: ImageFolder,
    inputs: ModelInputs,
    config: PredictConfig,
    amp: Amp,
    device: torch.device,
    skipped: dict[str, str],
    bar: tqdm,
) -> Iterator[tuple[str, UserImage, np.ndarray]]:
    """``(key, image, train ids)`` of every readable image, in the folder's order, by the config's policy."""
    keys = list(folder.images)
    per_batch = 1 if config.policy == "sliding" else config.batch_size
    for chunk in _batches(keys, per_batch):
        images = {key: _read(folder, key, skipped) for key in chunk}
        bar.update(sum(image is None for image in images.values()))
        ready = {key: image for key, image in images.items() if image is not None}
        if not ready:
            continue
        if config.policy == "sliding":
            key, image = next(iter(ready.items()))
            tensor = normalise(image.rgb, inputs.mean_bgr).to(device)
            train_ids = predict_sliding(
                segmenter, tensor, inputs.input_size, overlap=config.overlap, batch_size=config.batch_size,
                amp=amp, num_classes=segmenter.num_classes, align_corners=inputs.align_corners,
            )
            bar.update(1)
            yield key, image, train_ids
            continue
        resized = [resize_rgb(image.rgb, inputs.input_size) for image in ready.values()]
        batch = torch.stack([normalise(rgb, inputs.mean_bgr) for rgb in resized]).to(device)
        sizes = [image.rgb.shape[:2] for image in ready.values()]
        maps = predict_resized(segmenter, batch, sizes, amp=amp, align_corners=inputs.align_corners)
        for (key, image), train_ids in zip(ready.items(), maps, strict=True):
            bar.update(1)
            yield key, image, train_ids


def _overlay_loader(
    folder: ImageFolder, key: str, prediction: Compressed, inputs: ModelInputs, opacity: float
) -> Loader:
    """The overlay of ``key``, drawn when it is written, from the image read again."""

    def load() -> Image.Image:
        rgb = folder.read(key).rgb
        if rgb.shape[:2] != prediction.shape:
            raise ValueError(f"{folder.images[key]} changed size while predict ran; run predict again.")
        return overlay(rgb, prediction.array(), inputs.palette, opacity)

    return load


def segment_folder(
    model: Mapping[str, Any], folder: ImageFolder, config: PredictConfig, *, progress: bool = True
) -> Segmentation:
    """Segment every image of ``folder`` with the packed ``model`` (see the module docstring for the outputs).

    Unreadable images are named and skipped; a folder where none could be segmented is an error that
    names each file and why.
    """
    device = resolve_device(config.device)
    precision = inference_precision(config.precision, device)
    amp = Amp(device.type, precision)
    segmenter = unpack_segmenter(model).eval().to(device)
    num_classes = int(segmenter.num_classes)
    inputs = model_inputs(model, num_classes, config.input_size)
    keys = list(folder.images)
    on_sheet = set(spread(keys, config.contact_sheet))
    width, height = inputs.input_size
    logger.info(
        "Segmenting %d images of %s: policy %s, input %dx%d, %s (%s), batch %d",
        len(keys), folder.root, config.policy, width, height, device, precision, config.batch_size,
    )
    predictions: dict[str, Compressed] = {}
    converted: dict[str, list[str]] = {}
    skipped: dict[str, str] = {}
    entries: list[SheetEntry] = []
    with tqdm(total=len(keys), desc="segmenting", unit="image", disable=not progress) as bar:
        stream = _predictions(segmenter, folder, inputs, config, amp, device, skipped, bar)
        for key, image, train_ids in stream:
            predictions[key] = Compressed.of(train_ids)
            if image.notes:
                converted[folder.name(key)] = list(image.notes)
            if key in on_sheet:
                picture = overlay(image.rgb, train_ids, inputs.palette, config.overlay_opacity)
                entries.append(sheet_entry(folder.name(key), image.rgb, picture))
    if not predictions:
        reasons = "; ".join(f"{name}: {why}" for name, why in skipped.items())
        raise NoImagesError(f"None of the {len(keys)} images of {folder.root} could be read ({reasons}).")
    outputs: dict[str, Any] = {}
    for key, prediction in predictions.items():
        outputs[f"label_ids/{key}"] = lambda p=prediction: label_id_image(p.array(), num_classes)
        outputs[f"overlays/{key}"] = _overlay_loader(folder, key, prediction, inputs, config.overlay_opacity)
    source = model.get(LOADED_FROM) or {}
    title = f"{source.get('model') or model.get('method', 'model')} on {folder.root} ({config.policy})"
    outputs["contact_sheet"] = contact_sheet(entries, inputs.classes, inputs.palette, title)
    summary = {
        "input": str(folder.root),
        "model": source.get("model") or model.get("method"),
        "model_file": source.get("path"),
        "policy": config.policy,
        "input_size": list(inputs.input_size),
        "device": str(device),
        "precision": precision,
        "images": len(keys),
        "segmented": len(predictions),
        "converted": converted,
        "skipped": skipped,
        "renamed": dict(folder.renamed),
        "ignored": {reason: len(names) for reason, names in folder.ignored.items()},
        "ignored_files": {reason: names[:100] for reason, names in folder.ignored.items()},  # the first 100
        "model_fallbacks": list(inputs.fallbacks),
    }
    log_summary(summary)
    return Segmentation(outputs=outputs, summary=summary, predictions=predictions)


def _names(names: list[str], total: int | None = None) -> str:
    """The first names of a list, and how many more there are (of ``total``, when the list is cut short)."""
    total = len(names) if total is None else total
    shown = ", ".join(names[:LOGGED_NAMES])
    return shown + (f" and {total - LOGGED_NAMES} more" if total > LOGGED_NAMES else "")


def log_summary(summary: Mapping[str, Any]) -> None:
    """Images done, converted (grouped by conversion), skipped (each with its reason) and files ignored."""
    converted, skipped, ignored = summary["converted"], summary["skipped"], summary["ignored"]
    logger.info(
        "predict: segmented %d of %d images of %s; %d converted, %d skipped, %d other files ignored.",
        summary["segmented"], summary["images"], summary["input"], len(converted), len(skipped),
        sum(ignored.values()),
    )
    by_note: dict[str, list[str]] = {}
    for name, notes in converted.items():
        for note in notes:
            by_note.setdefault(note, []).append(name)
    for note, names in by_note.items():
        logger.info("  converted (%s): %s", note, _names(names))
    renamed = list(summary.get("renamed", {}))
    if renamed:
        logger.info("  outputs keep the suffix (another image differs only in it): %s", _names(renamed))
    for name, reason in list(skipped.items())[:LOGGED_NAMES]:
        logger.warning("  skipped %s: %s", name, reason)
    if len(skipped) > LOGGED_NAMES:
        logger.warning("  ... and %d more skipped (the summary lists them all)", len(skipped) - LOGGED_NAMES)
    for reason, count in ignored.items():
        names = summary["ignored_files"][reason]
        logger.info("  ignored (%s): %d file%s: %s", reason, count, "s" * (count != 1), _names(names, count))
