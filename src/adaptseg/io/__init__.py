"""Custom Kedro datasets: folders of images or arrays written atomically, raw dataset roots, checkpoints."""

from adaptseg.io.checkpoint import TorchCheckpointDataset
from adaptseg.io.folder import FolderDataset
from adaptseg.io.raw_domain import RawDomain, RawDomainDataset

__all__ = ["FolderDataset", "RawDomain", "RawDomainDataset", "TorchCheckpointDataset"]
