"""Target corruptions: every kind, its severities, the config field, and what the generator does with it."""

import hashlib
import io
import itertools
import time
from pathlib import Path

import numpy as np
import pytest

from adaptseg.synth import (
    CORRUPTIONS,
    SynthesisConfig,
    TargetCorruption,
    generate_source,
    generate_target,
    sample_rng,
    target_sample,
)
from adaptseg.synth.generator import _CORRUPTION_STREAM

KINDS = (
    "fog", "rain", "snow", "gaussian_noise", "shot_noise", "defocus_blur", "motion_blur", "jpeg", "contrast",
)
RANDOM_KINDS = ("fog", "rain", "snow", "gaussian_noise", "shot_noise", "motion_blur")
PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def clean_images(small_config) -> list[np.ndarray]:
    """Two target images without the generator's own JPEG step: re-encoding an image at about the quality
    it was already compressed at changes it little, which would blur the jpeg kind's severity order."""
    config = SynthesisConfig.from_dict({**small_config.to_dict(), "appearance": {"jpeg": 0}})
    return [np.asarray(target_sample(config, split, 0)[0]) for split in ("dev", "train")]


def _png_digest(files: dict) -> dict[str, str]:
    out = {}
    for path, image in files.items():
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        out[path] = hashlib.sha256(buffer.getvalue()).hexdigest()
    return out


def _with(config: SynthesisConfig, corruption) -> SynthesisConfig:
    return SynthesisConfig.from_dict({**config.to_dict(), "corruption": corruption})


def _mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


# --------------------------------------------------------------------------------------------- the kinds


def test_the_kinds_are_the_imagenet_c_families():
    assert tuple(CORRUPTIONS) == KINDS


@pytest.mark.parametrize("kind", KINDS)
def test_a_kind_changes_the_image_and_keeps_shape_and_type(kind, clean_images):
    image = clean_images[0]
    for severity in (1, 3, 5):
        out = CORRUPTIONS[kind](image, np.random.default_rng(0), severity)
        assert out.shape == image.shape and out.dtype == np.uint8
        assert not np.array_equal(out, image)
    assert np.array_equal(image, clean_images[0])  # the input is left alone


@pytest.mark.parametrize("kind", KINDS)
def test_a_kind_is_deterministic_for_a_seed(kind, clean_images):
    image = clean_images[0]
    a = CORRUPTIONS[kind](image, np.random.default_rng(5), 3)
    b = CORRUPTIONS[kind](image, np.random.default_rng(5), 3)
    assert np.array_equal(a, b)
    if kind in RANDOM_KINDS:
        assert not np.array_equal(a, CORRUPTIONS[kind](image, np.random.default_rng(6), 3))


@pytest.mark.parametrize("kind", KINDS)
def test_a_kind_gets_stronger_with_severity(kind, clean_images):
    """The mean absolute difference to the clean image grows strictly from severity 1 to 5."""
    for image in clean_images:
        corrupted = [CORRUPTIONS[kind](image, np.random.default_rng(7), s) for s in range(1, 6)]
        diffs = [_mean_abs_diff(c, image) for c in corrupted]
        assert all(b > a for a, b in itertools.pairwise(diffs)), (kind, diffs)


@pytest.mark.parametrize("kind", KINDS)
def test_a_kind_corrupts_a_benchmark_image_quickly(kind, clean_images):
    """A 256x128 image in well under 50 ms (best of three, so that a busy machine does not fail it)."""
    image = clean_images[0]
    assert image.shape == (128, 256, 3)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        CORRUPTIONS[kind](image, np.random.default_rng(0), 5)
        best = min(best, time.perf_counter() - start)
    assert best < 0.05, f"{kind}: {best * 1000:.1f} ms"


@pytest.mark.parametrize("severity", [0, 6, 2.0, True, "3"])
def test_a_kind_rejects_a_bad_severity_naming_it(severity, clean_images):
    with pytest.raises(ValueError, match=rf"severity.*{severity!r}"):
        CORRUPTIONS["fog"](clean_images[0], np.random.default_rng(0), severity)


def test_a_kind_rejects_an_image_that_is_not_hxwx3_uint8():
    with pytest.raises(ValueError, match="uint8"):
        CORRUPTIONS["contrast"](np.zeros((8, 8, 3), dtype=np.float32), np.random.default_rng(0), 1)
    with pytest.raises(ValueError, match=r"\(8, 8\)"):
        CORRUPTIONS["jpeg"](np.zeros((8, 8), dtype=np.uint8), np.random.default_rng(0), 1)


# --------------------------------------------------------------------------------------------- the config


def test_config_reads_and_round_trips_a_corruption(small_config):
    assert small_config.corruption is None and "corruption" not in small_config.to_dict()  # hashes of old configs stay
    config = _with(small_config, {"kind": "snow", "severity": 4})
    assert config.corruption == TargetCorruption("snow", 4)
    assert config.to_dict()["corruption"] == {"kind": "snow", "severity": 4}
    assert SynthesisConfig.from_dict(config.to_dict()) == config
    assert SynthesisConfig.from_dict(small_config.to_dict()) == small_config


@pytest.mark.parametrize(
    "corruption, named",
    [
        ({"kind": "haze", "severity": 1}, r"kind.*'fog'.*'contrast'.*'haze'"),
        ({"kind": "fog", "severity": 6}, r"severity.*\[1, 2, 3, 4, 5\].*6"),
        ({"kind": "fog", "severity": 0}, r"severity.*0"),
        ({"kind": "fog", "severity": 2.5}, r"severity.*2\.5"),
        ({"kind": "fog", "severity": "3"}, r"severity.*'3'"),
        ({"kind": "fog", "severity": True}, r"severity.*True"),
        ({"kind": "fog", "severity": 1, "level": 2}, r"level.*known.*kind.*severity"),
        ({"kind": "fog"}, r"missing.*severity"),
        ("fog", r"corruption.*'fog'.*kinds"),
    ],
)
def test_config_rejects_a_bad_corruption_naming_it(small_config, corruption, named):
    with pytest.raises(ValueError, match=named):
        _with(small_config, corruption)


def test_the_documented_kedro_params_give_a_corruption():
    """``kedro run --params "synthesis.generator.corruption.kind=fog,..."``: Kedro's own parser of --params,
    merged by its config loader into conf/base, gives a config with the corruption (parameters_synthesis.yml
    has no ``corruption`` key; OmegaConf adds it)."""
    click = pytest.importorskip("click")
    from kedro.config import OmegaConfigLoader
    from kedro.framework.cli.utils import _split_params  # the --params callback of `kedro run`

    text = "synthesis.generator.corruption.kind=fog,synthesis.generator.corruption.severity=3"
    runtime = _split_params(click.Context(click.Command("run")), None, text)
    loader = OmegaConfigLoader(
        conf_source=str(PROJECT / "conf"), base_env="base", default_run_env="local", runtime_params=runtime
    )
    generator = loader["parameters"]["synthesis"]["generator"]
    config = SynthesisConfig.from_dict(generator)
    assert config.corruption == TargetCorruption("fog", 3)
    assert config.appearance.haze == generator["appearance"]["haze"]  # the rest of the file still applies


# --------------------------------------------------------------------------------------------- the generator


def test_no_corruption_writes_the_same_bytes_as_before(small_config, small_domains):
    """``corruption=None``, absent or explicit: the renderer alone, the same files bit for bit."""
    explicit = _with(small_config, None)
    assert explicit == small_config
    source, target = small_domains
    assert _png_digest(generate_target(explicit, progress=False)) == _png_digest(target)
    assert _png_digest(generate_source(explicit, progress=False)) == _png_digest(source)


def test_a_corruption_applies_to_every_target_image_after_rendering(small_config, small_domains):
    config = _with(small_config, {"kind": "rain", "severity": 3})
    for split in ("train", "val", "dev"):
        for index in range(small_config.count(split)):
            clean_image, clean_label, clean_layout = target_sample(small_config, split, index)
            image, label, layout = target_sample(config, split, index)
            rng = sample_rng(config.seed, "target", split, index, _CORRUPTION_STREAM)
            expected = CORRUPTIONS["rain"](np.asarray(clean_image), rng, 3)
            assert np.array_equal(np.asarray(image), expected), (split, index)
            assert not np.array_equal(np.asarray(image), np.asarray(clean_image))
            assert image.mode == "RGB" and image.size == config.target_size
            assert np.array_equal(np.asarray(label), np.asarray(clean_label))  # labels never change
            assert np.array_equal(layout.labels, clean_layout.labels)


def test_a_corruption_never_touches_the_source(small_config, small_domains):
    source, _ = small_domains
    config = _with(small_config, {"kind": "gaussian_noise", "severity": 5})
    assert _png_digest(generate_source(config, progress=False)) == _png_digest(source)


def test_the_same_seed_gives_the_same_corrupted_files(small_config, small_domains):
    config = _with(small_config, {"kind": "snow", "severity": 2})
    first = generate_target(config, progress=False)
    again = generate_target(_with(small_config, {"kind": "snow", "severity": 2}), progress=False)
    assert _png_digest(first) == _png_digest(again)
    _, clean = small_domains
    for path, image in first.items():
        same = np.array_equal(np.asarray(image), np.asarray(clean[path]))
        assert same == path.startswith("gtFine/"), path  # images corrupted, labels untouched
