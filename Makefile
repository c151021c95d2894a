# One entry point for people and CI: `make demo`, `make test`, `make bench`.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup setup-offline demo test lint bench clean

setup: $(VENV)/.installed

# The offline module's heavy dependencies (torch pinned to the CPU build, opacus, onnx, shap) and the
# audit extra: tests need them.
setup-offline: $(VENV)/.offline

$(VENV)/.offline: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[dev,offline,audit]'
	touch $@

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

demo: setup
	$(BIN)/driftline demo

lint: setup-offline
	$(BIN)/ruff check driftline tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

bench: setup
	$(BIN)/pip install -q -e '.[dev,bench]'
	$(BIN)/python bench/producer_throughput.py
	$(BIN)/python bench/ingest_throughput.py
	$(BIN)/python bench/alert_latency.py

clean:
	rm -rf $(VENV) .driftline .pytest_cache .mypy_cache .ruff_cache
