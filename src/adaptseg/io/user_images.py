"""What a user hands to the ``predict`` pipeline, as catalog entries: a folder of their own images, and the
model they name. Both are read-only, and both are chosen at run time (``--params "predict.input=DIR,
predict.model=NAME"``; ``conf/base/catalog_predict.yml`` reads them with ``${runtime_params:...}``).

A folder of arbitrary images is not a folder of PNGs this project wrote (``FolderDataset``): it may hold
JPEGs of any size, odd pixel formats, broken files and other files. Loading it scans it
(``adaptseg.inference.scan_image_folder``) and hands the node an ``ImageFolder``, which reads images one
batch at a time: a folder of video frames never sits in memory whole.

The model is a dataset rather than something a node loads, so that the node stays a pure function of its
inputs and Kedro-Viz shows which model a run used. It loads the packed model that ``predict.model`` names
(``adaptseg.inference.resolve_model``): a training namespace (the latest version of the catalog's
``<namespace>.model``, found under ``models_root``) or the path of a ``.pt`` file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.io.core import AbstractDataset, DatasetError

from adaptseg.inference.images import ImageFolder, scan_image_folder
from adaptseg.inference.models import DEFAULT_MODELS_ROOT, resolve_model


class UserImageFolderDataset(AbstractDataset[None, ImageFolder]):
    """A folder of user images (JPEG, PNG; searched recursively), loaded as an ``ImageFolder``.

    ``path`` null (the run gave no ``predict.input``) is an error at load that says how to give one.
    """

    def __init__(self, path: str | None, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path) if path not in (None, "") else None
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path) if self._path is not None else None}

    def _exists(self) -> bool:
        return self._path is not None and self._path.is_dir()

    def load(self) -> ImageFolder:
        if self._path is None:
            raise DatasetError(
                "No input folder: give one at run time, e.g. kedro run --pipelines predict "
                '--params "predict.input=path/to/images,predict.output=path/to/results".'
            )
        return scan_image_folder(self._path)

    def save(self, data: None) -> None:
        raise DatasetError(f"{self._path} is a folder of your images; predict reads it and never writes it.")


class PredictModelDataset(AbstractDataset[None, dict]):
    """The packed model ``model`` names: a training namespace or the path of a ``.pt`` checkpoint."""

    def __init__(
        self, model: str, models_root: str = str(DEFAULT_MODELS_ROOT), metadata: dict[str, Any] | None = None
    ) -> None:
        if not model:
            raise DatasetError("PredictModelDataset: model is empty; name a training namespace or a .pt file")
        self._model = str(model)
        self._models_root = Path(models_root)
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"model": self._model, "models_root": str(self._models_root)}

    def load(self) -> dict:
        return resolve_model(self._model, self._models_root)

    def save(self, data: dict) -> None:
        raise DatasetError(
            f"PredictModelDataset({self._model}) only loads; training writes models ('<namespace>.model')."
        )
