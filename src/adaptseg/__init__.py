"""adaptseg: unsupervised domain adaptation for semantic segmentation (AdaptSegNet and kin) as a Kedro project."""

__version__ = "0.1.0"
