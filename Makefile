# Two commands do all set-up on a fresh machine: `make run` and `make test`.
# Each creates .venv when missing and installs the pinned set once (a stamp file marks it done).

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export KEDRO_DISABLE_TELEMETRY := 1
export DO_NOT_TRACK := 1
export MLFLOW_DISABLE_TELEMETRY := true
export MPLBACKEND := Agg

.PHONY: run test bench study soak viz viz-serve mlflow-ui lock clean-data clean-stale help

help:
	@echo "make run        the full default pipeline on the embedded synthetic data (MLflow: mlflow.db)"
	@echo "make test       the whole test suite"
	@echo "make bench      speed benchmarks -> data/08_reporting/benchmarks/benchmarks.{json,md}"
	@echo "make study      every method over paired seeds and target regimes -> data/08_reporting/study/"
	@echo "                (ARGS=\"--dataset synthia\" for a SYNTHIA-layout source; ARGS=\"--help\" for the rest)"
	@echo "make soak       kill a small adaptation 30 times at random moments; it must end bit-identical (KILLS=N)"
	@echo "make viz        the Kedro-Viz static site (build/); make viz-serve serves it on 127.0.0.1:4141"
	@echo "make mlflow-ui  the MLflow UI on this project's database"
	@echo "make clean-stale  remove what killed runs left under data/ (every kedro run does it too)"

$(STAMP): pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/kedro run
	@cat data/08_reporting/comparison.md && echo "Report: $(CURDIR)/data/08_reporting/report.html"

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

mlflow-ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri $${MLFLOW_TRACKING_URI:-sqlite:///mlflow.db} --host 127.0.0.1 --port 5000

lock: $(STAMP)
	{ echo "# Exact versions the test suite ran with (Python 3.11, x86_64). Regenerate: make lock"; \
	  $(BIN)/python -m pip freeze --exclude-editable; } > requirements.lock

clean-stale: $(STAMP)
	$(BIN)/python -m adaptseg.io.stale data

clean-data:
	find data -mindepth 2 ! -name .gitkeep -delete

soak: $(STAMP)
	$(BIN)/python studies/soak.py --kills $${KILLS:-30}

study: $(STAMP)
	$(BIN)/python studies/adaptation_study.py $(ARGS)

# Lineage: the Kedro-Viz static site (build/, with dataset previews) and the live app on loopback.
viz: $(STAMP)
	$(BIN)/kedro viz build --include-previews

viz-serve: $(STAMP)
	$(BIN)/kedro viz run --no-browser --host 127.0.0.1 --port 4141
