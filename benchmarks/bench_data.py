"""Data benchmarks: label remapping against the original's loop, and the data pipelines end to end."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from PIL import Image

from timing import best_seconds_per_item

from adaptseg.data.labels import label_id_palette, label_id_to_train_id_lut
from adaptseg.data.remap import remap_label_image

# The original code's mapping (GTA5 and Cityscapes label ids → train ids).
ORIGINAL_ID_TO_TRAINID = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
                          25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}


def remap_original_loop(label: np.ndarray) -> np.ndarray:
    """The original code's per-class masked assignment (``label_copy[label == k] = v``)."""
    out = 255 * np.ones(label.shape, dtype=np.float32)
    for k, v in ORIGINAL_ID_TO_TRAINID.items():
        out[label == k] = v
    return out


def _gta5_like_labels(count: int, seed: int = 0) -> list[Image.Image]:
    """Decoded paletted label images (as GTA5 ships them) at its native 1914×1052, every id 0..33 present."""
    rng = np.random.default_rng(seed)
    labels = []
    for _ in range(count):
        coarse = rng.integers(0, 34, size=(1052 // 8 + 1, 1914 // 8 + 1), dtype=np.uint8)
        ids = np.repeat(np.repeat(coarse, 8, 0), 8, 1)[:1052, :1914].copy()
        image = Image.frombytes("P", (1914, 1052), ids.tobytes())
        image.putpalette(label_id_palette())
        labels.append(image)
    return labels


def remap_throughput() -> dict:
    """Both routes start from the decoded label image (PNG decoding is the same for both and not timed)."""
    labels = _gta5_like_labels(8)
    lut = label_id_to_train_id_lut(19)
    original = lambda image: remap_original_loop(np.asarray(image))  # noqa: E731
    ours = lambda image: remap_label_image(image, lut)  # noqa: E731
    for label in labels:  # same answer before timing
        assert np.array_equal(ours(label), original(label).astype(np.uint8))
    loop = best_seconds_per_item(original, labels)
    vectorised = best_seconds_per_item(ours, labels)
    return {
        "label size": "1914x1052 (GTA5 native)",
        "original loop ms/label": round(loop * 1e3, 2),
        "lookup table (Pillow point) ms/label": round(vectorised * 1e3, 2),
        "speed-up": round(loop / vectorised, 1),
        "lookup table Mpixel/s": round(1914 * 1052 / vectorised / 1e6, 1),
    }


def data_pipelines() -> dict:
    """Default synthetic generation, then ingestion + label_remapping, each a real KedroSession run."""
    import mlflow
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    project = Path(__file__).resolve().parents[1]
    work = Path(tempfile.mkdtemp(prefix="adaptseg-bench-"))
    try:
        shutil.copy(project / "pyproject.toml", work / "pyproject.toml")
        shutil.copytree(project / "conf", work / "conf", ignore=shutil.ignore_patterns("local"))
        (work / "conf" / "local").mkdir(exist_ok=True)
        (work / "src").mkdir()
        import os

        cwd = os.getcwd()
        os.chdir(work)
        try:
            bootstrap_project(work)
            timings = {}
            for label, pipelines in (("synthesis s", ["synthesis"]), ("ingestion + label_remapping s", ["ingestion", "label_remapping"])):
                start = time.perf_counter()
                with KedroSession.create(project_path=work) as session:
                    session.run(pipeline_names=pipelines)
                timings[label] = round(time.perf_counter() - start, 1)
                while mlflow.active_run():  # close the session's runs while their database still exists
                    mlflow.end_run()
            import pandas as pd

            counts = pd.read_csv(work / "data/02_intermediate/target_manifest.csv").groupby("split").size().to_dict()
            counts["source"] = len(pd.read_csv(work / "data/02_intermediate/source_manifest.csv"))
        finally:
            os.chdir(cwd)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {**timings, "samples": counts}
