"""Appearance: strength 0 is the source renderer; the target shift is per class, per image and local."""

from dataclasses import fields

import numpy as np
import pytest

from adaptseg.data.labels import LABEL_BY_NAME
from adaptseg.synth import (
    AppearanceStrengths,
    layout_profile,
    render,
    render_source,
    render_target,
    sample_layout,
    sample_rng,
)

SIZE = (256, 128)
ID = {name: LABEL_BY_NAME[name].id for name in ("road", "sidewalk", "building", "vegetation", "terrain", "sky", "car")}


@pytest.fixture(scope="module")
def layouts():
    return [sample_layout(sample_rng(7, "target", "val", i, 0), SIZE, layout_profile("target")) for i in range(24)]


def _rgb(image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64)


def _pair(layouts, strengths=None):
    """(source image, target image) of each layout, each renderer with the same per-layout seed."""
    out = []
    for i, layout in enumerate(layouts):
        src = _rgb(render_source(layout, sample_rng(7, "target", "val", i, 1)))
        tgt = _rgb(render_target(layout, sample_rng(7, "target", "val", i, 1), strengths))
        out.append((src, tgt))
    return out


def test_all_strengths_zero_render_exactly_like_the_source(layouts):
    for i, layout in enumerate(layouts[:6]):
        src = render_source(layout, sample_rng(1, "target", "train", i, 1))
        zero = render(layout, sample_rng(1, "target", "train", i, 1), AppearanceStrengths.zeros())
        assert np.array_equal(np.asarray(src), np.asarray(zero))


def test_tiny_strengths_stay_close_to_the_source(layouts):
    tiny = AppearanceStrengths(**{f.name: 0.02 for f in fields(AppearanceStrengths)})
    for src, tgt in _pair(layouts[:6], tiny):
        assert np.abs(src - tgt).mean() < 4.0


PALETTE_MODIFIERS = ("palette_overlap", "instance_variation", "class_variation")


@pytest.mark.parametrize("name", [f.name for f in fields(AppearanceStrengths)])
def test_every_strength_changes_the_picture(layouts, name):
    """Each knob on its own changes the picture (the palette modifiers act on the target palette, so
    they are compared with palette_shift alone)."""
    base = {f.name: 0.0 for f in fields(AppearanceStrengths)}
    if name in PALETTE_MODIFIERS:
        base["palette_shift"] = 1.0
    before = _pair(layouts[:8], AppearanceStrengths(**base))
    after = _pair(layouts[:8], AppearanceStrengths(**{**base, name: 1.0}))
    diffs = [np.abs(b[1] - a[1]).mean() for a, b in zip(before, after, strict=True)]
    assert max(diffs) > 1.0, name


def _class_means(pairs, layouts, which: int) -> dict[str, np.ndarray]:
    means = {}
    for name, lid in ID.items():
        pixels = [pair[which][layout.labels == lid] for pair, layout in zip(pairs, layouts, strict=True)]
        means[name] = np.concatenate(pixels).mean(0)
    return means


def test_class_colours_move_and_overlap_in_the_target(layouts):
    pairs = _pair(layouts)
    src, tgt = _class_means(pairs, layouts, 0), _class_means(pairs, layouts, 1)
    for name in ID:
        assert np.linalg.norm(src[name] - tgt[name]) > 20.0, name  # each class looks different in the target

    def gap(means, a, b):
        return np.linalg.norm(means[a] - means[b])

    # palettes that are distinct in the game overlap in the camera domain
    for a, b in (("road", "sidewalk"), ("vegetation", "terrain"), ("building", "sidewalk")):
        assert gap(tgt, a, b) < 0.65 * gap(src, a, b), (a, b)


def test_target_varies_per_image_more_than_the_source(layouts):
    pairs = _pair(layouts)
    road = [(layout.labels == ID["road"]) & (layout.detail == 0) for layout in layouts]  # no lane markings
    src_road = [p[0][m].mean(0) for p, m in zip(pairs, road, strict=True)]
    tgt_road = [p[1][m].mean(0) for p, m in zip(pairs, road, strict=True)]
    # the same class changes colour from one target image to the next (light, white balance, wet roads ...)
    assert np.std(tgt_road, axis=0).mean() > 2 * np.std(src_road, axis=0).mean()
    assert np.std(tgt_road, axis=0).mean() > 8.0
    brightness = [p[1].mean() for p in pairs]
    assert np.std(brightness) > 8.0


def test_no_global_colour_transform_maps_source_to_target(layouts):
    """An affine colour map fitted per image (what normalisation statistics could undo) leaves most of
    the shift: it is per class, textured and local."""
    residual, spread = [], []
    for src, tgt in _pair(layouts[:8]):
        x = np.concatenate([src.reshape(-1, 3), np.ones((src.shape[0] * src.shape[1], 1))], axis=1)
        y = tgt.reshape(-1, 3)
        coef, *_ = np.linalg.lstsq(x, y, rcond=None)
        residual.append(np.sqrt(np.mean((x @ coef - y) ** 2)))
        spread.append(np.sqrt(np.mean((y - y.mean(0)) ** 2)))
    # the best per-image affine map explains well under 80 % of the target's variance
    assert np.mean(np.square(residual)) > 0.2 * np.mean(np.square(spread))


def test_strengths_are_validated():
    with pytest.raises(ValueError, match="noise"):
        AppearanceStrengths(noise=-1.0)
    with pytest.raises(ValueError, match="Unknown appearance"):
        AppearanceStrengths.from_dict({"glare": 1.0})
    assert AppearanceStrengths.zeros().haze == 0.0
    assert AppearanceStrengths(blur=2).blur == 2.0  # more than 1 exaggerates


def test_class_variation_varies_class_colours_without_moving_their_mean(layouts):
    """On its own, class variation recolours each class differently per image, around the source colour:
    a spread that normalisation statistics cannot undo, and no mean shift they could learn."""
    only = AppearanceStrengths(**{**AppearanceStrengths.zeros().to_dict(), "class_variation": 2.0})
    pairs = _pair(layouts, only)
    for name in ("road", "building", "car"):
        mask = [(layout.labels == ID[name]) & (layout.detail == 0) for layout in layouts]
        src = np.array([p[0][m].mean(0) for p, m in zip(pairs, mask, strict=True) if m.any()])
        tgt = np.array([p[1][m].mean(0) for p, m in zip(pairs, mask, strict=True) if m.any()])
        assert np.std(tgt, axis=0).mean() > 2 * np.std(src, axis=0).mean() + 5.0, name
        assert np.abs(np.log(tgt.mean(0) + 1) - np.log(src.mean(0) + 1)).mean() < 0.15, name
