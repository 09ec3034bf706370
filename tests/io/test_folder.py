"""FolderDataset writes whole folders atomically and never clobbers data it did not write."""

import numpy as np
import pytest
from kedro.io.core import DatasetError
from PIL import Image

from adaptseg.io import FolderDataset, RawDomainDataset
from adaptseg.io.raw_domain import SYNTHETIC_MARKER


def test_npy_round_trip_is_lazy_and_keyed_by_relative_path(tmp_path):
    ds = FolderDataset(str(tmp_path / "ids"), format="npy", progress=False)
    ds.save({"train/a": np.ones((2, 3), np.uint8), "val/b": lambda: np.zeros((2, 3), np.uint8)})
    loaded = ds.load()
    assert sorted(loaded) == ["train/a", "val/b"]
    assert np.asarray(loaded["train/a"]()).sum() == 6


def test_failed_save_keeps_the_previous_folder_whole(tmp_path):
    ds = FolderDataset(str(tmp_path / "ids"), format="npy", progress=False)
    ds.save({"a": np.ones(3, np.uint8)})

    def broken():
        raise RuntimeError("boom")

    with pytest.raises(DatasetError):
        ds.save({"b": np.zeros(3, np.uint8), "c": broken})
    assert sorted(ds.load()) == ["a"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "staging folders left behind"


def test_raw_domain_refuses_to_overwrite_data_it_did_not_write(tmp_path):
    real = tmp_path / "GTA5"
    (real / "images").mkdir(parents=True)
    ds = RawDomainDataset(kind="gta5", root=str(real))
    with pytest.raises(DatasetError, match="Refusing to overwrite"):
        ds.save({"images/00001": Image.new("RGB", (4, 4))})
    assert not (real / "images" / "00001.png").exists()


def test_raw_domain_regenerates_its_own_output_and_loads_a_handle(tmp_path):
    ds = RawDomainDataset(kind="gta5", root=str(tmp_path / "synthetic"))
    ds.save({"images/00001": Image.new("RGB", (4, 4))})
    ds.save({"images/00002": Image.new("RGB", (4, 4))})
    assert (tmp_path / "synthetic" / SYNTHETIC_MARKER).exists()
    assert not (tmp_path / "synthetic" / "images" / "00001.png").exists()
    handle = ds.load()
    assert handle.kind == "gta5" and handle.root == tmp_path / "synthetic"


def test_missing_root_and_unknown_kind_are_named(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        RawDomainDataset(kind="cityscapes", root=str(tmp_path / "nowhere")).load()
    with pytest.raises(DatasetError, match="mapillary"):
        RawDomainDataset(kind="mapillary", root=str(tmp_path))
