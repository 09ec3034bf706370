"""Paired differences and the study table."""

import pandas as pd
import pytest

from adaptseg.reporting.study_summary import paired_difference, summarise_study, t95


def test_paired_difference_uses_the_t_interval():
    a = pd.Series([10.0, 12.0, 14.0], index=[1, 2, 3])
    b = pd.Series([9.0, 10.0, 11.0], index=[1, 2, 3])
    d = paired_difference(a, b)  # differences 1, 2, 3
    assert d["mean"] == pytest.approx(2.0) and d["std"] == pytest.approx(1.0)
    half = t95(2) * 1.0 / 3**0.5
    assert d["ci95"] == pytest.approx([2 - half, 2 + half])


def test_summary_table_lists_every_method_per_regime():
    rows = [
        {"seed": s, "layout_shift": shift, "method": m, "split": "val", "miou": base + s}
        for s in (1, 2)
        for shift in ("none", "strong")
        for m, base in (("source_only", 30), ("adaptsegnet_multi", 35), ("oracle", 60))
    ]
    summary = summarise_study(pd.DataFrame(rows))
    assert "adaptsegnet_multi - source_only" in summary["json"]["regimes"]["none"]["paired"]
    assert summary["json"]["regimes"]["none"]["paired"]["adaptsegnet_multi - source_only"]["mean"] == pytest.approx(5)
    assert "| none |" in summary["markdown"] and "| strong |" in summary["markdown"]
