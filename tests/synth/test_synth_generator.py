"""The generator's output: dataset layouts and names, image modes and sizes, determinism, seed streams."""

import hashlib
import io
import re

import numpy as np
from PIL import Image

from adaptseg.data.labels import VALID_LABEL_IDS, label_id_palette
from adaptseg.synth import SynthesisConfig, generate_source, generate_target, source_sample, target_sample

TARGET_IMAGE = re.compile(r"^leftImg8bit/(train|val|dev)/([a-z]+)/\2_(\d{6})_000019_leftImg8bit\.png$")


def _png_digest(files: dict[str, Image.Image]) -> dict[str, str]:
    out = {}
    for path, image in files.items():
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        out[path] = hashlib.sha256(buffer.getvalue()).hexdigest()
    return out


def test_source_follows_the_gta5_layout(small_config, small_domains):
    source, _ = small_domains
    names = [f"{i:05d}.png" for i in range(1, 7)]
    assert sorted(source) == sorted([f"images/{n}" for n in names] + [f"labels/{n}" for n in names])
    for n in names:
        image, label = source[f"images/{n}"], source[f"labels/{n}"]
        assert image.mode == "RGB" and image.size == small_config.source_size
        # GTA5 labels: paletted PNGs whose pixel index is the Cityscapes label id, with the Cityscapes palette
        assert label.mode == "P" and label.size == small_config.source_size
        assert label.getpalette()[: 3 * 34] == label_id_palette()[: 3 * 34]
        assert set(np.unique(np.asarray(label)).tolist()) <= VALID_LABEL_IDS


def test_target_follows_the_cityscapes_layout(small_config, small_domains):
    _, target = small_domains
    images = sorted(p for p in target if p.startswith("leftImg8bit/"))
    labels = sorted(p for p in target if p.startswith("gtFine/"))
    assert len(images) == len(labels) == 5 + 3 + 3
    per_split = {"train": 0, "val": 0, "dev": 0}
    for path in images:
        match = TARGET_IMAGE.match(path)
        assert match, path
        split, city = match.group(1), match.group(2)
        assert city in small_config.target_cities[split]
        per_split[split] += 1
        label_path = path.replace("leftImg8bit/", "gtFine/", 1).replace("_leftImg8bit.png", "_gtFine_labelIds.png")
        assert label_path in target
        image, label = target[path], target[label_path]
        assert image.mode == "RGB" and image.size == small_config.target_size
        assert label.mode == "L" and label.size == small_config.target_size
        assert set(np.unique(np.asarray(label)).tolist()) <= VALID_LABEL_IDS
    assert per_split == {"train": 5, "val": 3, "dev": 3}


def test_cities_take_contiguous_blocks_numbered_from_zero():
    config = SynthesisConfig.from_dict(
        {"counts": {"source": 0, "train": 0, "val": 5, "dev": 0}, "target_cities": {"val": ["lindau", "munster"]}}
    )
    target = generate_target(config, progress=False)
    stems = sorted(p.split("/")[-1].replace("_leftImg8bit.png", "") for p in target if p.startswith("leftImg8bit"))
    assert stems == [
        "lindau_000000_000019",
        "lindau_000001_000019",
        "lindau_000002_000019",
        "munster_000000_000019",
        "munster_000001_000019",
    ]


def test_same_seed_gives_identical_png_bytes(small_config, small_domains):
    source, target = small_domains
    again_source = generate_source(small_config, progress=False)
    again_target = generate_target(small_config, progress=False)
    assert _png_digest(source) == _png_digest(again_source)
    assert _png_digest(target) == _png_digest(again_target)


def test_another_seed_gives_other_samples(small_config):
    other = SynthesisConfig.from_dict({**small_config.to_dict(), "seed": 1})
    for make in (lambda c: source_sample(c, 0), lambda c: target_sample(c, "val", 0)):
        a_image, a_label, _ = make(small_config)
        b_image, b_label, _ = make(other)
        assert not np.array_equal(np.asarray(a_label), np.asarray(b_label))
        assert not np.array_equal(np.asarray(a_image), np.asarray(b_image))


def test_a_sample_does_not_depend_on_counts_or_other_splits(small_config):
    bigger = SynthesisConfig.from_dict({**small_config.to_dict(), "counts": {"source": 50, "val": 40, "dev": 1}})
    for make in (lambda c: source_sample(c, 2), lambda c: target_sample(c, "val", 1)):
        (a_image, a_label, _), (b_image, b_label, _) = make(small_config), make(bigger)
        assert np.array_equal(np.asarray(a_image), np.asarray(b_image))
        assert np.array_equal(np.asarray(a_label), np.asarray(b_label))
    # dev is its own stream: not a copy of val or train
    dev = np.asarray(target_sample(small_config, "dev", 0)[1])
    assert not np.array_equal(dev, np.asarray(target_sample(small_config, "val", 0)[1]))
    assert not np.array_equal(dev, np.asarray(target_sample(small_config, "train", 0)[1]))


def test_appearance_strengths_do_not_change_the_labels(small_config):
    plain = SynthesisConfig.from_dict({**small_config.to_dict(), "appearance": {"haze": 0, "noise": 3.0}})
    a_image, a_label, _ = target_sample(small_config, "train", 0)
    b_image, b_label, _ = target_sample(plain, "train", 0)
    assert np.array_equal(np.asarray(a_label), np.asarray(b_label))
    assert not np.array_equal(np.asarray(a_image), np.asarray(b_image))


def test_progress_bar_can_be_switched_off(small_config, capsys):
    config = SynthesisConfig.from_dict({**small_config.to_dict(), "counts": {"source": 1, "train": 1, "val": 0, "dev": 0}})
    generate_source(config, progress=False)
    generate_target(config, progress=False)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    generate_source(config, progress=True)
    assert "synth source" in capsys.readouterr().err
