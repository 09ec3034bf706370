"""The soak on a small scale: two kills at random moments, the resumed run ends bit-identical, nothing left."""

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "studies" / "soak.py"


@pytest.mark.slow
def test_a_run_killed_twice_ends_where_an_uninterrupted_one_ends(tmp_path):
    spec = importlib.util.spec_from_file_location("soak", SCRIPT)
    soak = importlib.util.module_from_spec(spec)
    sys.modules["soak"] = soak
    spec.loader.exec_module(soak)
    figures = soak.soak(tmp_path, kills=2, steps=12, seed=3)
    assert figures["bit_identical"] and figures["histories_equal"], figures["tensors_differing"]
    assert figures["final_step"] == 12 and figures["leftovers_after"] == []
