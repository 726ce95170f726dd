# Two commands for a fresh machine with Python 3.11+ and make:
#   make demo   - play the source's stories (grid case, 1+3+N mediation) and print them;
#                 installs only what the demo needs (gridflow and SQLAlchemy)
#   make test   - lint, type-check and run the whole test suite (installs the rest:
#                 the dev and docs toolchains, the example plugin)
# Both create (once) and reuse a local virtual environment in .venv.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Everything: tests, type checks, docs, benchmarks.
STAMP := $(VENV)/.installed
# Only the demo's needs; the full install satisfies it too.
DEMO_STAMP := $(VENV)/.demo-installed
# The demo's dependencies, read from pyproject.toml (the core ones, the sql extra and
# the pii extra: the demo's reporters' names and phones are sealed).
# Nothing is built for the demo: a .pth file puts src/ on the venv's path, as an
# editable install would (`make test` then makes the real editable install).
DEMO_REQUIREMENTS := $(VENV)/demo-requirements.txt

.PHONY: demo test lint typecheck pytest docs bench bench-quick wheel-check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
	print('\n'.join(p['dependencies'] + p['optional-dependencies']['sql'] + p['optional-dependencies']['pii'] + p['optional-dependencies']['china']))" > $(DEMO_REQUIREMENTS)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r $(DEMO_REQUIREMENTS)
	$(BIN)/python -c "import pathlib, sysconfig; \
	pathlib.Path(sysconfig.get_path('purelib'), 'gridflow-src.pth').write_text('$(CURDIR)/src\n')"
	touch $(DEMO_STAMP)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,docs,cli]"
	# The example plugin distribution, so its entry point is discovered for real.
	$(BIN)/python -m pip install --quiet -e examples/plugin_package
	touch $(STAMP) $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/python -m gridflow demo $(DEMO_ARGS)

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
