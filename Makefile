# Two entry points: `make demo` and `make test`. Each builds .venv from scratch when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint types pytest bench bench-read bench-stream bench-write clean

$(BIN)/.installed-base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[demo]"
	touch $@

$(BIN)/.installed-dev: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $@ $(BIN)/.installed-base

$(BIN)/.installed-bench: $(BIN)/.installed-dev
	$(BIN)/pip install -q -e ".[dev,bench]"
	touch $@

demo: $(BIN)/.installed-base
	$(BIN)/python -m ngio_async.demo

lint: $(BIN)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(BIN)/.installed-dev
	$(BIN)/mypy

pytest: $(BIN)/.installed-dev
	$(BIN)/python -m pytest

test: lint types pytest

bench: $(BIN)/.installed-bench
	$(BIN)/python benchmarks/bench_meta.py
	$(BIN)/python benchmarks/bench_read.py

bench-read: $(BIN)/.installed-bench
	$(BIN)/python benchmarks/bench_read.py

bench-stream: $(BIN)/.installed-bench
	$(BIN)/python benchmarks/bench_stream.py

bench-write: $(BIN)/.installed-bench
	$(BIN)/python benchmarks/bench_write.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
