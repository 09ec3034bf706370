"""Cityscapes results export: file names the official script finds, label ids it reads, scores it agrees with."""

import numpy as np
import pytest
import torch
from PIL import Image

from adaptseg.data.labels import (
    TRAIN_PALETTE,
    colorize_train_ids,
    label_id_to_train_id_lut,
    protocol_train_ids,
)
from adaptseg.evaluation import ConfusionMatrix, prediction_exports, protocol_scores, result_key
from adaptseg.evaluation.export import colour_image, label_id_image
from adaptseg.io import FolderDataset
from tests.conftest import write_png
from tests.evaluation.official_cityscapes import assert_same_as_official, run_official_evaluation

LUT = label_id_to_train_id_lut(19)


def test_result_key_puts_cityscapes_ids_in_their_city_folder():
    assert result_key("frankfurt_000000_000294") == "frankfurt/frankfurt_000000_000294"
    assert result_key("bad_city_000001_000019") == "bad_city/bad_city_000001_000019"
    assert result_key("00001") == "00001"  # GTA5-style ids stay flat


def test_label_ids_and_colours_of_train_ids():
    train_ids = np.array([[0, 1, 18], [10, 255, 13]], dtype=np.uint8)
    np.testing.assert_array_equal(np.asarray(label_id_image(train_ids)), [[7, 8, 33], [23, 0, 26]])
    image = colour_image(train_ids)
    assert image.mode == "P"
    colours = np.asarray(image.convert("RGB"))
    assert colours.shape == (2, 3, 3)
    np.testing.assert_array_equal(colours, colorize_train_ids(train_ids))
    np.testing.assert_array_equal(colours[0, 2], TRAIN_PALETTE[18])
    np.testing.assert_array_equal(colours[1, 1], [0, 0, 0])
    # a 16-class model's compact ids map back through its own protocol
    compact = np.array([[9, 15]], dtype=np.uint8)  # sky, bicycle in the SYNTHIA order
    np.testing.assert_array_equal(np.asarray(label_id_image(compact, 16)), [[23, 33]])
    assert protocol_train_ids(16)[9] == 10


def test_exports_are_lazy_and_colour_is_optional():
    preds = {"ulm_000000_000019": np.zeros((2, 2), np.uint8)}
    label_ids, colours = prediction_exports(preds, 19)
    assert list(label_ids) == ["ulm/ulm_000000_000019"] and list(colours) == ["ulm/ulm_000000_000019_color"]
    assert callable(label_ids["ulm/ulm_000000_000019"])  # images are made while the catalog writes
    assert isinstance(label_ids["ulm/ulm_000000_000019"](), Image.Image)
    assert prediction_exports(preds, 19, colour=False)[1] == {}


def _crafted_case(tmp_path):
    """A Cityscapes-layout ground truth (two val cities) and train-id predictions with every edge case.

    Ground truth has ignored ids (0 unlabeled, 4 static, 9 parking, 14 guard rail). Predictions: mostly right;
    sky predicted where sky is absent (IoU 0); bus predicted only on ignored pixels (no false positive: NaN);
    a block of person confused with rider; many classes absent from both (NaN).
    """
    rng = np.random.default_rng(7)
    root = tmp_path / "cityscapes"
    ground_truth, predictions = {}, {}
    for city, frame in (("frankfurt", 294), ("lindau", 19)):
        stem = f"{city}_000000_{frame:06d}"
        label = np.full((32, 64), 7, dtype=np.uint8)  # road
        label[:8] = 11  # building
        label[8:12, :20] = 8  # sidewalk
        label[12:20, 30:40] = 26  # car
        label[20:28, 5:10] = 24  # person
        label[28:, :] = 0  # unlabeled
        label[12:16, 50:60] = 4  # static
        label[16:20, 50:60] = 9  # parking
        label[0:4, 60:] = 14  # guard rail
        write_png(root / "gtFine" / "val" / city / f"{stem}_gtFine_labelIds.png", label)
        train = np.take(LUT, label)
        prediction = np.where(train == 255, rng.integers(0, 19, train.shape), train).astype(np.uint8)
        prediction[train == 255] = 15  # bus, on ignored pixels only
        prediction[2:6, 2:30] = 10  # sky, over building pixels
        prediction[20:24, 5:10] = 12  # rider over part of the person
        prediction[12:20, 30:34] = 0  # car pixels called road
        ground_truth[stem], predictions[stem] = train, prediction
    return root, ground_truth, predictions


def test_official_cityscapes_evaluation_agrees_with_ours(tmp_path, monkeypatch):
    root, ground_truth, predictions = _crafted_case(tmp_path)
    confusion = ConfusionMatrix(19)
    for stem, prediction in predictions.items():
        confusion.update(torch.from_numpy(prediction), torch.from_numpy(ground_truth[stem]))
    ours = protocol_scores(confusion.numpy(), 19)
    assert ours["iou"]["sky"] == 0.0 and ours["iou"]["bus"] is None and ours["iou"]["train"] is None

    label_ids, colours = prediction_exports(predictions, 19)
    FolderDataset(str(tmp_path / "results" / "label_ids"), progress=False).save(label_ids)
    FolderDataset(str(tmp_path / "results" / "color"), progress=False).save(colours)
    official, found = run_official_evaluation(root, tmp_path / "results" / "label_ids", monkeypatch)

    assert sorted(p.split("results/label_ids/")[1] for p in found) == [
        "frankfurt/frankfurt_000000_000294.png",
        "lindau/lindau_000000_000019.png",
    ]
    assert_same_as_official(official, ours)


def test_colours_in_the_results_tree_would_confuse_the_official_script(tmp_path, monkeypatch, capsys):
    """Why the colour PNGs get their own folder: the official matching finds two files per image and stops."""
    root, _, predictions = _crafted_case(tmp_path)
    label_ids, colours = prediction_exports(predictions, 19)
    FolderDataset(str(tmp_path / "mixed"), progress=False).save({**label_ids, **colours})
    with pytest.raises(SystemExit):
        run_official_evaluation(root, tmp_path / "mixed", monkeypatch)
    assert "multiple predictions" in capsys.readouterr().out
