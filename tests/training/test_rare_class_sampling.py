"""Rare-class sampling (DAFormer): which classes and images the source stream draws, and that the stream stays a
function of (seed, position), so resumed and distributed runs see the same images."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from adaptseg.config import ConfigurationError
from adaptseg.data.layouts import StaleDataError, labels_digest
from adaptseg.data.torch_datasets import SegmentationDataset
from adaptseg.io.folder import Derived
from adaptseg.methods import source_only
from adaptseg.pipelines.label_remapping.nodes import count_class_pixels
from adaptseg.training import EngineConfig, train
from adaptseg.training.streams import ClassDraw, RareClassSampling, StreamSampler
from tests.tiny_models import DictDataset, build_models

#: 4 images × 3 classes: class 0 everywhere, class 1 in images 0 and 3, class 2 barely in 2 and well in 3.
COUNTS = np.array([[900, 100, 0], [1000, 0, 0], [990, 0, 10], [800, 100, 100]])


def test_class_probabilities_are_daformers_softmax_and_images_must_show_enough_of_the_class():
    draw = ClassDraw(COUNTS, RareClassSampling(temperature=0.1, min_share=0.05))
    frequency = COUNTS.sum(0) / COUNTS.sum()
    torch.testing.assert_close(draw.probabilities, torch.softmax(torch.as_tensor((1 - frequency) / 0.1), 0))
    assert draw.classes == [0, 1, 2]
    assert [t.tolist() for t in draw.images] == [[0, 1, 2, 3], [0, 3], [3]]  # image 2's 1% of class 2 is too little
    assert ClassDraw(COUNTS, RareClassSampling(min_share=0.0)).images[2].tolist() == [2, 3]


def test_draws_repeat_per_block_and_favour_images_of_rare_classes():
    draw = ClassDraw(COUNTS, RareClassSampling(temperature=0.01, min_share=0.05))
    order = draw.order(4000, seed=3, domain="source", epoch=0)
    assert order == draw.order(4000, seed=3, domain="source", epoch=0)
    assert order[:50] != draw.order(4000, seed=3, domain="source", epoch=1)[:50]
    shares = np.bincount(order, minlength=4) / len(order)
    # class 2 (f = 2.8%) and class 1 (5.1%) outweigh class 0 (92%) by e^89 and e^87: image 3 shows both
    assert shares[3] > 0.5 and shares[1] < 0.01 and shares[2] < 0.01


def test_the_log_names_the_classes_of_a_known_protocol_and_gives_train_ids_otherwise():
    assert ClassDraw(COUNTS, RareClassSampling(temperature=0.1)).describe().startswith("2 0.")
    counts = np.zeros((2, 19))
    counts[:, 0], counts[0, 12] = 1000, 10  # road everywhere, rider in one image
    assert ClassDraw(counts, RareClassSampling()).describe() == "rider 1.000, road 0.000"

def test_a_resumed_or_sharded_stream_draws_the_same_images():
    draw = ClassDraw(COUNTS, RareClassSampling(temperature=0.5))
    straight = list(StreamSampler(4, 2, 3, "source", 0, 6, draw=draw))
    assert list(StreamSampler(4, 2, 3, "source", 2, 6, draw=draw)) == straight[4:]
    ranks = [list(StreamSampler(4, 1, 3, "source", 0, 6, rank=r, world_size=2, draw=draw)) for r in (0, 1)]
    assert [i for pair in zip(*ranks, strict=True) for i in pair] == straight


def test_segmentation_dataset_counts_train_ids_and_skips_ignored_pixels(tmp_path):
    maps = {"train/a": np.array([[0, 0, 255], [2, 2, 2]]), "train/b": np.array([[1, 255, 255], [0, 1, 1]])}
    manifest = pd.DataFrame({"split": "train", "sample_id": ["a", "b"], "image_path": ["a.png", "b.png"]})
    dataset = SegmentationDataset(manifest, "train", None, labels={k: (lambda v=v: v) for k, v in maps.items()})
    assert dataset.class_pixel_counts().tolist() == [[2, 0, 3], [1, 3, 0]]


def test_the_dataset_takes_label_remappings_table_instead_of_reading_the_labels_and_refuses_a_stale_one(tmp_path):
    maps = {"train/a": np.array([[0, 0, 255], [2, 2, 2]], np.uint8), "train/b": np.array([[1, 255, 18], [0, 1, 1]], np.uint8)}
    manifest = pd.DataFrame({"split": "train", "sample_id": ["b", "a"], "image_path": ["b.png", "a.png"],
                             "label_path": [str(tmp_path / "b.png"), str(tmp_path / "a.png")]})
    labels = Derived({k: (lambda v=v: v) for k, v in maps.items()}, made_from=labels_digest(manifest, 19))
    table = count_class_pixels(labels, {"num_classes": 19})
    table.to_csv(tmp_path / "source_class_pixels.csv", index=False)
    table = pd.read_csv(tmp_path / "source_class_pixels.csv")  # as the catalog gives it back
    reads = []
    counting = {k: (lambda v=v, k=k: reads.append(k) or v) for k, v in maps.items()}
    tabled = SegmentationDataset(manifest, "train", None, labels=Derived(counting, labels.made_from), class_pixels=table)
    counts = tabled.class_pixel_counts()
    assert reads == [] and counts.shape == (2, 19)  # rows in the dataset's order (b, a), every class of the protocol
    np.testing.assert_array_equal(counts, SegmentationDataset(manifest, "train", None, labels=labels).class_pixel_counts())
    assert ClassDraw(counts, RareClassSampling()).describe().startswith("bicycle 1.000")  # named: a known protocol
    stale = SegmentationDataset(manifest, "train", None, labels=labels, class_pixels=table.assign(made_from="19-older"))
    with pytest.raises(StaleDataError, match="label_remapping"):
        stale.class_pixel_counts()
    short = SegmentationDataset(manifest, "train", None, labels=labels, class_pixels=table[table["key"] == "train/a"])
    with pytest.raises(KeyError, match="train/b"):
        short.class_pixel_counts()

def test_the_engine_trains_on_the_drawn_source_images(tmp_path):
    seen = []

    def spy(models, batch, config, amp):
        seen.extend(batch["source"]["name"])
        return source_only.step(models, batch, config, amp)

    parts = ("Config", "TARGET_BATCHES", "CURVES", "build_models")
    method = SimpleNamespace(**{k: getattr(source_only, k) for k in parts}, step=spy, __name__="source_only")
    source = DictDataset(6, seed=10, size=(32, 32))
    sampling = {"temperature": 0.05, "min_share": 0.0}
    config = {"max_steps": 3, "batch_size": 2, "seed": 3, "device": "cpu", "precision": "fp32", "progress": False,
              "rare_class_sampling": sampling}
    models = build_models(multi_level=False)
    train(method, {"segmenter": models["segmenter"]}, source, config, method_config={})
    expected = ClassDraw(source.class_pixel_counts(), RareClassSampling(**sampling)).order(6, 3, "source", 0)
    assert seen == [f"img_{i:03d}" for i in expected]


def test_bad_rare_class_sampling_settings_name_the_key():
    with pytest.raises(ConfigurationError, match="temperatur"):
        EngineConfig.from_dict({"max_steps": 1, "rare_class_sampling": {"temperatur": 0.01}})
    with pytest.raises(ValueError, match="temperature=0"):
        EngineConfig.from_dict({"max_steps": 1, "rare_class_sampling": {"temperature": 0}})
    unlabelled_counts = torch.utils.data.TensorDataset(torch.zeros(2))
    with pytest.raises(TypeError, match="TensorDataset has no class_pixel_counts"):
        train(source_only, {"segmenter": build_models(multi_level=False)["segmenter"]}, unlabelled_counts,
              {"max_steps": 1, "device": "cpu", "precision": "fp32", "progress": False, "rare_class_sampling": {}})
