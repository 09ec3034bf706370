"""SynthesisConfig: defaults, validation of plain (YAML) values, round trip."""

import pytest

from adaptseg.synth import AppearanceStrengths, SynthesisConfig


def test_defaults_are_the_documented_benchmark():
    config = SynthesisConfig()
    assert config.seed == 0
    assert config.source_size == (256, 128)
    assert config.target_size == (256, 128)
    assert (config.counts.source, config.counts.train, config.counts.val, config.counts.dev) == (500, 500, 150, 100)
    assert config.layout_shift == "none"
    assert config.appearance == AppearanceStrengths()
    assert set(config.target_cities) == {"train", "val", "dev"}
    assert set(config.target_cities["val"]) == {"frankfurt", "lindau", "munster"}
    # no city is shared between splits
    cities = [c for names in config.target_cities.values() for c in names]
    assert len(cities) == len(set(cities))


def test_from_dict_accepts_yaml_values_and_round_trips():
    config = SynthesisConfig.from_dict(
        {
            "seed": 3,
            "source_size": [160, 90],
            "counts": {"source": 2, "val": 1},
            "layout_shift": "mild",
            "appearance": {"haze": 0.5, "jpeg": 0},
            "target_cities": {"dev": ["ulm"]},
        }
    )
    assert config.source_size == (160, 90)
    assert config.counts.source == 2 and config.counts.train == 500
    assert config.appearance.haze == 0.5 and config.appearance.jpeg == 0.0 and config.appearance.noise == 1.0
    assert config.target_cities["dev"] == ("ulm",)
    assert SynthesisConfig.from_dict(config.to_dict()) == config
    assert SynthesisConfig.from_dict(None) == SynthesisConfig()


@pytest.mark.parametrize(
    "data, named",
    [
        ({"sed": 1}, "sed"),
        ({"counts": {"source": 1, "test": 2}}, "test"),
        ({"appearance": {"fog": 1.0}}, "fog"),
        ({"target_cities": {"test": ["ulm"]}}, "test"),
        ({"seed": 0, "colour": 1, "zoom": 2}, "zoom"),
    ],
)
def test_from_dict_rejects_unknown_keys_naming_them(data, named):
    with pytest.raises(ValueError, match=named):
        SynthesisConfig.from_dict(data)


@pytest.mark.parametrize(
    "data",
    [
        {"layout_shift": "extreme"},
        {"seed": -1},
        {"source_size": [320]},
        {"target_size": [8, 4]},
        {"counts": {"val": -2}},
        {"appearance": {"noise": -0.1}},
        {"appearance": {"blur": float("nan")}},
        {"target_cities": {"val": []}},
        {"target_cities": {"val": ["Frankfurt am Main"]}},
    ],
)
def test_from_dict_rejects_bad_values(data):
    with pytest.raises(ValueError):
        SynthesisConfig.from_dict(data)
