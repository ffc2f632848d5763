# HybridOps: the two commands of the quick start are `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench bench-alerts down install clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## The main job: lab up, writer running, onprem killed, failover, summary. Leaves the lab up.
demo: $(STAMP)
	$(BIN)/hybridops demo

## Unit, workflow (real dev server) and lab (real PostgreSQL, DNS) tests.
test: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/failover.py

## The alert receiver under a storm: alerts/s, latency p50/p99, runs started against incidents.
bench-alerts: $(STAMP)
	$(BIN)/python bench/alerts.py

down: $(STAMP)
	$(BIN)/hybridops lab down

clean: down
	rm -rf .hybridops output
