"""Comparison tables: every model and protocol, published rows beside ours and clearly labelled."""

import numpy as np
import pandas as pd
import pytest

from adaptseg.data.labels import TRAIN_CLASSES, protocol_class_names
from adaptseg.evaluation.metrics import protocol_scores
from adaptseg.pipelines.evaluation.pipeline import MODELS
from adaptseg.reporting.comparison import markdown_tables, per_class_table, summary_table
from adaptseg.reporting.published import GTA5_CITYSCAPES, published_benchmark


def fake_metrics(method: str, seed: int, protocols=("19", "16", "13")) -> dict:
    """What the evaluation node writes, from a random diagonal-heavy 19-class confusion matrix."""
    rng = np.random.default_rng(seed)
    confusion = rng.integers(0, 30, (19, 19)) + np.diag(rng.integers(50, 500, 19))
    return {
        "method": method,
        "split": "val",
        "images": 3,
        "step": 2,
        "confusion_matrix": confusion.tolist(),
        "protocols": {p: protocol_scores(confusion, int(p)) for p in protocols},
    }


@pytest.fixture
def evaluations() -> dict:
    return {m: fake_metrics(m, i) for i, m in enumerate(MODELS)}


def test_published_rows_match_their_stated_means():
    for row in GTA5_CITYSCAPES.rows:
        if row.iou:
            assert list(row.iou) == list(TRAIN_CLASSES)
            assert np.mean(list(row.iou.values())) == pytest.approx(row.miou, abs=0.05), row.label
    assert {r.miou for r in GTA5_CITYSCAPES.rows} == {36.6, 41.4, 42.4, 65.1}
    synthia = published_benchmark("synthia_cityscapes")
    multi = synthia.rows[0]
    assert synthia.protocol == 13 and list(multi.iou) == list(protocol_class_names(13))
    assert np.mean(list(multi.iou.values())) == pytest.approx(multi.miou, abs=0.05) and multi.miou == 46.7
    assert published_benchmark(None) is None
    with pytest.raises(ValueError, match="not a known benchmark"):
        published_benchmark("synthia_cityscapes_typo")


def test_per_class_table_has_every_method_and_protocol(evaluations):
    table = per_class_table(evaluations, GTA5_CITYSCAPES)
    ours = table[table["source"] == "ours"]
    assert set(ours["protocol"]) == {19, 16, 13}
    for protocol in (19, 16, 13):
        assert ours[ours["protocol"] == protocol]["method"].tolist() == list(MODELS)
        rows = ours[ours["protocol"] == protocol]
        kept = list(protocol_class_names(protocol))
        assert rows[kept].notna().all().all()
        dropped = [c for c in TRAIN_CLASSES if c not in kept]
        assert rows[dropped].isna().all().all()
    first = ours.iloc[0]
    assert first["miou"] == pytest.approx(evaluations[MODELS[0]]["protocols"]["19"]["miou"])


def test_published_rows_only_where_the_protocol_matches_and_follow_their_model(evaluations):
    table = per_class_table(evaluations, GTA5_CITYSCAPES)
    published = table[table["source"] == "published"]
    assert set(published["protocol"]) == {19}
    assert all(label.startswith("paper:") for label in published["row"])
    rows = table[table["protocol"] == 19]["row"].tolist()
    assert rows.index("paper: AdaptSegNet multi-level") == rows.index("adaptsegnet_multi") + 1
    assert rows.index("paper: without adaptation") == rows.index("source_only") + 1
    oracle = published[published["method"] == "oracle"].iloc[0]
    assert oracle["miou"] == 65.1 and oracle[list(TRAIN_CLASSES)].isna().all()
    assert (per_class_table(evaluations, None)["source"] == "ours").all()


def test_published_rows_without_a_matching_model_still_appear(evaluations):
    table = per_class_table({"adaptsegnet_multi": evaluations["adaptsegnet_multi"]}, GTA5_CITYSCAPES)
    assert len(table[(table["protocol"] == 19) & (table["source"] == "published")]) == 4


def test_summary_and_markdown(evaluations):
    per_class = per_class_table(evaluations, GTA5_CITYSCAPES)
    summary = summary_table(per_class)
    assert list(summary.columns[-4:]) == ["miou_19", "miou_16", "miou_13", "gain_vs_source_only"]
    ours = summary[summary["source"] == "ours"].set_index("method")
    assert ours.loc["source_only", "gain_vs_source_only"] == 0
    assert ours.loc["adaptsegnet_multi", "gain_vs_source_only"] == pytest.approx(
        ours.loc["adaptsegnet_multi", "miou_19"] - ours.loc["source_only", "miou_19"])
    assert summary[summary["source"] == "ours"]["method"].tolist() == list(MODELS)
    assert pd.isna(summary.loc[summary["row"] == "paper: AdaptSegNet multi-level", "miou_16"]).all()
    markdown = markdown_tables(per_class, summary, GTA5_CITYSCAPES.source)
    for method in MODELS:
        assert f"`{method}`" in markdown
    for heading in ("## Per-class IoU, 19 classes", "## Per-class IoU, 16 classes", "## Per-class IoU, 13 classes"):
        assert heading in markdown
    assert "*paper: AdaptSegNet multi-level*" in markdown and "| 42.4 |" in markdown
    assert "published numbers" in markdown and "real" in markdown


def test_a_16_class_model_gets_its_own_protocol_only():
    confusion = np.eye(16, dtype=int) * 10
    metrics = {"method": "m", "split": "val", "images": 1, "step": 0, "confusion_matrix": confusion.tolist(),
               "protocols": {"16": {"miou": 100.0, "pixel_accuracy": 100.0,
                                    "iou": dict.fromkeys(protocol_class_names(16), 100.0)}}}
    table = per_class_table({"m": metrics}, GTA5_CITYSCAPES)
    assert table["protocol"].unique().tolist() == [16] and (table["source"] == "ours").all()
