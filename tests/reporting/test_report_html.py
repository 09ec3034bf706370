"""The HTML report is self-contained (no external assets) and has every section; figures draw edge cases."""

import base64
import re

import numpy as np
import pytest

from adaptseg.pipelines.evaluation.pipeline import MODELS
from adaptseg.reporting import figures
from adaptseg.reporting.comparison import per_class_table, summary_table
from adaptseg.reporting.html_report import FIGURE_SECTIONS, render_report
from adaptseg.reporting.published import GTA5_CITYSCAPES
from tests.reporting.test_report_tables import fake_metrics

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def evaluations() -> dict:
    return {m: fake_metrics(m, i) for i, m in enumerate(MODELS)}


@pytest.fixture
def histories() -> dict:
    steps = range(1, 6)
    curve = lambda scale: [{"step": s, "value": scale / s} for s in steps]  # noqa: E731
    adversarial = {"loss_adv_main": curve(0.7), "loss_adv_aux": curve(0.6),
                   "loss_d_main": curve(0.69), "loss_d_aux": curve(0.5)}
    return {
        m: {"loss_seg": curve(3.0), **(adversarial if m.startswith("adaptsegnet") else {})} for m in MODELS
    } | {"adabn": {}}


GROUPS = {"segmentation": ["loss_seg"], "adversarial": ["loss_adv_main", "loss_adv_aux"],
          "discriminator": ["loss_d_main", "loss_d_aux"]}


def test_figures_encode_as_png(evaluations, histories):
    per_class = per_class_table(evaluations, GTA5_CITYSCAPES)
    drawn = [
        figures.per_class_iou_bars(per_class),
        figures.training_curves(histories, GROUPS, smoothing=0.5),
        figures.training_curves({"source_pretraining": {}}, GROUPS),  # nothing logged: a message, no error
        figures.confusion_matrices(evaluations),
    ]
    for fig in drawn:
        assert base64.b64decode(figures.figure_to_base64_png(fig, dpi=40)).startswith(PNG_MAGIC)
    assert len(drawn[1].axes) == 3 and drawn[1].axes[1].get_legend() is not None


def test_confusion_rows_are_normalised():
    matrix = figures.normalised_confusion([[2, 2], [0, 0]])
    assert matrix.tolist() == [[0.5, 0.5], [0.0, 0.0]]
    assert figures.ema([1.0, 3.0], 0.5).tolist() == [1.0, 2.0]


def test_prediction_grid_has_image_truth_and_one_column_per_model():
    label = np.zeros((8, 16), dtype=np.uint8)
    label[:, 8:] = 255
    examples = {
        "names": ["a", "b"],
        "images": [np.zeros((8, 16, 3), dtype=np.uint8)] * 2,
        "labels": [label, label],
        "predictions": {"source_only": [label, label], "adaptsegnet_multi": [label, label]},
        "num_classes": 19,
    }
    fig = figures.prediction_grid(examples)
    assert len(fig.axes) == 2 * 4
    assert [ax.get_title() for ax in fig.axes[:4]] == ["image", "ground truth", "source_only", "adaptsegnet_multi"]


def test_report_is_self_contained_and_has_every_section(evaluations):
    per_class = per_class_table(evaluations, GTA5_CITYSCAPES)
    png = figures.figure_to_base64_png(figures.per_class_iou_bars(per_class), dpi=30)
    keys = [key for _, _, key, _ in FIGURE_SECTIONS]
    html = render_report("t <&> t", per_class, summary_table(per_class), dict.fromkeys(keys, png),
                         GTA5_CITYSCAPES.source, ["meta line"])
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert html.count('src="data:image/png;base64,') == len(keys)
    for anchor in ("comparison", "per-class-iou", "training-curves", "confusion-matrices", "predictions"):
        assert f'<section id="{anchor}">' in html and f'href="#{anchor}"' in html
    for method in MODELS:
        assert f">{method}<" in html
    assert "paper: AdaptSegNet multi-level" in html and "published numbers on real data" in html
    assert "t &lt;&amp;&gt; t" in html  # titles are escaped
    for protocol in (19, 16, 13):
        assert f"Per-class IoU, {protocol} classes" in html


def test_missing_figure_says_so(evaluations):
    per_class = per_class_table(evaluations, None)
    html = render_report("t", per_class, summary_table(per_class), {})
    assert "data:image/png" not in html and html.count("Not available for this run.") == len(FIGURE_SECTIONS)
    assert "published numbers" not in html


def test_the_report_says_where_it_comes_from_and_shows_the_study_beside_the_run():
    from adaptseg.reporting.comparison import per_class_table, summary_table
    from adaptseg.reporting.html_report import render_report
    from tests.reporting.test_report_tables import fake_metrics

    evaluations = {m: {**fake_metrics(m, i), "precision": "bf16"} for i, m in enumerate(("source_only", "dacs"))}
    per_class = per_class_table(evaluations)
    study = {"regimes": {"none": {
        "methods": {"source_only": {"mean": 46.4, "std": 0.4, "n": 5}, "dacs": {"mean": 50.0, "std": 1.0, "n": 5}},
        "paired": {"dacs - source_only": {"mean": 3.6, "ci95": [2.0, 5.2], "n": 5}},
        "gap_closed": {"dacs": 0.39, "source_only": 0.0}}}}
    html = render_report("t", per_class, summary_table(per_class), {}, meta=["Code: commit abc123."], study=study)
    assert "Code: commit abc123." in html and ">bf16<" in html
    assert "mIoU19 − source_only" in html and "+3.6 [+2.0, +5.2]" in html and "39%" in html
