# leadscore — `make help` lists the targets.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export MLFLOW_TRACKING_URI ?= sqlite:///mlflow.db
PORT ?= 3000
DEMO_DATA ?= data/demo

.PHONY: help install demo test test-fast bench lint clean
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: $(STAMP) ## create .venv with the project and its dev extras (quick when already done)
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

demo: install ## generate → features → train b2b/b2c/hybrid → register → serve on 127.0.0.1 (PORT=3000)
	$(BIN)/leadscore demo --data $(DEMO_DATA) --port $(PORT)

test: install ## the full test suite (slow tests included)
	$(BIN)/python -m pytest -q --durations=20

test-fast: install ## the suite without slow tests
	$(BIN)/python -m pytest -q -m "not slow"

bench: install ## feature, quality and serving benchmarks (ratios against peers in the same run)
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) || echo "install wrk for the serving benchmark"
	$(BIN)/python -m bench.run

SOURCES := leadscore synthetic features model training serving feedback cli bench tests

lint: install ## ruff (lint and format check) and mypy on the package
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/mypy

clean: ## remove generated data, MLflow store and local state
	rm -rf data/demo .leadscore mlflow.db mlruns/* bench/out
