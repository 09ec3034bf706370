"""Ingestion: manifests from real dataset layouts, and one clear error naming every bad file."""

from pathlib import Path

import numpy as np
import pytest

from adaptseg.data.layouts import MANIFEST_COLUMNS
from adaptseg.data.validation import DatasetValidationError
from adaptseg.io.raw_domain import RawDomain
from adaptseg.pipelines.ingestion.nodes import ingest_source, ingest_target, summarise_manifests
from tests.conftest import write_png

TARGET_OPTIONS = {
    "required_splits": ["train", "val", "dev"],
    "layout": {"splits": ["train", "val"], "dev": {"split_folder": "dev"}},
}


def _source(root: Path, **options):
    return ingest_source(RawDomain("gta5", root), {"required_splits": ["train"], **options})


def test_gta5_manifest_has_one_row_per_pair(gta5_tree):
    manifest = _source(gta5_tree)
    assert list(manifest.columns) == MANIFEST_COLUMNS
    assert manifest["sample_id"].tolist() == ["00001", "00002", "00003"]
    assert set(manifest["split"]) == {"train"} and set(manifest["domain"]) == {"source"}
    assert (manifest["width"] == 40).all() and (manifest["height"] == 24).all()
    assert all(Path(p).exists() for p in manifest["label_path"])


def test_cityscapes_manifest_splits_and_names(cityscapes_tree):
    manifest = ingest_target(RawDomain("cityscapes", cityscapes_tree), TARGET_OPTIONS)
    assert manifest.groupby("split").size().to_dict() == {"dev": 2, "train": 4, "val": 2}
    row = manifest[manifest["sample_id"] == "frankfurt_000000_000019"].iloc[0]
    assert row["image_path"].endswith("leftImg8bit/val/frankfurt/frankfurt_000000_000019_leftImg8bit.png")
    assert row["label_path"].endswith("gtFine/val/frankfurt/frankfurt_000000_000019_gtFine_labelIds.png")


def test_dev_split_carved_out_of_train_cities(cityscapes_tree):
    options = {"required_splits": ["train", "val", "dev"], "layout": {"dev": {"from_train_cities": ["bochum"]}}}
    manifest = ingest_target(RawDomain("cityscapes", cityscapes_tree), options)
    dev = manifest[manifest["split"] == "dev"]
    assert len(dev) == 2 and dev["sample_id"].str.startswith("bochum").all()
    assert not manifest[manifest["split"] == "train"]["sample_id"].str.startswith("bochum").any()


def _problems(excinfo) -> dict[str, str]:
    return {Path(p.path).name: p.reason for p in excinfo.value.problems}


def test_every_bad_file_is_named_with_its_reason_in_one_error(gta5_tree):
    (gta5_tree / "labels" / "00001.png").unlink()  # image without label
    write_png(gta5_tree / "labels" / "00009.png", np.full((24, 40), 7, np.uint8))  # label without image
    data = (gta5_tree / "images" / "00002.png").read_bytes()
    (gta5_tree / "images" / "00002.png").write_bytes(data[: len(data) // 2])  # truncated PNG
    write_png(gta5_tree / "labels" / "00003.png", np.full((20, 40), 7, np.uint8))  # size mismatch
    write_png(gta5_tree / "images" / "00004.png", np.zeros((24, 40, 3), np.uint8))
    write_png(gta5_tree / "labels" / "00004.png", np.full((24, 40), 77, np.uint8))  # unknown id 77
    with pytest.raises(DatasetValidationError) as excinfo:
        _source(gta5_tree)
    problems = _problems(excinfo)
    assert "no label partner" in problems["00001.png"]
    assert "no image partner" in problems["00009.png"]
    assert "truncated" in problems["00002.png"]
    assert "24" in problems["00003.png"] and "20" in problems["00003.png"]
    assert "[77]" in problems["00004.png"]
    message = str(excinfo.value)
    for name in ("00001.png", "00009.png", "00002.png", "00003.png", "00004.png"):
        assert name in message


def test_empty_split_is_an_error(cityscapes_tree):
    for path in (cityscapes_tree / "leftImg8bit" / "dev").rglob("*.png"):
        path.unlink()
    for path in (cityscapes_tree / "gtFine" / "dev").rglob("*.png"):
        path.unlink()
    with pytest.raises(DatasetValidationError, match="split 'dev' is empty"):
        ingest_target(RawDomain("cityscapes", cityscapes_tree), TARGET_OPTIONS)


def test_missing_root_is_an_error(tmp_path):
    with pytest.raises(DatasetValidationError, match="root does not exist"):
        _source(tmp_path / "nowhere")


def test_missing_cityscapes_label_is_named(cityscapes_tree):
    label = cityscapes_tree / "gtFine" / "val" / "frankfurt" / "frankfurt_000000_000020_gtFine_labelIds.png"
    label.unlink()
    with pytest.raises(DatasetValidationError) as excinfo:
        ingest_target(RawDomain("cityscapes", cityscapes_tree), TARGET_OPTIONS)
    assert "no label partner" in _problems(excinfo)["frankfurt_000000_000020_leftImg8bit.png"]


def test_summary_counts_samples_per_split(gta5_tree, cityscapes_tree):
    summary = summarise_manifests(_source(gta5_tree), ingest_target(RawDomain("cityscapes", cityscapes_tree), TARGET_OPTIONS))
    assert summary["source"]["splits"]["train"]["samples"] == 3
    assert summary["target"]["splits"]["val"] == {"samples": 2, "sizes": {"48x24": 2}}


def test_a_file_copied_into_another_city_is_named_not_scored_against_the_wrong_label(cityscapes_tree):
    import shutil

    stem = "frankfurt_000000_000019"
    for folder, suffix in (("leftImg8bit", "_leftImg8bit.png"), ("gtFine", "_gtFine_labelIds.png")):
        copy = cityscapes_tree / folder / "val" / "munster" / f"{stem}{suffix}"
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(cityscapes_tree / folder / "val" / "frankfurt" / f"{stem}{suffix}", copy)
    with pytest.raises(DatasetValidationError) as excinfo:
        ingest_target(RawDomain("cityscapes", cityscapes_tree), TARGET_OPTIONS)
    reasons = [p.reason for p in excinfo.value.problems]
    assert sum(f"sample id '{stem}' occurs 2 times in split 'val'" in r for r in reasons) == 2


def test_a_16_bit_grayscale_image_is_named_before_it_reaches_the_network_as_white(gta5_tree):
    from PIL import Image

    path = gta5_tree / "images" / "00002.png"
    Image.fromarray(np.full((24, 40), 40000, dtype=np.uint16)).save(path)
    assert Image.open(path).mode.startswith("I")
    with pytest.raises(DatasetValidationError) as excinfo:
        _source(gta5_tree)
    assert "not 8 bits per channel" in _problems(excinfo)["00002.png"]


def test_a_cityscapes_root_with_train_and_val_only_gets_a_dev_split_of_whole_train_cities(cityscapes_tree, caplog):
    import shutil

    shutil.rmtree(cityscapes_tree / "leftImg8bit" / "dev")
    shutil.rmtree(cityscapes_tree / "gtFine" / "dev")
    options = {**TARGET_OPTIONS, "layout": {"splits": ["train", "val"],
                                            "dev": {"split_folder": "dev", "otherwise": {"cities": ["ulm", "zurich"],
                                                                                         "fraction": 0.07}}}}
    with caplog.at_level("WARNING"):
        manifest = ingest_target(RawDomain("cityscapes", cityscapes_tree), options)
    dev = manifest[manifest["split"] == "dev"]
    # no ulm or zurich in train here: the last train city alphabetically (bochum) becomes dev, whole
    assert set(dev["image_path"].map(lambda p: Path(p).parent.name)) == {"bochum"} and len(dev) == 2
    assert set(manifest[manifest["split"] == "train"]["image_path"].map(lambda p: Path(p).parent.name)) == {"aachen"}
    assert "carved out of train, whole cities ['bochum']" in caplog.text
