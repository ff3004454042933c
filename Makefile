# Two commands do all of the set-up on a fresh machine:
#   make demo   the main job: the demo against the embedded emulator
#   make test   lint, type-check and the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

# The pure cores under mutation testing; each aiotts/_X.py needs its tests/unit/test_X.py.
MUTATE_MODULES ?= _states _decode _pacing _ratelimit _backoff _auth _retry _manifest _files

.PHONY: demo test lint typecheck pytest bench mutate clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,speed,speech]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/aiotts demo

lint: $(BIN)/.installed
	$(BIN)/ruff check aiotts tests benchmarks examples
	$(BIN)/ruff format --check aiotts tests benchmarks examples

typecheck: $(BIN)/.installed
	$(BIN)/mypy

# Branch coverage of aiotts/ (the emulator left out), printed after the tests.
COVERAGE := --cov=aiotts --cov-branch --cov-report=term:skip-covered
# Test processes: most tests wait on loopback I/O and subprocesses, so two share two cores well.
PYTEST_WORKERS ?= 2

pytest: $(BIN)/.installed
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) $(COVERAGE)

test: lint typecheck pytest

mutate: $(BIN)/.installed
	$(BIN)/python -m tests.mutate $(MUTATE_MODULES)

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/compare.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build/mutate .coverage
