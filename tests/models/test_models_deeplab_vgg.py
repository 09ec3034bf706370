"""DeepLab-v2 VGG-16 (AdaptSegNet's ``DeeplabVGG``): size, layout, stride, weight loading, one adaptation
step."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from adaptseg.methods import adaptsegnet, feature_level
from adaptseg.models import (
    DeepLabVGG,
    WeightLoadError,
    build_segmenter,
    deeplabv2_vgg16,
    load_imagenet_backbone,
    load_segmenter_state,
    vgg_logits_size,
)
from adaptseg.models.deeplab_vgg import torchvision_features_index
from adaptseg.training import EngineConfig, train
from tests.tiny_models import NUM_CLASSES, DictDataset

# The original's indices after removing pool4 (torchvision 23) and pool5 (torchvision 30), then fc6 and fc7.
CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 23, 25, 27)  # conv1_1 .. conv5_3
POOL_INDICES = (4, 9, 16)  # pool1 .. pool3
FC6, FC7 = 29, 31


def _conv(c_in: int, c_out: int, num: int = 1) -> int:
    """Parameters of ``num`` 3x3 convolutions with bias."""
    return num * (c_in * c_out * 9 + c_out)


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def meta_vgg() -> DeepLabVGG:
    with torch.device("meta"):
        return deeplabv2_vgg16(19)


@pytest.fixture(scope="module")
def torchvision_state() -> dict[str, torch.Tensor]:
    """A torchvision VGG-16 state dict whose conv biases hold their torchvision index (to trace where they
    land) and whose weights are torchvision's random init."""
    torch.manual_seed(0)
    state = torchvision.models.vgg16(weights=None).state_dict()
    for key, value in state.items():
        if key.startswith("features.") and key.endswith(".bias"):
            value.fill_(float(key.split(".")[1]))
    return state


@pytest.fixture(scope="module")
def torchvision_file(tmp_path_factory: pytest.TempPathFactory, torchvision_state: dict) -> Path:
    path = tmp_path_factory.mktemp("vgg") / "vgg16_imagenet.pth"
    torch.save(torchvision_state, path)
    return path


def test_parameter_count_matches_the_original(meta_vgg: DeepLabVGG) -> None:
    # VGG-16 convolutions (3x3, with bias):
    #   conv1: 3->64, 64->64                          1,792 + 36,928               =     38,720
    #   conv2: 64->128, 128->128                      73,856 + 147,584             =    221,440
    #   conv3: 128->256, 2 x 256->256                 295,168 + 2 x 590,080        =  1,475,328
    #   conv4: 256->512, 2 x 512->512                 1,180,160 + 2 x 2,359,808    =  5,899,776
    #   conv5: 3 x 512->512                           3 x 2,359,808                =  7,079,424
    #                                                           VGG-16 convolutions = 14,714,688
    #   fc6: 512->1024 (3x3)                          4,718,592 + 1,024            =  4,719,616
    #   fc7: 1024->1024 (3x3)                         9,437,184 + 1,024            =  9,438,208
    #   classifier: 4 branches 1024->19 (3x3)         4 x (175,104 + 19)           =    700,492
    #                                                                        total = 29,573,004
    # The original builds Classifier_Module(1024, [6, 12, 18, 24]); only branches 0 and 1 act (a return
    # inside the summing loop), but all four are parameters and in its checkpoints.
    vgg16 = (
        _conv(3, 64) + _conv(64, 64)
        + _conv(64, 128) + _conv(128, 128)
        + _conv(128, 256) + _conv(256, 256, 2)
        + _conv(256, 512) + _conv(512, 512, 2)
        + _conv(512, 512, 3)
    )
    fc6_fc7 = _conv(512, 1024) + _conv(1024, 1024)
    classifier = _conv(1024, 19, 4)
    assert vgg16 == 14_714_688 and fc6_fc7 == 14_157_824 and classifier == 700_492
    assert _count(meta_vgg.features) == vgg16 + fc6_fc7
    assert _count(meta_vgg.classifier) == classifier
    assert _count(meta_vgg) == 29_573_004
    assert all(p.requires_grad for p in meta_vgg.parameters())  # no frozen BatchNorm here


def test_features_layout_follows_the_original(meta_vgg: DeepLabVGG) -> None:
    features = meta_vgg.features
    assert len(features) == 33
    convs = tuple(i for i, m in enumerate(features) if isinstance(m, nn.Conv2d))
    assert convs == (*CONV_INDICES, FC6, FC7)
    assert tuple(i for i, m in enumerate(features) if isinstance(m, nn.MaxPool2d)) == POOL_INDICES
    assert all(isinstance(features[i + 1], nn.ReLU) for i in convs)
    for i in convs:
        dilation = 4 if i in (FC6, FC7) else 2 if i in (23, 25, 27) else 1
        assert features[i].dilation == features[i].padding == (dilation, dilation), i
    assert (features[FC6].in_channels, features[FC6].out_channels) == (512, 1024)
    assert (features[FC7].in_channels, features[FC7].out_channels) == (1024, 1024)
    branches = meta_vgg.classifier.branches
    assert [b.dilation[0] for b in branches] == [b.padding[0] for b in branches] == [6, 12, 18, 24]
    assert all(b.in_channels == 1024 and b.bias is not None for b in branches)


def test_vgg_part_has_torchvision_shapes_past_pool4(meta_vgg: DeepLabVGG) -> None:
    with torch.device("meta"):
        reference = torchvision.models.vgg16(weights=None).features
    assert isinstance(reference[23], nn.MaxPool2d) and isinstance(reference[30], nn.MaxPool2d)
    for index in range(FC6):
        ours, theirs = meta_vgg.features[index], reference[torchvision_features_index(index)]
        assert type(ours) is type(theirs), index
        if isinstance(ours, nn.Conv2d):
            assert ours.weight.shape == theirs.weight.shape, index
    assert [torchvision_features_index(i) for i in (22, 23, 27, 28)] == [22, 24, 28, 29]
    with pytest.raises(ValueError, match="features\\[29\\]"):
        torchvision_features_index(FC6)


@pytest.mark.parametrize(
    "size, expected", [((512, 1024), (64, 128)), ((720, 1280), (90, 160)), ((65, 97), (8, 12))]
)
def test_output_stride_8(meta_vgg: DeepLabVGG, size: tuple[int, int], expected: tuple[int, int]) -> None:
    out = meta_vgg(torch.empty(1, 3, *size, device="meta"), return_features=True)
    assert vgg_logits_size(*size) == expected
    assert out["out"].shape == (1, 19, *expected)
    assert out["layer4"].shape == (1, 1024, *expected)


def test_forward_on_odd_input_and_two_of_four_branches() -> None:
    torch.manual_seed(0)
    model = deeplabv2_vgg16(5).eval()
    x = torch.randn(1, 3, 43, 70)
    out = model(x, return_features=True)
    assert set(out) == {"out", "layer4"}
    assert out["out"].shape == (1, 5, *vgg_logits_size(43, 70)) == (1, 5, 5, 8)
    with torch.no_grad():
        branches = [b(out["layer4"]) for b in model.classifier.branches]
        torch.testing.assert_close(out["out"], branches[0] + branches[1])
        model.aspp_sum_all_branches = True
        torch.testing.assert_close(model(x)["out"], sum(branches))
    model.aspp_sum_all_branches = False
    model(x)["out"].sum().backward()
    grads = [b.weight.grad for b in model.classifier.branches]
    assert grads[1] is not None and grads[2] is None and grads[3] is None
    with pytest.raises(ValueError, match="at least 8"):
        vgg_logits_size(7, 64)


def test_parameter_groups_and_interface(meta_vgg: DeepLabVGG) -> None:
    backbone, heads = meta_vgg.parameter_groups()
    assert (backbone["name"], backbone["lr_mult"], heads["name"], heads["lr_mult"]) == (
        "backbone", 1.0, "heads", 10.0
    )
    assert len(backbone["params"]) == 30  # 13 VGG convs + fc6 + fc7, weight and bias
    assert len(heads["params"]) == 8  # 4 branches x (weight, bias)
    ids = [id(p) for p in meta_vgg.features.parameters()]
    assert [id(p) for p in backbone["params"]] == ids
    legacy = meta_vgg.parameter_groups(dedupe=False)  # no repeated tensors to reproduce
    assert [[id(p) for p in g["params"]] for g in legacy] == [
        [id(p) for p in g["params"]] for g in (backbone, heads)
    ]
    assert meta_vgg.multi_level is False and meta_vgg.aux_classifier is None
    assert meta_vgg.heads() == [meta_vgg.classifier] and meta_vgg.feature_channels == 1024


def test_bn_mode_is_accepted_and_changes_nothing() -> None:
    model = deeplabv2_vgg16(5, bn_mode="train")
    assert model.bn_mode == "train"
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    model.set_bn_mode("frozen")
    model.train()
    assert model.bn_mode == "frozen" and all(m.training for m in model.modules())
    with pytest.raises(ValueError, match="bn_mode must be one of"):
        model.set_bn_mode("eval")
    with pytest.raises(ValueError, match="bn_mode"):
        deeplabv2_vgg16(5, bn_mode="sync")


def test_build_segmenter_and_single_level_only() -> None:
    with torch.device("meta"):
        model = build_segmenter("deeplabv2_vgg16", 19, bn_mode="frozen", aspp_sum_all_branches=True)
    assert isinstance(model, DeepLabVGG) and model.num_classes == 19 and model.aspp_sum_all_branches
    with pytest.raises(ValueError, match="no aux head.*multi_level"):
        build_segmenter("deeplabv2_vgg16", 19, multi_level=True)
    with pytest.raises(TypeError, match="deeplabv2_vgg16"):
        build_segmenter("deeplabv2_vgg16", 19, width=8)
    with pytest.raises(ValueError, match="num_classes"):
        deeplabv2_vgg16(0)


def _in_vgg16(key: str) -> bool:
    """Whether a state-dict key belongs to the VGG-16 part of ``features`` (before fc6)."""
    return key.startswith("features.") and int(key.split(".")[1]) < FC6


def test_torchvision_vgg16_loads_into_the_features(torchvision_file: Path, torchvision_state: dict) -> None:
    torch.manual_seed(1)
    model = deeplabv2_vgg16(19)
    # fc6, fc7 and the classifier keep their random init
    untouched = {k: v.clone() for k, v in model.state_dict().items() if not _in_vgg16(k)}
    assert len(untouched) == 12
    report = load_imagenet_backbone(model, torchvision_file)
    assert report.source == str(torchvision_file)
    assert set(report.skipped) == {f"classifier.{i}.{p}" for i in (0, 3, 6) for p in ("weight", "bias")}
    assert len(report.loaded) == 26 and report.missing == () and report.unexpected == ()
    for index in CONV_INDICES:
        theirs = torchvision_features_index(index)
        assert torch.equal(model.features[index].weight, torchvision_state[f"features.{theirs}.weight"])
        assert torch.all(model.features[index].bias == theirs), (index, theirs)  # bias = its source index
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in untouched.items())


def test_torchvision_file_with_wrong_keys_names_them(tmp_path: Path, torchvision_state: dict) -> None:
    state = {k: v for k, v in torchvision_state.items() if k.startswith("features.")}
    del state["features.28.bias"]  # conv5_3 in torchvision's numbering
    state["features.23.weight"] = torch.zeros(1)  # pool4 has no parameters
    state["features.0.weight"] = torch.zeros(64, 1, 3, 3)
    path = tmp_path / "vgg16_broken.pth"
    torch.save(state, path)
    with pytest.raises(WeightLoadError) as caught:
        load_imagenet_backbone(deeplabv2_vgg16(19), path)
    message = str(caught.value)
    assert str(path) in message and "DeepLabVGG" in message
    assert "1 missing keys" in message and "features.28.bias" in message
    assert "1 unexpected keys" in message and "features.23.weight" in message
    assert "features.0.weight: (64, 1, 3, 3) vs (64, 3, 3, 3)" in message
    assert caught.value.missing == ("features.28.bias",)


def _original_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our state dict under DeeplabVGG's names (``classifier.conv2d_list.i``), as in released checkpoints."""
    return {k.replace("classifier.branches.", "classifier.conv2d_list."): v for k, v in state.items()}


def test_original_checkpoint_format_loads(tmp_path: Path) -> None:
    torch.manual_seed(2)
    trained = deeplabv2_vgg16(19).eval()
    original = _original_names(trained.state_dict())
    assert sorted(k for k in original if not k.startswith("features.")) == sorted(
        f"classifier.conv2d_list.{i}.{p}" for i in range(4) for p in ("weight", "bias")
    )
    assert max(int(k.split(".")[1]) for k in original if k.startswith("features.")) == FC7
    path = tmp_path / "GTA2Cityscapes_vgg-test.pth"
    torch.save(original, path)
    fresh = deeplabv2_vgg16(19).eval()
    report = load_segmenter_state(fresh, path)
    assert len(report.loaded) == len(original) == 38
    for key, value in trained.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
    x = torch.randn(1, 3, 48, 64)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x)["out"], trained(x)["out"])


def test_original_checkpoint_with_wrong_keys_names_them(tmp_path: Path) -> None:
    original = _original_names(deeplabv2_vgg16(5).state_dict())
    del original["classifier.conv2d_list.3.bias"]
    original["classifier.conv2d_list.4.weight"] = torch.zeros(5, 1024, 3, 3)
    path = tmp_path / "GTA2Cityscapes_vgg-broken.pth"
    torch.save({f"module.{k}": v for k, v in original.items()}, path)  # a DataParallel prefix is removed too
    with pytest.raises(WeightLoadError) as caught:
        load_segmenter_state(deeplabv2_vgg16(5), path)
    message = str(caught.value)
    assert str(path) in message
    assert "missing keys" in message and "classifier.branches.3.bias" in message
    assert "unexpected keys" in message and "classifier.branches.4.weight" in message
    five_classes = _original_names(deeplabv2_vgg16(5).state_dict())
    with pytest.raises(WeightLoadError, match=r"classifier.branches.0.weight: \(5, 1024, 3, 3\) vs \(19,"):
        load_segmenter_state(deeplabv2_vgg16(19), five_classes, strict=False)


def test_one_adaptsegnet_step_through_the_engine() -> None:
    torch.manual_seed(3)
    segmenter = deeplabv2_vgg16(NUM_CLASSES)
    config = adaptsegnet.Config(levels=("main",), lambda_seg=0.0, lambda_adv_aux=0.0, ndf=8)
    models = {"segmenter": segmenter, **adaptsegnet.build_models(segmenter, config)}
    before = {name: [p.detach().clone() for p in m.parameters()] for name, m in models.items()}
    source = DictDataset(2, seed=10, size=(64, 64))
    target = DictDataset(2, labelled=False, seed=20, size=(64, 64))
    engine = EngineConfig(
        max_steps=10, stop_step=1, batch_size=1, seed=3, device="cpu", precision="fp32", num_workers=0,
        checkpoint_dir=None, snapshot_every=0, log_every=1, progress=False,
    )
    result = train(adaptsegnet, models, source, engine, target_dataset=target, method_config=config)
    assert result.last_step == 1
    for name in ("loss_seg", "loss_adv_main", "loss_d_main"):
        values = [entry["value"] for entry in result.history[name]]
        assert len(values) == 1 and all(torch.isfinite(torch.tensor(values))), (name, values)
    for name, model in result.models.items():
        changed = [not torch.equal(p.detach().cpu(), b) for p, b in zip(model.parameters(), before[name], strict=True)]
        assert any(changed), name
    features = result.models["segmenter"].features
    assert not torch.equal(features[0].weight.detach().cpu(), before["segmenter"][0])  # conv1_1 trained


def test_feature_level_discriminator_sees_fc7() -> None:
    torch.manual_seed(4)
    segmenter = deeplabv2_vgg16(NUM_CLASSES).eval()
    config = feature_level.Config(ndf=8)
    assert feature_level.feature_channels(segmenter) == 1024
    discriminator = feature_level.build_models(segmenter, config)["discriminator_layer4"]
    assert discriminator.conv1.in_channels == 1024
    with torch.no_grad():
        features = segmenter(torch.randn(1, 3, 64, 64), return_features=True)["layer4"]
        assert discriminator(features).shape[:2] == (1, 1)


#: The single-level form of every method's knobs: VGG-16 DeepLab has no aux head.
SINGLE_LEVEL = {
    "source_only": {"lambda_seg": 0.0},
    "adaptsegnet": {"lambda_seg": 0.0, "lambda_adv_aux": 0.0, "levels": ["main"], "ndf": 4},
    "feature_level": {"lambda_seg": 0.0, "ndf": 4},
    "minent": {"lambda_seg": 0.0, "lambda_ent_aux": 0.0},
    "advent": {"lambda_seg": 0.0, "lambda_adv_aux": 0.0, "levels": ["main"], "ndf": 4},
    "fda": {"lambda_seg": 0.0, "beta": 0.05, "entropy_from": 0.0},
    "cbst": {"lambda_seg": 0.0, "rounds": 1},
    "dacs": {"lambda_seg": 0.0},
}


@pytest.mark.parametrize("name", sorted(SINGLE_LEVEL))
def test_every_method_trains_the_vgg_network(name, tmp_path):
    from adaptseg.methods import METHODS
    from adaptseg.models import build_segmenter
    from adaptseg.training import train
    from tests.tiny_models import DictDataset

    method = METHODS[name]
    config = method.Config.from_dict(SINGLE_LEVEL[name])
    torch.manual_seed(0)
    segmenter = build_segmenter("deeplabv2_vgg16", 3)
    before = segmenter.classifier.branches[0].weight.detach().clone()
    source, target = DictDataset(2, size=(64, 64)), DictDataset(2, labelled=False, seed=1, size=(64, 64))
    engine = {"max_steps": 1, "batch_size": 2, "device": "cpu", "precision": "fp32", "log_every": 1, "progress": False}
    result = train(method, {"segmenter": segmenter, **method.build_models(segmenter, config)}, source, engine,
                   target_dataset=target, method_config=config)
    losses = [v[0]["value"] for k, v in result.history.items() if k.startswith("loss")]
    assert losses and all(torch.isfinite(torch.tensor(losses)))
    assert not torch.equal(before, segmenter.classifier.branches[0].weight)
