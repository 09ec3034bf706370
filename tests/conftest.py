"""Shared test set-up: no telemetry, a temporary MLflow store, and makers of tiny datasets on disk."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ["KEDRO_DISABLE_TELEMETRY"] = "1"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"  # MLflow's own usage reporting (it reads DO_NOT_TRACK only as "true")
os.environ.setdefault("MPLBACKEND", "Agg")
# precision: auto's measurements are cached per machine: tests keep theirs out of the user's ~/.cache
os.environ["ADAPTSEG_CACHE_DIR"] = tempfile.mkdtemp(prefix="adaptseg-test-cache-")
atexit.register(shutil.rmtree, os.environ["ADAPTSEG_CACHE_DIR"], ignore_errors=True)

PROJECT_ROOT = Path(__file__).resolve().parents[1]

#: Tiny segmenters, discriminators and datasets for the engine and method tests.
pytest_plugins = ["tests.tiny_models"]


@pytest.fixture(autouse=True)
def _temporary_mlflow(tmp_path_factory, monkeypatch):
    """Every test tracks into its own SQLite database, never the project's mlflow.db, and starts and ends
    with no active run (kedro-mlflow leaves a session's finished run on the thread's run stack) and no tracking
    settings."""
    import mlflow

    store = tmp_path_factory.mktemp("mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}/mlflow.db")
    while mlflow.active_run() is not None:
        mlflow.end_run()
    yield
    while mlflow.active_run() is not None:
        mlflow.end_run()
    from adaptseg import tracking

    tracking.reset()  # a test that configured tracking (or opened a session it never ran) leaves nothing behind


def write_png(path: Path, array: np.ndarray, palette: list[int] | None = None) -> Path:
    """Write ``array`` as a PNG, creating folders; ``palette`` makes a paletted ('P') image."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array)
    if palette is not None:  # keep the pixel values as palette indices, as GTA5's label PNGs do
        image = Image.frombytes("P", image.size, image.tobytes())
        image.putpalette(palette)
    image.save(path)
    return path


def random_label_ids(rng: np.random.Generator, height: int, width: int, ids=(7, 8, 11, 21, 23, 26, 0, 4)) -> np.ndarray:
    """A label-id map with blocks of a few known ids (including ignored ones)."""
    label = np.full((height, width), ids[0], dtype=np.uint8)
    for i, value in enumerate(ids):
        y = rng.integers(0, height - 4)
        x = rng.integers(0, width - 4)
        label[y : y + 4 + i, x : x + 6 + i] = value
    return label


@pytest.fixture
def gta5_tree(tmp_path) -> Path:
    """A tiny GTA5-layout root: 3 pairs of 40×24 images and paletted label PNGs."""
    from adaptseg.data.labels import label_id_palette

    root = tmp_path / "gta5"
    rng = np.random.default_rng(0)
    for i in range(1, 4):
        name = f"{i:05d}.png"
        write_png(root / "images" / name, rng.integers(0, 255, (24, 40, 3), dtype=np.uint8))
        write_png(root / "labels" / name, random_label_ids(rng, 24, 40), palette=label_id_palette())
    return root


@pytest.fixture
def cityscapes_tree(tmp_path) -> Path:
    """A tiny Cityscapes-layout root: train (2 cities), val and dev splits of 48×24 images."""
    root = tmp_path / "cityscapes"
    rng = np.random.default_rng(1)
    plan = {"train": ["aachen", "bochum"], "val": ["frankfurt"], "dev": ["ulm"]}
    for split, cities in plan.items():
        for city in cities:
            for frame in (19, 20):
                stem = f"{city}_000000_{frame:06d}"
                write_png(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", rng.integers(0, 255, (24, 48, 3), dtype=np.uint8))
                write_png(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", random_label_ids(rng, 24, 48))
    return root


@pytest.fixture
def project_copy(tmp_path, monkeypatch) -> Path:
    """A throw-away copy of the Kedro project (conf + pyproject, src linked) to run sessions in."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(PROJECT_ROOT / "pyproject.toml", root / "pyproject.toml")
    shutil.copytree(PROJECT_ROOT / "conf", root / "conf", ignore=shutil.ignore_patterns("local"))
    (root / "conf" / "local").mkdir()
    (root / "src").mkdir()  # the package itself is installed (editable) in the environment
    monkeypatch.chdir(root)
    return root
