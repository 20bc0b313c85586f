# lnrisk — run `make help` for the targets.
# Research screening support for NCT05585671; not a diagnostic device.

SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# Tools run as `python -m ...`: the venv's interpreter, whatever PATH says.
PY := $(BIN)/python
LNRISK := $(PY) -m training
HOST ?= 127.0.0.1
PORT ?= 3000
UI_PORT ?= 5000

# Embedded defaults: local stores under .lnrisk/. Override any of them for a team
# server (e.g. MLFLOW_TRACKING_URI=http://mlflow.internal:5000).
export LNRISK_HOME ?= $(CURDIR)/.lnrisk
export BENTOML_HOME ?= $(LNRISK_HOME)/bentoml
export BENTOML_DO_NOT_TRACK ?= True
export MLFLOW_DISABLE_TELEMETRY ?= true
export DO_NOT_TRACK ?= true

.DEFAULT_GOAL := help

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

# The browser test (tests/test_mlflow_ui.py) drives Debian's headless Chromium.
CHROMIUM ?= /usr/bin/chromium
CHROMEDRIVER ?= /usr/bin/chromedriver
$(CHROMEDRIVER):
	@command -v apt-get >/dev/null || { echo "install chromium + chromedriver (needed by the browser test)"; exit 1; }
	apt-get install -y -q chromium chromium-driver >/dev/null || \
	  { apt-get update -q >/dev/null && apt-get install -y -q chromium chromium-driver >/dev/null; }

setup: $(VENV)/.installed $(CHROMEDRIVER) ## Create .venv, install pinned dependencies (+ Debian chromium for the browser test)

serve: setup ## Train on the synthetic cohort if no champion exists, import it, serve on $(HOST):$(PORT)
	$(LNRISK) train --if-no-champion
	$(LNRISK) import-model
	$(PY) -m bentoml serve serving.service:LNRiskService --host $(HOST) --port $(PORT)

# The team-server tests skip without PostgreSQL; here (and so in CI) that is a failure.
test: setup ## Run the whole test suite (what CI runs: unit, HTTP, real servers, notebooks, browser)
	LNRISK_REQUIRE_POSTGRES=$${LNRISK_REQUIRE_POSTGRES:-1} $(PY) -m pytest

check: setup ## The quick tier for a developer's inner loop: lint, import rules, fast tests
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q -m "not slow and not integration"

# MLflow 3's UI otherwise starts seven background workers for its GenAI features.
ui: setup ## Open the MLflow UI on the same store (http://$(HOST):$(UI_PORT)); a team server is its own UI
	@case "$(MLFLOW_TRACKING_URI)" in \
	  http*) echo "the team server is the UI: open $(MLFLOW_TRACKING_URI) and log in";; \
	  *) MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(PY) -m mlflow ui --backend-store-uri "$(or $(MLFLOW_TRACKING_URI),sqlite:///$(LNRISK_HOME)/mlflow.db)" --host $(HOST) --port $(UI_PORT);; \
	esac

team-server: setup ## MLflow tracking server on PostgreSQL with proxied artifacts and logins (docs/team-server.md)
	$(PY) -m training.registry.team_server serve

team-roles: setup ## Create the team's users and roles on the team server (docs/team-server.md)
	$(PY) -m training.registry.team_server roles

train: setup ## Train a new model version (registers champion only if none exists)
	$(LNRISK) train

lint: setup ## ruff check and format check
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

build: setup ## Build a Bento (needs an imported model: make serve or lnrisk import-model)
	$(PY) -m bentoml build .

/usr/bin/wrk:
	apt-get install -y -q wrk >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q wrk >/dev/null; }

bench: setup /usr/bin/wrk ## Run the benchmarks (benchmarks/serving.py drives real servers with wrk)
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean: ## Remove the local stores (.lnrisk) — keeps .venv
	rm -rf $(LNRISK_HOME)

.PHONY: help setup serve test check ui team-server team-roles train lint build bench clean
