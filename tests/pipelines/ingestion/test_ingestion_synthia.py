"""SYNTHIA-RAND-CITYSCAPES: 16-bit labels ingested, validated and remapped to the published 16/13-class ids."""

import numpy as np
import pytest
from PIL import Image

from adaptseg.data.labels import SYNTHIA_TO_TRAIN_ID, label_id_to_train_id_lut, protocol_train_ids
from adaptseg.data.png16 import encode_png16
from adaptseg.data.remap import read_label_ids, remap_label_file
from adaptseg.data.validation import DatasetValidationError
from adaptseg.io.raw_domain import RawDomain
from adaptseg.pipelines.ingestion.nodes import ingest_source
from adaptseg.pipelines.label_remapping.nodes import remap_labels

#: The 16-class compact map ADVENT, DADA and MTAF publish (adaptsegnet-reference.md §6.2).
PUBLISHED_16 = {3: 0, 4: 1, 2: 2, 21: 3, 5: 4, 7: 5, 15: 6, 9: 7, 6: 8, 1: 9, 10: 10, 17: 11, 8: 12, 19: 13, 12: 14,
                11: 15}
#: Every SYNTHIA id, laid out in a 4×6 label: void, classes, and the ids the protocols drop.
IDS = np.array([[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11], [12, 13, 14, 15, 16, 17], [18, 19, 20, 21, 22, 3]])


def _write_pair(root, name, ids, instances=7):
    (root / "RGB").mkdir(parents=True, exist_ok=True)
    (root / "GT" / "LABELS").mkdir(parents=True, exist_ok=True)
    h, w = ids.shape
    Image.fromarray(np.full((h, w, 3), 90, dtype=np.uint8)).save(root / "RGB" / name)
    label = np.zeros((h, w, 3), dtype=np.uint16)
    label[:, :, 0] = ids
    label[:, :, 1] = instances  # instance ids in channel 1: never read as classes
    (root / "GT" / "LABELS" / name).write_bytes(encode_png16(label))


@pytest.fixture
def synthia_tree(tmp_path):
    root = tmp_path / "synthia"
    for i in range(3):
        _write_pair(root, f"{i:07d}.png", np.roll(IDS, i, axis=1))
    return root


def test_16_bit_labels_are_read_from_channel_0(synthia_tree):
    ids = read_label_ids(str(synthia_tree / "GT" / "LABELS" / "0000000.png"))
    assert ids.dtype == np.uint16 and np.array_equal(ids, IDS)


def test_ingestion_and_remapping_follow_the_published_protocols(synthia_tree):
    manifest = ingest_source(RawDomain("synthia", synthia_tree), {"required_splits": ["train"]})
    assert len(manifest) == 3 and set(manifest["kind"]) == {"synthia"} and set(manifest["split"]) == {"train"}
    path = manifest.loc[manifest["sample_id"] == "0000000", "label_path"].item()
    for num_classes in (19, 16, 13):
        train_ids = remap_labels(manifest, {"num_classes": num_classes})["train/0000000"]()
        expected = np.full(IDS.shape, 255)
        kept = protocol_train_ids(num_classes)
        for synthia_id, train_id in SYNTHIA_TO_TRAIN_ID.items():
            if train_id in kept:
                expected[IDS == synthia_id] = kept.index(train_id)
        assert np.array_equal(train_ids, expected), num_classes
        assert np.array_equal(remap_label_file(path, label_id_to_train_id_lut(num_classes, "synthia")), expected)
    sixteen = remap_labels(manifest, {"num_classes": 16})["train/0000000"]()
    for synthia_id, compact in PUBLISHED_16.items():
        assert (sixteen[IDS == synthia_id] == compact).all(), synthia_id
    # void, parking-slot, road-work, lanemarking, and terrain, truck and train in the 16-class protocol
    for dropped in (0, 13, 14, 22, 16, 18, 20):
        assert (sixteen[IDS == dropped] == 255).all(), dropped


def test_every_bad_file_is_named_in_one_error(synthia_tree):
    labels = synthia_tree / "GT" / "LABELS"
    (synthia_tree / "RGB" / "0000001.png").unlink()                       # label without its image
    (labels / "0000002.png").write_bytes((labels / "0000002.png").read_bytes()[:60])  # truncated 16-bit PNG
    _write_pair(synthia_tree, "0000003.png", np.full((4, 6), 40))          # an id outside SYNTHIA's table
    _write_pair(synthia_tree, "0000004.png", IDS)
    Image.fromarray(np.zeros((5, 6, 3), dtype=np.uint8)).save(synthia_tree / "RGB" / "0000004.png")  # size mismatch
    Image.fromarray(np.zeros((4, 6, 3), dtype=np.uint8)).save(synthia_tree / "RGB" / "0000005.png")  # image alone
    with pytest.raises(DatasetValidationError) as caught:
        ingest_source(RawDomain("synthia", synthia_tree), {"required_splits": ["train"]})
    problems = {p.path.rsplit("/", 3)[-1]: p.reason for p in caught.value.problems}
    assert "no image partner" in problems["0000001.png"] and "no label partner" in problems["0000005.png"]
    assert "unreadable or truncated" in problems["0000002.png"]
    assert "outside the dataset's id table: [40]" in problems["0000003.png"]
    assert "label is 6×4 but its image is 6×5" in problems["0000004.png"]
    assert len(caught.value.problems) == 5


def test_a_root_without_the_synthia_folders_is_named(tmp_path):
    (tmp_path / "RGB").mkdir()
    with pytest.raises(DatasetValidationError, match=r"GT/LABELS: folder missing \(SYNTHIA layout"):
        ingest_source(RawDomain("synthia", tmp_path), {"required_splits": ["train"]})
