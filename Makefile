# One entry point for people and CI: `make demo`, `make check`, `make test-unit`, `make test`, `make bench`.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
SOURCES := driftline tests bench

.PHONY: setup setup-offline demo check lint test-unit test bench clean

setup: $(VENV)/.installed

# The offline module's heavy dependencies (torch pinned to the CPU build, opacus, onnx, shap) and the
# audit extra: tests need them.
setup-offline: $(VENV)/.offline

$(VENV)/.offline: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[worker,dev,offline,audit]'
	touch $@

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[worker,dev]'
	touch $@

demo: setup
	$(BIN)/driftline demo

# Lint, format, types and the architecture's import contracts: no offline extras needed, under a minute.
check: setup
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/mypy
	$(BIN)/lint-imports

lint: check

# Unit tests and doctests: no broker, no database.
test-unit: setup-offline
	$(BIN)/pytest -m "not integration"

# Everything: the README's test command and CI.
test: check setup-offline
	$(BIN)/pytest

bench: setup
	$(BIN)/pip install -q -e '.[worker,dev,bench]'
	$(BIN)/python bench/producer_throughput.py
	$(BIN)/python bench/ingest_throughput.py
	$(BIN)/python bench/alert_latency.py

clean:
	rm -rf $(VENV) .driftline .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
