"""The methods' pieces on inputs whose answer is known by hand: entropies, the FDA amplitude swap, CBST's
class thresholds, ClassMix."""

import math

import pytest
import torch
from torch import nn

from adaptseg.methods import cbst, dacs, fda
from adaptseg.training import Amp, Context
from adaptseg.training.losses import charbonnier_entropy, entropy_map, prediction_entropy, self_information


# ------------------------------------------------------------------------------------------ entropies
def test_entropy_of_known_distributions():
    uniform = torch.zeros(1, 4, 2, 2)
    certain = torch.tensor([100.0, 0.0, 0.0, 0.0]).view(1, 4, 1, 1).expand(1, 4, 2, 2)
    assert torch.allclose(entropy_map(uniform), torch.ones(1, 2, 2))
    assert entropy_map(certain).max() < 1e-6
    p = torch.tensor([0.8, 0.2])
    two = torch.log(p).view(1, 2, 1, 1)
    expected = -(0.8 * math.log(0.8) + 0.2 * math.log(0.2)) / math.log(2)
    assert entropy_map(two).item() == pytest.approx(expected)
    assert prediction_entropy(two).item() == pytest.approx(expected)


def test_self_information_sums_to_the_entropy_and_vanishes_on_certainty():
    logits = torch.randn(2, 5, 3, 4)
    probabilities = logits.softmax(1)
    information = self_information(probabilities)
    assert information.shape == probabilities.shape and (information >= 0).all()
    assert torch.allclose(information.sum(1), entropy_map(logits), atol=1e-6)
    onehot = torch.zeros(1, 3, 1, 1)
    onehot[0, 1] = 1
    assert torch.equal(self_information(onehot), torch.zeros_like(onehot))


def test_charbonnier_entropy_is_the_mean_of_the_penalised_entropy():
    uniform = torch.zeros(1, 19, 4, 8)
    assert charbonnier_entropy(uniform, (8, 16), eta=2.0, epsilon=1e-3).item() == pytest.approx((1 + 1e-6) ** 2)
    certain = torch.zeros(1, 19, 4, 8)
    certain[:, 3] = 200.0
    assert charbonnier_entropy(certain, (4, 8), eta=2.0, epsilon=1e-3).item() == pytest.approx(1e-12, abs=1e-11)


# ------------------------------------------------------------------------------------------ FDA
def test_fda_beta_zero_is_the_identity():
    source, target = torch.rand(2, 3, 32, 48) * 255, torch.rand(2, 3, 32, 48) * 255
    assert fda.fourier_transfer(source, target, 0.0) is source
    assert fda.fourier_transfer(source, target, 0.01) is source  # ⌊0.01 · 32⌋ = 0: no block to swap
    assert fda.translate_batch(source - 100, target - 100, 0.0) is not None


def test_fda_low_frequency_block_is_the_targets_and_the_rest_the_sources():
    torch.manual_seed(0)
    source, target = torch.rand(1, 3, 40, 64) * 255, torch.rand(1, 3, 40, 64) * 255
    beta = 0.1
    b = fda.low_frequency_size(40, 64, beta)
    assert b == 4
    out = fda.fourier_transfer(source, target, beta)
    spectrum, source_spectrum, target_spectrum = (torch.fft.fft2(x) for x in (out, source, target))
    low = torch.zeros(40, 64, dtype=torch.bool)
    for rows in (slice(0, b), slice(40 - b, 40)):
        for cols in (slice(0, b), slice(64 - b, 64)):
            low[rows, cols] = True
    # the output is real, so the swapped block is not exactly conjugate-symmetric: compare away from its edges
    inner = torch.zeros_like(low)
    inner[: b - 1, : b - 1] = True
    torch.testing.assert_close(spectrum.abs()[..., inner], target_spectrum.abs()[..., inner], rtol=0.15, atol=1e-3 * 40 * 64 * 255)
    high = ~low
    high[:, 64 - b - 1 :] = False
    high[40 - b - 1 :, :] = False
    high[: b + 1, :] = False
    high[:, : b + 1] = False
    torch.testing.assert_close(spectrum.abs()[..., high], source_spectrum.abs()[..., high], rtol=0.05, atol=1.0)
    # the DC term (mean colour) is the target's: the global style moved, the content did not
    assert torch.allclose(out.mean(dim=(2, 3)), target.mean(dim=(2, 3)), rtol=1e-3)


def test_fda_on_the_engines_normalised_images_matches_the_raw_range():
    from adaptseg.data.torch_datasets import IMG_MEAN_BGR

    mean = torch.as_tensor(IMG_MEAN_BGR).view(1, 3, 1, 1)
    raw_source, raw_target = torch.rand(1, 3, 32, 32) * 255, torch.rand(1, 3, 32, 32) * 255
    translated = fda.translate_batch(raw_source - mean, raw_target - mean, 0.1)
    torch.testing.assert_close(translated + mean, fda.fourier_transfer(raw_source, raw_target, 0.1), rtol=1e-5, atol=1e-3)


# ------------------------------------------------------------------------------------------ CBST
def test_class_thresholds_keep_the_top_portion_of_each_class():
    bins = 10
    histogram = torch.zeros(3, bins, dtype=torch.float64)
    histogram[0, [9, 8, 7, 6]] = 1.0  # four pixels at 0.95, 0.85, 0.75, 0.65
    histogram[1, 2] = 10  # ten pixels at about 0.25: the rare, unsure class keeps its own threshold
    thresholds = cbst.class_thresholds(histogram, portion=0.5)
    assert thresholds.tolist() == pytest.approx([0.8, 0.2, 1.0])  # class 2: never predicted, keeps nothing
    assert cbst.class_thresholds(histogram, portion=1.0)[0].item() == pytest.approx(0.6)
    assert (cbst.class_thresholds(histogram, portion=0.0) > 1).all()


class Echo(nn.Module):
    """A 'segmenter' whose logits are its input: the confidences are whatever the test writes."""

    num_classes = 3

    def forward(self, x):
        return {"out": x}


class Maps(torch.utils.data.Dataset):
    def __init__(self, logits):
        self.logits = logits

    def __len__(self):
        return len(self.logits)

    def __getitem__(self, i):
        return {"image": self.logits[i], "name": str(i)}


def test_pseudo_labeller_calibrates_on_a_known_confidence_map_and_ignores_the_unsure():
    # probabilities of class 0 (rows 0-1) and class 1 (rows 2-3): class 0 at 0.9 and 0.6, class 1 at 0.7 and 0.4
    probabilities = torch.full((1, 3, 4, 8), 0.0)
    for row, (cls, p) in enumerate([(0, 0.9), (0, 0.6), (1, 0.7), (1, 0.4)]):
        probabilities[0, cls, row] = p
        probabilities[0, 2, row] = (1 - p) / 2
        probabilities[0, 1 - cls, row] = (1 - p) / 2
    logits = probabilities.log()
    labeller = cbst.PseudoLabeller(Echo(), 3, ignore_index=255)
    context = Context(target=Maps(logits), device=torch.device("cpu"), amp=Amp(), batch_size=1, progress=False)
    labeller.calibrate(context, portion=0.5, bins=100)
    assert labeller.thresholds[:2].tolist() == pytest.approx([0.9, 0.7], abs=0.011)
    labels = labeller.label(logits)
    assert labels[0, 0].tolist() == [0] * 8 and labels[0, 2].tolist() == [1] * 8
    assert (labels[0, 1] == 255).all() and (labels[0, 3] == 255).all()
    assert cbst.Config(rounds=3).portion(0) == 0.2 and cbst.Config().portion(10) == 0.5


# ------------------------------------------------------------------------------------------ DACS
def test_class_mix_pastes_half_of_the_source_classes_with_their_labels():
    torch.manual_seed(0)
    label = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 255], [0, 1, 2, 2]]).unsqueeze(0)  # classes 0, 1, 2 and ignore
    masks = dacs.class_mix_masks(label, 255)
    chosen = torch.unique(label[masks])
    assert chosen.numel() == 2 and 255 not in chosen.tolist()  # ⌈3 / 2⌉ classes, never the ignored pixels
    assert torch.equal(masks, torch.isin(label, chosen))

    source_image, target_image = torch.ones(1, 3, 3, 4), torch.zeros(1, 3, 3, 4)
    pseudo = torch.full((1, 3, 4), 7)
    confidence = torch.tensor([0.99, 0.5, 0.97, 0.1]).repeat(1, 3, 1)  # half the target pixels confident
    torch.manual_seed(0)
    mixed, labels, weights = dacs.class_mix(source_image, label, target_image, pseudo, confidence, dacs.Config())
    assert torch.equal(mixed[0, 0] == 1, masks[0]) and torch.equal(labels[masks], label[masks])
    assert (labels[~masks] == 7).all()
    assert (weights[masks] == 1).all() and torch.allclose(weights[~masks], torch.tensor(0.5))


def test_ema_teacher_starts_as_the_student_and_then_lags_it():
    student = nn.Linear(2, 2)
    models = {"segmenter": student, **dacs.build_models(student, dacs.Config())}
    teacher = models["teacher"].network
    with torch.no_grad():
        student.weight.add_(1.0)
    dacs.after_iteration(models, 0, dacs.Config(ema=0.99), None)  # α = min(1 − 1/1, 0.99) = 0: a copy
    assert torch.equal(teacher.weight, student.weight)
    before = teacher.weight.clone()
    with torch.no_grad():
        student.weight.add_(1.0)
    dacs.after_iteration(models, 1000, dacs.Config(ema=0.99), None)
    torch.testing.assert_close(teacher.weight, 0.99 * before + 0.01 * student.weight)
    assert not any(p.requires_grad for p in teacher.parameters()) and not models["teacher"].train().training


def test_mic_patch_mask_blanks_whole_blocks_at_the_ratio():
    torch.manual_seed(0)
    mask = dacs.patch_mask(64, (20, 36), block=8, ratio=0.7, device=torch.device("cpu"))
    assert mask.shape == (64, 1, 20, 36) and set(mask.unique().tolist()) <= {0.0, 1.0}
    blocks = mask[:, 0, ::8, ::8]  # one pixel per block (3 × 5 blocks, the last row and column cut)
    assert torch.equal(mask[:, 0], blocks.repeat_interleave(8, 1).repeat_interleave(8, 2)[:, :20, :36])
    assert abs((blocks == 0).float().mean().item() - 0.7) < 0.06  # 960 blocks
    assert (dacs.patch_mask(2, (20, 36), 8, 0.0, torch.device("cpu")) == 1).all()


def test_mic_student_learns_the_teachers_whole_image_labels_on_the_masked_image():
    """With MIC on, the student's third forward is the target image with blanked blocks, and its loss is the
    confidence-weighted cross-entropy against the teacher's pseudo-labels of the unmasked image."""
    from tests.tiny_models import DictDataset, TinySegmenter

    config = dacs.Config(lambda_masked=1.0, mask_block=16, color_jitter=0.0, blur=False, lambda_seg=0.0, confidence=0.0)
    torch.manual_seed(0)
    segmenter = TinySegmenter()
    models = {"segmenter": segmenter, **dacs.build_models(segmenter, config)}
    seen = []
    segmenter.register_forward_hook(lambda module, args, out: seen.append((args[0].detach(), out["out"].detach())))
    source, target = DictDataset(2, size=(64, 64)), DictDataset(2, labelled=False, seed=1, size=(64, 64))
    batch = {"source": {"image": source.images, "label": source.labels}, "target": {"image": target.images},
             "progress": 0.0}
    logged = dacs.step(models, batch, config, Amp())
    assert len(seen) == 3 and "loss_masked" in logged  # source, ClassMix, masked target
    masked, logits = seen[2]
    blank = (masked == 0).all(dim=1, keepdim=True)
    assert 0 < blank.float().mean() < 1 and torch.equal(masked[~blank.expand_as(masked)],
                                                         target.images[~blank.expand_as(masked)])
    with torch.no_grad():
        pseudo = torch.nn.functional.interpolate(models["teacher"](target.images)["out"], size=(64, 64),
                                                 mode="bilinear", align_corners=True).argmax(1)
    expected = torch.nn.functional.cross_entropy(
        torch.nn.functional.interpolate(logits, size=(64, 64), mode="bilinear", align_corners=True), pseudo)
    torch.testing.assert_close(logged["loss_masked"], expected)
    assert "loss_masked" not in dacs.step(models, batch, dacs.Config(), Amp())  # off by default


# ------------------------------------------------------------------------------------------ what the discriminators see
def _spy_inputs(method_name: str, knobs: dict) -> list[torch.Tensor]:
    from adaptseg.methods import METHODS
    from tests.tiny_models import DictDataset, TinySegmenter

    method = METHODS[method_name]
    config = method.Config.from_dict(knobs)
    torch.manual_seed(0)
    segmenter = TinySegmenter()
    models = {"segmenter": segmenter, **method.build_models(segmenter, config)}
    seen = []
    models["discriminator_" + ("layer4" if method_name == "feature_level" else "main")].register_forward_hook(
        lambda module, args, out: seen.append(args[0].detach()))
    source, target = DictDataset(2, size=(64, 64)), DictDataset(2, labelled=False, seed=1, size=(64, 64))
    batch = {"source": {"image": source.images, "label": source.labels},
             "target": {"image": target.images}, "progress": 0.0}
    method.step(models, batch, config, Amp())
    return seen


def test_advent_discriminator_sees_self_information_maps_at_the_image_size():
    target_map, source_map, _ = _spy_inputs("advent", {"ndf": 4})
    assert target_map.shape == (2, 3, 64, 64)
    assert (target_map >= 0).all() and (target_map.sum(1) <= 1 + 1e-5).all()  # summed over classes: entropy ≤ 1
    assert not torch.allclose(target_map.sum(1), torch.ones(2, 64, 64))


def test_feature_level_discriminator_sees_layer4_features_at_output_stride_8():
    target_map, source_map, _ = _spy_inputs("feature_level", {"ndf": 4})
    assert target_map.shape == (2, 4, 8, 8) and source_map.shape == (2, 4, 8, 8)
