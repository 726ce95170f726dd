# Two commands for a fresh machine with Python 3.11+ and make:
#   make demo   - play the source's stories (grid case, 1+3+N mediation) and print them
#   make test   - lint, type-check and run the whole test suite
# Both create (once) and reuse a local virtual environment in .venv.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest docs bench bench-quick wheel-check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,docs,cli]"
	# The example plugin distribution, so its entry point is discovered for real.
	$(BIN)/python -m pip install --quiet -e examples/plugin_package
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gridflow demo $(DEMO_ARGS)

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests examples benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy --strict src

pytest: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

docs: $(STAMP)
	$(BIN)/mkdocs build --strict

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

bench-quick: $(STAMP)
	$(BIN)/python benchmarks/run.py --quick

clean:
	rm -rf $(VENV) dist site .mypy_cache .ruff_cache .pytest_cache
