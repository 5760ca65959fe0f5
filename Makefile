# One entry point for people and CI. Each target creates .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: test check lint typecheck pytest demo bench bench-memory clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

## make test: ruff, mypy --strict and pytest (what CI runs)
test: check pytest

check: lint typecheck

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.dev-installed
	$(BIN)/mypy

pytest: $(VENV)/.dev-installed
	$(BIN)/pytest -q

## make demo: the seed flow against a local fake Mastodon
demo: $(VENV)/.installed
	$(BIN)/python -m aiomasto demo

## make bench: every benchmark scenario (see benchmarks/README.md)
bench: bench-memory

## make bench-memory: the client's peak RSS streaming 10k, 100k and 1M followers
bench-memory: $(VENV)/.dev-installed
	$(BIN)/python -m benchmarks.bench_memory

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build dist *.egg-info
