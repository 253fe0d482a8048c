# Two commands on a fresh machine: `make run` (the service in sandbox mode, SQLite in guildgate-sandbox.db; its banner
# says how to run the CLI: .venv/bin/guildgate) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8080

.PHONY: run test test-deps check lint format typecheck pytest screenshots clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/guildgate serve --sandbox --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench

format: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

test-deps:
	bash scripts/install-test-deps.sh

pytest: $(STAMP) test-deps
	$(BIN)/pytest $(PYTEST_ARGS)

# the browser tests (Playwright + Debian's Chromium), then their screenshots copied to docs/screenshots/
screenshots: $(STAMP) test-deps
	$(BIN)/pytest tests/web/test_pages_browser.py -q
	mkdir -p docs/screenshots && cp test-output/screenshots/*.png docs/screenshots/

# format check, lint, mypy strict on src/, then the whole test suite
check: lint typecheck pytest

test: check

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-output
