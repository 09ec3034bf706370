"""The code base stays clean under the lint rules pyproject.toml selects (pyflakes, pycodestyle, isort,
pyupgrade, bugbear): `make test` enforces what `make lint` reports, so a finding cannot pile up unseen."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    pytest.importorskip("ruff", reason="ruff is not installed (the [dev] extra and requirements.lock pin it)")
    found = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise",
                            str(ROOT)], capture_output=True, text=True, cwd=ROOT)
    assert found.returncode == 0, found.stdout + found.stderr
