# HybridOps: the two commands of the quick start are `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint dashboards evidence-schema bench bench-detection bench-patroni bench-alerts bench-drill bench-chaos bench-replay bench-metrics bench-readiness bench-signals down install deps clean

$(STAMP): pyproject.toml
	-scripts/debian-deps
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,lab]'
	touch $(STAMP)

install: $(STAMP)

## Debian packages (python3-venv, Prometheus, Alertmanager, the PostgreSQL exporter).
deps:
	scripts/debian-deps

## The main job: lab up, writer running, onprem killed, failover, summary. Leaves the lab up.
## Monitoring is optional for the demo: without its packages the lab runs without it.
demo: $(STAMP)
	-scripts/debian-deps
	$(BIN)/hybridops demo

## Unit, workflow (real dev server) and lab (real PostgreSQL, DNS, Prometheus, Alertmanager) tests.
# Two pytest-xdist workers, a module each at a time (its one lab), each worker's labs on a /16
# of their own (tests/conftest.py): about 30 min instead of 55. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
test: $(STAMP)
	scripts/debian-deps
	$(BIN)/pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile --durations=25  # the slowest: where the CI time goes

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## runbooks/evidence.schema.json from its model (hybridops/contracts/evidence.py); a unit test
## fails when the two differ.
evidence-schema: $(STAMP)
	$(BIN)/python -m hybridops.contracts.evidence > runbooks/evidence.schema.json

## infra/grafana/dashboards/*.json from infra/grafana/build.py; a unit test fails when they differ.
dashboards: $(STAMP)
	$(BIN)/python infra/grafana/build.py

bench: $(STAMP)
	$(BIN)/python bench/failover.py

## Detection: N kills, host deaths, hangs (until isolated) and 2 s blips of the primary; the writer's outage
## (median, p95, max), the RTO split, false failovers and missed ones (both must be 0); then the
## same kill against Patroni (bench/patroni.py, with etcd: apt-get install etcd-server), as a ratio.
bench-detection: $(STAMP)
	-$(BIN)/pip install --quiet -e '.[bench]'  # Patroni; without it the comparison says so and skips
	PYTHONPATH=. $(BIN)/python bench/detection.py --patroni  # it reuses bench/failover.py's helpers

## Patroni alone: its write outage when the leader's host dies, at its defaults and its floor.
bench-patroni: $(STAMP)
	-$(BIN)/pip install --quiet -e '.[bench]'
	PYTHONPATH=. $(BIN)/python bench/patroni.py --tuned

## The alert receiver under a storm: alerts/s, latency p50/p99, runs started against incidents.
bench-alerts: $(STAMP)
	$(BIN)/python bench/alerts.py

## Drills and failback: restore time against database size, the switchover's write pause.
bench-drill: $(STAMP)
	$(BIN)/python bench/drill.py

## Chaos: N randomized kills (worker, database server, DNS API) across failover and failback;
## runs, completed, writable-primary violations (must be 0), lost writes against counted.
bench-chaos: $(STAMP)
	PYTHONPATH=. $(BIN)/python bench/chaos.py  # it reuses the chaos tests' helpers (tests/lab/chaos.py)

## Replaying 1,000 histories: one at a time against one replayer per CPU, histories/s.
bench-replay: $(STAMP)
	$(BIN)/python bench/replay.py

## A worker's metrics endpoint: its size and scrape time.
bench-metrics: $(STAMP)
	$(BIN)/python bench/metrics.py

## Readiness: one evaluation's time on the lab, and each reading its checks rest on.
bench-readiness: $(STAMP)
	$(BIN)/python bench/readiness.py

## Signals: one collection from the lab's Prometheus, one combined query against one per signal.
bench-signals: $(STAMP)
	$(BIN)/python bench/signals.py --incident

down: $(STAMP)
	$(BIN)/hybridops lab down

clean: down
	rm -rf .hybridops output
