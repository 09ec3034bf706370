"""The budget label is written by the study, read by its summary and accepted by validation: one spelling."""

from adaptseg.reporting.budgets import budget_label, budget_suffix, split_budget


def test_label_round_trips_and_unlabelled_names_are_the_default_budget():
    assert budget_label("dacs_rcs", 4000) == "dacs_rcs_4000_steps"
    assert split_budget("dacs_rcs_4000_steps") == ("dacs_rcs", 4000)
    assert budget_suffix("oracle_finetune_2000_steps") == "_2000_steps"
    assert split_budget("dacs_rcs") == ("dacs_rcs", None) and budget_suffix("dacs_rcs") == ""
    assert split_budget("steps_2000") == ("steps_2000", None)  # only the suffix form is a label
