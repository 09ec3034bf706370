"""Packed models rebuild exactly; the training and adaptation nodes run on tiny in-memory data."""

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from adaptseg.io import RunFolder
from adaptseg.models.packaging import build_from_spec, pack_model, unpack_segmenter
from adaptseg.pipelines.adaptation.nodes import adapt_to_target
from adaptseg.pipelines.evaluation.nodes import evaluate_on_target
from adaptseg.pipelines.source_pretraining.nodes import finetune_supervised, train_supervised

SPEC = {"arch": "deeplabv2_small", "num_classes": 19, "options": {"depth": 18, "width": 8}}
ENGINE = {"max_steps": 2, "batch_size": 2, "log_every": 1, "progress": False, "precision": "fp32"}


@pytest.fixture
def tiny_domains(tmp_path):
    rng = np.random.default_rng(0)
    rows, labels = [], {}
    for domain, split, n in (("source", "train", 3), ("target", "train", 3), ("target", "val", 2)):
        for i in range(n):
            path = tmp_path / f"{domain}_{split}_{i}.png"
            Image.fromarray(rng.integers(0, 255, (40, 64, 3), dtype=np.uint8)).save(path)
            rows.append({"domain": domain, "split": split, "sample_id": f"s{i}", "image_path": str(path)})
            labels[(domain, f"{split}/s{i}")] = rng.integers(0, 19, (40, 64)).astype(np.uint8)
    frame = pd.DataFrame(rows)
    ids = {d: {k: (lambda v=v: v) for (dd, k), v in labels.items() if dd == d} for d in ("source", "target")}
    return {d: (frame[frame["domain"] == d].reset_index(drop=True), ids[d]) for d in ("source", "target")}


def test_pack_and_unpack_round_trip():
    original = build_from_spec(SPEC)
    rebuilt = unpack_segmenter(pack_model(original, SPEC, method="x"), bn_mode="train")
    assert rebuilt.bn_mode == "train"
    for (k, a), b in zip(original.state_dict().items(), rebuilt.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    with pytest.raises(ValueError, match="format"):
        unpack_segmenter({"format": "other"})


def test_pretrain_adapt_and_evaluate_nodes(tiny_domains, tmp_path):
    source, target = tiny_domains["source"], tiny_domains["target"]
    training = {"name": "pre", "split": "train", "input_size": [64, 40], "bn_mode": "train", "engine": ENGINE}
    pretrained, history = train_supervised(*source, SPEC, RunFolder(tmp_path / "pre"), training)
    assert pretrained["step"] == 2 and "loss_seg" in history
    assert (tmp_path / "pre" / "last.pt").is_file()  # the run folder the catalog gives
    adaptation = {
        "name": "multi",
        "method": "adaptsegnet",
        "bn_mode": "frozen",
        "input_size": {"source": [64, 40], "target": [64, 40]},
        "engine": ENGINE,
        "method_config": {"lambda_seg": 0.1, "lambda_adv_main": 0.1, "lambda_adv_aux": 0.02, "ndf": 8},
    }
    adapted, history = adapt_to_target(pretrained, *source, target[0], RunFolder(tmp_path / "multi"), adaptation)
    assert set(adapted["extra_models"]) == {"discriminator_main", "discriminator_aux"}
    assert adapted["method_module"] == "adaptsegnet" and adapted["run_id"] and adapted["start_step"] == 2
    assert all(np.isfinite(v["value"]) for series in history.values() for v in series)
    before, after = unpack_segmenter(pretrained), unpack_segmenter(adapted)
    assert not torch.equal(before.classifier.branches[0].weight, after.classifier.branches[0].weight)
    # frozen BatchNorm: adaptation leaves the pretrained statistics alone
    assert torch.equal(before.backbone.bn1.running_mean, after.backbone.bn1.running_mean)
    adabn_params = {**adaptation, "method": "adabn", "name": "adabn", "method_config": {}}
    adabn, _ = adapt_to_target(pretrained, *source, target[0], RunFolder(tmp_path / "adabn"), adabn_params)
    assert not torch.equal(unpack_segmenter(adabn).backbone.bn1.running_mean, before.backbone.bn1.running_mean)
    metrics = evaluate_on_target(adapted, *target, {"split": "val", "input_size": [64, 40], "protocols": [19, 16, 13]})
    assert metrics["images"] == 2 and set(metrics["protocols"]) == {"19", "16", "13"}
    assert np.asarray(metrics["confusion_matrix"]).sum() == 2 * 40 * 64


def test_oracle_finetune_starts_from_the_given_model_and_trains_on_target_labels(tiny_domains, tmp_path):
    source, target = tiny_domains["source"], tiny_domains["target"]
    training = {"name": "pre", "split": "train", "input_size": [64, 40], "bn_mode": "train", "engine": ENGINE}
    pretrained, _ = train_supervised(*source, SPEC, RunFolder(tmp_path / "pre"), training)
    # a vanishing learning rate: the weights stay the pretrained ones, the statistics follow the target
    still = {**training, "name": "oracle_finetune", "engine": {**ENGINE, "lr": 1e-12}}
    finetuned, history = finetune_supervised(pretrained, *target, RunFolder(tmp_path / "ft"), still)
    assert finetuned["trained_on"] == {"domain": "target", "split": "train"}
    assert finetuned["start_step"] == 2 and finetuned["step"] == 2 and "loss_seg" in history
    before, after = unpack_segmenter(pretrained), unpack_segmenter(finetuned)
    assert torch.allclose(before.classifier.branches[0].weight, after.classifier.branches[0].weight, atol=1e-9)
    assert not torch.equal(before.backbone.bn1.running_mean, after.backbone.bn1.running_mean)
    moved, _ = finetune_supervised(pretrained, *target, RunFolder(tmp_path / "ft2"), {**training, "name": "oracle_finetune"})
    assert not torch.equal(before.classifier.branches[0].weight, unpack_segmenter(moved).classifier.branches[0].weight)


def test_unknown_method_missing_start_and_stray_checkpoint_dir_are_named(tiny_domains, tmp_path):
    run = RunFolder(tmp_path / "x")
    with pytest.raises(ValueError, match="mixup"):
        adapt_to_target({}, *tiny_domains["source"], tiny_domains["target"][0], run, {"name": "x", "method": "mixup"})
    with pytest.raises(ValueError, match="starting model has not been trained"):
        adapt_to_target(None, *tiny_domains["source"], tiny_domains["target"][0], run, {"name": "x", "method": "adabn"})
    params = {"name": "x", "method": "source_only", "bn_mode": "frozen", "engine": {"checkpoint_dir": "elsewhere"},
              "input_size": {"source": [64, 40], "target": [64, 40]}}
    start = pack_model(build_from_spec(SPEC), SPEC, method="pre")
    with pytest.raises(ValueError, match="catalog entry"):
        adapt_to_target(start, *tiny_domains["source"], tiny_domains["target"][0], run, params)


def test_a_model_with_nan_weights_is_refused_by_name(tiny_domains):
    model = pack_model(build_from_spec(SPEC), SPEC, method="adaptsegnet_multi", step=300)
    model["segmenter"]["classifier.branches.0.weight"][0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"'adaptsegnet_multi' \(step 300\) holds NaN or infinite weights"):
        evaluate_on_target(model, *tiny_domains["target"], {"split": "val", "input_size": [64, 40]})


def test_resume_after_the_data_changed_is_refused(tiny_domains, tmp_path):
    import os

    source = tiny_domains["source"]
    engine = {**ENGINE, "max_steps": 4, "stop_step": 2, "checkpoint_every": 1}
    training = {"name": "pre", "split": "train", "input_size": [64, 40], "bn_mode": "train", "engine": engine}
    train_supervised(*source, SPEC, RunFolder(tmp_path / "pre"), training)
    first = source[0]["image_path"].iloc[0]
    os.utime(first, (1, 1))  # the data was regenerated (or replaced) since
    resumed = {**training, "engine": {**engine, "stop_step": 4, "resume": True}}
    with pytest.raises(ValueError, match="the training data changed since the run began"):
        train_supervised(*source, SPEC, RunFolder(tmp_path / "pre"), resumed)


def test_the_log_after_a_resume_reports_the_steps_this_run_trained(tiny_domains, tmp_path, caplog):
    source = tiny_domains["source"]
    engine = {**ENGINE, "max_steps": 4, "stop_step": 2, "checkpoint_every": 1}
    training = {"name": "pre", "split": "train", "input_size": [64, 40], "bn_mode": "train", "engine": engine}
    train_supervised(*source, SPEC, RunFolder(tmp_path / "pre"), training)
    with caplog.at_level("INFO", logger="adaptseg.pipelines.training"):
        model, _ = train_supervised(*source, SPEC, RunFolder(tmp_path / "pre"),
                                    {**training, "engine": {**engine, "stop_step": 4, "resume": True}})
    assert "pre: steps 2 to 4 in" in caplog.text and model["step"] == 4


def test_a_trained_model_carries_what_inference_needs(tiny_domains, tmp_path):
    training = {"name": "pre", "split": "train", "input_size": [64, 40], "bn_mode": "train", "engine": ENGINE}
    model, _ = train_supervised(*tiny_domains["source"], SPEC, RunFolder(tmp_path / "pre"), training)
    assert model["preprocessing"]["input_size"] == [64, 40] and model["preprocessing"]["channel_order"] == "BGR"
    assert model["classes"][0] == "road" and len(model["palette"]) == 19 and model["palette"][0] == [128, 64, 128]
    assert model["precision"] in ("fp32", "bf16") and model["device"] == "cpu"


@pytest.mark.parametrize("namespace, start", [("dacs_from_multi", "adaptsegnet_multi"), ("dacs_from_adabn", "adabn")])
def test_warm_started_dacs_differs_from_dacs_only_in_the_model_it_starts_from(namespace, start):
    """The warm-started namespaces read the adapted model, and keep DACS's recipe (base and real-data configs)."""
    from adaptseg.pipelines.adaptation.pipeline import create_pipeline
    from studies.adaptation_study import load_parameters

    (node,) = create_pipeline().only_nodes_with_namespaces([namespace]).nodes
    assert f"{start}.model" in node.inputs and "source_pretraining.model" not in node.inputs
    for env in (None, "gta5_cityscapes"):
        params, _ = load_parameters(env)
        ours, dacs = params[namespace]["adaptation"], params["dacs"]["adaptation"]
        assert ours["method"] == "dacs" and ours["method_config"] == dacs["method_config"], env
        assert ours["engine"] == dacs["engine"], env


def test_dacs_mic_is_dacs_with_masked_image_consistency_on():
    """``dacs_mic`` starts where DACS starts and keeps its recipe; only MIC's knobs and its learning-rate warm-up
    are added (both configs)."""
    from adaptseg.methods.dacs import Config
    from adaptseg.pipelines.adaptation.pipeline import create_pipeline
    from studies.adaptation_study import load_parameters

    (node,) = create_pipeline().only_nodes_with_namespaces(["dacs_mic"]).nodes
    assert "source_pretraining.model" in node.inputs
    for env in (None, "gta5_cityscapes"):
        params, _ = load_parameters(env)
        ours, dacs = params["dacs_mic"]["adaptation"], params["dacs"]["adaptation"]
        extra = {k: v for k, v in ours["method_config"].items() if k not in dacs["method_config"]}
        assert {k: ours["method_config"][k] for k in dacs["method_config"]} == dacs["method_config"], env
        assert set(extra) == {"lambda_masked", "mask_ratio", "mask_block"} and extra["lambda_masked"] > 0, env
        engine = {k: v for k, v in ours["engine"].items() if k != "warmup_steps"}
        assert engine == dacs["engine"] and ours["engine"]["warmup_steps"] > 0, env
        assert Config.from_dict(ours["method_config"]).mask_ratio == 0.7, env


def test_dacs_rcs_is_dacs_with_rare_class_sampling_of_the_source():
    from adaptseg.training import EngineConfig
    from studies.adaptation_study import load_parameters

    for env in (None, "gta5_cityscapes"):
        params, _ = load_parameters(env)
        ours, dacs = params["dacs_rcs"]["adaptation"], params["dacs"]["adaptation"]
        assert ours["method_config"] == dacs["method_config"], env
        assert {k: v for k, v in ours["engine"].items() if k != "rare_class_sampling"} == dacs["engine"], env
        sampling = EngineConfig.from_dict({"max_steps": 1, "rare_class_sampling": ours["engine"]["rare_class_sampling"]})
        assert sampling.rare_class_sampling.temperature == 0.01, env


def test_dacs_rcs_mic_is_both_additions_each_with_its_own_namespaces_knobs():
    """The combination is exactly MIC's block plus rare-class sampling's, so a difference from either is the other
    addition's (both configs)."""
    from studies.adaptation_study import load_parameters

    for env in (None, "gta5_cityscapes"):
        params, _ = load_parameters(env)
        ours, mic, rcs = (params[ns]["adaptation"] for ns in ("dacs_rcs_mic", "dacs_mic", "dacs_rcs"))
        assert ours["method_config"] == mic["method_config"] and ours["bn_mode"] == mic["bn_mode"], env
        assert ours["engine"] == {**mic["engine"], "rare_class_sampling": rcs["engine"]["rare_class_sampling"]}, env
