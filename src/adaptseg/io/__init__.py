"""Custom Kedro datasets: folders of images or arrays written atomically, raw dataset roots, checkpoints,
training-run folders, and what a user hands to predict (their images, the model they name)."""

from adaptseg.io.checkpoint import TorchCheckpointDataset
from adaptseg.io.files import CSVDataset, JSONDataset
from adaptseg.io.folder import FolderDataset
from adaptseg.io.raw_domain import RawDomain, RawDomainDataset
from adaptseg.io.run_folder import RunFolder, RunFolderDataset
from adaptseg.io.user_images import PredictModelDataset, UserImageFolderDataset

__all__ = ["CSVDataset", "FolderDataset", "JSONDataset", "PredictModelDataset", "RawDomain", "RawDomainDataset", "RunFolder", "RunFolderDataset", "TorchCheckpointDataset", "UserImageFolderDataset"]
