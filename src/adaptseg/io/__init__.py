"""Custom Kedro datasets: folders of images or arrays written atomically, raw dataset roots, checkpoints,
training-run folders."""

from adaptseg.io.checkpoint import TorchCheckpointDataset
from adaptseg.io.folder import FolderDataset
from adaptseg.io.raw_domain import RawDomain, RawDomainDataset
from adaptseg.io.run_folder import RunFolder, RunFolderDataset

__all__ = ["FolderDataset", "RawDomain", "RawDomainDataset", "RunFolder", "RunFolderDataset", "TorchCheckpointDataset"]
