# Two commands do all set-up on a fresh machine: `make run` and `make test`.
# Each creates .venv when missing and installs the pinned set once (a stamp file marks it done).

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OPTIONAL := $(VENV)/.optional-packages
export KEDRO_DISABLE_TELEMETRY := 1
export DO_NOT_TRACK := 1
export MLFLOW_DISABLE_TELEMETRY := true
export MPLBACKEND := Agg

.PHONY: run test lint bench study soak viz viz-serve mlflow-ui mlflow-server postgres-extra notebook lock clean-data clean-stale help

help:
	@echo "make run        the full default pipeline on the embedded synthetic data (MLflow: mlflow.db)"
	@echo "make test       the whole test suite"
	@echo "make lint       ruff on the whole tree (rules in pyproject.toml; the test suite runs it too)"
	@echo "make bench      speed benchmarks -> data/08_reporting/benchmarks/benchmarks.{json,md}"
	@echo "make study      every method over paired seeds and target regimes -> data/08_reporting/study/"
	@echo "                (ARGS=\"--dataset synthia\" for a SYNTHIA-layout source; ARGS=\"--help\" for the rest)"
	@echo "make soak       kill a small adaptation 30 times at random moments; it must end bit-identical (KILLS=N)"
	@echo "make viz        the Kedro-Viz static site (build/); make viz-serve serves it on 127.0.0.1:4141 (views: docs/lineage.md)"
	@echo "make mlflow-ui  the MLflow UI on this project's database"
	@echo "make notebook   JupyterLab on notebooks/compare_runs.ipynb (installs the [notebook] extra once; ARGS=\"--no-browser\")"
	@echo "make mlflow-server  a team tracking server: PostgreSQL store, artifacts through the server (docs/team_server.md)"
	@echo "make postgres-extra  the PostgreSQL driver (the [postgres] extra) in .venv; mlflow-server and CI install it"
	@echo "make clean-stale  remove what killed runs left under data/ (every kedro run does it too)"

$(STAMP): pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c "import torch" 2>/dev/null || { free=$$(df -Pk $(VENV) | awk 'NR == 2 {print int($$4 / 1048576)}'); \
	  test "$$free" -ge 7 || { echo "$(CURDIR)/$(VENV) needs about 7 GiB free to install into (torch's build alone is 5.5 GB);" \
	  "$$free GiB free there"; exit 1; }; }
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/kedro run
	@cat data/08_reporting/comparison.md && echo "Report: $(CURDIR)/data/08_reporting/report.html"

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

mlflow-ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri $${MLFLOW_TRACKING_URI:-sqlite:///mlflow.db} --host 127.0.0.1 --port 5000

# The [postgres] extra (psycopg 3, for postgresql+psycopg:// store URIs), once, never by run/test, within the
# locked versions; what it added is listed in .venv/.optional-packages (for `make lock` to leave out).
postgres-extra: $(STAMP)
	@$(BIN)/python -c "import psycopg" 2>/dev/null || { \
	  $(BIN)/python -m pip freeze --exclude-editable > $(VENV)/.optional-packages.before && \
	  $(BIN)/python -m pip install --quiet -c requirements.lock --no-build-isolation -e ".[postgres]" && \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -vxFf $(VENV)/.optional-packages.before \
	    | cut -d= -f1 >> $(VENV)/.optional-packages; }

# A team tracking server (docs/team_server.md). The store and the shared artifact location come from the
# environment (mlflow reads them; the password is never echoed): MLFLOW_BACKEND_STORE_URI=postgresql+psycopg://...
# MLFLOW_ARTIFACTS_DESTINATION=/shared/mlartifacts or s3://...; MLFLOW_HOST (0.0.0.0), MLFLOW_PORT (5000),
# ARGS="--allowed-hosts mlflow.lab:5000" for the rest. Clients: MLFLOW_TRACKING_URI=http://<host>:5000.
mlflow-server: postgres-extra
	@test -n "$${MLFLOW_BACKEND_STORE_URI:-}" -a -n "$${MLFLOW_ARTIFACTS_DESTINATION:-}" || { echo "set \
	MLFLOW_BACKEND_STORE_URI=postgresql+psycopg://USER:PASSWORD@HOST:5432/DB and MLFLOW_ARTIFACTS_DESTINATION=<shared \
	folder or s3://bucket/path> (docs/team_server.md)" >&2; exit 1; }
	MLFLOW_HOST=$${MLFLOW_HOST:-0.0.0.0} $(BIN)/mlflow server --serve-artifacts $(ARGS)

# JupyterLab on the comparison notebook through `kedro jupyter lab` (it installs the "Kedro (adaptseg)" kernel, with
# the kedro.ipython extension, and makes it the default). The [notebook] extra is installed on first use, never by
# run/test, within the locked versions; what it added is listed in $(OPTIONAL), which `make lock` leaves out.
# The file browser starts at the project root; Jupyter refuses root without --allow-root (containers): root only.
notebook: $(STAMP)
	@$(BIN)/python -c "import jupyterlab" 2>/dev/null || { \
	  $(BIN)/python -m pip freeze --exclude-editable > $(OPTIONAL).before && \
	  $(BIN)/python -m pip install --quiet -c requirements.lock --no-build-isolation -e ".[notebook]" && \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -vxFf $(OPTIONAL).before | cut -d= -f1 >> $(OPTIONAL); }
	$(BIN)/kedro jupyter lab notebooks/compare_runs.ipynb --ServerApp.root_dir=. $(if $(filter 0,$(shell id -u)),--allow-root) $(ARGS)

lock: $(STAMP)
	{ echo "# Exact versions the test suite ran with (Python 3.11, x86_64). Regenerate: make lock"; \
	  $(BIN)/python -m pip freeze --exclude-editable $(addprefix --exclude ,$(shell cat $(OPTIONAL) 2>/dev/null)); } > requirements.lock

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
	@echo "Overview (readable): http://127.0.0.1:4141/?pid=__default__&types=nodes   other views: docs/lineage.md"
	$(BIN)/kedro viz run --no-browser --host 127.0.0.1 --port 4141
