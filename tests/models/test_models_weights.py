"""Weight loading from local files: torchvision and DeepLab-v2 init files, own checkpoints, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from adaptseg.models import (
    DeepLabV2,
    WeightLoadError,
    deeplabv2_resnet101,
    deeplabv2_small,
    load_imagenet_backbone,
    load_segmenter_state,
)


@pytest.fixture(scope="module")
def resnet18_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).state_dict()


def _small64() -> DeepLabV2:
    """A depth-18 backbone at width 64 has torchvision resnet18's shapes."""
    return deeplabv2_small(19, depth=18, width=64)


def test_torchvision_resnet101_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    state = torchvision.models.resnet101(weights=None).state_dict()
    path = tmp_path / "resnet101_imagenet.pth"
    torch.save(state, path)
    del state
    model = deeplabv2_resnet101(19)
    report = load_imagenet_backbone(model, path)
    assert report.source == str(path)
    assert set(report.skipped) == {"fc.weight", "fc.bias"}
    assert len(report.loaded) == len(model.backbone.state_dict())
    assert report.missing == () and report.unexpected == ()
    reloaded = torch.load(path, weights_only=True)
    for key in ("conv1.weight", "layer3.22.conv3.weight", "layer4.0.downsample.1.running_var"):
        assert torch.equal(model.backbone.state_dict()[key], reloaded[key])


def test_deeplab_init_checkpoint_convention(tmp_path: Path, resnet18_state: dict[str, torch.Tensor]) -> None:
    # The DeepLab-v2 init file: "Scale." prefix, a 21-class VOC head under layer5, no num_batches_tracked.
    state = {f"Scale.{k}": v for k, v in resnet18_state.items() if not k.startswith("fc.")}
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    state["Scale.layer5.conv2d_list.0.weight"] = torch.zeros(21, 512, 3, 3)
    state["Scale.layer5.conv2d_list.0.bias"] = torch.zeros(21)
    path = tmp_path / "DeepLab_resnet_pretrained_init.pth"
    torch.save(state, path)
    model = _small64()
    head_before = model.classifier.branches[0].weight.clone()
    report = load_imagenet_backbone(model, path)
    assert set(report.skipped) == {"layer5.conv2d_list.0.weight", "layer5.conv2d_list.0.bias"}
    assert report.missing and all(k.endswith("num_batches_tracked") for k in report.missing)
    assert torch.equal(model.backbone.layer2[1].conv2.weight, resnet18_state["layer2.1.conv2.weight"])
    assert torch.equal(model.classifier.branches[0].weight, head_before)  # heads keep their random init


def test_corrupted_key_set_names_the_keys(tmp_path: Path, resnet18_state: dict[str, torch.Tensor]) -> None:
    state = dict(resnet18_state)
    del state["layer1.0.conv1.weight"]
    state["layer9.0.conv1.weight"] = torch.zeros(1)
    state["conv1.weight"] = torch.zeros(32, 3, 7, 7)
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(WeightLoadError) as caught:
        load_imagenet_backbone(_small64(), path)
    message = str(caught.value)
    assert str(path) in message
    assert "1 missing keys" in message and "layer1.0.conv1.weight" in message
    assert "1 unexpected keys" in message and "layer9.0.conv1.weight" in message
    assert "conv1.weight: (32, 3, 7, 7) vs (64, 3, 7, 7)" in message
    assert caught.value.missing == ("layer1.0.conv1.weight",)
    assert isinstance(caught.value, ValueError)


def test_wrong_architecture_lists_first_keys_and_counts(
    tmp_path: Path, resnet18_state: dict[str, torch.Tensor]
) -> None:
    path = tmp_path / "resnet18.pth"
    torch.save(resnet18_state, path)
    with pytest.raises(WeightLoadError, match=r"missing keys.*more\)") as caught:
        load_imagenet_backbone(deeplabv2_small(19, depth=34, width=64), path)
    assert len(caught.value.missing) > 10
    with pytest.raises(WeightLoadError, match="shape mismatches"):
        load_imagenet_backbone(deeplabv2_small(19, depth=18, width=32), path)


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "resnet101.pth"
    with pytest.raises(FileNotFoundError, match="nowhere/resnet101.pth"):
        load_imagenet_backbone(_small64(), path)
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        load_segmenter_state(_small64(), str(path))


def test_file_that_is_not_a_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "list.pth"
    torch.save([1, 2, 3], path)
    with pytest.raises(WeightLoadError, match="expected a state dict"):
        load_imagenet_backbone(_small64(), path)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightLoadError, match="Could not read"):
        load_imagenet_backbone(_small64(), path)


def test_segmenter_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    trained = deeplabv2_small(5, width=8).eval()
    path = tmp_path / "checkpoint.pth"
    torch.save({"segmenter": trained.state_dict(), "iteration": 5000}, path)
    fresh = deeplabv2_small(5, width=8).eval()
    report = load_segmenter_state(fresh, path)
    assert len(report.loaded) == len(trained.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x)["out"], trained(x)["out"])
    load_segmenter_state(fresh, trained.state_dict())  # a plain in-memory state dict works too


def test_segmenter_strictness_and_shape_errors() -> None:
    multi = deeplabv2_small(5, width=8).state_dict()
    single = deeplabv2_small(5, width=8, multi_level=False)
    with pytest.raises(WeightLoadError, match="unexpected keys.*aux_classifier.branches.0.weight"):
        load_segmenter_state(single, multi)
    report = load_segmenter_state(single, multi, strict=False)
    assert len(report.unexpected) == 8
    expected = r"classifier.branches.0.weight: \(5, 64, 3, 3\) vs \(19, 64, 3, 3\)"
    with pytest.raises(WeightLoadError, match=expected):
        load_segmenter_state(deeplabv2_small(19, width=8), multi, strict=False)


def test_original_adaptsegnet_checkpoint_names() -> None:
    torch.manual_seed(0)
    ours = deeplabv2_small(5, width=8).eval()
    original = {}
    # rename to DeeplabMulti's names: layer5 = aux head, layer6 = main head
    for key, value in ours.state_dict().items():
        key = key.removeprefix("backbone.").replace("branches.", "conv2d_list.")
        key = key.replace("aux_classifier.", "layer5.").replace("classifier.", "layer6.")
        original[key] = value
    fresh = deeplabv2_small(5, width=8).eval()
    load_segmenter_state(fresh, original)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x)["aux"], ours(x)["aux"])
        torch.testing.assert_close(fresh(x)["out"], ours(x)["out"])
