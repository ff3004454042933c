# Two commands do all of the set-up on a fresh machine:
#   make demo   the main job: the demo against the embedded emulator
#   make test   lint, type-check and the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck pytest bench clean

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

pytest: $(BIN)/.installed
	$(BIN)/python -m pytest

test: lint typecheck pytest

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/compare.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
