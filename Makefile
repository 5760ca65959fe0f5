# One entry point for people and CI. Each target creates .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The benchmarks' own environment: aiomasto plus the baselines they measure it against.
BENCH_VENV := .venv-bench
BENCH_BIN := $(BENCH_VENV)/bin

.PHONY: test check lint typecheck pytest demo demo-crawl demo-bots bench bench-quick bench-memory bench-crawl bench-distributed clean

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

# The browser test needs Debian's chromium and chromium-driver; without them it is skipped
# (and fails under CI=true), so say how to get them before the run.
pytest: $(VENV)/.dev-installed
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || echo \
	    "note: no chromium/chromedriver on PATH, the browser test will be skipped;" \
	    "install them with 'apt-get install chromium chromium-driver' (as root) or run .ci/run"
	$(BIN)/pytest -q

## make demo: the seed flow against a local fake Mastodon
demo: $(VENV)/.installed
	$(BIN)/python -m aiomasto demo

## make demo-crawl: a crawl of a local fake fediverse, checked against its ground truth
demo-crawl: $(VENV)/.installed
	$(BIN)/python -m aiomasto demo crawl

## make demo-bots: the three example bots (reply, follow-back, image), each against a fake Mastodon
demo-bots: $(VENV)/.installed
	$(BIN)/python -m examples.bots.reply_bot --demo
	$(BIN)/python -m examples.bots.follow_back --demo
	$(BIN)/python -m examples.bots.image_bot --demo

$(BENCH_BIN)/python:
	$(PYTHON) -m venv $(BENCH_VENV)

$(BENCH_VENV)/.installed: pyproject.toml benchmarks/requirements.txt | $(BENCH_BIN)/python
	$(BENCH_BIN)/python -m pip install --quiet -e . -r benchmarks/requirements.txt
	touch $@

## make bench: every benchmark scenario and the baselines; writes benchmarks/results.md
bench: $(BENCH_VENV)/.installed
	$(BENCH_BIN)/python -m benchmarks.run

## make bench-quick: a smoke run of every scenario (about half a minute), nothing written
bench-quick: $(BENCH_VENV)/.installed
	$(BENCH_BIN)/python -m benchmarks.run --quick

## make bench-memory: the client's peak RSS streaming 10k, 100k and 1M followers
bench-memory: $(VENV)/.dev-installed
	$(BIN)/python -m benchmarks.bench_memory

## make bench-crawl: the crawler over 10 fake instances, 200,000 edges; writes benchmarks/results-crawl.md
bench-crawl: $(BENCH_VENV)/.installed
	$(BENCH_BIN)/python -m benchmarks.bench_crawl

## make bench-distributed: 1, 2 and 4 crawl workers on one PostgreSQL; the shared limiters
bench-distributed: $(VENV)/.dev-installed
	$(BIN)/python -m benchmarks.bench_distributed

clean:
	rm -rf $(VENV) $(BENCH_VENV) .mypy_cache .pytest_cache .ruff_cache build dist *.egg-info
