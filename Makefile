# courier — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST := $(BIN)/pytest
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-22s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install courier with its dev tools

up: $(STAMP) ## run courier on this machine with a demo tenant (embedded PostgreSQL unless COURIER_DATABASE_URL)
	$(BIN)/courier up --demo

test: $(STAMP) ## all tests (real PostgreSQL: COURIER_DATABASE_URL, else embedded)
	$(PYTEST) -q

test-unit: $(STAMP) ## pure-function tests only
	$(PYTEST) -q tests/unit

test-integration: $(STAMP) ## tests that touch PostgreSQL and HTTP
	$(PYTEST) -q tests/integration

test-delivery-retry: $(STAMP) ## the retry, claiming and dead-letter tests
	$(PYTEST) -q -m delivery_retry

lint: $(STAMP) ## ruff check, ruff format --check, mypy
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

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

.PHONY: help install up test test-unit test-integration test-delivery-retry lint fmt bench bench-quick

openapi: $(STAMP) ## regenerate docs/openapi.json from the app (a test fails when they drift)
	$(BIN)/python -m courier.api.openapi docs/openapi.json

.PHONY: openapi

smoke-delivery-retry: $(STAMP) ## end to end: serve + 2 workers + a scripted local receiver, checked through the API (<1 min)
	$(BIN)/python scripts/smoke_delivery_retry.py

chaos: $(STAMP) ## full chaos run: 10,000 deliveries, worker SIGKILLs, PostgreSQL restarts, receiver pause (~2 min)
	COURIER_CHAOS=full $(PYTEST) -q -s -m chaos tests/integration/test_chaos.py

.PHONY: smoke-delivery-retry chaos

test-console: $(STAMP) ## the console's browser tests (Playwright + /usr/bin/chromium)
	$(PYTEST) -q tests/e2e/console

screenshots: $(STAMP) ## regenerate the console screenshots in docs/images (used by README.md)
	COURIER_CONSOLE_SCREENSHOTS=docs/images $(PYTEST) -q tests/e2e/console -k screenshots

.PHONY: test-console screenshots
