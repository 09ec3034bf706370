"""Paired differences and the study table."""

import pandas as pd
import pytest

from adaptseg.reporting.study_summary import (
    budget_figure,
    budget_pairs,
    paired_difference,
    summarise_study,
    t95,
)


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


def test_regimes_may_have_fewer_seeds_and_methods():
    """The layout regimes may run fewer seeds and skip methods: counted per regime, skipped cells shown as –."""
    rows = [
        {"seed": s, "layout_shift": "none", "method": m, "split": "val", "miou": base + s}
        for s in (1, 2, 3)
        for m, base in (("source_only", 30), ("lambda0_control", 30), ("adaptsegnet_multi", 35))
    ] + [
        {"seed": s, "layout_shift": "mild", "method": m, "split": "val", "miou": base + s}
        for s in (1, 2)
        for m, base in (("source_only", 28), ("adaptsegnet_multi", 31))
    ]
    summary = summarise_study(pd.DataFrame(rows), order=["source_only", "lambda0_control", "adaptsegnet_multi"])
    mild = summary["json"]["regimes"]["mild"]
    assert mild["methods"]["lambda0_control"]["n"] == 0
    assert "adaptsegnet_multi - lambda0_control" not in mild["paired"]
    assert mild["paired"]["adaptsegnet_multi - source_only"]["n"] == 2
    assert "| none | 3 |" in summary["markdown"] and "| mild | 2 | 29.5 ± 0.7 | – | 32.5 ± 0.7 |" in summary["markdown"]


def test_gap_closed_and_every_method_against_each_baseline():
    rows = [
        {"seed": s, "regime": "fog", "method": m, "split": "val", "miou": base + s * k}
        for s in (1, 2, 3)
        for m, base, k in (("source_only", 40, 1), ("adaptsegnet_multi", 45, 1.5), ("dacs", 48, 1), ("oracle_finetune", 50, 1))
    ]
    summary = summarise_study(pd.DataFrame(rows), baselines=["source_only", "adaptsegnet_multi"],
                              comparisons=[["dacs", "oracle_finetune"]])
    fog = summary["json"]["regimes"]["fog"]
    assert fog["gap_closed"]["dacs"] == pytest.approx(0.8) and fog["gap_closed"]["source_only"] == 0
    assert {"dacs - source_only", "dacs - adaptsegnet_multi", "adaptsegnet_multi - source_only",
            "dacs - oracle_finetune"} <= set(fog["paired"])
    assert "| fog | dacs - source_only | 3 | +8.0 * |" in summary["markdown"]
    grid = summary["markdown"].split("Paired difference with `source_only`")[1].split("\n\n")[1].splitlines()
    assert grid[0] == "| regime | adaptsegnet_multi | dacs | oracle_finetune |"
    assert grid[2].startswith("| fog | +6.0* [+4.8, +7.2] |") and "| +8.0* [+8.0, +8.0] |" in grid[2]


def test_seeds_pair_within_one_machine_and_the_gap_uses_the_methods_own_runs():
    """Rows of the same seed from two processors are different runs: a method trained on one machine is set
    against that machine's source-only and oracle, and the summary says the regime mixes machines."""
    rows = [
        {"seed": s, "regime": "fog", "method": m, "split": "val", "miou": base + s, "machine": machine}
        for s in (1, 2, 3)
        for machine, shift in (("amd", 0), ("intel", 10))
        for m, base in (("source_only", 10 + shift), ("oracle_finetune", 50 + shift))
    ] + [{"seed": s, "regime": "fog", "method": "advent", "split": "val", "miou": 40 + s, "machine": "intel"}
         for s in (1, 2, 3)]
    summary = summarise_study(pd.DataFrame(rows))
    fog = summary["json"]["regimes"]["fog"]
    assert fog["paired"]["advent - source_only"]["mean"] == pytest.approx(20) and fog["paired"]["advent - source_only"]["n"] == 3
    assert fog["gap_closed"]["advent"] == pytest.approx(0.5)  # (41..43 − 21..23) / (61..63 − 21..23), intel only
    assert fog["machines"] == ["amd", "intel"] and "`fog` holds runs of 2 machines" in summary["markdown"]


def test_a_longer_run_is_held_against_source_only_and_the_oracle_at_its_own_budget():
    """``dacs_4000_steps`` pairs with ``source_only_4000_steps`` and closes a share of the 4000-step gap;
    a budget the study lacks a baseline for falls back to the default one."""
    rows = [
        {"seed": s, "regime": "none", "method": m, "split": "val", "miou": base + s}
        for s in (1, 2, 3)
        for m, base in (("source_only", 40), ("oracle_finetune", 50), ("dacs", 47),
                        ("source_only_4000_steps", 42), ("oracle_finetune_4000_steps", 62), ("dacs_4000_steps", 60),
                        ("dacs_2000_steps", 49))
    ]
    summary = summarise_study(pd.DataFrame(rows))
    none = summary["json"]["regimes"]["none"]
    assert none["gap_closed"]["dacs"] == pytest.approx(0.7)
    assert none["gap_closed"]["dacs_4000_steps"] == pytest.approx(0.9)  # (60 − 42) / (62 − 42), not (60 − 40) / 10
    assert none["gap_closed"]["dacs_2000_steps"] == pytest.approx(0.9)  # no 2000-step bounds: the default ones
    assert none["gap_closed"]["source_only_4000_steps"] == 0
    assert none["paired"]["dacs_4000_steps - source_only_4000_steps"]["mean"] == pytest.approx(18)
    assert "dacs_4000_steps - source_only" not in none["paired"]
    grid = summary["markdown"].split("Paired difference with `source_only`")[1].split("\n\n")[1].splitlines()
    assert "+18.0*" in grid[2]


def test_the_budget_figure_draws_a_method_run_at_one_other_budget_beside_bounds_at_two():
    """DACS only at 2000 steps, the bounds at 1000 and 2000, multi-level only at 1000: DACS is a point on both
    panels, multi-level (nothing to compare across budgets) is left out; a regime of one budget draws nothing,
    nor one where only the bounds ran at 2000 steps (no method to hold against them)."""
    bounds_2000 = (("source_only_2000_steps", 41), ("oracle_finetune_2000_steps", 53))
    extra = {"noise": (*bounds_2000, ("dacs_2000_steps", 52)), "mild": bounds_2000, "fog": ()}
    rows = [
        {"seed": s, "regime": regime, "method": m, "split": "val", "miou": base + s}
        for s in (1, 2, 3)
        for regime in extra
        for m, base in (("source_only", 40), ("oracle_finetune", 50), ("adaptsegnet_multi", 45), *extra[regime])
    ]
    figure = budget_figure(summarise_study(pd.DataFrame(rows))["json"], 1000)
    scores, shares = figure.axes
    assert "regime noise" in scores.get_title() and len(figure.axes) == 2  # fog: one budget; mild: bounds only
    assert sorted(line.get_label() for line in shares.get_lines() if not line.get_label().startswith("_")) == ["dacs"]
    assert shares.get_lines()[0].get_ydata().tolist() == pytest.approx([100 * 11 / 12])  # (52 − 41) / (53 − 41)
    assert {text.get_text() for text in scores.get_legend().get_texts()} == {"dacs", "oracle_finetune", "source_only"}
    assert budget_figure(summarise_study(pd.DataFrame([r for r in rows if r["regime"] == "fog"]))["json"], 1000) is None


def test_a_run_at_another_budget_is_held_against_the_oracle_and_its_own_namespace_at_that_budget_and_below():
    methods = ["source_only", "dacs", "dacs_rcs", "cbst", "oracle_finetune", "source_only_2000_steps",
               "dacs_2000_steps", "dacs_rcs_2000_steps", "oracle_finetune_2000_steps", "dacs_rcs_4000_steps",
               "oracle_finetune_4000_steps", "source_only_500_steps"]
    comparisons = [["dacs_rcs", "dacs"], ["cbst", "dacs_2000_steps"], ["dacs_mic", "dacs"]]
    pairs = budget_pairs(methods, comparisons, base_steps=1000)
    assert ("dacs_2000_steps", "oracle_finetune_2000_steps") in pairs
    assert ("dacs_rcs_4000_steps", "dacs_rcs_2000_steps") in pairs  # the next lower budget, not the default
    assert ("source_only_2000_steps", "source_only") in pairs and ("oracle_finetune_2000_steps", "oracle_finetune") in pairs
    assert ("source_only", "source_only_500_steps") not in pairs  # unlabelled rows are only ever the lower side
    assert ("dacs_rcs_2000_steps", "dacs_2000_steps") in pairs  # a comparison repeated at a budget both ran
    assert not any(b == "dacs_4000_steps" or a.startswith("dacs_mic") for a, b in pairs)  # never ran: no pair
    assert ("oracle_finetune_2000_steps", "oracle_finetune_2000_steps") not in pairs
    assert budget_pairs(methods, comparisons, base_steps=None).count(("source_only_2000_steps", "source_only")) == 0

    rows = [{"seed": s, "regime": "noise", "method": m, "split": "val", "miou": 40 + i + s}
            for s in (1, 2) for i, m in enumerate(methods)]
    paired = summarise_study(pd.DataFrame(rows), comparisons=comparisons, base_steps=1000)["json"]["regimes"]["noise"]["paired"]
    assert paired["cbst - dacs_2000_steps"]["mean"] == pytest.approx(-3)  # a configured pair naming a budget
    assert paired["dacs_rcs_4000_steps - dacs_rcs_2000_steps"]["mean"] == pytest.approx(2)
