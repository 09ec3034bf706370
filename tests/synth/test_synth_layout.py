"""Scene layouts: every class occurs, ignored ids occur, and the layout shift moves the horizon."""

import numpy as np
import pytest

from adaptseg.data.labels import LABEL_BY_NAME, TRAIN_CLASSES, VALID_LABEL_IDS
from adaptseg.synth import (
    SynthesisConfig,
    generate_source,
    generate_target,
    layout_profile,
    sample_layout,
    sample_rng,
)

TRAIN_CLASS_IDS = {LABEL_BY_NAME[name].id for name in TRAIN_CLASSES}
# ids the 19-class protocol ignores that the scenes contain (so that remapping is exercised)
IGNORED_IDS = {0, 1, 4, 5, 6, 9, 10, 14, 15, 18, 29, 30}


def _ids(files: dict, prefix: str) -> set[int]:
    found: set[int] = set()
    for path, label in files.items():
        if path.startswith(prefix):
            found |= set(np.unique(np.asarray(label)).tolist())
    return found


@pytest.fixture(scope="module")
def medium_domains():
    config = SynthesisConfig.from_dict({"counts": {"source": 70, "train": 0, "val": 70, "dev": 0}})
    return generate_source(config, progress=False), generate_target(config, progress=False)


def test_all_19_classes_and_ignored_ids_occur_in_both_domains(medium_domains):
    source, target = medium_domains
    for ids in (_ids(source, "labels/"), _ids(target, "gtFine/val/")):
        assert ids <= VALID_LABEL_IDS
        assert TRAIN_CLASS_IDS <= ids, sorted(TRAIN_CLASS_IDS - ids)
        assert IGNORED_IDS <= ids, sorted(IGNORED_IDS - ids)


@pytest.mark.slow
def test_default_counts_contain_every_class_in_every_split():
    """Labels only (no rendering): the default set has all 19 classes in source, train, val and dev."""
    config = SynthesisConfig()
    streams = [("source", "all", config.counts.source, config.source_size, "none")]
    streams += [("target", s, config.count(s), config.target_size, config.layout_shift) for s in ("train", "val", "dev")]
    for domain, split, count, size, shift in streams:
        ids: set[int] = set()
        for i in range(count):
            layout = sample_layout(sample_rng(config.seed, domain, split, i, 0), size, layout_profile(domain, shift))
            ids |= set(np.unique(layout.labels).tolist())
        assert TRAIN_CLASS_IDS <= ids, (split, sorted(TRAIN_CLASS_IDS - ids))


def _sky_and_horizon(shift: str, n: int = 40) -> tuple[float, float]:
    sky, horizon = [], []
    for i in range(n):
        layout = sample_layout(sample_rng(0, "target", "val", i, 0), (256, 128), layout_profile("target", shift))
        sky.append(np.mean(layout.labels == LABEL_BY_NAME["sky"].id))
        horizon.append(layout.camera.cy / layout.camera.height)
    return float(np.mean(sky)), float(np.mean(horizon))


def test_layout_shift_lowers_the_horizon_and_shows_more_sky():
    sky_none, horizon_none = _sky_and_horizon("none")
    sky_mild, horizon_mild = _sky_and_horizon("mild")
    sky_strong, horizon_strong = _sky_and_horizon("strong")
    assert horizon_none < horizon_mild < horizon_strong
    assert horizon_strong - horizon_none > 0.05
    assert sky_none < sky_mild < sky_strong
    assert sky_strong > 1.33 * sky_none  # at least a third more sky


def test_layout_shift_none_shares_the_source_layout_distribution():
    assert layout_profile("target", "none") == layout_profile("source")
    strong = layout_profile("target", "strong")
    source = layout_profile("source")
    assert strong.persons > 2 * source.persons and strong.cars > source.cars
    assert strong.building_density < source.building_density
    with pytest.raises(ValueError, match="layout_shift"):
        layout_profile("target", "huge")


def test_layout_maps_are_consistent():
    layout = sample_layout(sample_rng(0, "source", "all", 0, 0), (320, 180), layout_profile("source"))
    h, w = 180, 320
    for name in ("labels", "prim", "detail", "depth", "coord_a", "coord_b", "cell"):
        assert getattr(layout, name).shape == (h, w), name
    assert np.array_equal(layout.labels, layout.prim_label[layout.prim])
    sky = layout.labels == LABEL_BY_NAME["sky"].id
    assert sky.any() and (layout.depth[sky] > 1000).all()
    road = layout.labels == LABEL_BY_NAME["road"].id
    # the ground recedes: the road's depth shrinks towards the bottom of the picture
    rows = [r for r in range(h) if road[r].any()]
    depth_by_row = [layout.depth[r][road[r]].mean() for r in rows]
    assert depth_by_row[0] > depth_by_row[-1]
