"""Predict: a user's folder of odd images segmented by a packed model, as the evaluation would, through the
library, the command and a KedroSession."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from PIL import Image

from adaptseg.data.labels import train_id_to_label_id_lut
from adaptseg.data.png16 import encode_png16
from adaptseg.data.torch_datasets import load_image, normalise_image
from adaptseg.evaluation.inference import upsampled_prediction
from adaptseg.inference import (
    OUTPUT_MARKER,
    NoImagesError,
    PredictConfig,
    read_user_image,
    resolve_model,
    scan_image_folder,
    segment_folder,
    window_boxes,
)
from adaptseg.inference.models import latest_catalog_model
from adaptseg.inference.policies import normalise
from adaptseg.io import FolderDataset
from adaptseg.models.packaging import build_from_spec, inference_metadata, pack_model, unpack_segmenter
from adaptseg.pipelines.predict import create_pipeline
from tests.conftest import PROJECT_ROOT

SPEC = {"arch": "deeplabv2_small", "num_classes": 19, "options": {"depth": 18, "width": 8}}
INPUT_SIZE = (48, 32)  # (W, H) the tiny model was "trained" at
#: fp32 on the CPU: the evaluation's numbers exactly; batch 1 so that no batch composition changes a logit
EXACT = {"precision": "fp32", "device": "cpu", "batch_size": 1}
#: Cityscapes label ids a 19-class prediction may hold
VALID_IDS = set(train_id_to_label_id_lut(19)[:19].tolist())


@pytest.fixture(scope="module")
def packed() -> dict:
    """A tiny packed model carrying its preprocessing, classes and palette."""
    torch.manual_seed(0)
    metadata = inference_metadata(19, INPUT_SIZE)
    return pack_model(build_from_spec(SPEC), SPEC, **metadata, method="tiny", step=1)


def _rgb(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth random picture: blocks, so the tiny model predicts more than one class."""
    small = rng.integers(0, 255, (max(1, height // 8), max(1, width // 8), 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((width, height), Image.BILINEAR))


def user_folder(root: Path) -> Path:
    """Images of different sizes and kinds, as users have them, plus a broken one and a text file."""
    rng = np.random.default_rng(0)
    (root / "trip" / "day1").mkdir(parents=True)
    Image.fromarray(_rgb(rng, 60, 90)).save(root / "trip" / "day1" / "street.jpg", quality=92)
    Image.fromarray(_rgb(rng, INPUT_SIZE[1], INPUT_SIZE[0])).save(root / "trip" / "exact.png")
    Image.fromarray(_rgb(rng, 50, 40)[:, :, 0]).save(root / "gray.png")
    Image.fromarray(np.dstack([_rgb(rng, 30, 44), np.full((30, 44), 7, np.uint8)])).save(root / "rgba.png")
    paletted = Image.fromarray(_rgb(rng, 36, 36)).convert("P", palette=Image.Palette.ADAPTIVE)
    paletted.save(root / "paletted.png")
    deep = (np.linspace(0, 65535, 26 * 34).reshape(26, 34)).astype(np.uint16)
    (root / "deep16.png").write_bytes(encode_png16(deep))
    whole = (root / "trip" / "day1" / "street.jpg").read_bytes()
    (root / "trip" / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    (root / "readme.txt").write_text("not an image")
    return root


def _write(outputs: dict, folder: Path) -> Path:
    FolderDataset(str(folder), protect_marker=OUTPUT_MARKER, progress=False).save(outputs)
    return folder


def _train_ids(label_id_png: Path) -> np.ndarray:
    """Train ids back from a label-id PNG (the 19 ids are distinct)."""
    lut = train_id_to_label_id_lut(19)[:19]
    inverse = np.full(256, 255, np.uint8)
    inverse[lut] = np.arange(19, dtype=np.uint8)
    return inverse[np.asarray(Image.open(label_id_png))]


@torch.inference_mode()
def evaluation_prediction(model: dict, path: Path) -> np.ndarray:
    """What the evaluation predicts for an image: the dataset's preprocessing, logits upsampled, arg-max."""
    segmenter = unpack_segmenter(model).eval()
    image = normalise_image(load_image(str(path), INPUT_SIZE))[None]
    height, width = Image.open(path).size[::-1]
    return upsampled_prediction(segmenter(image)["out"], (height, width))[0].numpy()


# ------------------------------------------------------------------------------------------ the library
def test_outputs_mirror_the_inputs_with_label_ids_at_each_images_own_size(tmp_path, packed):
    folder = scan_image_folder(user_folder(tmp_path / "in"))
    result = segment_folder(packed, folder, PredictConfig(**EXACT), progress=False)
    out = _write(result.outputs, tmp_path / "out")
    readable = ["deep16.png", "gray.png", "paletted.png", "rgba.png", "trip/day1/street.jpg",
                "trip/exact.png"]
    for kind in ("label_ids", "overlays"):
        written = sorted(p.relative_to(out / kind).as_posix() for p in (out / kind).rglob("*.png"))
        assert written == sorted(str(Path(name).with_suffix(".png")) for name in readable)
    for name in readable:
        source_size = Image.open(tmp_path / "in" / name).size
        label_ids = Image.open(out / "label_ids" / Path(name).with_suffix(".png"))
        overlay = Image.open(out / "overlays" / Path(name).with_suffix(".png"))
        assert label_ids.mode == "L" and label_ids.size == overlay.size == source_size
        assert set(np.unique(np.asarray(label_ids)).tolist()) <= VALID_IDS
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.mode == "RGB" and sheet.width > 500 and sheet.height > 160
    assert (out / OUTPUT_MARKER).is_file()


def test_resize_policy_gives_the_evaluations_predictions(tmp_path, packed):
    folder = scan_image_folder(user_folder(tmp_path / "in"))
    result = segment_folder(packed, folder, PredictConfig(**EXACT), progress=False)
    out = _write(result.outputs, tmp_path / "out")
    for name in ("trip/day1/street.jpg", "trip/exact.png"):
        expected = evaluation_prediction(packed, tmp_path / "in" / name)
        assert len(np.unique(expected)) > 1  # a prediction worth comparing
        written = _train_ids(out / "label_ids" / Path(name).with_suffix(".png"))
        np.testing.assert_array_equal(written, expected)


def test_preprocessing_is_trainings():
    rgb = _rgb(np.random.default_rng(3), 20, 30)
    mean = np.asarray(inference_metadata(19, INPUT_SIZE)["preprocessing"]["mean_bgr"], dtype=np.float32)
    assert torch.equal(normalise(rgb, mean), normalise_image(rgb))


def test_sliding_on_an_image_of_the_input_size_equals_resize(tmp_path, packed):
    root = tmp_path / "in"
    root.mkdir()
    Image.fromarray(_rgb(np.random.default_rng(1), INPUT_SIZE[1], INPUT_SIZE[0])).save(root / "frame.png")
    folder = scan_image_folder(root)
    resized = segment_folder(packed, folder, PredictConfig(**EXACT, policy="resize"), progress=False)
    sliding = segment_folder(packed, folder, PredictConfig(**EXACT, policy="sliding"), progress=False)
    np.testing.assert_array_equal(sliding.predictions["frame"].array(), resized.predictions["frame"].array())


def test_sliding_windows_cover_a_large_image_at_its_native_resolution(tmp_path, packed):
    boxes = window_boxes(100, 130, INPUT_SIZE, overlap=0.33)
    covered = np.zeros((100, 130), int)
    for top, bottom, left, right in boxes:
        assert (bottom - top, right - left) == (INPUT_SIZE[1], INPUT_SIZE[0])
        assert bottom <= 100 and right <= 130
        covered[top:bottom, left:right] += 1
    assert covered.min() >= 1 and covered.max() > 1  # everything seen, neighbours overlap
    assert window_boxes(20, 30, INPUT_SIZE, 0.5) == [(0, 20, 0, 30)]  # smaller than a window: seen whole
    root = tmp_path / "in"
    root.mkdir()
    Image.fromarray(_rgb(np.random.default_rng(2), 100, 130)).save(root / "big.png")
    config = PredictConfig(precision="fp32", device="cpu", batch_size=3, policy="sliding")
    result = segment_folder(packed, scan_image_folder(root), config, progress=False)
    assert result.predictions["big"].array().shape == (100, 130)
    assert result.predictions["big"].array().max() < 19


def test_odd_files_are_converted_or_skipped_and_each_is_reported(tmp_path, packed, caplog):
    folder = scan_image_folder(user_folder(tmp_path / "in"))
    with caplog.at_level(logging.INFO, logger="adaptseg.inference"):
        summary = segment_folder(packed, folder, PredictConfig(**EXACT), progress=False).summary
    assert (summary["images"], summary["segmented"]) == (7, 6)
    assert summary["converted"] == {
        "deep16.png": ["16-bit, scaled to 8 bits", "grayscale, converted to RGB"],
        "gray.png": ["grayscale, converted to RGB"],
        "paletted.png": ["paletted, palette applied"],
        "rgba.png": ["alpha channel dropped"],
    }
    assert list(summary["skipped"]) == ["trip/cut.jpg"] and "truncated" in summary["skipped"]["trip/cut.jpg"]
    assert summary["ignored"] == {"not JPEG or PNG (.txt)": 1}
    log = caplog.text
    assert "segmented 6 of 7 images" in log and "skipped trip/cut.jpg" in log and "readme.txt" in log
    assert "16-bit, scaled to 8 bits): deep16.png" in log


def test_16_bit_images_are_scaled_to_8_bits_not_clipped(tmp_path):
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    (tmp_path / "grey16.png").write_bytes(encode_png16(values))
    colour = np.dstack([values, values // 2, np.full_like(values, 65535)])
    (tmp_path / "colour16.png").write_bytes(encode_png16(colour))
    grey = read_user_image(tmp_path / "grey16.png")
    assert grey.rgb[0, :, 0].tolist() == [0, 1, 128, 255] and grey.rgb.shape == (1, 4, 3)
    assert read_user_image(tmp_path / "colour16.png").rgb[0].tolist() == [[0, 0, 255], [1, 0, 255],
                                                                          [128, 64, 255], [255, 127, 255]]


def test_a_jpeg_with_an_exif_orientation_is_turned_upright(tmp_path):
    image = Image.fromarray(_rgb(np.random.default_rng(4), 20, 40))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to view
    image.save(tmp_path / "phone.jpg", exif=exif)
    upright = read_user_image(tmp_path / "phone.jpg")
    assert upright.rgb.shape == (40, 20, 3) and "turned upright" in upright.notes[0]


def test_an_empty_folder_or_one_without_images_is_an_error_naming_it(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NoImagesError, match=f"{empty} holds no JPEG or PNG image .*it is empty"):
        scan_image_folder(empty)
    (empty / "notes.txt").write_text("x")
    with pytest.raises(NoImagesError, match=r"holds no JPEG or PNG image \(1 not JPEG or PNG \(\.txt\)\)"):
        scan_image_folder(empty)
    with pytest.raises(NoImagesError, match="does not exist"):
        scan_image_folder(tmp_path / "nowhere")


def test_a_folder_of_only_broken_images_is_an_error_naming_each(tmp_path, packed):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    with pytest.raises(NoImagesError, match=r"None of the 1 images .*a\.jpg: cannot be decoded"):
        segment_folder(packed, scan_image_folder(tmp_path / "in"), PredictConfig(**EXACT), progress=False)


def test_an_earlier_output_inside_the_input_is_not_read_back(tmp_path, packed):
    root = user_folder(tmp_path / "in")
    first = segment_folder(packed, scan_image_folder(root), PredictConfig(**EXACT), progress=False)
    _write(first.outputs, root / "results")
    again = scan_image_folder(root)
    assert not any(key.startswith("results/") for key in again.images)
    # 6 label maps, 6 overlays, the contact sheet and the marker
    assert len(again.ignored["in an output folder of predict"]) == 14


def test_same_named_images_keep_their_suffix(tmp_path):
    for suffix in (".jpg", ".png"):
        Image.new("RGB", (8, 8)).save(tmp_path / f"a{suffix}")
    folder = scan_image_folder(tmp_path)
    assert list(folder.images) == ["a.jpg", "a.png"] and set(folder.renamed) == {"a.jpg", "a.png"}


def test_a_checkpoint_without_inference_metadata_falls_back_and_says_so(tmp_path, packed, caplog):
    old = {k: v for k, v in packed.items() if k not in ("preprocessing", "classes", "palette")}
    root = tmp_path / "in"
    root.mkdir()
    Image.fromarray(_rgb(np.random.default_rng(5), 40, 60)).save(root / "x.png")
    config = PredictConfig(**EXACT, input_size=INPUT_SIZE)
    with caplog.at_level(logging.WARNING, logger="adaptseg.inference"):
        summary = segment_folder(old, scan_image_folder(root), config, progress=False).summary
    assert summary["input_size"] == list(INPUT_SIZE) and len(summary["model_fallbacks"]) == 3
    assert "carries no preprocessing" in caplog.text and "input size (predict.input_size" in caplog.text


def test_the_model_is_a_namespace_latest_version_or_a_file(tmp_path, packed):
    root = tmp_path / "06_models"
    for version in ("2026-01-01T00.00.00.000Z", "2026-03-01T00.00.00.000Z"):
        (root / "advent" / "model.pt" / version).mkdir(parents=True)
        torch.save({**packed, "step": int(version[5:7])}, root / "advent" / "model.pt" / version / "model.pt")
    assert resolve_model("advent", root)["step"] == 3
    assert latest_catalog_model("advent", root).parent.name.startswith("2026-03")
    file = root / "advent" / "model.pt" / "2026-01-01T00.00.00.000Z" / "model.pt"
    assert resolve_model(str(file), root)["loaded_from"] == {"model": str(file), "path": str(file)}
    with pytest.raises(FileNotFoundError, match="'advnt'.*Did you mean advent"):
        resolve_model("advnt", root)
    with pytest.raises(NotImplementedError, match="MLflow registry"):
        resolve_model("models:/segmenter/3", root)


def test_misspelt_or_invalid_parameters_are_named():
    with pytest.raises(ValueError, match="batchsize.*did you mean batch_size"):
        PredictConfig.from_dict({"batchsize": 2})
    with pytest.raises(ValueError, match="policy: got 'tiles'"):
        PredictConfig.from_dict({"policy": "tiles"})


# ------------------------------------------------------------------------------------------ the command
def _command(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "adaptseg.predict", *args],
        cwd=cwd, capture_output=True, text=True, timeout=300,
    )


def test_the_command_segments_a_folder_and_refuses_an_empty_one(tmp_path, packed):
    torch.save(packed, tmp_path / "tiny.pt")
    user_folder(tmp_path / "in")
    done = _command("in", "out", "--model", "tiny.pt", "--precision", "fp32", "--quiet", "--batch-size", "2",
                    cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["segmented"] == 6 and list(summary["skipped"]) == ["trip/cut.jpg"]
    assert (tmp_path / "out" / "label_ids" / "trip" / "day1" / "street.png").is_file()
    assert (tmp_path / "out" / "overlays" / "deep16.png").is_file()
    assert (tmp_path / "out" / "contact_sheet.png").is_file()
    assert "segmented 6 of 7 images" in done.stderr

    (tmp_path / "empty").mkdir()
    refused = _command("empty", "out2", "--model", "tiny.pt", cwd=tmp_path)
    assert refused.returncode == 2
    assert "error: Input folder empty holds no JPEG or PNG image" in refused.stderr
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.txt").write_text("precious")
    refused = _command("in", "mine", "--model", "tiny.pt", cwd=tmp_path)
    assert refused.returncode == 2 and "predict did not write it" in refused.stderr
    assert (tmp_path / "mine" / "thesis.txt").read_text() == "precious"


# ------------------------------------------------------------------------------------------ the pipeline
def test_pipeline_reads_the_model_and_images_and_writes_through_the_catalog():
    pipeline = create_pipeline()
    assert pipeline.inputs() == {"predict_model", "predict_images", "params:predict"}
    assert pipeline.all_outputs() == {"predict_output", "predict_summary"}
    catalog = yaml.safe_load((PROJECT_ROOT / "conf/base/catalog_predict.yml").read_text())
    assert catalog["predict_output"]["protect_marker"] == OUTPUT_MARKER
    params = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_predict.yml").read_text())["predict"]
    knobs = {k: v for k, v in params.items() if k not in ("input", "output", "model")}
    assert PredictConfig.from_dict(knobs) == PredictConfig()  # the file and the defaults agree
    for key in ("input", "output", "model"):  # the parameters show what the catalog reads, same default
        assert params[key].split(":", 1)[1] in str(catalog)


@pytest.mark.slow
def test_predict_runs_through_a_kedro_session(project_copy, packed):
    """A packed model saved as the catalog's adaptsegnet_multi.model; ``kedro run --pipelines predict``."""
    user_folder(project_copy / "photos")
    bootstrap_project(project_copy)
    with KedroSession.create(project_path=project_copy) as session:
        session.load_context().catalog.save("adaptsegnet_multi.model", packed)
    runtime = {"predict": {"input": "photos", "output": "segmented", "model": "adaptsegnet_multi",
                           "precision": "fp32", "device": "cpu"}}
    with KedroSession.create(project_path=project_copy, runtime_params=runtime) as session:
        session.run(pipeline_names=["predict"])
    out = project_copy / "segmented"
    assert (out / "label_ids" / "trip" / "day1" / "street.png").is_file()
    assert (out / "overlays" / "rgba.png").is_file() and (out / "contact_sheet.png").is_file()
    versions = project_copy / "data/08_reporting/predict_summary.json"
    summary_file = next(versions.glob("*/predict_summary.json"))
    summary = json.loads(summary_file.read_text())
    assert summary["model"] == "adaptsegnet_multi" and summary["segmented"] == 6
    assert summary["model_file"].startswith("data/06_models/adaptsegnet_multi/model.pt/")
    expected = evaluation_prediction(packed, project_copy / "photos" / "trip" / "exact.png")
    np.testing.assert_array_equal(_train_ids(out / "label_ids" / "trip" / "exact.png"), expected)
