"""Orchestration: per-sample random streams, the GTA5, SYNTHIA and Cityscapes layouts, progress bars."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from adaptseg.data.labels import cityscapes_to_synthia_lut, label_id_palette

from .appearance import render, render_source
from .config import TARGET_SPLITS, SynthesisConfig
from .corruptions import CORRUPTIONS
from .layout import Layout, layout_profile, sample_layout

#: Stream codes mixed into each sample's seed: (domain, split). ``dev`` has its own stream, so its
#: scenes are independent of train/val whatever the counts.
_DOMAIN_CODE = {"source": 1, "target": 2}
_SPLIT_CODE = {"all": 0, "train": 1, "val": 2, "dev": 3}
#: Stream ids within a sample. The corruption has its own, so that setting one changes no other draw.
_LAYOUT_STREAM, _APPEARANCE_STREAM, _CORRUPTION_STREAM = 0, 1, 2
CITYSCAPES_FRAME = 19  # the fine-annotated frame of every real Cityscapes snippet


def sample_rng(seed: int, domain: str, split: str, index: int, stream: int) -> np.random.Generator:
    """The random stream of one sample: derived from (seed, domain, split, index, stream) only."""
    key = (_DOMAIN_CODE[domain], _SPLIT_CODE[split], int(index), int(stream))
    return np.random.default_rng(np.random.SeedSequence(entropy=int(seed), spawn_key=key))


def source_sample(config: SynthesisConfig, index: int) -> tuple[Image.Image, Image.Image, Layout]:
    """Source sample ``index`` (0-based): RGB image, paletted label-id image, and its layout."""
    layout = sample_layout(
        sample_rng(config.seed, "source", "all", index, _LAYOUT_STREAM), config.source_size, layout_profile("source")
    )
    image = render_source(layout, sample_rng(config.seed, "source", "all", index, _APPEARANCE_STREAM))
    label = Image.frombytes("L", config.source_size, layout.labels.tobytes())
    label.putpalette(label_id_palette())  # 'L' + palette → 'P', pixel index = Cityscapes label id (as GTA5)
    return image, label, layout


def target_sample(config: SynthesisConfig, split: str, index: int) -> tuple[Image.Image, Image.Image, Layout]:
    """Target sample ``index`` of ``split``: RGB image, 'L' label-id image, and its layout."""
    if split not in TARGET_SPLITS:
        raise ValueError(f"Unknown target split {split!r}; choose one of {list(TARGET_SPLITS)}.")
    layout = sample_layout(
        sample_rng(config.seed, "target", split, index, _LAYOUT_STREAM),
        config.target_size,
        layout_profile("target", config.layout_shift),
    )
    image = render(layout, sample_rng(config.seed, "target", split, index, _APPEARANCE_STREAM), config.appearance)
    if config.corruption is not None:
        image = corrupt(image, config, sample_rng(config.seed, "target", split, index, _CORRUPTION_STREAM))
    label = Image.frombytes("L", config.target_size, layout.labels.tobytes())
    return image, label, layout


def corrupt(image: Image.Image, config: SynthesisConfig, rng: np.random.Generator) -> Image.Image:
    """``image`` under ``config.corruption``, after rendering: the labels stay as they are."""
    kind, severity = config.corruption.kind, config.corruption.severity
    return Image.fromarray(CORRUPTIONS[kind](np.asarray(image.convert("RGB")), rng, severity))


def source_name(index: int) -> str:
    """GTA5 file name of source sample ``index`` (0-based): 1-based, five digits."""
    return f"{index + 1:05d}.png"


def target_stem(config: SynthesisConfig, split: str, index: int) -> tuple[str, str]:
    """(city, stem) of target sample ``index``: cities take contiguous blocks, numbered from 0 within each."""
    cities = config.target_cities[split]
    count = config.count(split)
    c = index * len(cities) // max(count, 1)
    first = -(-c * count // len(cities))  # the first index that falls in city c
    seq = index - first
    return cities[c], f"{cities[c]}_{seq:06d}_{CITYSCAPES_FRAME:06d}"


def iter_source(config: SynthesisConfig, progress: bool = True) -> Iterator[tuple[str, Image.Image, Image.Image]]:
    """Yield (file name, image, label) for every source sample."""
    n = config.counts.source
    for i in tqdm(range(n), total=n, desc="synth source", unit="img", disable=not progress):
        image, label, _ = source_sample(config, i)
        yield source_name(i), image, label


def iter_target(config: SynthesisConfig, progress: bool = True) -> Iterator[tuple[str, str, str, Image.Image, Image.Image]]:
    """Yield (split, city, stem, image, label) for every target sample (train, val, dev)."""
    total = sum(config.count(s) for s in TARGET_SPLITS)
    with tqdm(total=total, desc="synth target", unit="img", disable=not progress) as bar:
        for split in TARGET_SPLITS:
            for i in range(config.count(split)):
                image, label, _ = target_sample(config, split, i)
                city, stem = target_stem(config, split, i)
                bar.update(1)
                yield split, city, stem, image, label


#: The layouts the source can be written in: GTA5, or SYNTHIA-RAND-CITYSCAPES (the same scenes and pixels).
SOURCE_LAYOUTS = ("gta5", "synthia")


def generate_source(
    config: SynthesisConfig, progress: bool = True, layout: str = "gta5"
) -> dict[str, Image.Image | np.ndarray]:
    """The game-like source domain in the GTA5 layout (``images/00001.png`` RGB, ``labels/00001.png`` 'P'
    with Cityscapes label ids) or the SYNTHIA layout (``RGB/0000000.png``, ``GT/LABELS/0000000.png``: a
    16-bit 3-channel array with the SYNTHIA class id in channel 0, as SYNTHIA-RAND-CITYSCAPES stores it).
    """
    if layout not in SOURCE_LAYOUTS:
        raise ValueError(f"source layout {layout!r} is unknown; choose one of {list(SOURCE_LAYOUTS)}.")
    files: dict[str, Image.Image | np.ndarray] = {}
    to_synthia = cityscapes_to_synthia_lut()
    for index, (name, image, label) in enumerate(iter_source(config, progress)):
        if layout == "gta5":
            files[f"images/{name}"] = image
            files[f"labels/{name}"] = label
            continue
        synthia_name = f"{index:07d}.png"
        ids = np.zeros((*np.asarray(label).shape, 3), dtype=np.uint16)  # channel 1: instance ids, none here
        ids[:, :, 0] = to_synthia[np.asarray(label)]
        files[f"RGB/{synthia_name}"] = image
        files[f"GT/LABELS/{synthia_name}"] = ids
    return files


def generate_target(config: SynthesisConfig, progress: bool = True) -> dict[str, Image.Image]:
    """The camera-like target domain in the Cityscapes layout (train, val and dev, all labelled).

    ``leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png`` (RGB) and
    ``gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png`` ('L', Cityscapes label ids).
    """
    files: dict[str, Image.Image] = {}
    for split, city, stem, image, label in iter_target(config, progress):
        files[f"leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png"] = image
        files[f"gtFine/{split}/{city}/{stem}_gtFine_labelIds.png"] = label
    return files
