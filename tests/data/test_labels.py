"""The label tables against the official Cityscapes definitions, and remapping of every id."""

import numpy as np
import pytest
from cityscapesscripts.helpers import labels as official

from adaptseg.data import labels as ours


def test_label_table_matches_cityscapesscripts():
    mine = {(lab.name, lab.id, lab.train_id, lab.category, lab.ignore_in_eval, lab.color) for lab in ours.CITYSCAPES_LABELS}
    theirs = {(lab.name, lab.id, lab.trainId, lab.category, lab.ignoreInEval, lab.color) for lab in official.labels}
    assert mine == theirs


def test_train_classes_and_palette_match_official():
    official_train = sorted((lab.trainId, lab.name, lab.color) for lab in official.labels if 0 <= lab.trainId < 255)
    assert ours.TRAIN_CLASSES == tuple(name for _, name, _ in official_train)
    assert ours.TRAIN_PALETTE.tolist() == [list(color) for _, _, color in official_train]


def test_every_label_id_maps_as_official_for_19_classes():
    lut = ours.label_id_to_train_id_lut(19)
    by_id = {lab.id: lab.trainId for lab in official.labels if lab.id >= 0}
    for label_id in range(256):
        expected = by_id.get(label_id, 255)
        expected = 255 if expected in (-1, 255) else expected
        assert lut[label_id] == expected, label_id


def test_gta5_mapping_of_the_reference_code():
    reference = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
                 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
    lut = ours.label_id_to_train_id_lut(19)
    assert {i: int(lut[i]) for i in range(256) if lut[i] != 255} == reference


@pytest.mark.parametrize(
    ("num_classes", "dropped"),
    [(16, {"terrain", "truck", "train"}), (13, {"terrain", "truck", "train", "wall", "fence", "pole"})],
)
def test_synthia_protocols_drop_the_right_classes_and_renumber_compactly(num_classes, dropped):
    names = ours.protocol_class_names(num_classes)
    assert len(names) == num_classes
    assert set(ours.TRAIN_CLASSES) - set(names) == dropped
    lut = ours.label_id_to_train_id_lut(num_classes)
    kept = sorted(int(v) for v in set(lut.tolist()) - {255})
    assert kept == list(range(num_classes))
    for label in ours.CITYSCAPES_LABELS:
        if label.name in dropped:
            assert lut[label.id] == 255
        elif label.name in names:
            assert names[lut[label.id]] == label.name


def test_remap_is_a_vectorised_gather_over_any_shape():
    lut = ours.label_id_to_train_id_lut(19)
    ids = np.arange(256, dtype=np.uint8).reshape(16, 16)
    out = ours.remap_with_lut(ids, lut)
    assert out.dtype == np.uint8 and out.shape == ids.shape
    assert out.ravel().tolist() == lut.tolist()


def test_unknown_protocol_is_named():
    with pytest.raises(ValueError, match="17"):
        ours.protocol_train_ids(17)


def test_train_id_round_trip_to_label_ids():
    forward = ours.label_id_to_train_id_lut(16)
    backward = ours.train_id_to_label_id_lut(16)
    for train_id in range(16):
        assert forward[backward[train_id]] == train_id
