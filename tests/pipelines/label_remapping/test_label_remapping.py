"""Label remapping: train-id maps per sample and class frequencies per domain and split."""

import numpy as np

from adaptseg.data.labels import label_id_to_train_id_lut
from adaptseg.data.remap import read_label_ids
from adaptseg.io.raw_domain import RawDomain
from adaptseg.pipelines.ingestion.nodes import ingest_source, ingest_target
from adaptseg.pipelines.label_remapping.nodes import (
    count_class_frequencies,
    count_class_pixels,
    plot_class_frequencies,
    remap_labels,
)


def test_remapped_maps_equal_the_lookup_of_each_label(gta5_tree):
    manifest = ingest_source(RawDomain("gta5", gta5_tree), {"required_splits": ["train"]})
    maps = remap_labels(manifest, {"num_classes": 19})
    assert sorted(maps) == ["train/00001", "train/00002", "train/00003"]
    lut = label_id_to_train_id_lut(19)
    for row in manifest.itertuples():
        ids = read_label_ids(row.label_path)
        out = maps[f"train/{row.sample_id}"]()
        assert out.dtype == np.uint8
        np.testing.assert_array_equal(out, lut[ids])
        assert 255 in out  # the fixture's ids 0 and 4 are ignored


def test_16_class_protocol_renumbers(gta5_tree):
    manifest = ingest_source(RawDomain("gta5", gta5_tree), {"required_splits": ["train"]})
    out = remap_labels(manifest, {"num_classes": 16})["train/00001"]()
    assert set(np.unique(out)) <= set(range(16)) | {255}


def test_class_frequencies_and_plot(gta5_tree, cityscapes_tree):
    options = {"num_classes": 19}
    source = remap_labels(ingest_source(RawDomain("gta5", gta5_tree), {"required_splits": ["train"]}), options)
    target = remap_labels(
        ingest_target(RawDomain("cityscapes", cityscapes_tree), {"required_splits": ["train"], "layout": {}}), options
    )
    source_pixels = count_class_pixels(source, options)
    assert source_pixels["key"].tolist() == sorted(source) and set(source_pixels["made_from"]) == {source.made_from}
    first = source["train/00001"]()
    assert source_pixels.loc[0, "road"] == (first == 0).sum() and source_pixels.loc[0, "ignored"] == (first == 255).sum()
    assert source_pixels.drop(columns=["key", "made_from"]).to_numpy().sum(axis=1).tolist() == [24 * 40] * 3
    table = count_class_frequencies(source_pixels, count_class_pixels(target, options), options)
    src = table[(table["domain"] == "source") & (table["split"] == "train")]
    assert src["pixels"].sum() == 3 * 24 * 40
    fractions = src[src["class"] != "ignored"]["fraction"]
    assert abs(fractions.sum() - 1.0) < 1e-9
    assert set(table["split"]) == {"train", "val"}
    figure = plot_class_frequencies(table, options)
    assert figure.axes[0].get_yscale() == "log"


def test_fast_image_route_equals_the_lookup_for_every_id_and_mode():
    from PIL import Image

    from adaptseg.data.labels import label_id_palette
    from adaptseg.data.remap import remap_label_image

    ids = np.arange(256, dtype=np.uint8).reshape(16, 16)
    lut = label_id_to_train_id_lut(19)
    paletted = Image.frombytes("P", (16, 16), ids.tobytes())
    paletted.putpalette(label_id_palette())
    for image in (Image.fromarray(ids), paletted, Image.fromarray(ids.astype(np.int32))):
        np.testing.assert_array_equal(remap_label_image(image, lut), lut[ids])
