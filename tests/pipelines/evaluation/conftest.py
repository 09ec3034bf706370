"""A tiny Cityscapes-layout target (val with ground truth, unlabelled train) and a tiny packed model."""

import numpy as np
import pandas as pd
import pytest
import torch

from adaptseg.data.remap import lookup_table, remap_label_file
from adaptseg.models.packaging import build_from_spec, pack_model
from tests.conftest import random_label_ids, write_png

SPEC = {"arch": "deeplabv2_small", "num_classes": 19, "options": {"depth": 18, "width": 8}}
EVALUATION = {"split": "val", "input_size": [64, 32], "batch_size": 2, "device": "cpu", "protocols": [19, 16, 13]}


@pytest.fixture
def tiny_target(tmp_path):
    """``(root, manifest, train_ids)``: val = 2 cities × 1 labelled image, train = 3 images, all 48×24."""
    rng = np.random.default_rng(3)
    root = tmp_path / "cityscapes"
    rows = []
    plan = [("val", "frankfurt", 294), ("val", "munster", 73), ("train", "aachen", 19), ("train", "aachen", 20),
            ("train", "bochum", 19)]
    for split, city, frame in plan:
        stem = f"{city}_000000_{frame:06d}"
        image = write_png(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png",
                          rng.integers(0, 255, (24, 48, 3), dtype=np.uint8))
        label = write_png(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", random_label_ids(rng, 24, 48))
        rows.append({"domain": "target", "kind": "cityscapes", "split": split, "sample_id": stem,
                     "image_path": str(image), "label_path": str(label), "width": 48, "height": 24})
    manifest = pd.DataFrame(rows)
    lut = lookup_table(19)
    train_ids = {f"{r.split}/{r.sample_id}": (lambda p=r.label_path: remap_label_file(p, lut)) for r in manifest.itertuples()}
    return root, manifest, train_ids


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return pack_model(build_from_spec(SPEC), SPEC, method="adaptsegnet_multi", step=3)
