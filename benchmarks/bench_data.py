"""Data benchmarks: label remapping against the original's loop, and the data pipelines end to end."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
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
            counts = pd.read_csv(work / "data/02_intermediate/target_manifest.csv").groupby("split").size().to_dict()
            counts["source"] = len(pd.read_csv(work / "data/02_intermediate/source_manifest.csv"))
        finally:
            os.chdir(cwd)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {**timings, "samples": counts}


# ------------------------------------------------------------------------------------------- loader throughput
PAPER_SIZES = {"source": ((1914, 1052), (1280, 720)), "target": ((2048, 1024), (1024, 512))}  # (file, input)
# The GPU step the loader must keep up with: ResNet-101 multi-level, bf16, frozen BN, on an H200
# (issue 15's table): 0.069 s per iteration of 1 source + 1 target image.
GPU_STEP_S = 0.069


def _write_domain(folder: Path, file_size: tuple[int, int], count: int, seed: int) -> pd.DataFrame:
    """``count`` PNG photos-like images and train-id label PNGs at the dataset's native size, and a manifest."""
    rng = np.random.default_rng(seed)
    width, height = file_size
    rows = []
    for index in range(count):
        # smooth gradients plus noise: PNG compresses it about as well as a rendered frame, unlike pure noise
        ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
        noise = rng.normal(0, 12, size=(height, width, 3)).astype(np.float32)
        image = np.clip(ramp * rng.uniform(0.3, 1.0, size=(1, 1, 3)) + noise, 0, 255).astype(np.uint8)
        labels = np.repeat(np.repeat(rng.integers(0, 19, size=(height // 32 + 1, width // 32 + 1)), 32, 0), 32, 1)
        image_path, label_path = folder / f"{index:05d}.png", folder / f"{index:05d}_labels.png"
        Image.fromarray(image).save(image_path, compress_level=6)
        Image.fromarray(labels[:height, :width].astype(np.uint8)).save(label_path)
        rows.append({"split": "train", "sample_id": f"{index:05d}", "image_path": str(image_path),
                     "label_path": str(label_path)})
    return pd.DataFrame(rows)


def _load_label(path: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def loader_throughput(count: int = 24, steps: int = 24) -> dict:
    """Images per second through the engine's own stream (decode, bicubic resize, normalise, collate) at the
    paper's sizes, by DataLoader worker count, against what the GPU step needs."""
    import os
    from functools import partial

    import torch

    from adaptseg.data.torch_datasets import SegmentationDataset
    from adaptseg.training.streams import batch_stream

    work = Path(tempfile.mkdtemp(prefix="adaptseg-loader-"))
    figures: dict = {"cpu cores": os.cpu_count(), "images written per domain": count}
    try:
        datasets = {}
        for offset, (domain, (file_size, input_size)) in enumerate(PAPER_SIZES.items()):
            folder = work / domain
            folder.mkdir()
            manifest = _write_domain(folder, file_size, count, seed=offset)
            labels = {f"train/{row.sample_id}": partial(_load_label, row.label_path) for row in manifest.itertuples()}
            datasets[domain] = SegmentationDataset(manifest, "train", input_size,
                                                   labels=labels if domain == "source" else None)
        workers_tried = sorted({0, 1, 2, min(4, os.cpu_count() or 1), min(8, os.cpu_count() or 1)})
        in_process: dict[str, float] = {}  # images/s with 0 workers: one core's rate
        for domain, dataset in datasets.items():
            (file_w, file_h), (in_w, in_h) = PAPER_SIZES[domain]
            for workers in workers_tried:
                stream = batch_stream(dataset, domain, batch_size=1, seed=0, num_workers=workers, start_step=0,
                                      stop_step=steps + 2, device=torch.device("cpu"))
                next(stream), next(stream)  # workers started and the prefetch queue filled
                start = time.perf_counter()
                for _ in range(steps):
                    next(stream)
                rate = steps / (time.perf_counter() - start)
                figures[f"{domain} {file_w}x{file_h} -> {in_w}x{in_h}, {workers} workers, images/s"] = round(rate, 1)
                if workers == 0:
                    in_process[domain] = rate
                del stream
        needed = 2 / GPU_STEP_S  # 2x the step rate, one image per domain per step
        figures["needed per domain for 2x a 0.069 s GPU step, images/s"] = round(needed, 1)
        # both domains share the workers: cores needed = sum over domains of needed / one core's rate
        figures["cores needed at one core's rate (both domains)"] = round(sum(needed / r for r in in_process.values()), 1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return figures
